#include "htp/npu_params.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "error.h"
#include "file_io.h"

namespace ei::htp {

namespace {

constexpr char kMagic[8] = {'E', 'I', 'N', 'P', 'U', 'P', 'R', 'M'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kMaxFile = uint64_t{256} << 20;

struct Writer {
    std::vector<uint8_t> out;
    void u32(uint32_t v) { for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i))); }
    void u64(uint64_t v) { for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i))); }
    void f32(float v) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        u32(u);
    }
    void str(const std::string& s) {
        u32(static_cast<uint32_t>(s.size()));
        out.insert(out.end(), s.begin(), s.end());
    }
};

// Reads fields off untrusted bytes: each read checks what remains first.
struct Reader {
    const uint8_t* p;
    size_t n, at = 0;
    [[noreturn]] void bad(const std::string& why) const {
        fail(EI_ERR_FORMAT, "NPU quantization parameters: " + why + " (at byte " + std::to_string(at) + ")");
    }
    uint64_t le(int bytes, const char* what) {
        if (n - at < static_cast<size_t>(bytes)) bad(std::string("truncated in ") + what);
        uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[at + i]) << (8 * i);
        at += static_cast<size_t>(bytes);
        return v;
    }
    uint32_t u32(const char* what) { return static_cast<uint32_t>(le(4, what)); }
    float f32(const char* what) {
        const uint32_t u = u32(what);
        float v;
        std::memcpy(&v, &u, 4);
        return v;
    }
    std::string str(const char* what) {
        const uint32_t len = u32(what);
        if (len == 0 || len > kNpuParamsMaxName) bad(std::string(what) + " has length " + std::to_string(len) + " (1.." + std::to_string(kNpuParamsMaxName) + ")");
        if (n - at < len) bad(std::string("truncated in ") + what);
        std::string s(reinterpret_cast<const char*>(p + at), len);
        at += len;
        return s;
    }
    uint32_t count(const char* what) {
        const uint32_t c = u32(what);
        if (c > kNpuParamsMaxEntries) bad(std::string(what) + " " + std::to_string(c) + " is above " + std::to_string(kNpuParamsMaxEntries));
        return c;
    }
};

std::string hex16(uint64_t v) {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

}  // namespace

const NpuParams::WeightBits* NpuParams::weight(const std::string& name) const {
    for (const WeightBits& w : weights) {
        if (w.name == name) return &w;
    }
    return nullptr;
}

const NpuParams::Range* NpuParams::range(const std::string& name) const {
    for (const Range& r : ranges) {
        if (r.name == name) return &r;
    }
    return nullptr;
}

std::vector<uint8_t> encode_npu_params(const NpuParams& p) {
    Writer w;
    w.out.assign(kMagic, kMagic + 8);
    w.u32(kVersion);
    w.u64(p.model_fp);
    w.u32(static_cast<uint32_t>(p.block_size));
    w.str(p.scheme);
    w.u32(static_cast<uint32_t>(p.weights.size()));
    for (const auto& x : p.weights) {
        w.str(x.name);
        w.u32(static_cast<uint32_t>(x.bits));
    }
    w.u32(static_cast<uint32_t>(p.ranges.size()));
    for (const auto& r : p.ranges) {
        w.str(r.name);
        w.f32(r.min);
        w.f32(r.max);
    }
    w.u64(fnv1a64(w.out.data(), w.out.size()));
    return w.out;
}

