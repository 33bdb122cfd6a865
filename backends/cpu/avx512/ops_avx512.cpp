// AVX-512 variants of the attention primitives. Each (query, key) dot and each weighted sum
// of values keeps the scalar reference's 16 lane accumulators and tree (float_math.h); what
// changes is which lanes share a register:
//  - kq: a block of 16 keys is widened and transposed once, then lanes hold keys: the
//    reference's 16 lane accumulators of a dot are 16 registers, the tree is vertical adds,
//    and tiles of 4 queries share each key load (blocks of fewer than 4 queries, as in
//    decode, reduce each query's 16 dots with a shuffle network instead);
//  - pv: for blocks of 8 queries or more, the attention weights are transposed so that the
//    16 queries' accumulators of one lane are registers and every value row is loaded once
//    for all of them; smaller blocks (decode) keep a query's 16 lane accumulators in
//    registers while the rows stream past;
//  - exp_sum: the softmax's exponentials 16 lanes at a time, VSCALEFPS doing the
//    reference's single-rounding scale by 2^n; max, scale and f16 rounding 16 lanes wide.
// The other primitives are AVX2's (ops.cpp builds the table).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's own _mm512_undefined_ps()
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "cpu/ops_impl.h"

namespace ei::cpu::ops {

namespace {

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

// Transposes 16 rows of 16 floats in registers: afterwards r[c] holds column c (row i in
// lane i). Four shuffle stages of 16 instructions each.
inline void transpose16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; ++i) {  // per 128-bit chunk: a0 b0 a1 b1 / a2 b2 a3 b3
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {  // per chunk k: rows 4i..4i+3 of column 4k + m in r[4i + m]
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int m = 0; m < 4; ++m) {  // gather chunk k of r[m], r[4+m], r[8+m], r[12+m]
        const __m512 u0 = _mm512_shuffle_f32x4(r[m], r[4 + m], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 u1 = _mm512_shuffle_f32x4(r[m], r[4 + m], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512 v0 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 v1 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], _MM_SHUFFLE(3, 2, 3, 2));
        t[m] = _mm512_shuffle_f32x4(u0, v0, _MM_SHUFFLE(2, 0, 2, 0));
        t[4 + m] = _mm512_shuffle_f32x4(u0, v0, _MM_SHUFFLE(3, 1, 3, 1));
        t[8 + m] = _mm512_shuffle_f32x4(u1, v1, _MM_SHUFFLE(2, 0, 2, 0));
        t[12 + m] = _mm512_shuffle_f32x4(u1, v1, _MM_SHUFFLE(3, 1, 3, 1));
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// The 16-lane tree of one register: i + i+8, then + 4 apart, then (t0 + t2) + (t1 + t3).
inline float reduce16(__m512 v) {
    const __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    const __m128 s = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// f32 of 16 consecutive elements from column c of a cache row; lanes off `m` read nothing
// and are 0 (a head size that is not a multiple of 16).
inline __m512 load16m(const uint8_t* row, bool f16, int32_t c, __mmask16 m) {
    if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * c));
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + c);
}

inline __mmask16 first_lanes(int64_t n) {
    return n >= kLanes ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Scores of NQ queries (dq floats apart) against the 16 keys of kt, the key block
// transposed (kt[c * 16 + r] = element c of key r), stored where mask[i] allows.
// Lanes hold keys, so the reference's 16-lane accumulators of one dot are 16 registers,
// a[lane], and its tree is plain vertical adds: lanes l, l+4, l+8, l+12 are finished
// together into t4[l] = (a[l] + a[l+8]) + (a[l+4] + a[l+12]), then
// (t4[0] + t4[2]) + (t4[1] + t4[3]). Each key word loaded serves NQ queries.
template <int NQ>
inline void kq_tile(const float* q, int32_t dq, const float* kt, __m512 vscale, float* const* s,
                    const __mmask16* mask) {
    __m512 h[NQ][2], pending[NQ];
    for (int step = 0; step < 4; ++step) {
        const int l = step == 0 ? 0 : step == 1 ? 2 : step == 2 ? 1 : 3;
        __m512 a[NQ][4];
        for (int i = 0; i < NQ; ++i) {
            for (int u = 0; u < 4; ++u) a[i][u] = _mm512_setzero_ps();
        }
        for (int32_t c0 = 0; c0 < dq; c0 += kLanes) {
            for (int u = 0; u < 4; ++u) {  // lanes l, l+4, l+8, l+12
                const int lane = l + 4 * u;
                const __m512 kv = _mm512_load_ps(kt + (c0 + lane) * kLanes);
                for (int i = 0; i < NQ; ++i) {
                    a[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(q[i * dq + c0 + lane]), kv, a[i][u]);
                }
            }
        }
        for (int i = 0; i < NQ; ++i) {
            const __m512 t4 = _mm512_add_ps(_mm512_add_ps(a[i][0], a[i][2]), _mm512_add_ps(a[i][1], a[i][3]));
            if (step == 0 || step == 2) {
                pending[i] = t4;  // t4[0] or t4[1]
            } else {
                h[i][step / 2] = _mm512_add_ps(pending[i], t4);  // t4[0] + t4[2], t4[1] + t4[3]
            }
        }
    }
    for (int i = 0; i < NQ; ++i) {
        _mm512_mask_storeu_ps(s[i], mask[i], _mm512_mul_ps(_mm512_add_ps(h[i][0], h[i][1]), vscale));
    }
}

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

// One query at a time (decode, small blocks): 16 keys widened once, each query's 16 dots
// reduced together by reduce16x16, one key load per FMA and no transpose to pay for.
__attribute__((noinline)) void kq_rows(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16,
                                       int32_t d, float scale, const int64_t* lim, float* s, int64_t ld) {
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
            for (; c + kLanes <= d; c += kLanes) _mm512_store_ps(dst + c, load16m(row, f16, c, 0xFFFF));
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

}  // namespace

double exp_sum_avx512(float* x, int64_t n, float max) {
    const __m512 m = _mm512_set1_ps(max);
    double sum = 0;
    for (int64_t j = 0; j < n; j += kLanes) {
        // The last chunk: lanes past n count as 0 and are not stored.
        const __mmask16 mask = first_lanes(n - j);
        const __m512 e = _mm512_maskz_mov_ps(mask, fast_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + j), m)));
        _mm512_mask_storeu_ps(x + j, mask, e);
        sum += reduce16(e);
    }
    return sum;
}

