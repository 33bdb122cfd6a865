// AVX-512 variants of the attention dot products (kq, pv). The 16-lane order of
// float_math.h is one ZMM register, so each (query, key) dot is 16 FMA lanes exactly as in
// the scalar reference; what changes is the work around them:
//  - kq: 16 keys are dotted with a query at once and their 16 lane trees are reduced
//    together by a shuffle network (each score's tree sums in the reference's order),
//    instead of one horizontal sum per score;
//  - pv: a query's 16 lane accumulators live in registers (16 dimensions at a time),
//    rows are read straight from the cache (f16 widened on load), no accumulator ever
//    round-trips through memory.
//  - exp_sum: the softmax's exponentials 16 lanes at a time, VSCALEFPS doing the
//    reference's single-rounding scale by 2^n.
// The other primitives are AVX2's (ops.cpp builds the table).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's own _mm512_undefined_ps()
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "cpu/ops.h"
#include "cpu/ops_impl.h"

namespace ei::cpu::ops {

namespace {

// 16 lane vectors in, one vector out whose lane j is the float_math.h tree of in[j]:
// l[i] + l[i+8], then + 4 apart, then (t0 + t2) + (t1 + t3). Each step pairs registers so
// that the additions are the reference's, only spread over lanes. The network leaves
// accumulator 4i + k in lane 4k + i, so the caller passes its accumulators transposed.
inline __m512 reduce16x16(const __m512 in[16]) {
    __m512 a[8], b[4], c[2];
    for (int m = 0; m < 8; ++m) {  // 8 apart: [x lo8 + x hi8 | y lo8 + y hi8]
        const __m512 x = in[2 * m], y = in[2 * m + 1];
        a[m] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (int n = 0; n < 4; ++n) {  // 4 apart: one 128-bit chunk per accumulator
        const __m512 x = a[2 * n], y = a[2 * n + 1];
        b[n] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
    }
    for (int n = 0; n < 2; ++n) {  // t0 + t2 and t1 + t3
        const __m512 x = b[2 * n], y = b[2 * n + 1];
        c[n] = _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// Input slot of accumulator j for reduce16x16 (a 4x4 transpose of the index).
constexpr int slot_of(int j) { return (j % 4) * 4 + j / 4; }

inline __m512 load16(const uint8_t* row, bool f16, int32_t c) {
    if (f16) return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * c)));
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + c);
}

// fast_exp of float_math.h on 16 lanes, bit for bit: VSCALEFPS is the reference's
// scale_pow2 (j * 2^n rounded once, underflow and overflow included).
inline __m512 fast_exp16(__m512 x) {
    const __m512 shift = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), shift);
    const __m512 n = _mm512_sub_ps(z, shift);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    __m512 r = _mm512_scalef_ps(j, n);
    // |n| > 192 (x = -inf included, where j is NaN): 0 or infinity, as the reference.
    const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192.0f), _CMP_GT_OQ);
    const __mmask16 pos = _mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_GT_OQ);
    r = _mm512_mask_mov_ps(r, big, _mm512_maskz_mov_ps(pos, _mm512_set1_ps(__builtin_inff())));
    return r;
}

// The 16-lane tree of one register: i + i+8, then + 4 apart, then (t0 + t2) + (t1 + t3).
inline float reduce16(__m512 v) {
    const __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    const __m128 s = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

}  // namespace

double exp_sum_avx512(float* x, int64_t n, float max) {
    const __m512 m = _mm512_set1_ps(max);
    double sum = 0;
    for (int64_t j = 0; j < n; j += kLanes) {
        // The last chunk: lanes past n count as 0 and are not stored.
        const __mmask16 mask = n - j >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(mask, fast_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + j), m)));
        _mm512_mask_storeu_ps(x + j, mask, e);
        sum += reduce16(e);
    }
    return sum;
}