NpuParams decode_npu_params(const uint8_t* data, size_t size, uint64_t expect_model_fp) {
    Reader r{data, data ? size : 0};
    if (r.n < 8 || std::memcmp(data, kMagic, 8) != 0) r.bad("not a parameters file (wrong magic)");
    if (r.n < 16) r.bad("truncated before the checksum");
    r.n -= 8;  // the checksum closes the file; the fields end before it
    uint64_t stored = 0;
    for (int i = 0; i < 8; ++i) stored |= static_cast<uint64_t>(data[r.n + static_cast<size_t>(i)]) << (8 * i);
    if (fnv1a64(data, r.n) != stored) r.bad("checksum mismatch (the file is damaged or was cut short)");
    r.at = 8;
    if (const uint32_t v = r.u32("version"); v != kVersion) r.bad("version " + std::to_string(v) + ", this runtime reads " + std::to_string(kVersion));
    NpuParams p;
    p.model_fp = r.le(8, "model fingerprint");
    if (p.model_fp != expect_model_fp) {
        r.bad("prepared for another model (fingerprint " + hex16(p.model_fp) + ", this model's " + hex16(expect_model_fp) + ")");
    }
    const uint32_t block = r.u32("block size");
    if (block != 0 && block != 32 && block != 64) r.bad("block size " + std::to_string(block) + " (0, 32 or 64)");
    p.block_size = static_cast<int32_t>(block);
    p.scheme = r.str("scheme");
    if (p.scheme != "16a8w" && p.scheme != "16a4w" && p.scheme != "mixed") r.bad("scheme '" + p.scheme + "' (16a8w, 16a4w or mixed)");
    std::unordered_set<std::string> seen;
    const uint32_t nw = r.count("weight count");
    p.weights.reserve(std::min<uint32_t>(nw, static_cast<uint32_t>(r.n / 9 + 1)));
    for (uint32_t i = 0; i < nw; ++i) {
        NpuParams::WeightBits w;
        w.name = r.str("weight name");
        const uint32_t bits = r.u32("weight bits");
        if (bits != 8 && bits != 4) r.bad("weight '" + w.name + "' has " + std::to_string(bits) + " bits (8 or 4)");
        if (bits == 4 && block == 0) r.bad("weight '" + w.name + "' is 4-bit but the file has no block size");
        w.bits = static_cast<int32_t>(bits);
        if (!seen.insert(w.name).second) r.bad("weight '" + w.name + "' is listed twice");
        p.weights.push_back(std::move(w));
    }
    seen.clear();
    const uint32_t nr = r.count("range count");
    p.ranges.reserve(std::min<uint32_t>(nr, static_cast<uint32_t>(r.n / 13 + 1)));
    for (uint32_t i = 0; i < nr; ++i) {
        NpuParams::Range x;
        x.name = r.str("tensor name");
        x.min = r.f32("range min");
        x.max = r.f32("range max");
        if (!std::isfinite(x.min) || !std::isfinite(x.max) || x.min > x.max) {
            r.bad("tensor '" + x.name + "' has the range [" + std::to_string(x.min) + ", " + std::to_string(x.max) + "]");
        }
        if (!seen.insert(x.name).second) r.bad("tensor '" + x.name + "' is listed twice");
        p.ranges.push_back(std::move(x));
    }
    if (r.at != r.n) r.bad(std::to_string(r.n - r.at) + " bytes after the last field");
    return p;
}

std::string npu_params_file(const std::string& dir, uint64_t model_fp) {
    return dir + "/htp-" + hex16(model_fp) + ".params";
}

void store_npu_params(const std::string& dir, const NpuParams& p) {
    if (!make_dirs(dir)) fail(EI_ERR_IO, "cannot create the folder '" + dir + "'");
    const std::vector<uint8_t> bytes = encode_npu_params(p);
    const std::string path = npu_params_file(dir, p.model_fp);
    if (!write_file_atomic(path, bytes.data(), bytes.size())) fail(EI_ERR_IO, "cannot write '" + path + "'");
}

bool load_npu_params(const std::string& dir, uint64_t model_fp, NpuParams& out) {
    if (dir.empty()) return false;
    const std::string path = npu_params_file(dir, model_fp);
    std::vector<uint8_t> bytes;
    if (!read_file(path, kMaxFile, bytes)) {
        FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) return false;  // none prepared for this model
        std::fclose(f);
        fail(EI_ERR_FORMAT, "NPU quantization parameters '" + path + "' cannot be read or are over " + std::to_string(kMaxFile >> 20) + " MiB");
    }
    try {
        out = decode_npu_params(bytes.data(), bytes.size(), model_fp);
    } catch (const Error& e) {
        fail(e.status(), std::string(e.what()) + " in '" + path + "'");
    }
    return true;
}

}  // namespace ei::htp
