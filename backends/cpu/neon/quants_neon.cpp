// Baseline AArch64 Advanced SIMD (armv8.0) kernels: every aarch64 CPU runs these. Integer
// dots widen with smull and fold with sadalp; quants_neon_dotprod.cpp has the sdot ones.
// Helpers are file-local so nothing here is shared with differently-compiled files.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "cpu/quants.h"
#include "cpu/quants_impl.h"

namespace ei::cpu::neon {
namespace {

// f16 x8 -> two f32x4. fcvtl is baseline AArch64; half arithmetic is not needed.
inline void load_f16x8(const uint16_t* p, float32x4_t& lo, float32x4_t& hi) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
    lo = vcvt_f32_f16(vget_low_f16(h));
    hi = vcvt_high_f32_f16(h);
}

// bf16 bits are the top half of the float.
inline void load_bf16x8(const uint16_t* p, float32x4_t& lo, float32x4_t& hi) {
    const uint16x8_t v = vld1q_u16(p);
    lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16));
    hi = vreinterpretq_f32_u32(vshll_high_n_u16(v, 16));
}

// acc += pairwise sums of a*b over 16 signed bytes (products fit int16: |a*b| <= 128*127).
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, p0), p1);
}

// Four int32x4 (in int8 range) -> 16 int8.
inline int8x16_t narrow_i32x4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    const int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    return vcombine_s8(vmovn_s16(ab), vmovn_s16(cd));
}

}  // namespace

// ---- conversions -----------------------------------------------------------------------

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* x = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo, hi;
        load_f16x8(x + i, lo, hi);
        vst1q_f32(dst + i, lo);
        vst1q_f32(dst + i + 4, hi);
    }
    for (; i < n; ++i) dst[i] = fp16_to_fp32(x[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* x = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t lo, hi;
        load_bf16x8(x + i, lo, hi);
        vst1q_f32(dst + i, lo);
        vst1q_f32(dst + i + 4, hi);
    }
    for (; i < n; ++i) dst[i] = bf16_to_fp32(x[i]);
}

// fcvtn rounds by FPCR (nearest even by default), like the scalar fp32_to_fp16.
void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* y = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x4_t lo = vcvt_f16_f32(vld1q_f32(src + i));
        const float16x8_t h = vcvt_high_f16_f32(lo, vld1q_f32(src + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; ++i) y[i] = fp32_to_fp16(src[i]);
}

// Same integer rule as fp32_to_bf16: (u + 0x7fff + lsb) >> 16, NaN -> (u >> 16) | 0x40.
void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* y = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(src + i));
        const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
        const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
        const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fffu), lsb)), 16);
        const uint32x4_t qnan = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40u));
        vst1_u16(y + i, vmovn_u32(vbslq_u32(nan, qnan, rounded)));
    }
    for (; i < n; ++i) y[i] = fp32_to_bf16(src[i]);
}

// Bit-identical to ref::from_float_q8_0: fcvtas is roundf's ties-away-from-zero.
void from_float_q8_0(const float* src, void* dst, int64_t n) {
    BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t b = 0; b < n / kQK; ++b, src += kQK) {
        float32x4_t v[8];
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < 8; ++k) {
            v[k] = vld1q_f32(src + 4 * k);
            m = vmaxq_f32(m, vabsq_f32(v[k]));
        }
        const float amax = vmaxvq_f32(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        int32x4_t q[8];
        for (int k = 0; k < 8; ++k) q[k] = vcvtaq_s32_f32(vmulq_n_f32(v[k], id));
        vst1q_s8(y[b].qs, narrow_i32x4(q[0], q[1], q[2], q[3]));
        vst1q_s8(y[b].qs + 16, narrow_i32x4(q[4], q[5], q[6], q[7]));
    }
}