float max_f32_avx512(const float* x, int64_t n) {
    // VMAXPS(x, m) keeps m when x is NaN, as the reference's x > m ? x : m. Zeros of either
    // sign may come out either way; the softmax subtracts the maximum, where they agree.
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += kLanes) {
        m = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), first_lanes(n - j), x + j), m);
    }
    return _mm512_reduce_max_ps(m);
}

void scale_f32_avx512(float* x, int64_t n, float s) {
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t j = 0; j < n; j += kLanes) {
        const __mmask16 mask = first_lanes(n - j);
        _mm512_mask_storeu_ps(x + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + j), vs));
    }
}

void round_f16_avx512(float* x, int64_t n) {
    for (int64_t j = 0; j < n; j += kLanes) {
        const __mmask16 mask = first_lanes(n - j);
        const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mask, x + j), _MM_FROUND_TO_NEAREST_INT);
        _mm512_mask_storeu_ps(x + j, mask, _mm512_cvtph_ps(h));
    }
}

namespace {

// Blocks of 4 queries or more; see kq_tile.
__attribute__((noinline)) void kq_block(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16,
                                        int32_t d, float scale, const int64_t* lim, float* s, int64_t ld) {
    const int32_t dq = kq_stride(d);
    // 16 keys at a time, widened to f32 and transposed once for all the block's queries.
    alignas(64) float kt[kLanes * kMaxHeadDim];
    const int64_t n_max = std::min(n, lim[nq - 1]);
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int64_t j0 = 0; j0 < n_max; j0 += kLanes) {
        const int rows = static_cast<int>(std::min<int64_t>(kLanes, n_max - j0));
        for (int32_t c0 = 0; c0 < dq; c0 += kLanes) {
            const __mmask16 cm = first_lanes(d - c0);
            __m512 r[kLanes];
            for (int i = 0; i < kLanes; ++i) {
                r[i] = _mm512_setzero_ps();
                if (i < rows) r[i] = load16m(k + static_cast<uint64_t>(j0 + i) * stride, f16, c0, cm);
            }
            transpose16x16(r);
            for (int c = 0; c < kLanes; ++c) _mm512_store_ps(kt + (c0 + c) * kLanes, r[c]);
        }
        // Queries in tiles of four; a tile none of whose queries sees this block is skipped
        // (lim grows with the query, so its last query sees the most).
        for (int i0 = 0; i0 < nq; i0 += 4) {
            const int m = std::min(4, nq - i0);
            if (std::min<int64_t>(lim[i0 + m - 1], n) <= j0) continue;
            __mmask16 mask[4];
            float* dst[4];
            for (int i = 0; i < m; ++i) {
                mask[i] = first_lanes(std::min<int64_t>(lim[i0 + i], n) - j0);
                dst[i] = s + int64_t{i0 + i} * ld + j0;
            }
            const float* qi = q + int64_t{i0} * dq;
            switch (m) {
                case 4: kq_tile<4>(qi, dq, kt, vscale, dst, mask); break;
                case 3: kq_tile<3>(qi, dq, kt, vscale, dst, mask); break;
                case 2: kq_tile<2>(qi, dq, kt, vscale, dst, mask); break;
                default: kq_tile<1>(qi, dq, kt, vscale, dst, mask); break;
            }
        }
    }
}

}  // namespace

