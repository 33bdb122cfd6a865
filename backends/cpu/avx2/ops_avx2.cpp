// AVX2/FMA/F16C variants of the attention primitives in ops.h. Built with -mavx2 -mfma
// -mf16c; reached only through the table ops::primitives() returns when the CPU has them.
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/ops.h"

namespace ei::cpu::ops {

namespace {

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The 16-lane tree sum of float_math.h over lanes 0-7 (lo) and 8-15 (hi).
inline float reduce16(__m256 lo, __m256 hi) { return hsum(_mm256_add_ps(lo, hi)); }

// One cached row as f32, zero-padded to `padded` floats.
inline void load_row(const uint8_t* row, bool f16, int32_t d, int32_t padded, float* dst) {
    int32_t i = 0;
    if (f16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
        for (; i + 8 <= d; i += 8) {
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
        }
        for (; i < d; ++i) dst[i] = fp16_to_fp32(h[i]);
    } else {
        const float* f = reinterpret_cast<const float*>(row);
        for (; i < d; ++i) dst[i] = f[i];
    }
    for (; i < padded; ++i) dst[i] = 0.0f;
}

// fast_exp of float_math.h on 8 lanes, bit for bit.
inline __m256 fast_exp8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    if (_mm256_movemask_ps(_mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_NLE_UQ)) == 0) {
        // 2^n is a normal float: one multiplication rounds once.
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    }
    // Some lane's result under- or overflows: scale in double (exact), round once to float.
    const __m256 nc = _mm256_min_ps(_mm256_max_ps(n, _mm256_set1_ps(-193.0f)), _mm256_set1_ps(193.0f));
    const __m256i n32 = _mm256_cvtps_epi32(nc);
    auto half = [&](__m128i n4, __m128 j4) {
        const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(n4), _mm256_set1_epi64x(1023)), 52);
        return _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(j4), _mm256_castsi256_pd(e)));
    };
    __m256 r = _mm256_set_m128(half(_mm256_extracti128_si256(n32, 1), _mm256_extractf128_ps(j, 1)),
                               half(_mm256_castsi256_si128(n32), _mm256_castps256_ps128(j)));
    const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 alt = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ),
                                     _mm256_set1_ps(__builtin_inff()));
    r = _mm256_blendv_ps(r, alt, big);
    return _mm256_blendv_ps(r, n, _mm256_cmp_ps(n, n, _CMP_UNORD_Q));  // NaN stays NaN
}

}  // namespace

void axpy_f32_avx2(int64_t n, float a, const float* x, float* y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

void kq_avx2(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
             const int64_t* lim, float* s, int64_t ld) {
    alignas(32) float kf[kMaxHeadDim];
    const int32_t dq = kq_stride(d);
    for (int64_t j = 0; j < n; ++j, k += stride) {
        if (j >= lim[nq - 1]) break;  // limits grow with the query index
        load_row(k, f16, d, dq, kf);
        for (int i = 0; i < nq; ++i) {
            if (j >= lim[i]) continue;
            const float* qi = q + int64_t{i} * dq;
            __m256 lo = _mm256_setzero_ps(), hi = lo;
            for (int32_t c = 0; c < dq; c += 16) {
                lo = _mm256_fmadd_ps(_mm256_loadu_ps(qi + c), _mm256_load_ps(kf + c), lo);
                hi = _mm256_fmadd_ps(_mm256_loadu_ps(qi + c + 8), _mm256_load_ps(kf + c + 8), hi);
            }
            s[int64_t{i} * ld + j] = reduce16(lo, hi) * scale;
        }
    }
}

// Row j of the list goes to lane j % 16: each query keeps 16 partial outputs, one per
// lane, and adds them as a tree at the end, vectorized across the head's dimensions. The
// dimensions are done kC at a time so the partial outputs stay in cache.
void pv_avx2(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans, int n_spans,
             uint64_t stride, bool f16, int32_t d, float* const* out) {
    constexpr int32_t kC = 32;
    alignas(32) float acc[kMaxQueries][kLanes][kC];
    alignas(32) float vf[kC];
    const int64_t n_max = lim[nq - 1];
    const uint64_t elem = f16 ? 2 : 4;
    for (int32_t c0 = 0; c0 < d; c0 += kC) {
        const int32_t cn = std::min(kC, d - c0), c8 = cn & ~7;
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
                    const __m256 pp = _mm256_set1_ps(pij);
                    float* a = acc[i][lane];
                    int32_t c = 0;
                    for (; c < c8; c += 8) _mm256_store_ps(a + c, _mm256_fmadd_ps(pp, _mm256_load_ps(vf + c), _mm256_load_ps(a + c)));
                    for (; c < cn; ++c) a[c] = std::fma(pij, vf[c], a[c]);
                }
            }
        }
        for (int i = 0; i < nq; ++i) {
            float* o = out[i] + c0;
            int32_t c = 0;
            for (; c < c8; c += 8) {
                __m256 t[8];
                for (int l = 0; l < 8; ++l) t[l] = _mm256_add_ps(_mm256_load_ps(acc[i][l] + c), _mm256_load_ps(acc[i][l + 8] + c));
                for (int l = 0; l < 4; ++l) t[l] = _mm256_add_ps(t[l], t[l + 4]);
                _mm256_storeu_ps(o + c, _mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3])));
            }
            for (; c < cn; ++c) {
                float l16[kLanes];
                for (int l = 0; l < kLanes; ++l) l16[l] = acc[i][l][c];
                o[c] = lane16_reduce(l16);
            }
        }
    }
}

double exp_sum_avx2(float* x, int64_t n, float max) {
    const __m256 m = _mm256_set1_ps(max);
    double sum = 0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 lo = fast_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
        const __m256 hi = fast_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m));
        _mm256_storeu_ps(x + j, lo);
        _mm256_storeu_ps(x + j + 8, hi);
        sum += reduce16(lo, hi);
    }
    if (j < n) {  // the last chunk: lanes past n count as 0
        alignas(32) float t[16] = {};
        for (int64_t i = j; i < n; ++i) t[i - j] = x[i];
        for (int h = 0; h < 16; h += 8) _mm256_store_ps(t + h, fast_exp8(_mm256_sub_ps(_mm256_load_ps(t + h), m)));
        for (int64_t i = n - j; i < 16; ++i) t[i] = 0.0f;
        for (int64_t i = j; i < n; ++i) x[i] = t[i - j];
        sum += reduce16(_mm256_load_ps(t), _mm256_load_ps(t + 8));
    }
    return sum;
}

float max_f32_avx2(const float* x, int64_t n) {
    // VMAXPS(x, m) keeps m when x is NaN, as the reference's x > m ? x : m; 8 running maxima
    // instead of one loop-carried chain.
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + j), m);
    alignas(32) float l[8];
    _mm256_store_ps(l, m);
    float mx = -INFINITY;
    for (int i = 0; i < 8; ++i) mx = l[i] > mx ? l[i] : mx;
    for (; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

void round_f16_avx2(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    }
    for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void silu_mul_avx2(float* gate, const float* up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, fast_exp8(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; ++i) gate[i] = fast_silu(gate[i]) * up[i];
}

}  // namespace ei::cpu::ops
#endif