// Bit-identical to ref::from_float_q8_K: fcvtns is nearest_int's round-to-nearest-even.
void from_float_q8_K(const float* src, void* dst, int64_t n) {
    BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
    for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int k = 0; k < kQK_K; k += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(src + k)));
        const float amax = vmaxvq_f32(m);
        if (amax == 0.0f) {
            std::memset(&y[b], 0, sizeof(BlockQ8_K));
            continue;
        }
        // The first element of that magnitude, with its sign, as the scalar scan finds it.
        float max = amax;
        const float32x4_t vamax = vdupq_n_f32(amax);
        for (int k = 0; k < kQK_K; k += 4) {
            if (vmaxvq_u32(vceqq_f32(vabsq_f32(vld1q_f32(src + k)), vamax)) == 0) continue;
            int j = k;
            while (src[j] != amax && src[j] != -amax) ++j;
            max = src[j];
            break;
        }
        const float iscale = -127.0f / max;
        const int32x4_t lim = vdupq_n_s32(127);
        for (int k = 0; k < kQK_K; k += 16) {
            int32x4_t q[4];
            for (int j = 0; j < 4; ++j) q[j] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(src + k + 4 * j), iscale)), lim);
            y[b].bsums[k / 16] = static_cast<int16_t>(vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]))));
            vst1q_s8(y[b].qs + k, narrow_i32x4(q[0], q[1], q[2], q[3]));
        }
        y[b].d = 1.0f / iscale;
    }
}

// ---- dot products ----------------------------------------------------------------------

namespace {
// The 16-lane tree sum of float_math.h over four quads (lanes 0-3, 4-7, 8-11, 12-15).
inline float reduce16(float32x4_t q0, float32x4_t q1, float32x4_t q2, float32x4_t q3) {
    const float32x4_t t = vaddq_f32(vaddq_f32(q0, q2), vaddq_f32(q1, q3));
    const float32x4_t u = vaddq_f32(t, vextq_f32(t, t, 2));
    return vgetq_lane_f32(u, 0) + vgetq_lane_f32(u, 1);
}

// A dot product in the 16-lane order; load16 fills four quads with elements i..i+15.
template <typename T, typename Load16>
inline float lane16_dot(int64_t n, const T* x, const T* y, Load16 load16) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    auto step = [&](const T* xp, const T* yp) {
        float32x4_t xv[4], yv[4];
        load16(xp, xv);
        load16(yp, yv);
        for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f32(acc[k], xv[k], yv[k]);
    };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) step(x + i, y + i);
    if (i < n) {  // the tail as one more step over zero-padded copies
        T xt[16] = {}, yt[16] = {};
        for (int64_t k = i; k < n; ++k) xt[k - i] = x[k], yt[k - i] = y[k];
        step(xt, yt);
    }
    return reduce16(acc[0], acc[1], acc[2], acc[3]);
}
}  // namespace

void vec_dot_f32(int64_t n, float* out, const void* w, const void* a) {
    *out = lane16_dot(n, static_cast<const float*>(w), static_cast<const float*>(a), [](const float* p, float32x4_t* v) {
        for (int k = 0; k < 4; ++k) v[k] = vld1q_f32(p + 4 * k);
    });
}

void vec_dot_f16(int64_t n, float* out, const void* w, const void* a) {
    *out = lane16_dot(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a),
                      [](const uint16_t* p, float32x4_t* v) {
                          load_f16x8(p, v[0], v[1]);
                          load_f16x8(p + 8, v[2], v[3]);
                      });
}

void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a) {
    const uint16_t* x = static_cast<const uint16_t*>(w);
    const uint16_t* y = static_cast<const uint16_t*>(a);
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        float32x4_t x0, x1, x2, x3, y0, y1, y2, y3;
        load_bf16x8(x + i, x0, x1);
        load_bf16x8(x + i + 8, x2, x3);
        load_bf16x8(y + i, y0, y1);
        load_bf16x8(y + i + 8, y2, y3);
        acc0 = vfmaq_f32(acc0, x0, y0);
        acc1 = vfmaq_f32(acc1, x1, y1);
        acc2 = vfmaq_f32(acc2, x2, y2);
        acc3 = vfmaq_f32(acc3, x3, y3);
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; ++i) s += bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]);
    *out = s;
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    float32x4_t acc = vdupq_n_f32(0.0f);
    const int32x4_t zero = vdupq_n_s32(0);
    for (int64_t b = 0; b < n / kQK; ++b) {
        int32x4_t p = dot16(zero, vld1q_s8(x[b].qs), vld1q_s8(y[b].qs));
        p = dot16(p, vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs + 16));
        acc = vfmaq_f32(acc, vcvtq_f32_s32(p), vdupq_n_f32(fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d)));
    }
    *out = vaddvq_f32(acc);
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    float32x4_t acc = vdupq_n_f32(0.0f);
    const int32x4_t zero = vdupq_n_s32(0);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const uint8x16_t v = vld1q_u8(x[b].qs);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
        const int32x4_t p = dot16(dot16(zero, lo, vld1q_s8(y[b].qs)), hi, vld1q_s8(y[b].qs + 16));
        acc = vfmaq_f32(acc, vcvtq_f32_s32(p), vdupq_n_f32(fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d)));
    }
    *out = vaddvq_f32(acc);
}

