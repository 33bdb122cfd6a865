// GGUF reader: every shared file reads correctly; every malformed file is refused with
// a message naming the field and byte offset; nothing malformed crashes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <random>

#include "check.h"
#include "error.h"
#include "gguf.h"

namespace {

std::vector<uint8_t> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<std::string> shared_ggufs() {
    std::vector<std::string> out;
    for (const char* sub : {"models", "vocab"}) {
        std::string dir = check::testdata(sub);
        if (DIR* d = opendir(dir.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n.size() > 5 && n.substr(n.size() - 5) == ".gguf") out.push_back(dir + "/" + n);
            }
            closedir(d);
        }
    }
    return out;
}

// A tiny GGUF serializer for hand-made (and hand-broken) files.
struct Writer {
    std::vector<uint8_t> b;
    Writer& u32(uint32_t v) { return raw(&v, 4); }
    Writer& u64(uint64_t v) { return raw(&v, 8); }
    Writer& str(const std::string& s) {
        u64(s.size());
        return raw(s.data(), s.size());
    }
    Writer& raw(const void* p, size_t n) {
        const uint8_t* c = static_cast<const uint8_t*>(p);
        b.insert(b.end(), c, c + n);
        return *this;
    }
    Writer& pad(size_t align) {
        while (b.size() % align) b.push_back(0);
        return *this;
    }
};

// Header + one u32 kv ("k" = 7) + given tensor infos; data appended by the caller.
Writer header(uint64_t n_tensors, uint64_t n_kv = 1) {
    Writer w;
    w.raw("GGUF", 4).u32(3).u64(n_tensors).u64(n_kv);
    w.str("k").u32(EI_VALUE_UINT32).u32(7);
    return w;
}

std::unique_ptr<ei::GgufFile> parse(const Writer& w) { return ei::GgufFile::parse(w.b.data(), w.b.size(), "mem"); }

}  // namespace

TEST(reads_every_shared_gguf) {
    auto files = shared_ggufs();
    CHECK(files.size() >= 11);
    for (const auto& path : files) {
        auto f = ei::GgufFile::open(path);
        CHECK_EQ(f->version(), 3u);
        CHECK(!f->get_string("general.architecture").empty());
        CHECK(f->find("tokenizer.ggml.tokens") != nullptr);
        CHECK(f->data_offset() % f->alignment() == 0);
        // Each tensor's data pointer shows the file's own bytes at data offset + offset.
        const std::vector<uint8_t> bytes = slurp(path);
        CHECK_EQ(uint64_t(bytes.size()), f->file_size());
        for (const auto& t : f->tensors()) {
            CHECK(t.offset % f->alignment() == 0);
            CHECK(t.offset + t.n_bytes <= f->file_size() - f->data_offset());
            const uint64_t at = f->data_offset() + t.offset, n = std::min<uint64_t>(t.n_bytes, 4096);
            CHECK(at + n <= bytes.size() && std::memcmp(t.data, bytes.data() + at, n) == 0);
        }
    }
}

TEST(tiny_llama_q4_k_m_contents) {
    auto f = ei::GgufFile::open(check::testdata("models/tiny-llama-q4_k_m.gguf"));
    CHECK_EQ(f->tensors().size(), size_t{39});
    CHECK_EQ(f->kvs().size(), size_t{23});
    CHECK_EQ(f->alignment(), uint64_t{32});
    CHECK_EQ(f->get_int("llama.embedding_length", 0), int64_t{256});
    CHECK_EQ(f->get_int("llama.attention.head_count_kv", 0), int64_t{2});
    CHECK_NEAR(f->get_float("llama.rope.freq_base", 0), 10000.0, 0);
    const ei::TensorInfo* out = f->tensor("output.weight");
    CHECK(out && out->type == 14 && out->ne[0] == 256 && out->ne[1] == 1024);  // q6_K
    const ei::TensorInfo* q = f->tensor("blk.0.attn_q.weight");
    CHECK(q && q->type == 12 && q->n_bytes == 256u * 256 / 256 * 144);  // q4_K
    const ei_value* toks = f->find("tokenizer.ggml.tokens");
    CHECK(toks && toks->elem_type == EI_VALUE_STRING && toks->count == 1024 && toks->strs[1] == "<s>");
    const ei_value* types = f->find("tokenizer.ggml.token_type");
    CHECK(types && types->array_int(1) == 3 && types->array_int(3) == 6);
    CHECK(f->get_bool("tokenizer.ggml.add_bos_token", false));
}

