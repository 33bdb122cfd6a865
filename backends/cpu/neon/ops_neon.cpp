// NEON (armv8.0) variants of the attention primitives in ops.h.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/ops.h"

namespace ei::cpu::ops {

namespace {

// The 16-lane tree sum of float_math.h over four quads (lanes 0-3, 4-7, 8-11, 12-15).
inline float32x4_t tree4(float32x4_t q0, float32x4_t q1, float32x4_t q2, float32x4_t q3) {
    return vaddq_f32(vaddq_f32(q0, q2), vaddq_f32(q1, q3));
}
inline float reduce16(float32x4_t q0, float32x4_t q1, float32x4_t q2, float32x4_t q3) {
    const float32x4_t t = tree4(q0, q1, q2, q3);
    const float32x4_t u = vaddq_f32(t, vextq_f32(t, t, 2));
    return vgetq_lane_f32(u, 0) + vgetq_lane_f32(u, 1);
}

// One cached row as f32, zero-padded to `padded` floats.
inline void load_row(const uint8_t* row, bool f16, int32_t d, int32_t padded, float* dst) {
    int32_t i = 0;
    if (f16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
        for (; i + 4 <= d; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + i))));
        for (; i < d; ++i) dst[i] = fp16_to_fp32(h[i]);
    } else {
        const float* f = reinterpret_cast<const float*>(row);
        for (; i < d; ++i) dst[i] = f[i];
    }
    for (; i < padded; ++i) dst[i] = 0.0f;
}

// fast_exp of float_math.h on 4 lanes, bit for bit.
inline float32x4_t fast_exp4(float32x4_t x) {
    const float32x4_t shift = vdupq_n_f32(0x1.8p23f);
    const float32x4_t z = vfmaq_f32(shift, x, vdupq_n_f32(0x1.715476p+0f));
    const float32x4_t n = vsubq_f32(z, shift);
    const float32x4_t b = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
    const float32x4_t u = vmulq_f32(b, b);
    const float32x4_t j = vfmaq_f32(
        vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(0x1.ffffecp-1f), b),
        vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                  vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
        u);
    const float32x4_t an = vabsq_f32(n);
    // (a NaN n fails the <= test and takes the exact path)
    if (vminvq_u32(vcleq_f32(an, vdupq_n_f32(126.0f))) != 0) {
        // 2^n is a normal float: one multiplication rounds once.
        const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
        return vmulq_f32(j, vreinterpretq_f32_s32(e));
    }
    // Some lane's result under- or overflows: scale in double (exact), round once to float.
    const float32x4_t nc = vminq_f32(vmaxq_f32(n, vdupq_n_f32(-193.0f)), vdupq_n_f32(193.0f));
    const int32x4_t n32 = vcvtnq_s32_f32(nc);
    const int64x2_t e_lo = vshlq_n_s64(vaddq_s64(vmovl_s32(vget_low_s32(n32)), vdupq_n_s64(1023)), 52);
    const int64x2_t e_hi = vshlq_n_s64(vaddq_s64(vmovl_high_s32(n32), vdupq_n_s64(1023)), 52);
    const float64x2_t r_lo = vmulq_f64(vcvt_f64_f32(vget_low_f32(j)), vreinterpretq_f64_s64(e_lo));
    const float64x2_t r_hi = vmulq_f64(vcvt_high_f64_f32(j), vreinterpretq_f64_s64(e_hi));
    float32x4_t r = vcvt_high_f32_f64(vcvt_f32_f64(r_lo), r_hi);
    const uint32x4_t big = vcgtq_f32(an, vdupq_n_f32(192.0f));
    const float32x4_t alt = vreinterpretq_f32_u32(
        vandq_u32(vcgtq_f32(n, vdupq_n_f32(0.0f)), vreinterpretq_u32_f32(vdupq_n_f32(__builtin_inff()))));
    r = vbslq_f32(big, alt, r);
    return vbslq_f32(vceqq_f32(n, n), r, n);  // NaN stays NaN
}

}  // namespace

void axpy_f32_neon(int64_t n, float a, const float* x, float* y) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

void kq_neon(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
             const int64_t* lim, float* s, int64_t ld) {
    alignas(16) float kf[kMaxHeadDim];
    const int32_t dq = kq_stride(d);
    for (int64_t j = 0; j < n; ++j, k += stride) {
        if (j >= lim[nq - 1]) break;  // limits grow with the query index
        load_row(k, f16, d, dq, kf);
        for (int i = 0; i < nq; ++i) {
            if (j >= lim[i]) continue;
            const float* qi = q + int64_t{i} * dq;
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t c = 0; c < dq; c += 16) {
                a0 = vfmaq_f32(a0, vld1q_f32(qi + c), vld1q_f32(kf + c));
                a1 = vfmaq_f32(a1, vld1q_f32(qi + c + 4), vld1q_f32(kf + c + 4));
                a2 = vfmaq_f32(a2, vld1q_f32(qi + c + 8), vld1q_f32(kf + c + 8));
                a3 = vfmaq_f32(a3, vld1q_f32(qi + c + 12), vld1q_f32(kf + c + 12));
            }
            s[int64_t{i} * ld + j] = reduce16(a0, a1, a2, a3) * scale;
        }
    }
}

