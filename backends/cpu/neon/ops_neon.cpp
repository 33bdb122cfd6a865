// NEON (armv8.0) variants of the attention primitives in ops.h.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstdint>

#include "cpu/ops.h"

namespace ei::cpu::ops {

namespace {

inline void load_row(const uint8_t* row, bool f16, int32_t d, float* dst) {
    if (f16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
        int32_t i = 0;
        for (; i + 4 <= d; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + i))));
        for (; i < d; ++i) dst[i] = fp16_to_fp32(h[i]);
    } else {
        const float* f = reinterpret_cast<const float*>(row);
        for (int32_t i = 0; i < d; ++i) dst[i] = f[i];
    }
}

// exp on 4 lanes, the same method as the AVX2 variant (see ops_avx2.cpp).
inline float32x4_t exp4(float32x4_t x) {
    const float32x4_t lo = vdupq_n_f32(-87.0f);
    const uint32x4_t under = vcltq_f32(x, lo);
    x = vmaxq_f32(x, lo);
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
    r = vfmsq_f32(r, n, vdupq_n_f32(1.428606765330187045e-06f));
    float32x4_t p = vdupq_n_f32(1.0f / 5040.0f);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), under));
}

}  // namespace

void axpy_f32_neon(int64_t n, float a, const float* x, float* y) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; ++i) y[i] += a * x[i];
}

void kq_neon(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
             const int64_t* lim, float* s, int64_t ld) {
    alignas(16) float kf[1024];
    const int32_t d4 = d & ~3;
    for (int64_t j = 0; j < n; ++j, k += stride) {
        if (j >= lim[nq - 1]) break;
        load_row(k, f16, d, kf);
        for (int i = 0; i < nq; ++i) {
            if (j >= lim[i]) continue;
            const float* qi = q + int64_t{i} * d;
            float32x4_t acc = vdupq_n_f32(0.0f);
            for (int32_t c = 0; c < d4; c += 4) acc = vfmaq_f32(acc, vld1q_f32(qi + c), vld1q_f32(kf + c));
            float dot = vaddvq_f32(acc);
            for (int32_t c = d4; c < d; ++c) dot += qi[c] * kf[c];
            s[int64_t{i} * ld + j] = dot * scale;
        }
    }
}

void pv_neon(const float* p, int nq, const uint8_t* v, int64_t n, uint64_t stride, bool f16, int32_t d,
             const int64_t* lim, int64_t ld, float* const* out) {
    alignas(16) float vf[1024];
    const int32_t d4 = d & ~3;
    for (int64_t j = 0; j < n; ++j, v += stride) {
        if (j >= lim[nq - 1]) break;
        load_row(v, f16, d, vf);
        for (int i = 0; i < nq; ++i) {
            if (j >= lim[i]) continue;
            const float pij = p[int64_t{i} * ld + j];
            float* o = out[i];
            for (int32_t c = 0; c < d4; c += 4) vst1q_f32(o + c, vfmaq_n_f32(vld1q_f32(o + c), vld1q_f32(vf + c), pij));
            for (int32_t c = d4; c < d; ++c) o[c] += pij * vf[c];
        }
    }
}

double exp_sum_neon(float* x, int64_t n, float max) {
    const float32x4_t m = vdupq_n_f32(max);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) vst1q_f32(x + j, exp4(vsubq_f32(vld1q_f32(x + j), m)));
    if (j < n) {
        alignas(16) float t[4] = {0, 0, 0, 0};
        for (int64_t i = j; i < n; ++i) t[i - j] = x[i];
        vst1q_f32(t, exp4(vsubq_f32(vld1q_f32(t), m)));
        for (int64_t i = j; i < n; ++i) x[i] = t[i - j];
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += x[i];
    return sum;
}

void round_f16_neon(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

}  // namespace ei::cpu::ops
#endif
