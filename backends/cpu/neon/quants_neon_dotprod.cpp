// The integer dot products again, with sdot (armv8.2-a+dotprod; this file alone is built
// with that flag and is only reached when cpu_features().dotprod). Same block walks as
// quants_neon.cpp, where smull+sadalp stand in for sdot; kept as separate code because
// the two files must be compiled with different target flags.
#if defined(__aarch64__)
#include <arm_neon.h>

#include "cpu/quants.h"
#include "cpu/quants_impl.h"

namespace ei::cpu::neon_dotprod {

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    const int64_t nb = n / kQK;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
    const int32x4_t zero = vdupq_n_s32(0);
    int64_t b = 0;
    // Two blocks per step keep two independent FMA chains.
    for (; b + 2 <= nb; b += 2) {
        int32x4_t p0 = vdotq_s32(zero, vld1q_s8(x[b].qs), vld1q_s8(y[b].qs));
        p0 = vdotq_s32(p0, vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs + 16));
        int32x4_t p1 = vdotq_s32(zero, vld1q_s8(x[b + 1].qs), vld1q_s8(y[b + 1].qs));
        p1 = vdotq_s32(p1, vld1q_s8(x[b + 1].qs + 16), vld1q_s8(y[b + 1].qs + 16));
        acc0 = vfmaq_f32(acc0, vcvtq_f32_s32(p0), vdupq_n_f32(fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d)));
        acc1 = vfmaq_f32(acc1, vcvtq_f32_s32(p1), vdupq_n_f32(fp16_to_fp32(x[b + 1].d) * fp16_to_fp32(y[b + 1].d)));
    }
    for (; b < nb; ++b) {
        int32x4_t p = vdotq_s32(zero, vld1q_s8(x[b].qs), vld1q_s8(y[b].qs));
        p = vdotq_s32(p, vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs + 16));
        acc0 = vfmaq_f32(acc0, vcvtq_f32_s32(p), vdupq_n_f32(fp16_to_fp32(x[b].d) * fp16_to_fp32(y[b].d)));
    }
    *out = vaddvq_f32(vaddq_f32(acc0, acc1));
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
        const int32x4_t p = vdotq_s32(vdotq_s32(zero, lo, vld1q_s8(y[b].qs)), hi, vld1q_s8(y[b].qs + 16));
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
            int32x4_t pa = vdotq_s32(zero, vreinterpretq_s8_u8(vandq_u8(q0, m4)), vld1q_s8(q8));
            pa = vdotq_s32(pa, vreinterpretq_s8_u8(vandq_u8(q1, m4)), vld1q_s8(q8 + 16));
            int32x4_t pb = vdotq_s32(zero, vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(q8 + 32));
            pb = vdotq_s32(pb, vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(q8 + 48));
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
                    sumi = vmlaq_n_s32(sumi, vdotq_s32(zero, qs, vld1q_s8(q8 + 32 * k + 16 * r)), sc[2 * k + r]);
                }
            }
        }
        s += fp16_to_fp32(x[b].d) * y[b].d * vaddvq_s32(sumi);
    }
    *out = s;
}

}  // namespace ei::cpu::neon_dotprod
#endif  // __aarch64__