void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int32x4_t zero = vdupq_n_s32(0);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        uint8_t sm[16];
        q4k_unpack_scales(x[b].scales, sm);
        // Mins times the pair sums of Q8_K's group sums.
        const int16x8_t bs = vpaddq_s16(vld1q_s16(y[b].bsums), vld1q_s16(y[b].bsums + 8));
        const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
        const int32x4_t mp = vmlal_high_s16(vmull_s16(vget_low_s16(bs), vget_low_s16(mins)), bs, mins);
        const int msum = vaddvq_s32(mp);

        int32x4_t sumi = zero;
        const int8_t* q8 = y[b].qs;
        for (int c = 0; c < 4; ++c, q8 += 64) {
            const uint8x16_t q0 = vld1q_u8(x[b].qs + 32 * c);
            const uint8x16_t q1 = vld1q_u8(x[b].qs + 32 * c + 16);
            int32x4_t pa = dot16(zero, vreinterpretq_s8_u8(vandq_u8(q0, m4)), vld1q_s8(q8));
            pa = dot16(pa, vreinterpretq_s8_u8(vandq_u8(q1, m4)), vld1q_s8(q8 + 16));
            int32x4_t pb = dot16(zero, vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(q8 + 32));
            pb = dot16(pb, vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(q8 + 48));
            sumi = vmlaq_n_s32(sumi, pa, sm[2 * c]);
            sumi = vmlaq_n_s32(sumi, pb, sm[2 * c + 1]);
        }
        s += fp16_to_fp32(x[b].d) * y[b].d * vaddvq_s32(sumi) - fp16_to_fp32(x[b].dmin) * y[b].d * msum;
    }
    *out = s;
}

void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
    const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const uint8x16_t m30 = vdupq_n_u8(0x30);
    const int8x16_t off = vdupq_n_s8(32);
    const int32x4_t zero = vdupq_n_s32(0);
    float s = 0.0f;
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        int32x4_t sumi = zero;
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = x[b].ql + 64 * h;
            const uint8_t* qh = x[b].qh + 32 * h;
            const int8_t* q8 = y[b].qs + 128 * h;
            const int8_t* sc = x[b].scales + 8 * h;
            // Two 16-byte halves (r) of each 32-element quarter k; group = 2k + r.
            for (int r = 0; r < 2; ++r) {
                const uint8x16_t l0 = vld1q_u8(ql + 16 * r);
                const uint8x16_t l1 = vld1q_u8(ql + 32 + 16 * r);
                const uint8x16_t hb = vld1q_u8(qh + 16 * r);
                uint8x16_t q[4];
                q[0] = vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(hb, 4), m30));
                q[1] = vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(hb, 2), m30));
                q[2] = vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(hb, m30));
                q[3] = vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(hb, 2), m30));
                for (int k = 0; k < 4; ++k) {
                    const int8x16_t qs = vsubq_s8(vreinterpretq_s8_u8(q[k]), off);
                    sumi = vmlaq_n_s32(sumi, dot16(zero, qs, vld1q_s8(q8 + 32 * k + 16 * r)), sc[2 * k + r]);
                }
            }
        }
        s += fp16_to_fp32(x[b].d) * y[b].d * vaddvq_s32(sumi);
    }
    *out = s;
}

}  // namespace ei::cpu::neon
#endif  // __aarch64__