TEST(qwen2_vocab_has_merges_and_template) {
    auto f = ei::GgufFile::open(check::testdata("vocab/ggml-vocab-qwen2.gguf"));
    CHECK_EQ(f->tensors().size(), size_t{0});
    const ei_value* m = f->find("tokenizer.ggml.merges");
    CHECK(m && m->count == 151387);
    CHECK(f->get_string("tokenizer.chat_template").find("<|im_start|>") != std::string::npos);
}

TEST(nested_arrays_and_every_scalar_type) {
    Writer w;
    w.raw("GGUF", 4).u32(2).u64(0).u64(3);
    w.str("nested").u32(EI_VALUE_ARRAY).u32(EI_VALUE_ARRAY).u64(2);
    w.u32(EI_VALUE_INT16).u64(2);
    int16_t a[2] = {-3, 4};
    w.raw(a, 4);
    w.u32(EI_VALUE_STRING).u64(1).str("x");
    w.str("f64").u32(EI_VALUE_FLOAT64);
    double d = 2.5;
    w.raw(&d, 8);
    w.str("i8").u32(EI_VALUE_INT8);
    int8_t i8 = -5;
    w.raw(&i8, 1);
    auto f = parse(w);
    CHECK_EQ(f->version(), 2u);
    const ei_value* n = f->find("nested");
    CHECK(n && n->count == 2 && n->items[0].array_int(0) == -3 && n->items[0].array_int(1) == 4);
    CHECK(n->items[1].strs[0] == "x");
    CHECK_NEAR(f->get_float("f64", 0), 2.5, 0);
    CHECK_EQ(f->get_int("i8", 0), int64_t{-5});
}

TEST(rejects_bad_header_fields_with_offsets) {
    Writer w;
    w.raw("GGUX", 4).u32(3).u64(0).u64(0);
    CHECK_THROWS(parse(w), EI_ERR_FORMAT, "bad magic");
    Writer v;
    v.raw("GGUF", 4).u32(1).u64(0).u64(0);
    CHECK_THROWS(parse(v), EI_ERR_FORMAT, "version 1");
    Writer c;
    c.raw("GGUF", 4).u32(3).u64(0).u64(uint64_t{1} << 60);
    CHECK_THROWS(parse(c), EI_ERR_FORMAT, "metadata count");
    Writer s;
    s.raw("GGUF", 4).u32(3).u64(0).u64(1).u64(uint64_t{1} << 62).u64(0).u64(0);
    CHECK_THROWS(parse(s), EI_ERR_FORMAT, "metadata[0] key length 4611686018427387904 runs past the end of the file at byte 24");
    Writer arr = header(0, 2);
    arr.str("a").u32(EI_VALUE_ARRAY).u32(EI_VALUE_UINT32).u64(uint64_t{1} << 61);
    CHECK_THROWS(parse(arr), EI_ERR_FORMAT, "element count");
    Writer t = header(0, 2);
    t.str("a").u32(99);
    CHECK_THROWS(parse(t), EI_ERR_FORMAT, "unknown value type 99");
    Writer dup = header(0, 2);
    dup.str("k").u32(EI_VALUE_UINT32).u32(8);
    CHECK_THROWS(parse(dup), EI_ERR_FORMAT, "duplicate metadata key 'k'");
}

TEST(rejects_bad_tensor_infos) {
    auto one = [](uint64_t d0, uint64_t d1, uint32_t type, uint64_t off, size_t data) {
        Writer w = header(1);
        w.str("t").u32(2).u64(d0).u64(d1).u32(type).u64(off);
        w.pad(32);
        w.b.resize(w.b.size() + data, 0x11);
        return w;
    };
    CHECK(parse(one(32, 2, 0, 0, 256))->tensor("t")->n_bytes == 256);
    CHECK_THROWS(parse(one(32, 2, 0, 0, 255)), EI_ERR_FORMAT, "outside the data section");
    CHECK_THROWS(parse(one(32, 2, 0, 32, 256)), EI_ERR_FORMAT, "outside the data section");
    CHECK_THROWS(parse(one(32, 2, 0, 16, 512)), EI_ERR_FORMAT, "not aligned");
    CHECK_THROWS(parse(one(32, 2, 77, 0, 256)), EI_ERR_FORMAT, "unknown tensor type 77");
    CHECK_THROWS(parse(one(uint64_t{1} << 40, uint64_t{1} << 40, 0, 0, 256)), EI_ERR_FORMAT, "overflow");
    CHECK_THROWS(parse(one(33, 2, 8, 0, 256)), EI_ERR_FORMAT, "block size");
    CHECK_THROWS(parse(one(0, 2, 0, 0, 256)), EI_ERR_FORMAT, "out of range");

    Writer d = header(2);
    d.str("t").u32(1).u64(8).u32(0).u64(0);
    d.str("t").u32(1).u64(8).u32(0).u64(32);
    d.pad(32);
    d.b.resize(d.b.size() + 64);
    CHECK_THROWS(parse(d), EI_ERR_FORMAT, "duplicate tensor name 't'");

    Writer nd = header(1);
    nd.str("t").u32(5);
    CHECK_THROWS(parse(nd), EI_ERR_FORMAT, "5 dims");
}

