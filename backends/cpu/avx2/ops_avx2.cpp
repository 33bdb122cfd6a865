// AVX2/FMA/F16C variants of the elementwise kernels in ops.h. Built with -mavx2 -mfma
// -mf16c; called only when cpu_features() reports them.
#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>

#include "cpu/quants.h"

namespace ei::cpu::ops {

void axpy_f16_avx2(int64_t n, float a, const uint16_t* x, float* y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; ++i) y[i] += a * fp16_to_fp32(x[i]);
}

void axpy_f32_avx2(int64_t n, float a, const float* x, float* y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace ei::cpu::ops
#endif
