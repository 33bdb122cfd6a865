#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "error.h"

namespace {

// Bounds an array nest; real files use depth 1, a fuzzer would use a million.
constexpr int kMaxArrayDepth = 8;

size_t scalar_size(uint32_t t) {
    switch (t) {
        case EI_VALUE_UINT8: case EI_VALUE_INT8: case EI_VALUE_BOOL: return 1;
        case EI_VALUE_UINT16: case EI_VALUE_INT16: return 2;
        case EI_VALUE_UINT32: case EI_VALUE_INT32: case EI_VALUE_FLOAT32: return 4;
        case EI_VALUE_UINT64: case EI_VALUE_INT64: case EI_VALUE_FLOAT64: return 8;
        default: return 0;
    }
}

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

// Reads a scalar of GGUF type t at p into the value's numeric union.
void decode_scalar(uint32_t t, const uint8_t* p, ei_value& v) {
    switch (t) {
        case EI_VALUE_UINT8: v.num.u = load<uint8_t>(p); break;
        case EI_VALUE_INT8: v.num.i = load<int8_t>(p); break;
        case EI_VALUE_UINT16: v.num.u = load<uint16_t>(p); break;
        case EI_VALUE_INT16: v.num.i = load<int16_t>(p); break;
        case EI_VALUE_UINT32: v.num.u = load<uint32_t>(p); break;
        case EI_VALUE_INT32: v.num.i = load<int32_t>(p); break;
        case EI_VALUE_FLOAT32: v.num.f = load<float>(p); break;
        case EI_VALUE_BOOL: v.num.u = load<uint8_t>(p) != 0; break;
        case EI_VALUE_UINT64: v.num.u = load<uint64_t>(p); break;
        case EI_VALUE_INT64: v.num.i = load<int64_t>(p); break;
        case EI_VALUE_FLOAT64: v.num.f = load<double>(p); break;
        default: break;
    }
}

bool is_signed(ei_value_type t) {
    return t == EI_VALUE_INT8 || t == EI_VALUE_INT16 || t == EI_VALUE_INT32 || t == EI_VALUE_INT64;
}
bool is_float(ei_value_type t) { return t == EI_VALUE_FLOAT32 || t == EI_VALUE_FLOAT64; }

class Cursor {
public:
    Cursor(const uint8_t* base, uint64_t size, const std::string& label) : base_(base), size_(size), label_(label) {}
    uint64_t pos() const { return pos_; }
    void seek(uint64_t p) { pos_ = p; }

    [[noreturn]] void error(const std::string& what, uint64_t at) const {
        ei::fail(EI_ERR_FORMAT, label_ + ": " + what + " at byte " + std::to_string(at));
    }
    const uint8_t* take(uint64_t n, const std::string& field) {
        if (n > size_ - pos_) {
            error(field + " runs past the end of the file (needs " + std::to_string(n) + " bytes, " +
                      std::to_string(size_ - pos_) + " left)",
                  pos_);
        }
        const uint8_t* p = base_ + pos_;
        pos_ += n;
        return p;
    }
    uint32_t u32(const std::string& field) { return load<uint32_t>(take(4, field)); }
    uint64_t u64(const std::string& field) { return load<uint64_t>(take(8, field)); }
    std::string_view str(const std::string& field) {
        uint64_t at = pos_;
        uint64_t n = u64(field + " length");
        if (n > size_ - pos_) {
            error(field + " length " + std::to_string(n) + " runs past the end of the file", at);
        }
        return {reinterpret_cast<const char*>(take(n, field)), static_cast<size_t>(n)};
    }
    uint64_t remaining() const { return size_ - pos_; }

private:
    const uint8_t* base_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& label_;
};

void read_value(Cursor& c, uint32_t type, ei_value& out, const std::string& field, int depth) {
    uint64_t at = c.pos();
    if (type > EI_VALUE_FLOAT64) c.error(field + " has unknown value type " + std::to_string(type), at);
    out.type = static_cast<ei_value_type>(type);
    if (type == EI_VALUE_STRING) {
        out.str = c.str(field);
        return;
    }
    if (type != EI_VALUE_ARRAY) {
        decode_scalar(type, c.take(scalar_size(type), field), out);
        return;
    }
    if (depth >= kMaxArrayDepth) c.error(field + " nests arrays deeper than " + std::to_string(kMaxArrayDepth), at);
    uint64_t et_at = c.pos();
    uint32_t et = c.u32(field + " element type");
    if (et > EI_VALUE_FLOAT64) c.error(field + " has unknown array element type " + std::to_string(et), et_at);
    uint64_t n_at = c.pos();
    uint64_t n = c.u64(field + " element count");
    out.elem_type = static_cast<ei_value_type>(et);
    // Every element takes at least one byte (strings and arrays at least 8): a count that
    // cannot fit in what is left is rejected before anything is reserved.
    uint64_t min_elem = et == EI_VALUE_STRING ? 8 : et == EI_VALUE_ARRAY ? 12 : scalar_size(et);
    if (n > c.remaining() / min_elem) {
        c.error(field + " element count " + std::to_string(n) + " runs past the end of the file", n_at);
    }
    out.count = static_cast<int64_t>(n);
    if (et == EI_VALUE_STRING) {
        out.strs.reserve(n);
        for (uint64_t i = 0; i < n; ++i) out.strs.push_back(c.str(field + "[" + std::to_string(i) + "]"));
    } else if (et == EI_VALUE_ARRAY) {
        out.items.resize(n);
        for (uint64_t i = 0; i < n; ++i) {
            read_value(c, EI_VALUE_ARRAY, out.items[i], field + "[" + std::to_string(i) + "]", depth + 1);
        }
    } else {
        out.raw = c.take(n * scalar_size(et), field + " data");
    }
}

}  // namespace