void kq_avx512(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
               const int64_t* lim, float* s, int64_t ld) {
    const int32_t dq = kq_stride(d), chunks = dq / kLanes;
    // 16 keys at a time, widened to f32 and zero-padded once for all the block's queries.
    alignas(64) float kf[kLanes * 1024];
    const int64_t n_max = std::min(n, lim[nq - 1]);
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int64_t j0 = 0; j0 < n_max; j0 += kLanes) {
        const int rows = static_cast<int>(std::min<int64_t>(kLanes, n_max - j0));
        for (int r = 0; r < kLanes; ++r) {
            float* dst = kf + r * dq;
            if (r >= rows) {
                std::fill(dst, dst + dq, 0.0f);
                continue;
            }
            const uint8_t* row = k + static_cast<uint64_t>(j0 + r) * stride;
            int32_t c = 0;
            for (; c + kLanes <= d; c += kLanes) _mm512_store_ps(dst + c, load16(row, f16, c));
            for (; c < d; ++c) {
                dst[c] = f16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(row)[c]) : reinterpret_cast<const float*>(row)[c];
            }
            for (; c < dq; ++c) dst[c] = 0.0f;
        }
        for (int i = 0; i < nq; ++i) {
            const int64_t visible = std::min<int64_t>(lim[i], n) - j0;
            if (visible <= 0) continue;
            const float* qi = q + int64_t{i} * dq;
            __m512 acc[kLanes];
            for (int r = 0; r < kLanes; ++r) acc[r] = _mm512_setzero_ps();
            for (int32_t ch = 0; ch < chunks; ++ch) {
                const __m512 qv = _mm512_loadu_ps(qi + ch * kLanes);
                for (int r = 0; r < kLanes; ++r) {
                    acc[slot_of(r)] = _mm512_fmadd_ps(qv, _mm512_load_ps(kf + r * dq + ch * kLanes), acc[slot_of(r)]);
                }
            }
            const __m512 scores = _mm512_mul_ps(reduce16x16(acc), vscale);
            const __mmask16 mask = visible >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << visible) - 1);
            _mm512_mask_storeu_ps(s + int64_t{i} * ld + j0, mask, scores);
        }
    }
}

void pv_avx512(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans,
               int n_spans, uint64_t stride, bool f16, int32_t d, float* const* out) {
    // Row pointers of the list once (positions -> cache slots across the spans). Longer
    // lists than the buffer holds (windows past 8K rows) take the AVX2 kernel, which gives
    // the same bits.
    const int64_t n_rows = lim[nq - 1];
    constexpr int64_t kMaxRows = 8192;
    if (n_rows > kMaxRows) return pv_avx2(p, nq, ld, lim, v, spans, n_spans, stride, f16, d, out);
    const uint8_t* rows_buf[kMaxRows];
    {
        int64_t j = 0;
        for (int sp = 0; sp < n_spans && j < n_rows; ++sp) {
            const uint8_t* row = v + static_cast<uint64_t>(spans[sp].slot) * stride;
            for (int64_t r = 0; r < spans[sp].count && j < n_rows; ++r, ++j, row += stride) rows_buf[j] = row;
        }
    }
    const int32_t dfull = d / kLanes * kLanes;
    for (int i = 0; i < nq; ++i) {
        const int64_t n = std::min(lim[i], n_rows);
        const float* pi = p + int64_t{i} * ld;
        for (int32_t c = 0; c < dfull; c += kLanes) {
            __m512 acc[kLanes];
            for (int l = 0; l < kLanes; ++l) acc[l] = _mm512_setzero_ps();
            int64_t j = 0;
            for (; j + kLanes <= n; j += kLanes) {
                for (int l = 0; l < kLanes; ++l) {
                    acc[l] = _mm512_fmadd_ps(_mm512_set1_ps(pi[j + l]), load16(rows_buf[j + l], f16, c), acc[l]);
                }
            }
            for (int l = 0; l < kLanes && j + l < n; ++l) {
                acc[l] = _mm512_fmadd_ps(_mm512_set1_ps(pi[j + l]), load16(rows_buf[j + l], f16, c), acc[l]);
            }
            // The lane tree, element-wise over the 16 accumulators.
            __m512 t8[8], t4[4];
            for (int l = 0; l < 8; ++l) t8[l] = _mm512_add_ps(acc[l], acc[l + 8]);
            for (int l = 0; l < 4; ++l) t4[l] = _mm512_add_ps(t8[l], t8[l + 4]);
            _mm512_storeu_ps(out[i] + c, _mm512_add_ps(_mm512_add_ps(t4[0], t4[2]), _mm512_add_ps(t4[1], t4[3])));
        }
        for (int32_t c = dfull; c < d; ++c) {  // head sizes that are not a multiple of 16
            float l16[kLanes] = {};
            for (int64_t j = 0; j < n; ++j) {
                const uint8_t* row = rows_buf[j];
                const float x = f16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(row)[c]) : reinterpret_cast<const float*>(row)[c];
                l16[j % kLanes] = std::fma(pi[j], x, l16[j % kLanes]);
            }
            out[i][c] = lane16_reduce(l16);
        }
    }
}

}  // namespace ei::cpu::ops
