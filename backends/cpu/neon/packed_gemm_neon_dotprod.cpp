// The r16 packed GEMM on NEON with SDOT (armv8.2-a+dotprod; see packed_gemm.h for layout and
// arithmetic). A 64-byte chunk of a block is four 16-byte registers, each the same 4 inputs
// of 4 consecutive rows, so SDOT by lane (one activation word broadcast) advances 4 rows at
// once: a tile is 4 rows x up to 4 tokens in registers for a whole block, its 8 weight
// registers loaded once and used by every token. The exact integer block dot is the
// reference's: Q8_0's bytes (value + 128) are flipped back to the signed value (so its
// correction term, -128 x the block's activation sum, is already in the dot), Q4_0 nibbles
// and Q5_0 bytes are non-negative and start from the correction term.
#include <arm_neon.h>

#include <cstring>
#include <type_traits>

#include "cpu/packed_gemm.h"
#include "cpu/packed_gemm_impl.h"

namespace ei::cpu::neon_dotprod {

namespace {

enum class Kind { Q8, Q5, Q4 };  // signed-offset bytes, 0..31 bytes, nibbles

template <Kind K>
constexpr size_t kBlock = K == Kind::Q4 ? 256 : 512;

// The 8 weight registers of rows 4q..4q+3 in one block: w[j] holds inputs 4j..4j+3.
template <Kind K>
inline void load_weights(const uint8_t* blk, int q, int8x16_t w[8]) {
    if constexpr (K == Kind::Q4) {
        const uint8x16_t m4 = vdupq_n_u8(0x0F);
        for (int p = 0; p < 4; ++p) {
            const uint8x16_t v = vld1q_u8(blk + 64 * p + 16 * q);
            w[p] = vreinterpretq_s8_u8(vandq_u8(v, m4));      // inputs 4p..4p+3
            w[p + 4] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));  // inputs 16+4p..
        }
    } else {
        const uint8x16_t flip = vdupq_n_u8(K == Kind::Q8 ? 0x80 : 0x00);
        for (int j = 0; j < 8; ++j) w[j] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(blk + 64 * j + 16 * q), flip));
    }
}

// One block's integer dot of the 4 rows with a token's 32 activations, from `init`.
inline int32x4_t block_dot(const int8x16_t w[8], const int8_t* a, int32x4_t init) {
    const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    int32x4_t lo = vdotq_laneq_s32(init, w[0], a0, 0);
    int32x4_t hi = vdotq_laneq_s32(vdupq_n_s32(0), w[4], a1, 0);
    lo = vdotq_laneq_s32(lo, w[1], a0, 1);
    hi = vdotq_laneq_s32(hi, w[5], a1, 1);
    lo = vdotq_laneq_s32(lo, w[2], a0, 2);
    hi = vdotq_laneq_s32(hi, w[6], a1, 2);
    lo = vdotq_laneq_s32(lo, w[3], a0, 3);
    hi = vdotq_laneq_s32(hi, w[7], a1, 3);
    return vaddq_s32(lo, hi);  // integer sums: the split does not change the result
}

// Rows 4q..4q+3 of a group (valid of them real) x C tokens.
template <int C, Kind K>
inline void tile(const uint8_t* wg, int64_t nb, int q, int valid, const uint8_t* act, uint64_t act_stride, float* y,
                 uint64_t y_stride, const float* bias, bool accumulate) {
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(wg + static_cast<size_t>(nb) * kBlock<K>);
    r16::ActRow ar[C];
    for (int c = 0; c < C; ++c) ar[c] = r16::act_row(act + static_cast<uint64_t>(c) * act_stride, nb);
    float32x4_t facc[C];
    for (int c = 0; c < C; ++c) facc[c] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        int8x16_t w[8];
        load_weights<K>(wg + static_cast<size_t>(b) * kBlock<K>, q, w);
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + b * kPackRows + 4 * q)));
        for (int c = 0; c < C; ++c) {
            const int32x4_t init = K == Kind::Q8 ? vdupq_n_s32(0) : vdupq_n_s32(ar[c].corr[b]);
            const int32x4_t isum = block_dot(w, ar[c].q + b * kQK, init);
            facc[c] = vfmaq_f32(facc[c], vcvtq_f32_s32(isum), vmulq_n_f32(dw, ar[c].d[b]));
        }
    }
    for (int c = 0; c < C; ++c) {
        float v[4];
        vst1q_f32(v, facc[c]);
        float* out = y + static_cast<uint64_t>(c) * y_stride;
        for (int r = 0; r < valid; ++r) {
            float x = v[r];
            if (bias) x += bias[r];
            out[r] = accumulate ? out[r] + x : x;
        }
    }
}