TEST(rejects_bad_alignment) {
    Writer w;
    w.raw("GGUF", 4).u32(3).u64(0).u64(1);
    w.str("general.alignment").u32(EI_VALUE_UINT32).u32(48);
    CHECK_THROWS(parse(w), EI_ERR_FORMAT, "power of two");
}

TEST(missing_file_is_io_error) {
    CHECK_THROWS(ei::GgufFile::open("/nonexistent/x.gguf"), EI_ERR_IO, "cannot open");
    CHECK_THROWS(ei::GgufFile::open("/"), EI_ERR_IO, "not a regular file");
}

// Every prefix length of a real header (and a sample past it) fails cleanly, and random
// byte mutations never crash: each either parses or throws ei::Error.
TEST(truncated_and_mutated_corpus) {
    auto bytes = slurp(check::testdata("models/tiny-llama-q4_k_m.gguf"));
    auto full = ei::GgufFile::parse(bytes.data(), bytes.size(), "orig");
    const size_t header_end = full->data_offset();
    uint64_t data_end = header_end;  // where the last tensor's bytes end
    for (const auto& t : full->tensors()) data_end = std::max<uint64_t>(data_end, header_end + t.offset + t.n_bytes);
    int refused = 0;
    for (size_t n = 0; n < bytes.size(); n += (n < header_end + 64 ? 1 : 4099)) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
        try {
            ei::GgufFile::parse(cut.data(), cut.size(), "cut");
            CHECK(n >= data_end);  // a cut that loses any tensor's bytes must be refused
        } catch (const ei::Error& e) {
            ++refused;
            CHECK(e.status() == EI_ERR_FORMAT);
            CHECK(std::string(e.what()).find("at byte") != std::string::npos);
        }
    }
    CHECK(refused > static_cast<int>(header_end));

    // Mutated headers either parse into a file whose every tensor lies inside the buffer,
    // or throw ei::Error (anything else escapes and fails the case).
    // The whole file, its header mutated in place and restored after each try.
    std::mt19937_64 rng(1234);
    int parsed = 0, errors = 0;
    std::vector<uint8_t> m = bytes;
    for (int iter = 0; iter < 3000; ++iter) {
        std::copy(bytes.begin(), bytes.begin() + header_end, m.begin());
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            size_t pos = rng() % header_end;
            m[pos] = static_cast<uint8_t>(rng() % 3 == 0 ? 0xFF : rng());
        }
        try {
            auto g = ei::GgufFile::parse(m.data(), m.size(), "mut");
            ++parsed;
            for (const auto& t : g->tensors()) {
                CHECK(t.data >= m.data() && t.data + t.n_bytes <= m.data() + m.size());
            }
        } catch (const ei::Error&) {
            ++errors;
        }
    }
    std::printf("mutated headers: %d parsed, %d refused\n", parsed, errors);
    CHECK(errors > 0 && parsed > 0);  // both outcomes occur: the in-bounds check above ran
}

TEST(float_values_read_as_integers_saturate) {
    // A float where an integer is read (the fuzzer's find: -3.4e221 as int64 was undefined
    // behaviour) truncates toward zero and saturates; NaN gives 0.
    ei::Value v;
    v.type = EI_VALUE_FLOAT64;
    const double cases[] = {-3.38084e+221, 1e300, std::nan(""), -2.5, 2.5, 9.3e18, -1.0};
    const int64_t want_i[] = {INT64_MIN, INT64_MAX, 0, -2, 2, INT64_MAX, -1};
    const uint64_t want_u[] = {0, UINT64_MAX, 0, 0, 2, 9300000000000000000ull, 0};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); ++k) {
        v.num.f = cases[k];
        CHECK_EQ(v.as_int(), want_i[k]);
        CHECK_EQ(v.as_uint(), want_u[k]);
    }
}
