// Scalar reference kernels (the definition of right for every SIMD variant) and the
// run-time dispatch tables. The arithmetic follows ggml's reference code step by step
// where it decides bits (activation quantization, dequantization), so results track
// llama.cpp.
#include "cpu/quants.h"

#include <cmath>

#include "cpu/cpu_features.h"
#include "cpu/float_math.h"
#include "cpu/quants_impl.h"

namespace ei::cpu {

namespace ref {

// ---- dequantization --------------------------------------------------------------------

void to_float_f32(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* x = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(x[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* x = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(x[i]);
}

void to_float_q8_0(const void* src, float* dst, int64_t n) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
    for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK; ++j) dst[j] = x[b].qs[j] * d;
    }
}

void to_float_q4_0(const void* src, float* dst, int64_t n) {
    const BlockQ4_0* x = static_cast<const BlockQ4_0*>(src);
    for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK / 2; ++j) {
            dst[j] = ((x[b].qs[j] & 0xF) - 8) * d;
            dst[j + kQK / 2] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void to_float_q5_0(const void* src, float* dst, int64_t n) {
    const BlockQ5_0* x = static_cast<const BlockQ5_0*>(src);
    for (int64_t b = 0; b < n / kQK; ++b, dst += kQK) {
        const float d = fp16_to_fp32(x[b].d);
        for (int j = 0; j < kQK; ++j) dst[j] = (q5_0_value(x[b], j) - 16) * d;
    }
}

void to_float_q4_K(const void* src, float* dst, int64_t n) {
    const BlockQ4_K* x = static_cast<const BlockQ4_K*>(src);
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const float d = fp16_to_fp32(x[b].d);
        const float dmin = fp16_to_fp32(x[b].dmin);
        const uint8_t* q = x[b].qs;
        // Each 64-element chunk: 32 bytes, low nibbles = sub-block 2c, high = sub-block 2c+1.
        for (int c = 0; c < 4; ++c, q += 32) {
            uint8_t sc, m;
            q4k_scale_min(2 * c, x[b].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            q4k_scale_min(2 * c + 1, x[b].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; ++l) *dst++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *dst++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

// The 256 values of a Q6_K block, offset removed (-32..31). Each 128-element half uses
// 64 ql bytes and 32 qh bytes: element l (0..31) of quarter k takes its low 4 bits from
// ql[l + 32*(k&1)] (low nibble for k<2, high nibble for k>=2) and its high 2 bits from
// bits 2k..2k+1 of qh[l].
static inline void q6k_decode(const BlockQ6_K& blk, int8_t out[kQK_K]) {
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = blk.ql + 64 * h;
        const uint8_t* qh = blk.qh + 32 * h;
        int8_t* o = out + 128 * h;
        for (int l = 0; l < 32; ++l) {
            o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

void to_float_q6_K(const void* src, float* dst, int64_t n) {
    const BlockQ6_K* x = static_cast<const BlockQ6_K*>(src);
    int8_t q[kQK_K];
    for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K) {
        const float d = fp16_to_fp32(x[b].d);
        q6k_decode(x[b], q);
        // Scale index is simply element/16: the 16 scales cover consecutive groups of 16.
        for (int e = 0; e < kQK_K; ++e) dst[e] = d * x[b].scales[e / 16] * q[e];
    }
}

void to_float_q8_K(const void* src, float* dst, int64_t n) {
    const BlockQ8_K* x = static_cast<const BlockQ8_K*>(src);
    for (int64_t b = 0; b < n / kQK_K; ++b, dst += kQK_K)
        for (int j = 0; j < kQK_K; ++j) dst[j] = x[b].d * x[b].qs[j];
}

// ---- activation quantization -----------------------------------------------------------

void from_float_f32(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* y = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(src[i]);
}

void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* y = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(src[i]);
}

// ggml's quantize_row_q8_0_ref: d = amax/127, q = roundf(x * (1/d)) (ties away from zero).
void from_float_q8_0(const float* src, void* dst, int64_t n) {
    BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t b = 0; b < n / kQK; ++b, src += kQK) {
        float amax = 0.0f;
        for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(src[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK; ++j) {
            // Finite rows give |q| <= 127. A NaN, an infinite block (id 0, inf * 0) or a
            // block of subnormals (1/d overflows) gives NaN or inf here, which the cast may
            // not see (undefined): they become -128, what the AVX2 conversion and pack give.
            const float q = std::round(src[j] * id);
            y[b].qs[j] = q >= -128.0f && q <= 127.0f ? static_cast<int8_t>(q) : int8_t{-128};
        }
    }
}

// Round to nearest, ties to even, for |v| < 2^22: ggml's nearest_int (the default FPU
// rounding of an add of 1.5*2^23).
static inline int nearest_int(float v) {
    const float t = v + 12582912.0f;
    return static_cast<int>(f32_bits(t) & 0x007fffffu) - 0x00400000;
}

// ggml's quantize_row_q8_K_ref: the element of largest magnitude (the first, with its
// sign) maps to -127; q = nearest_int(x * -127/max), at most 127; d = 1/iscale.
void from_float_q8_K(const float* src, void* dst, int64_t n) {
    BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
    for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQK_K; ++j) {
            const float ax = std::fabs(src[j]);
            if (ax > amax) {
                amax = ax;
                max = src[j];
            }
        }
        if (amax == 0.0f) {
            // ggml leaves bsums unwritten here; zeroing them gives the same dot (d is 0).
            std::memset(&y[b], 0, sizeof(BlockQ8_K));
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < kQK_K; ++j) {
            const int v = nearest_int(iscale * src[j]);
            y[b].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
        }
        for (int g = 0; g < kQK_K / 16; ++g) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += y[b].qs[16 * g + j];
            y[b].bsums[g] = static_cast<int16_t>(sum);
        }
        y[b].d = 1.0f / iscale;
    }
}

// ---- dot products ----------------------------------------------------------------------
// F32 and F16 use the 16-lane order of float_math.h (llama.cpp's on AVX-512); BF16 sums
// in double; the quantized ones sum integers per block and scale once per block.

void vec_dot_f32(int64_t n, float* out, const void* w, const void* a) {
    *out = lane16_dot(n, static_cast<const float*>(w), static_cast<const float*>(a),
                      [](const float* p, int64_t i) { return p[i]; });
}

void vec_dot_f16(int64_t n, float* out, const void* w, const void* a) {
    *out = lane16_dot(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a),
                      [](const uint16_t* p, int64_t i) { return fp16_to_fp32(p[i]); });
}

void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a) {
    const uint16_t* x = static_cast<const uint16_t*>(w);
    const uint16_t* y = static_cast<const uint16_t*>(a);
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]));
    *out = static_cast<float>(s);
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
        int sumi = 0;
        for (int j = 0; j < kQK; ++j) sumi += x[b].qs[j] * y[b].qs[j];
        s += sumi * (fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d));
    }
    *out = s;
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
        int sumi = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
            sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + kQK / 2];
        }
        s += sumi * (fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d));
    }
    *out = s;
}