// As pv_avx2: 16 partial outputs per query, one per lane (list index mod 16), added as a
// tree at the end across the head's dimensions.
void pv_neon(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans, int n_spans,
             uint64_t stride, bool f16, int32_t d, float* const* out) {
    constexpr int32_t kC = 32;
    alignas(16) float acc[kMaxQueries][kLanes][kC];
    alignas(16) float vf[kC];
    const int64_t n_max = lim[nq - 1];
    const uint64_t elem = f16 ? 2 : 4;
    for (int32_t c0 = 0; c0 < d; c0 += kC) {
        const int32_t cn = std::min(kC, d - c0), c4 = cn & ~3;
        for (int i = 0; i < nq; ++i)
            for (int l = 0; l < kLanes; ++l) std::fill(acc[i][l], acc[i][l] + kC, 0.0f);
        int64_t j = 0;
        for (int sp = 0; sp < n_spans && j < n_max; ++sp) {
            const uint8_t* row = v + static_cast<uint64_t>(spans[sp].slot) * stride + c0 * elem;
            for (int64_t r = 0; r < spans[sp].count && j < n_max; ++r, ++j, row += stride) {
                load_row(row, f16, cn, cn, vf);
                const int lane = static_cast<int>(j % kLanes);
                for (int i = 0; i < nq; ++i) {
                    if (j >= lim[i]) continue;
                    const float pij = p[int64_t{i} * ld + j];
                    float* a = acc[i][lane];
                    int32_t c = 0;
                    for (; c < c4; c += 4) vst1q_f32(a + c, vfmaq_n_f32(vld1q_f32(a + c), vld1q_f32(vf + c), pij));
                    for (; c < cn; ++c) a[c] = std::fma(pij, vf[c], a[c]);
                }
            }
        }
        for (int i = 0; i < nq; ++i) {
            float* o = out[i] + c0;
            int32_t c = 0;
            for (; c < c4; c += 4) {
                float32x4_t t[8];
                for (int l = 0; l < 8; ++l) t[l] = vaddq_f32(vld1q_f32(acc[i][l] + c), vld1q_f32(acc[i][l + 8] + c));
                for (int l = 0; l < 4; ++l) t[l] = vaddq_f32(t[l], t[l + 4]);
                vst1q_f32(o + c, vaddq_f32(vaddq_f32(t[0], t[2]), vaddq_f32(t[1], t[3])));
            }
            for (; c < cn; ++c) {
                float l16[kLanes];
                for (int l = 0; l < kLanes; ++l) l16[l] = acc[i][l][c];
                o[c] = lane16_reduce(l16);
            }
        }
    }
}

double exp_sum_neon(float* x, int64_t n, float max) {
    const float32x4_t m = vdupq_n_f32(max);
    double sum = 0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        float32x4_t e[4];
        for (int k = 0; k < 4; ++k) {
            e[k] = fast_exp4(vsubq_f32(vld1q_f32(x + j + 4 * k), m));
            vst1q_f32(x + j + 4 * k, e[k]);
        }
        sum += reduce16(e[0], e[1], e[2], e[3]);
    }
    if (j < n) {  // the last chunk: lanes past n count as 0
        alignas(16) float t[16] = {};
        for (int64_t i = j; i < n; ++i) t[i - j] = x[i];
        for (int k = 0; k < 16; k += 4) vst1q_f32(t + k, fast_exp4(vsubq_f32(vld1q_f32(t + k), m)));
        for (int64_t i = n - j; i < 16; ++i) t[i] = 0.0f;
        for (int64_t i = j; i < n; ++i) x[i] = t[i - j];
        sum += reduce16(vld1q_f32(t), vld1q_f32(t + 4), vld1q_f32(t + 8), vld1q_f32(t + 12));
    }
    return sum;
}

void round_f16_neon(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void silu_mul_neon(float* gate, const float* up, int64_t n) {
    const float32x4_t one = vdupq_n_f32(1.0f), zero = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t g = vld1q_f32(gate + i);
        const float32x4_t silu = vdivq_f32(g, vaddq_f32(one, fast_exp4(vsubq_f32(zero, g))));
        vst1q_f32(gate + i, vmulq_f32(silu, vld1q_f32(up + i)));
    }
    for (; i < n; ++i) gate[i] = fast_silu(gate[i]) * up[i];
}

}  // namespace ei::cpu::ops
#endif