// ------------------------------------------------------------------------ ei_value

bool ei_value::is_numeric() const { return scalar_size(type) != 0; }

// A float read as an integer truncates toward zero and saturates (NaN gives 0): any value a
// file holds converts without undefined behaviour (found by fuzzing).
int64_t ei_value::as_int() const {
    if (is_float(type)) {
        if (std::isnan(num.f)) return 0;
        if (num.f >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
        if (num.f <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
        return static_cast<int64_t>(num.f);
    }
    return is_signed(type) ? num.i : static_cast<int64_t>(num.u);
}
uint64_t ei_value::as_uint() const {
    if (is_float(type)) {
        if (!(num.f > 0)) return 0;  // NaN and negatives
        if (num.f >= 18446744073709551616.0) return std::numeric_limits<uint64_t>::max();
        return static_cast<uint64_t>(num.f);
    }
    return is_signed(type) ? static_cast<uint64_t>(num.i) : num.u;
}
double ei_value::as_float() const {
    if (is_float(type)) return num.f;
    return is_signed(type) ? static_cast<double>(num.i) : static_cast<double>(num.u);
}

namespace {
ei_value element(const ei_value& arr, int64_t i) {
    ei_value v;
    v.type = arr.elem_type;
    decode_scalar(arr.elem_type, arr.raw + static_cast<size_t>(i) * scalar_size(arr.elem_type), v);
    return v;
}
}  // namespace

int64_t ei_value::array_int(int64_t i) const { return element(*this, i).as_int(); }
uint64_t ei_value::array_uint(int64_t i) const { return element(*this, i).as_uint(); }
double ei_value::array_float(int64_t i) const { return element(*this, i).as_float(); }

namespace ei {

// ------------------------------------------------------------------------ GgufFile

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(EI_ERR_IO, "cannot open '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(EI_ERR_IO, "'" + path + "' is not a regular file");
    }
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->label_ = path;
    f->size_ = static_cast<uint64_t>(st.st_size);
    if (f->size_ > 0) {
        void* m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            ::close(fd);
            fail(EI_ERR_IO, "cannot map '" + path + "': " + std::strerror(errno));
        }
        f->mapping_ = m;
        f->base_ = static_cast<const uint8_t*>(m);
    }
    ::close(fd);
    f->parse_all();
    return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, uint64_t size, std::string label) {
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->label_ = std::move(label);
    f->base_ = data;
    f->size_ = size;
    f->parse_all();
    return f;
}

GgufFile::~GgufFile() {
    if (mapping_) munmap(mapping_, size_);
}

void GgufFile::drop_pages(const void* p, uint64_t n) const {
    if (!mapping_) return;
    const uintptr_t base = reinterpret_cast<uintptr_t>(base_), lo = reinterpret_cast<uintptr_t>(p);
    if (lo < base || n > size_ || lo - base > size_ - n) return;  // not inside the mapping
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t first = (lo + page - 1) / page * page, last = (lo + n) / page * page;
    // Only whole pages of this range: neighbours may still be in use.
    if (first < last) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void GgufFile::parse_all() {
    static const uint8_t empty = 0;
    Cursor c(base_ ? base_ : &empty, size_, label_);
    const uint8_t* magic = c.take(4, "magic");
    if (std::memcmp(magic, "GGUF", 4) != 0) c.error("bad magic (not a GGUF file)", 0);
    version_ = c.u32("version");
    if (version_ != 2 && version_ != 3) {
        c.error("unsupported GGUF version " + std::to_string(version_) + " (supported: 2, 3)", 4);
    }
    uint64_t n_tensors_at = c.pos();
    uint64_t n_tensors = c.u64("tensor count");
    uint64_t n_kv_at = c.pos();
    uint64_t n_kv = c.u64("metadata count");
    // A key-value pair takes at least 12 bytes, a tensor info at least 24.
    if (n_kv > c.remaining() / 12) c.error("metadata count " + std::to_string(n_kv) + " runs past the end of the file", n_kv_at);
    if (n_tensors > c.remaining() / 24) {
        c.error("tensor count " + std::to_string(n_tensors) + " runs past the end of the file", n_tensors_at);
    }

    kvs_.resize(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string field = "metadata[" + std::to_string(i) + "]";
        kvs_[i].first = std::string(c.str(field + " key"));
        field = "metadata '" + kvs_[i].first + "'";
        uint32_t type = c.u32(field + " type");
        read_value(c, type, kvs_[i].second, field, 0);
    }
    for (size_t i = 0; i < kvs_.size(); ++i) {
        if (!kv_index_.emplace(kvs_[i].first, i).second) {
            c.error("duplicate metadata key '" + kvs_[i].first + "'", 24);
        }
    }
    if (const Value* a = find("general.alignment")) {
        if (!a->is_numeric() || a->type == EI_VALUE_BOOL || is_float(a->type)) {
            c.error("general.alignment must be an integer", 24);
        }
        uint64_t al = a->as_uint();
        if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 20)) {
            c.error("general.alignment " + std::to_string(al) + " is not a power of two up to 1 MiB", 24);
        }
        alignment_ = al;
    }

    tensors_.resize(n_tensors);
    std::vector<uint64_t> info_pos(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        TensorInfo& t = tensors_[i];
        info_pos[i] = c.pos();
        t.name = std::string(c.str("tensor[" + std::to_string(i) + "] name"));
        std::string field = "tensor '" + t.name + "'";
        uint64_t nd_at = c.pos();
        uint32_t nd = c.u32(field + " n_dims");
        if (nd < 1 || nd > 4) c.error(field + " has " + std::to_string(nd) + " dims (1 to 4 allowed)", nd_at);
        t.n_dims = static_cast<int32_t>(nd);
        uint64_t product = 1;
        for (uint32_t d = 0; d < nd; ++d) {
            uint64_t d_at = c.pos();
            uint64_t v = c.u64(field + " dim " + std::to_string(d));
            if (v == 0 || v > (uint64_t{1} << 62)) c.error(field + " dim " + std::to_string(d) + " = " + std::to_string(v) + " is out of range", d_at);
            if (product > (uint64_t{1} << 62) / v) c.error(field + " dims overflow (element count too large)", d_at);
            product *= v;
            t.ne[d] = static_cast<int64_t>(v);
        }
        uint64_t type_at = c.pos();
        uint32_t type = c.u32(field + " type");
        TypeTraits tt = type_traits(static_cast<int32_t>(type));
        if (!tt.name) c.error(field + " has unknown tensor type " + std::to_string(type), type_at);
        t.type = static_cast<int32_t>(type);
        if (t.ne[0] % tt.block_size != 0) {
            c.error(field + " row of " + std::to_string(t.ne[0]) + " elements is not a multiple of the " + tt.name +
                        " block size " + std::to_string(tt.block_size),
                    type_at);
        }
        uint64_t blocks = product / static_cast<uint64_t>(tt.block_size);
        if (blocks > UINT64_MAX / static_cast<uint64_t>(tt.type_size)) c.error(field + " byte size overflows", type_at);
        t.n_bytes = blocks * static_cast<uint64_t>(tt.type_size);
        uint64_t off_at = c.pos();
        t.offset = c.u64(field + " offset");
        if (t.offset % alignment_ != 0) {
            c.error(field + " data offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(alignment_), off_at);
        }
    }
    uint64_t end_of_infos = c.pos();
    data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
    if (n_tensors > 0 && data_offset_ > size_) {
        c.error("data section (aligned start " + std::to_string(data_offset_) + ") lies past the end of the file", end_of_infos);
    }
    uint64_t data_size = n_tensors > 0 ? size_ - data_offset_ : 0;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        TensorInfo& t = tensors_[i];
        if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
            c.error("tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" + std::to_string(t.n_bytes) +
                        ") lies outside the data section of " + std::to_string(data_size) + " bytes",
                    info_pos[i]);
        }
        t.data = base_ + data_offset_ + t.offset;
        if (!tensor_index_.emplace(t.name, i).second) c.error("duplicate tensor name '" + t.name + "'", info_pos[i]);
    }
}

const Value* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
}

const TensorInfo* GgufFile::tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
[[noreturn]] void wrong_type(const std::string& label, std::string_view key, const char* want) {
    fail(EI_ERR_FORMAT, label + ": metadata '" + std::string(key) + "' is not " + want);
}
}  // namespace

std::string GgufFile::get_string(std::string_view key, const std::string& def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (v->type != EI_VALUE_STRING) wrong_type(label_, key, "a string");
    return std::string(v->str);
}

int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (!v->is_numeric() || is_float(v->type)) wrong_type(label_, key, "an integer");
    return v->as_int();
}

double GgufFile::get_float(std::string_view key, double def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (!v->is_numeric()) wrong_type(label_, key, "a number");
    return v->as_float();
}

bool GgufFile::get_bool(std::string_view key, bool def) const {
    const Value* v = find(key);
    if (!v) return def;
    if (v->type != EI_VALUE_BOOL) wrong_type(label_, key, "a bool");
    return v->num.u != 0;
}

int64_t GgufFile::require_int(std::string_view key) const {
    if (!find(key)) fail(EI_ERR_FORMAT, label_ + ": required metadata '" + std::string(key) + "' is missing");
    return get_int(key, 0);
}

}  // namespace ei
