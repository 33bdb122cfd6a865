// The CPU backend's float arithmetic contract, shared by every kernel variant so that the
// scalar reference, AVX2 and NEON produce the same bits:
//
// 16-lane order. A float dot product or sum puts element i in lane i % 16; each lane
//   accumulates in index order with fused multiply-adds; the lanes are then added as a
//   tree: l[i] + l[i+8], then + the pair 4 apart, then 2 apart, then 1 apart. A length
//   that is not a multiple of 16 behaves as if padded with zeros. AVX2 holds the 16 lanes
//   as two 8-float halves, NEON as four quads.
// fast_exp. The polynomial exp of ARM's optimized-routines (max error 1.5 ulp), in the
//   form with the constant term inside the polynomial and an exact final scaling by 2^n.
//
// Both are llama.cpp's arithmetic on AVX-512 (tinyBLAS tiles of 16 floats reduced with
// _mm512_reduce_add_ps; ggml_v_expf for softmax and SiLU), so models with f32 weights
// reproduce its logits bit for bit (see ReferenceLogitsTest), on any CPU.
//
// Functions are `static inline`: this header is included by files built with ISA flags
// (see quants.h for why that matters).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

namespace ei::cpu {

constexpr int kLanes = 16;

// The 16-lane tree sum.
static inline float lane16_reduce(const float l[kLanes]) {
    float t8[8], t4[4];
    for (int i = 0; i < 8; ++i) t8[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; ++i) t4[i] = t8[i] + t8[i + 4];
    return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

// Dot product in the 16-lane order; load(p, i) gives element i of p as float.
template <typename T, typename Load>
static inline float lane16_dot(int64_t n, const T* x, const T* y, Load load) {
    float l[kLanes] = {};
    for (int64_t i = 0; i < n; ++i) l[i % kLanes] = std::fma(load(x, i), load(y, i), l[i % kLanes]);
    return lane16_reduce(l);
}

// x * 2^n rounded once, for an integral n in [-192, 192] (AVX-512's vscalefps): the product
// is exact in double, so the conversion to float is the only rounding.
static inline float scale_pow2(float x, float n) {
    return static_cast<float>(static_cast<double>(x) * std::ldexp(1.0, static_cast<int>(n)));
}

static inline float fast_exp(float x) {
    const float shift = 0x1.8p23f;
    const float z = std::fma(x, 0x1.715476p+0f, shift);
    const float n = z - shift;  // round(x / ln 2)
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));  // x - n ln 2
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                      std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                             u, std::fma(0x1.ffffecp-1f, b, 1.0f));
    if (std::isnan(n)) return std::numeric_limits<float>::quiet_NaN();
    if (std::fabs(n) > 192.0f) return n > 0 ? std::numeric_limits<float>::infinity() : 0.0f;
    return scale_pow2(j, n);
}

// SiLU as llama.cpp computes it: x / (1 + exp(-x)).
static inline float fast_silu(float x) { return x / (1.0f + fast_exp(0.0f - x)); }

}  // namespace ei::cpu
