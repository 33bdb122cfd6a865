// What the OpenCL tests share: the skip when no device exists, the 64-byte aligned memory
// their pools and weights live in, random weights of every type, pool layouts, and the nMSE.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cpu/quants.h"
#include "ggml_types.h"
#include "graph.h"

#include "opencl/opencl_device.h"

namespace check {

// True when an OpenCL device is present; else prints why `test` is skipped.
inline bool have_opencl(const char* test) {
    std::string why;
    if (!ei::opencl::list_devices(&why).empty()) return true;
    std::printf("  %s skipped: no OpenCL device (%s)\n", test, why.c_str());
    return false;
}

// 64-byte aligned, zeroed host memory; copies copy the bytes.
struct AlignedBuf {
    uint8_t* p = nullptr;
    size_t size = 0;
    explicit AlignedBuf(size_t n) : size((n + 63) / 64 * 64) {
        p = static_cast<uint8_t*>(std::aligned_alloc(64, size));
        std::memset(p, 0, size);
    }
    AlignedBuf(const AlignedBuf& o) : AlignedBuf(o.size) { std::memcpy(p, o.p, size); }
    AlignedBuf& operator=(const AlignedBuf&) = delete;
    ~AlignedBuf() { std::free(p); }
};

// The random source of the OpenCL tests' data (seeded, so a failure reproduces).
inline std::mt19937 rng(1234);
inline float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

// Lays out pool regions (64-byte aligned, in order).
struct Layout {
    uint64_t size = 0;
    ei::TensorRef add(int64_t cols, int64_t rows, ei::GgmlType type = ei::GgmlType::F32) {
        ei::TensorRef r;
        r.where = ei::TensorRef::Where::Pool;
        r.type = type;
        r.offset = size;
        r.cols = cols;
        r.rows = rows;
        r.row_bytes = uint64_t(cols) * (type == ei::GgmlType::F16 ? 2 : 4);
        size += (r.row_bytes * uint64_t(rows) + 63) / 64 * 64;
        return r;
    }
    ei::TensorRef scratch(uint64_t bytes, int64_t cols = 0) {
        ei::TensorRef r = add(0, 0);
        r.cols = cols;
        size += (bytes + 63) / 64 * 64;
        return r;
    }
};

// A random weight of `rows` x `cols` of type t in ggml's layout, scales kept finite.
struct Weight {
    std::vector<uint8_t> bytes;
    ei::TensorRef ref;
    Weight(ei::GgmlType t, int64_t cols, int64_t rows) {
        const ei::TypeTraits tt = ei::type_traits(t);
        const uint64_t row_bytes = uint64_t(cols / tt.block_size * tt.type_size);
        bytes.resize(row_bytes * uint64_t(rows) + 64);
        uint8_t* base = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
        for (uint64_t i = 0; i < row_bytes * uint64_t(rows); ++i) base[i] = uint8_t(rng());
        const uint64_t blocks = row_bytes * uint64_t(rows) / uint64_t(tt.type_size);
        auto half_at = [&](uint64_t at, float v) {
            const uint16_t h = ei::cpu::fp32_to_fp16(v);
            std::memcpy(base + at, &h, 2);
        };
        for (uint64_t b = 0; b < blocks; ++b) {
            const uint64_t at = b * uint64_t(tt.type_size);
            switch (t) {
                case ei::GgmlType::F32:
                    for (int j = 0; j < 1; ++j) {
                        const float v = uniform(-1, 1);
                        std::memcpy(base + at, &v, 4);
                    }
                    break;
                case ei::GgmlType::F16: half_at(at, uniform(-1, 1)); break;
                case ei::GgmlType::BF16: {
                    const uint16_t h = ei::cpu::fp32_to_bf16(uniform(-1, 1));
                    std::memcpy(base + at, &h, 2);
                    break;
                }
                case ei::GgmlType::Q8_0:
                case ei::GgmlType::Q4_0:
                case ei::GgmlType::Q5_0: half_at(at, uniform(0.002f, 0.03f)); break;
                case ei::GgmlType::Q4_K:
                    half_at(at, uniform(0.001f, 0.004f));
                    half_at(at + 2, uniform(0.001f, 0.004f));
                    break;
                case ei::GgmlType::Q6_K: half_at(at + 208, uniform(0.0005f, 0.002f)); break;
                default: break;
            }
        }
        ref.where = ei::TensorRef::Where::Weight;
        ref.type = t;
        ref.data = base;
        ref.cols = cols;
        ref.rows = rows;
        ref.row_bytes = row_bytes;
    }
};

// A row of n floats in [lo, hi) (norm weights, biases).
inline Weight f32_vector(int64_t n, float lo, float hi) {
    Weight w(ei::GgmlType::F32, n, 1);
    float* x = static_cast<float*>(const_cast<void*>(w.ref.data));
    for (int64_t i = 0; i < n; ++i) x[i] = uniform(lo, hi);
    return w;
}

// The nMSE of rows [first_row, first_row + rows) of r in pool a against pool b (F32 or F16).
inline double nmse(const uint8_t* a, const uint8_t* b, const ei::TensorRef& r, int64_t rows, int64_t first_row = 0) {
    double num = 0, den = 0;
    for (int64_t t = first_row; t < first_row + rows; ++t) {
        for (int64_t i = 0; i < r.cols; ++i) {
            const uint64_t at = r.offset + uint64_t(t) * r.row_bytes;
            double x, y;
            if (r.type == ei::GgmlType::F16) {
                x = ei::cpu::fp16_to_fp32(reinterpret_cast<const uint16_t*>(a + at)[i]);
                y = ei::cpu::fp16_to_fp32(reinterpret_cast<const uint16_t*>(b + at)[i]);
            } else {
                x = reinterpret_cast<const float*>(a + at)[i];
                y = reinterpret_cast<const float*>(b + at)[i];
            }
            if (!std::isfinite(x)) return INFINITY;
            num += (x - y) * (x - y);
            den += y * y;
        }
    }
    return den > 0 ? num / den : num;
}

}  // namespace check