// Decode (one token): the 4 row quads of a group together, so 4 dot chains overlap.
template <Kind K>
inline void group_x1(const uint8_t* wg, int64_t nb, const uint8_t* act, float* y, const float* bias, bool accumulate,
                     int64_t rows_left) {
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(wg + static_cast<size_t>(nb) * kBlock<K>);
    const r16::ActRow ar = r16::act_row(act, nb);
    float32x4_t facc[4];
    for (int q = 0; q < 4; ++q) facc[q] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = wg + static_cast<size_t>(b) * kBlock<K>;
        const int32x4_t init = K == Kind::Q8 ? vdupq_n_s32(0) : vdupq_n_s32(ar.corr[b]);
        for (int q = 0; q < 4; ++q) {
            int8x16_t w[8];
            load_weights<K>(blk, q, w);
            const int32x4_t isum = block_dot(w, ar.q + b * kQK, init);
            const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(scales + b * kPackRows + 4 * q)));
            facc[q] = vfmaq_f32(facc[q], vcvtq_f32_s32(isum), vmulq_n_f32(dw, ar.d[b]));
        }
    }
    for (int q = 0; q < 4; ++q) {
        float v[4];
        vst1q_f32(v, facc[q]);
        for (int r = 0; r < 4; ++r) {
            const int64_t row = 4 * q + r;
            if (row >= rows_left) return;
            float x = v[r];
            if (bias) x += bias[row];
            y[row] = accumulate ? y[row] + x : x;
        }
    }
}

template <Kind K>
void gemm(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
          uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    const int64_t nb = k / kQK;
    const size_t group = r16::group_bytes(K == Kind::Q4, k);
    for (int64_t g = g0; g < g1; ++g) {
        const uint8_t* wg = packed + static_cast<size_t>(g) * group;
        const int64_t r0 = g * kPackRows;
        if (n_tok == 1) {
            group_x1<K>(wg, nb, act, y + r0, bias ? bias + r0 : nullptr, accumulate, rows - r0);
            continue;
        }
        for (int q = 0; q < 4; ++q) {
            const int64_t rq = r0 + 4 * q;
            if (rq >= rows) break;
            const int valid = rows - rq >= 4 ? 4 : static_cast<int>(rows - rq);
            const float* bq = bias ? bias + rq : nullptr;
            auto at = [&](int32_t tok) { return act + static_cast<uint64_t>(tok) * act_stride; };
            auto out = [&](int32_t tok) { return y + static_cast<uint64_t>(tok) * y_stride + static_cast<uint64_t>(rq); };
            int32_t t = 0;
            for (; t + 4 <= n_tok; t += 4) tile<4, K>(wg, nb, q, valid, at(t), act_stride, out(t), y_stride, bq, accumulate);
            switch (n_tok - t) {
                case 3: tile<3, K>(wg, nb, q, valid, at(t), act_stride, out(t), y_stride, bq, accumulate); break;
                case 2: tile<2, K>(wg, nb, q, valid, at(t), act_stride, out(t), y_stride, bq, accumulate); break;
                case 1: tile<1, K>(wg, nb, q, valid, at(t), act_stride, out(t), y_stride, bq, accumulate); break;
                default: break;
            }
        }
    }
}

}  // namespace

void gemm_q8_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    gemm<Kind::Q8>(packed, rows, k, g0, g1, act, act_stride, n_tok, y, y_stride, bias, accumulate);
}

void gemm_q5_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    gemm<Kind::Q5>(packed, rows, k, g0, g1, act, act_stride, n_tok, y, y_stride, bias, accumulate);
}

void gemm_q4_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    gemm<Kind::Q4>(packed, rows, k, g0, g1, act, act_stride, n_tok, y, y_stride, bias, accumulate);
}

}  // namespace ei::cpu::neon_dotprod
