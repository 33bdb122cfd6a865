// AVX2/FMA/F16C variants of the attention primitives in ops.h. Built with -mavx2 -mfma
// -mf16c; reached only through the table ops::primitives() returns when the CPU has them.
#if defined(__x86_64__)
#include <immintrin.h>

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

// One cached row as f32 (d floats, d a multiple of 8 in the fast path).
inline void load_row(const uint8_t* row, bool f16, int32_t d, float* dst) {
    if (f16) {
        const uint16_t* h = reinterpret_cast<const uint16_t*>(row);
        int32_t i = 0;
        for (; i + 8 <= d; i += 8) {
            _mm256_store_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i))));
        }
        for (; i < d; ++i) dst[i] = fp16_to_fp32(h[i]);
    } else {
        const float* f = reinterpret_cast<const float*>(row);
        for (int32_t i = 0; i < d; ++i) dst[i] = f[i];
    }
}

// exp on 8 lanes: 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor
// polynomial of degree 7 (relative error below 2e-8 on that range), 2^n built in the
// exponent bits. Inputs below -87 (where float exp underflows) give 0.
inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);  // ln 2, high part
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);  // ln 2, low part
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

}  // namespace

void axpy_f32_avx2(int64_t n, float a, const float* x, float* y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

void kq_avx2(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
             const int64_t* lim, float* s, int64_t ld) {
    alignas(32) float kf[1024];
    const int32_t d8 = d & ~7;
    for (int64_t j = 0; j < n; ++j, k += stride) {
        if (j >= lim[nq - 1]) break;  // limits grow with the query index
        load_row(k, f16, d, kf);
        for (int i = 0; i < nq; ++i) {
            if (j >= lim[i]) continue;
            const float* qi = q + int64_t{i} * d;
            __m256 acc = _mm256_setzero_ps();
            for (int32_t c = 0; c < d8; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qi + c), _mm256_load_ps(kf + c), acc);
            float dot = hsum(acc);
            for (int32_t c = d8; c < d; ++c) dot += qi[c] * kf[c];
            s[int64_t{i} * ld + j] = dot * scale;
        }
    }
}

void pv_avx2(const float* p, int nq, const uint8_t* v, int64_t n, uint64_t stride, bool f16, int32_t d,
             const int64_t* lim, int64_t ld, float* const* out) {
    alignas(32) float vf[1024];
    const int32_t d8 = d & ~7;
    for (int64_t j = 0; j < n; ++j, v += stride) {
        if (j >= lim[nq - 1]) break;
        load_row(v, f16, d, vf);
        for (int i = 0; i < nq; ++i) {
            if (j >= lim[i]) continue;
            const float pij = p[int64_t{i} * ld + j];
            float* o = out[i];
            const __m256 pp = _mm256_set1_ps(pij);
            for (int32_t c = 0; c < d8; c += 8) {
                _mm256_storeu_ps(o + c, _mm256_fmadd_ps(pp, _mm256_load_ps(vf + c), _mm256_loadu_ps(o + c)));
            }
            for (int32_t c = d8; c < d; ++c) o[c] += pij * vf[c];
        }
    }
}

double exp_sum_avx2(float* x, int64_t n, float max) {
    const __m256 m = _mm256_set1_ps(max);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m)));
    if (j < n) {  // the tail through the same polynomial, so every element rounds alike
        alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t i = j; i < n; ++i) t[i - j] = x[i];
        _mm256_store_ps(t, exp8(_mm256_sub_ps(_mm256_load_ps(t), m)));
        for (int64_t i = j; i < n; ++i) x[i] = t[i - j];
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += x[i];
    return sum;
}

void round_f16_avx2(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    }
    for (; i < n; ++i) x[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

}  // namespace ei::cpu::ops
#endif