void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ5_0* x = static_cast<const BlockQ5_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK; ++b) {
        int sumi = 0;
        for (int j = 0; j < kQK; ++j) sumi += (q5_0_value(x[b], j) - 16) * y[b].qs[j];
        s += sumi * (fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d));
    }
    *out = s;
}

// sum_j d*sc_j*sum(q*q8) - dmin*m_j*sum(q8): the mins only need Q8_K's group sums.
void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const uint8_t* q = x[b].qs;
        const int8_t* q8 = y[b].qs;
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; ++c, q += 32, q8 += 64) {
            uint8_t sc0, m0, sc1, m1;
            q4k_scale_min(2 * c, x[b].scales, &sc0, &m0);
            q4k_scale_min(2 * c + 1, x[b].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; ++l) {
                s0 += (q[l] & 0xF) * q8[l];
                s1 += (q[l] >> 4) * q8[l + 32];
            }
            isum += sc0 * s0 + sc1 * s1;
            msum += m0 * (y[b].bsums[4 * c] + y[b].bsums[4 * c + 1]) + m1 * (y[b].bsums[4 * c + 2] + y[b].bsums[4 * c + 3]);
        }
        s += fp16_to_fp32(x[b].d) * y[b].d * isum - fp16_to_fp32(x[b].dmin) * y[b].d * msum;
    }
    *out = s;
}

void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
    int8_t q[kQK_K];
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        q6k_decode(x[b], q);
        int isum = 0;
        for (int g = 0; g < kQK_K / 16; ++g) {
            int gs = 0;
            for (int j = 0; j < 16; ++j) gs += q[16 * g + j] * y[b].qs[16 * g + j];
            isum += x[b].scales[g] * gs;
        }
        s += fp16_to_fp32(x[b].d) * y[b].d * isum;
    }
    *out = s;
}

}  // namespace ref

// ---- dispatch --------------------------------------------------------------------------

