// Weight-type kernels of the CPU backend: ggml's block layouts (bit-identical, so GGUF
// tensors are used in place), fp16/bf16 conversion, and per type the three kernels a
// matmul needs: dequantize a row, quantize an activation row into the type the weights
// dot with ("vec_dot_type", as in ggml's CPU backend), and the dot product of one
// weight row with one prepared activation row. Variants (scalar, AVX2, NEON, NEON with
// dotprod) are picked at run time from cpu_features().
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ggml_types.h"

namespace ei::cpu {

constexpr int kQK = 32;    // elements per Q4_0 / Q8_0 block
constexpr int kQK_K = 256; // elements per K-quant super-block

struct BlockQ8_0 {
    uint16_t d;  // f16 scale
    int8_t qs[kQK];
};
struct BlockQ4_0 {
    uint16_t d;        // f16 scale
    uint8_t qs[kQK / 2];  // element j: low nibble of qs[j]; element j+16: high nibble
};
struct BlockQ5_0 {
    uint16_t d;        // f16 scale
    uint8_t qh[4];     // bit j: the fifth bit of element j
    uint8_t qs[kQK / 2];  // low 4 bits, as Q4_0: element j low nibble, element j+16 high
};
// Element j (0..31) of a Q5_0 block, 0..31 (the value is that minus 16, times d).
static inline int q5_0_value(const BlockQ5_0& b, int j) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const int lo = j < 16 ? (b.qs[j] & 0xF) : (b.qs[j - 16] >> 4);
    return lo | static_cast<int>(((qh >> j) & 1u) << 4);
}
struct BlockQ4_K {
    uint16_t d;          // f16 scale of the 6-bit sub-block scales
    uint16_t dmin;       // f16 scale of the 6-bit sub-block mins
    uint8_t scales[12];  // 8 scales + 8 mins, 6 bits each (see q4k_scale_min)
    uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
    uint8_t ql[kQK_K / 2];  // low 4 bits
    uint8_t qh[kQK_K / 4];  // high 2 bits
    int8_t scales[kQK_K / 16];
    uint16_t d;  // f16
};
struct BlockQ8_K {
    float d;
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];  // sum of each group of 16 qs
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must match ggml");
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must match ggml");
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block must match ggml");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block must match ggml");
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block must match ggml");

// The conversion helpers are `static inline` on purpose: this header is also included by
// files built with -mavx2 / -march=armv8.2-a, and a shared (COMDAT) inline copy compiled
// there could be the one the linker keeps for the scalar code too.

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
static inline float f32_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// IEEE half -> float, exact for every number (subnormals and infinities included).
static inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        // Subnormal (or zero): mant * 2^-24, exact in float.
        const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
        return f32_from_bits(sign | f32_bits(v));
    }
    // NaNs come out quiet, as F16C's vcvtph2ps and NEON's fcvtl make them.
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
    return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

// float -> IEEE half, round to nearest even, as F16C's vcvtps2ph and NEON's fcvtn do
// (NaNs keep their top payload bits and become quiet).
static inline uint16_t fp32_to_fp16(float f) {
    const uint32_t u = f32_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
    if (a < 0x38800000u) {
        // Below the smallest normal half: adding 0.5 leaves the value's multiple of 2^-24
        // in the low mantissa bits, rounded to nearest even by the FPU.
        const float v = f32_from_bits(a) + 0.5f;
        return static_cast<uint16_t>(sign | (f32_bits(v) - 0x3f000000u));
    }
    const uint32_t odd = (a >> 13) & 1u;
    return static_cast<uint16_t>(sign | ((a - 0x38000000u + 0xfffu + odd) >> 13));
}

static inline float bf16_to_fp32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

// float -> bf16 as ggml does it: round to nearest even, NaNs made quiet, subnormals kept.
static inline uint16_t fp32_to_bf16(float f) {
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64u);
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Scale and min of sub-block j (0..7) of a Q4_K block: ggml's 6-bit packing. Sub-blocks
// 0..3 keep theirs in the low 6 bits of bytes j and j+4; 4..7 split theirs between a
// nibble of byte j+4 and the top 2 bits of bytes j-4 (scale) and j (min).
static inline void q4k_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

// All 8 scales (bytes 0..7 of out) and 8 mins (bytes 8..15) at once, for the SIMD kernels.
static inline void q4k_unpack_scales(const uint8_t* s, uint8_t out[16]) {
    uint32_t w0, w1, w2;
    std::memcpy(&w0, s, 4);
    std::memcpy(&w1, s + 4, 4);
    std::memcpy(&w2, s + 8, 4);
    const uint32_t sc_lo = w0 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_lo = w1 & 0x3f3f3f3fu;
    const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
    std::memcpy(out, &sc_lo, 4);
    std::memcpy(out + 4, &sc_hi, 4);
    std::memcpy(out + 8, &m_lo, 4);
    std::memcpy(out + 12, &m_hi, 4);
}

// Avx512 names only the attention primitives' table (ops.h): its weight kernels are AVX2's,
// and AVX-512 matmuls go through the packed GEMM (packed_gemm.h).
enum class KernelVariant { Scalar, Avx2, Neon, NeonDotprod, NeonI8mm, Avx512 };
const char* variant_name(KernelVariant v);

struct TypeKernels {
    ei::GgmlType type;
    ei::GgmlType vec_dot_type;
    KernelVariant variant;
    // Dequantize a row of n elements (n a multiple of type's block size).
    void (*to_float)(const void* src, float* dst, int64_t n);
    // Quantize n activations into vec_dot_type (n a multiple of its block size).
    void (*from_float)(const float* src, void* dst, int64_t n);
    // *out = dot of one weight row (type) with one activation row (vec_dot_type), n elements.
    void (*vec_dot)(int64_t n, float* out, const void* w_row, const void* act_row);
};

// Dots of one weight row with 4 activation rows (act_stride bytes apart), each bit-identical
// to vec_dot of that pair: prefill reuses each loaded (and unpacked) weight block 4 times.
using VecDotX4 = void (*)(int64_t n, float* out4, const void* w_row, const void* act, uint64_t act_stride);
// The x4 kernel of a type and variant, or nullptr where there is none (call vec_dot 4 times).
VecDotX4 vec_dot_x4_for(ei::GgmlType t, KernelVariant v);
// Dots of 2 weight rows with 2 activation rows: out4 = {w0.a0, w0.a1, w1.a0, w1.a1}, each
// bit-identical to vec_dot of that pair (i8mm's SMMLA computes such a tile in one step).
using VecDot2x2 = void (*)(int64_t n, float* out4, const void* w0, const void* w1, const void* a0, const void* a1);
VecDot2x2 vec_dot_2x2_for(ei::GgmlType t, KernelVariant v);

// Best variant for this CPU; nullptr if the type has no kernels.
const TypeKernels* kernels_for(ei::GgmlType t);
// A specific variant; nullptr if it was not built, cannot run on this CPU (or is masked by
// EI_CPU_DISABLE), or the type has no kernels. Scalar is always there for supported types.
const TypeKernels* kernels_for(ei::GgmlType t, KernelVariant v);
// Bytes of a row of n elements; 0 for an unknown type or n not a multiple of its block size.
size_t row_size(ei::GgmlType t, int64_t n);

}  // namespace ei::cpu
