// Int8 matrix-multiply (i8mm, SMMLA) kernels for Q8_0 and Q4_0 weights, built with
// -march=armv8.2-a+dotprod+i8mm and chosen only where the CPU reports both.
//
// SMMLA multiplies a 2x8 by an 8x2 int8 matrix into 2x2 int32: with two weight rows and two
// activation rows it computes 4 dot products at once. The 2x2 kernel keeps one float
// accumulation per output, in block order; vec_dot is the same kernel with both rows set to
// the one pair, so every output has the same bits whether it was computed alone or in a
// tile (prefill and decode agree, whatever the chunking).
#if defined(__aarch64__) && defined(__ARM_FEATURE_MATMUL_INT8)
#include <arm_neon.h>

#include "cpu/quants.h"
#include "cpu/quants_impl.h"

namespace ei::cpu::neon_i8mm {

namespace {

// The 32 int8 values of a weight block (q - 8 for Q4_0), as two 16-byte halves.
struct Block32 {
    int8x16_t lo, hi;
};
inline Block32 load_q8_0(const BlockQ8_0& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }
inline Block32 load_q4_0(const BlockQ4_0& b) {
    const uint8x16_t v = vld1q_u8(b.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), eight),
            vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight)};
}

// Sum over a block of [w0.y0, w0.y1, w1.y0, w1.y1], exact in int32.
inline int32x4_t block_mmla(const Block32& w0, const Block32& w1, const int8_t* y0, const int8_t* y1) {
    int32x4_t acc = vdupq_n_s32(0);
    const int8x16_t y0lo = vld1q_s8(y0), y0hi = vld1q_s8(y0 + 16), y1lo = vld1q_s8(y1), y1hi = vld1q_s8(y1 + 16);
    acc = vmmlaq_s32(acc, vcombine_s8(vget_low_s8(w0.lo), vget_low_s8(w1.lo)), vcombine_s8(vget_low_s8(y0lo), vget_low_s8(y1lo)));
    acc = vmmlaq_s32(acc, vcombine_s8(vget_high_s8(w0.lo), vget_high_s8(w1.lo)), vcombine_s8(vget_high_s8(y0lo), vget_high_s8(y1lo)));
    acc = vmmlaq_s32(acc, vcombine_s8(vget_low_s8(w0.hi), vget_low_s8(w1.hi)), vcombine_s8(vget_low_s8(y0hi), vget_low_s8(y1hi)));
    acc = vmmlaq_s32(acc, vcombine_s8(vget_high_s8(w0.hi), vget_high_s8(w1.hi)), vcombine_s8(vget_high_s8(y0hi), vget_high_s8(y1hi)));
    return acc;
}

template <typename Block, typename Load>
void dot_2x2(int64_t n, float* out, const void* w0v, const void* w1v, const void* a0v, const void* a1v, Load load) {
    const Block* w0 = static_cast<const Block*>(w0v);
    const Block* w1 = static_cast<const Block*>(w1v);
    const BlockQ8_0* a0 = static_cast<const BlockQ8_0*>(a0v);
    const BlockQ8_0* a1 = static_cast<const BlockQ8_0*>(a1v);
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < n / kQK; ++b) {
        const int32x4_t s = block_mmla(load(w0[b]), load(w1[b]), a0[b].qs, a1[b].qs);
        const float dw0 = fp16_to_fp32(w0[b].d), dw1 = fp16_to_fp32(w1[b].d);
        const float da0 = fp16_to_fp32(a0[b].d), da1 = fp16_to_fp32(a1[b].d);
        const float d[4] = {dw0 * da0, dw0 * da1, dw1 * da0, dw1 * da1};
        acc = vfmaq_f32(acc, vcvtq_f32_s32(s), vld1q_f32(d));
    }
    vst1q_f32(out, acc);
}

}  // namespace

void vec_dot_2x2_q8_0_q8_0(int64_t n, float* out4, const void* w0, const void* w1, const void* a0, const void* a1) {
    dot_2x2<BlockQ8_0>(n, out4, w0, w1, a0, a1, load_q8_0);
}

void vec_dot_2x2_q4_0_q8_0(int64_t n, float* out4, const void* w0, const void* w1, const void* a0, const void* a1) {
    dot_2x2<BlockQ4_0>(n, out4, w0, w1, a0, a1, load_q4_0);
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    float r[4];
    vec_dot_2x2_q8_0_q8_0(n, r, w, w, a, a);
    *out = r[0];
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    float r[4];
    vec_dot_2x2_q4_0_q8_0(n, r, w, w, a, a);
    *out = r[0];
}

}  // namespace ei::cpu::neon_i8mm
#endif