namespace {

using GT = ei::GgmlType;
using KV = KernelVariant;

constexpr TypeKernels kScalar[] = {
    {GT::F32, GT::F32, KV::Scalar, ref::to_float_f32, ref::from_float_f32, ref::vec_dot_f32},
    {GT::F16, GT::F16, KV::Scalar, ref::to_float_f16, ref::from_float_f16, ref::vec_dot_f16},
    {GT::BF16, GT::BF16, KV::Scalar, ref::to_float_bf16, ref::from_float_bf16, ref::vec_dot_bf16},
    {GT::Q8_0, GT::Q8_0, KV::Scalar, ref::to_float_q8_0, ref::from_float_q8_0, ref::vec_dot_q8_0_q8_0},
    {GT::Q4_0, GT::Q8_0, KV::Scalar, ref::to_float_q4_0, ref::from_float_q8_0, ref::vec_dot_q4_0_q8_0},
    {GT::Q5_0, GT::Q8_0, KV::Scalar, ref::to_float_q5_0, ref::from_float_q8_0, ref::vec_dot_q5_0_q8_0},
    {GT::Q4_K, GT::Q8_K, KV::Scalar, ref::to_float_q4_K, ref::from_float_q8_K, ref::vec_dot_q4_K_q8_K},
    {GT::Q6_K, GT::Q8_K, KV::Scalar, ref::to_float_q6_K, ref::from_float_q8_K, ref::vec_dot_q6_K_q8_K},
};

#if defined(EI_HAVE_AVX2_KERNELS)
// Dequantizing quantized rows stays scalar: it is not on the per-token matmul path.
constexpr TypeKernels kAvx2[] = {
    {GT::F32, GT::F32, KV::Avx2, ref::to_float_f32, ref::from_float_f32, avx2::vec_dot_f32},
    {GT::F16, GT::F16, KV::Avx2, avx2::to_float_f16, avx2::from_float_f16, avx2::vec_dot_f16},
    {GT::BF16, GT::BF16, KV::Avx2, avx2::to_float_bf16, avx2::from_float_bf16, avx2::vec_dot_bf16},
    {GT::Q8_0, GT::Q8_0, KV::Avx2, ref::to_float_q8_0, avx2::from_float_q8_0, avx2::vec_dot_q8_0_q8_0},
    {GT::Q4_0, GT::Q8_0, KV::Avx2, ref::to_float_q4_0, avx2::from_float_q8_0, avx2::vec_dot_q4_0_q8_0},
    // Q5_0: the scalar row dot (with AVX-512 VNNI the packed GEMM serves it).
    {GT::Q5_0, GT::Q8_0, KV::Avx2, ref::to_float_q5_0, avx2::from_float_q8_0, ref::vec_dot_q5_0_q8_0},
    {GT::Q4_K, GT::Q8_K, KV::Avx2, ref::to_float_q4_K, avx2::from_float_q8_K, avx2::vec_dot_q4_K_q8_K},
    {GT::Q6_K, GT::Q8_K, KV::Avx2, ref::to_float_q6_K, avx2::from_float_q8_K, avx2::vec_dot_q6_K_q8_K},
};
#endif

#if defined(EI_HAVE_NEON_KERNELS)
constexpr TypeKernels kNeon[] = {
    {GT::F32, GT::F32, KV::Neon, ref::to_float_f32, ref::from_float_f32, neon::vec_dot_f32},
    {GT::F16, GT::F16, KV::Neon, neon::to_float_f16, neon::from_float_f16, neon::vec_dot_f16},
    {GT::BF16, GT::BF16, KV::Neon, neon::to_float_bf16, neon::from_float_bf16, neon::vec_dot_bf16},
    {GT::Q8_0, GT::Q8_0, KV::Neon, ref::to_float_q8_0, neon::from_float_q8_0, neon::vec_dot_q8_0_q8_0},
    {GT::Q4_0, GT::Q8_0, KV::Neon, ref::to_float_q4_0, neon::from_float_q8_0, neon::vec_dot_q4_0_q8_0},
    {GT::Q4_K, GT::Q8_K, KV::Neon, ref::to_float_q4_K, neon::from_float_q8_K, neon::vec_dot_q4_K_q8_K},
    {GT::Q6_K, GT::Q8_K, KV::Neon, ref::to_float_q6_K, neon::from_float_q8_K, neon::vec_dot_q6_K_q8_K},
};
constexpr TypeKernels kNeonDotprod[] = {
    {GT::F32, GT::F32, KV::NeonDotprod, ref::to_float_f32, ref::from_float_f32, neon::vec_dot_f32},
    {GT::F16, GT::F16, KV::NeonDotprod, neon::to_float_f16, neon::from_float_f16, neon::vec_dot_f16},
    {GT::BF16, GT::BF16, KV::NeonDotprod, neon::to_float_bf16, neon::from_float_bf16, neon::vec_dot_bf16},
    {GT::Q8_0, GT::Q8_0, KV::NeonDotprod, ref::to_float_q8_0, neon::from_float_q8_0, neon_dotprod::vec_dot_q8_0_q8_0},
    {GT::Q4_0, GT::Q8_0, KV::NeonDotprod, ref::to_float_q4_0, neon::from_float_q8_0, neon_dotprod::vec_dot_q4_0_q8_0},
    {GT::Q4_K, GT::Q8_K, KV::NeonDotprod, ref::to_float_q4_K, neon::from_float_q8_K, neon_dotprod::vec_dot_q4_K_q8_K},
    {GT::Q6_K, GT::Q8_K, KV::NeonDotprod, ref::to_float_q6_K, neon::from_float_q8_K, neon_dotprod::vec_dot_q6_K_q8_K},
};
// Only the types SMMLA helps; the others fall through to the dotprod table.
constexpr TypeKernels kNeonI8mm[] = {
    {GT::Q8_0, GT::Q8_0, KV::NeonI8mm, ref::to_float_q8_0, neon::from_float_q8_0, neon_i8mm::vec_dot_q8_0_q8_0},
    {GT::Q4_0, GT::Q8_0, KV::NeonI8mm, ref::to_float_q4_0, neon::from_float_q8_0, neon_i8mm::vec_dot_q4_0_q8_0},
};
#endif

template <size_t N>
const TypeKernels* find(const TypeKernels (&table)[N], GT t) {
    for (const TypeKernels& k : table)
        if (k.type == t) return &k;
    return nullptr;
}

}  // namespace