// The two forms in frames of their own: each holds a 64 KiB key buffer, and the caller may
// be a JVM thread with a small stack.
void kq_avx512(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
               const int64_t* lim, float* s, int64_t ld) {
    if (nq < 4) return kq_rows(q, nq, k, n, stride, f16, d, scale, lim, s, ld);
    kq_block(q, nq, k, n, stride, f16, d, scale, lim, s, ld);
}

namespace {

// One query at a time: its 16 lane accumulators for 16 dimensions live in registers while
// every row streams past (decode, small blocks).
void pv_rows(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* const* rows_buf, bool f16,
             int32_t d, float* const* out) {
    for (int i = 0; i < nq; ++i) {
        const int64_t n = lim[i];
        const float* pi = p + int64_t{i} * ld;
        for (int32_t c = 0; c < d; c += kLanes) {
            const __mmask16 cm = first_lanes(d - c);
            __m512 acc[kLanes];
            for (int l = 0; l < kLanes; ++l) acc[l] = _mm512_setzero_ps();
            int64_t j = 0;
            for (; j + kLanes <= n; j += kLanes) {
                for (int l = 0; l < kLanes; ++l) {
                    acc[l] = _mm512_fmadd_ps(_mm512_set1_ps(pi[j + l]), load16m(rows_buf[j + l], f16, c, cm), acc[l]);
                }
            }
            for (int l = 0; l < kLanes && j + l < n; ++l) {
                acc[l] = _mm512_fmadd_ps(_mm512_set1_ps(pi[j + l]), load16m(rows_buf[j + l], f16, c, cm), acc[l]);
            }
            // The lane tree, element-wise over the 16 accumulators.
            __m512 t8[8], t4[4];
            for (int l = 0; l < 8; ++l) t8[l] = _mm512_add_ps(acc[l], acc[l + 8]);
            for (int l = 0; l < 4; ++l) t4[l] = _mm512_add_ps(t8[l], t8[l + 4]);
            const __m512 sum = _mm512_add_ps(_mm512_add_ps(t4[0], t4[2]), _mm512_add_ps(t4[1], t4[3]));
            _mm512_mask_storeu_ps(out[i] + c, cm, sum);
        }
    }
}

// A block of queries at once: for each 16 dimensions and each lane l (the rows j = l mod
// 16), the 16 queries' accumulators are registers and each value row is loaded once for all
// of them; the weights are transposed first (pt[j * 16 + i] = p[i][j], 0 where query i does
// not see row j) so one cache line feeds the 16 broadcasts. Rows past the first query's limit
// are added only to the queries that see them, so every accumulator takes exactly the
// reference's terms in the reference's order.
void pv_block(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* const* rows_buf, bool f16,
              int32_t d, float* const* out, float* pt) {
    const int64_t n_rows = lim[nq - 1], lim0 = lim[0];
    for (int64_t j0 = 0; j0 < n_rows; j0 += kLanes) {
        __m512 r[kLanes];
        for (int i = 0; i < kLanes; ++i) {
            r[i] = _mm512_setzero_ps();
            if (i < nq) r[i] = _mm512_maskz_loadu_ps(first_lanes(lim[i] - j0), p + int64_t{i} * ld + j0);
        }
        transpose16x16(r);
        for (int c = 0; c < kLanes; ++c) _mm512_store_ps(pt + (j0 + c) * kLanes, r[c]);
    }
    alignas(64) float lanes[kLanes * kLanes * kLanes];  // [lane][query][16 dims]
    for (int32_t c = 0; c < d; c += kLanes) {
        const __mmask16 cm = first_lanes(d - c);
        for (int l = 0; l < kLanes; ++l) {
            __m512 acc[kLanes];
            for (int i = 0; i < kLanes; ++i) acc[i] = _mm512_setzero_ps();
            int64_t j = l;
            for (; j < lim0; j += kLanes) {
                const __m512 vr = load16m(rows_buf[j], f16, c, cm);
                const float* pj = pt + j * kLanes;
                for (int i = 0; i < kLanes; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(pj[i]), vr, acc[i]);
            }
            for (; j < n_rows; j += kLanes) {
                const __m512 vr = load16m(rows_buf[j], f16, c, cm);
                const float* pj = pt + j * kLanes;
                for (int i = 0; i < kLanes; ++i) {
                    if (i < nq && j < lim[i]) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(pj[i]), vr, acc[i]);
                }
            }
            for (int i = 0; i < kLanes; ++i) _mm512_store_ps(lanes + (l * kLanes + i) * kLanes, acc[i]);
        }
        for (int i = 0; i < nq; ++i) {  // the lane tree, element-wise
            auto lane = [&](int l) { return _mm512_load_ps(lanes + (l * kLanes + i) * kLanes); };
            __m512 t8[8], t4[4];
            for (int l = 0; l < 8; ++l) t8[l] = _mm512_add_ps(lane(l), lane(l + 8));
            for (int l = 0; l < 4; ++l) t4[l] = _mm512_add_ps(t8[l], t8[l + 4]);
            const __m512 sum = _mm512_add_ps(_mm512_add_ps(t4[0], t4[2]), _mm512_add_ps(t4[1], t4[3]));
            _mm512_mask_storeu_ps(out[i] + c, cm, sum);
        }
    }
}

}  // namespace

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
    // The block form pays a transpose of the weights and 16 accumulators whatever nq is;
    // from 8 queries on it moves less than one query at a time.
    if (nq < 8) return pv_rows(p, nq, ld, lim, rows_buf, f16, d, out);
    thread_local std::vector<float> pt_buf;
    const size_t need = static_cast<size_t>((n_rows + kLanes - 1) / kLanes * kLanes) * kLanes + kLanes;
    if (pt_buf.size() < need) pt_buf.resize(need);
    // 64-byte aligned start inside the buffer (it has one spare row).
    float* pt = pt_buf.data();
    pt += (kLanes - (reinterpret_cast<uintptr_t>(pt) / sizeof(float)) % kLanes) % kLanes;
    pv_block(p, nq, ld, lim, rows_buf, f16, d, out, pt);
}

}  // namespace ei::cpu::ops
