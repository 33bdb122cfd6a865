// Test-only: a copy of a GGUF model with f32 tensors added (its keys and tensors byte for
// byte), e.g. memory gates with chosen values, for the tests that run gated models.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "check.h"
#include "edgeinfinite/edgeinfinite.h"
#include "gguf.h"

namespace check {

inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

template <typename T>
inline T read_at(const uint8_t* b, uint64_t p) {
    T v;
    std::memcpy(&v, b + p, sizeof(T));
    return v;
}

// Skips one GGUF metadata value of type t that starts at p (GGUF v3 layout).
inline uint64_t skip_value(const uint8_t* b, uint64_t p, uint32_t t) {
    switch (t) {
        case EI_VALUE_UINT8: case EI_VALUE_INT8: case EI_VALUE_BOOL: return p + 1;
        case EI_VALUE_UINT16: case EI_VALUE_INT16: return p + 2;
        case EI_VALUE_UINT32: case EI_VALUE_INT32: case EI_VALUE_FLOAT32: return p + 4;
        case EI_VALUE_UINT64: case EI_VALUE_INT64: case EI_VALUE_FLOAT64: return p + 8;
        case EI_VALUE_STRING: return p + 8 + read_at<uint64_t>(b, p);
        case EI_VALUE_ARRAY: {
            const uint32_t et = read_at<uint32_t>(b, p);
            const uint64_t n = read_at<uint64_t>(b, p + 4);
            p += 12;
            for (uint64_t i = 0; i < n; ++i) p = skip_value(b, p, et);
            return p;
        }
        default: CHECK(false); return p;
    }
}

struct ExtraTensor {
    std::string name;
    std::vector<int64_t> ne;
    std::vector<float> data;
};

// Writes `out`: the model `in` with f32 tensors added (its keys and tensors byte for byte).
inline void write_with_tensors(const std::string& in, const std::string& out, const std::vector<ExtraTensor>& extra) {
    std::ifstream f(in, std::ios::binary);
    const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto g = ei::GgufFile::parse(b.data(), b.size(), in);
    const uint64_t n_kv = read_at<uint64_t>(b.data(), 16);
    uint64_t kv_end = 24;
    for (uint64_t i = 0; i < n_kv; ++i) {
        kv_end += 8 + read_at<uint64_t>(b.data(), kv_end);  // key
        const uint32_t t = read_at<uint32_t>(b.data(), kv_end);
        kv_end = skip_value(b.data(), kv_end + 4, t);
    }
    std::vector<uint8_t> o;
    auto put = [&](const void* p, size_t n) { o.insert(o.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); };
    auto u32 = [&](uint32_t v) { put(&v, 4); };
    auto u64 = [&](uint64_t v) { put(&v, 8); };
    auto str = [&](const std::string& s) {
        u64(s.size());
        put(s.data(), s.size());
    };
    put(b.data(), 8);  // magic, version
    u64(g->tensors().size() + extra.size());
    u64(n_kv);
    put(b.data() + 24, kv_end - 24);
    for (const ei::TensorInfo& t : g->tensors()) {
        str(t.name);
        u32(uint32_t(t.n_dims));
        for (int d = 0; d < t.n_dims; ++d) u64(uint64_t(t.ne[d]));
        u32(uint32_t(t.type));
        u64(t.offset);
    }
    const uint64_t A = g->alignment();
    uint64_t off = align_up(b.size() - g->data_offset(), A);
    std::vector<uint64_t> offsets;
    for (const ExtraTensor& e : extra) {
        str(e.name);
        u32(uint32_t(e.ne.size()));
        for (int64_t n : e.ne) u64(uint64_t(n));
        u32(0);  // f32
        u64(off);
        offsets.push_back(off);
        off = align_up(off + 4 * e.data.size(), A);
    }
    o.resize(align_up(o.size(), A), 0);
    const uint64_t data0 = o.size();
    put(b.data() + g->data_offset(), b.size() - g->data_offset());
    for (size_t i = 0; i < extra.size(); ++i) {
        o.resize(data0 + offsets[i], 0);
        put(extra[i].data.data(), 4 * extra[i].data.size());
    }
    std::ofstream w(out, std::ios::binary | std::ios::trunc);
    w.write(reinterpret_cast<const char*>(o.data()), std::streamsize(o.size()));
    CHECK(bool(w));
}

}  // namespace check