const char* variant_name(KernelVariant v) {
    switch (v) {
        case KV::Scalar: return "scalar";
        case KV::Avx2: return "avx2";
        case KV::Neon: return "neon";
        case KV::NeonDotprod: return "neon-dotprod";
        case KV::NeonI8mm: return "neon-i8mm";
        case KV::Avx512: return "avx512";
    }
    return "?";
}

const TypeKernels* kernels_for(GT t, KernelVariant v) {
    [[maybe_unused]] const CpuFeatures& f = cpu_features();
    switch (v) {
        case KV::Scalar: return find(kScalar, t);
        case KV::Avx2:
#if defined(EI_HAVE_AVX2_KERNELS)
            if (f.avx2 && f.fma && f.f16c) return find(kAvx2, t);
#endif
            return nullptr;
        case KV::Neon:
#if defined(EI_HAVE_NEON_KERNELS)
            if (f.neon) return find(kNeon, t);
#endif
            return nullptr;
        case KV::NeonDotprod:
#if defined(EI_HAVE_NEON_KERNELS)
            if (f.neon && f.dotprod) return find(kNeonDotprod, t);
#endif
            return nullptr;
        case KV::NeonI8mm:
#if defined(EI_HAVE_NEON_KERNELS)
            if (f.neon && f.dotprod && f.i8mm) return find(kNeonI8mm, t);
#endif
            return nullptr;
        case KV::Avx512: return nullptr;
    }
    return nullptr;
}

const TypeKernels* kernels_for(GT t) {
    for (KV v : {KV::NeonI8mm, KV::NeonDotprod, KV::Neon, KV::Avx2, KV::Scalar})
        if (const TypeKernels* k = kernels_for(t, v)) return k;
    return nullptr;
}

VecDotX4 vec_dot_x4_for(GT t, KernelVariant v) {
#if defined(EI_HAVE_AVX2_KERNELS)
    if (v == KernelVariant::Avx2 && kernels_for(t, v)) {
        if (t == GT::F32) return avx2::vec_dot_x4_f32;
        if (t == GT::F16) return avx2::vec_dot_x4_f16;
        if (t == GT::Q8_0) return avx2::vec_dot_x4_q8_0_q8_0;
        if (t == GT::Q4_0) return avx2::vec_dot_x4_q4_0_q8_0;
        if (t == GT::Q4_K) return avx2::vec_dot_x4_q4_K_q8_K;
        if (t == GT::Q6_K) return avx2::vec_dot_x4_q6_K_q8_K;
    }
#endif
    (void)t;
    (void)v;
    return nullptr;
}

VecDot2x2 vec_dot_2x2_for(GT t, KernelVariant v) {
#if defined(EI_HAVE_NEON_KERNELS)
    if (v == KernelVariant::NeonI8mm && kernels_for(t, v)) {
        if (t == GT::Q8_0) return neon_i8mm::vec_dot_2x2_q8_0_q8_0;
        if (t == GT::Q4_0) return neon_i8mm::vec_dot_2x2_q4_0_q8_0;
    }
#endif
    (void)t;
    (void)v;
    return nullptr;
}

size_t row_size(GT t, int64_t n) {
    const TypeTraits tr = type_traits(t);
    if (!tr.name || tr.block_size <= 0 || n < 0 || n % tr.block_size != 0) return 0;
    return static_cast<size_t>(n / tr.block_size * tr.type_size);
}

}  // namespace ei::cpu
