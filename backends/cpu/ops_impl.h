// Entry points of the per-ISA attention primitive files (ops_avx2.cpp, ops_avx512.cpp,
// ops_neon.cpp), for the tables ops.cpp builds; like quants_impl.h, nothing else may call
// them (an ISA the CPU lacks is an illegal instruction).
#pragma once
#include <cstdint>

#include "ops.h"

namespace ei::cpu::ops {

#define EI_DECLARE_PRIMITIVES(sfx)                                                                              \
    void axpy_f32_##sfx(int64_t n, float a, const float* x, float* y);                                        \
    void kq_##sfx(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d,   \
                  float scale, const int64_t* lim, float* s, int64_t ld);                                     \
    void pv_##sfx(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans, \
                  int n_spans, uint64_t stride, bool f16, int32_t d, float* const* out);                      \
    double exp_sum_##sfx(float* x, int64_t n, float max);                                                     \
    void round_f16_##sfx(float* x, int64_t n);                                                                \
    void silu_mul_##sfx(float* gate, const float* up, int64_t n);
#if defined(EI_HAVE_AVX2_KERNELS)
EI_DECLARE_PRIMITIVES(avx2)
float max_f32_avx2(const float* x, int64_t n);
#endif
#if defined(EI_HAVE_NEON_KERNELS)
EI_DECLARE_PRIMITIVES(neon)
#endif
#undef EI_DECLARE_PRIMITIVES

#if defined(EI_HAVE_AVX512_KERNELS)
// AVX-512 replaces the attention dot products and the softmax's passes; the rest of its
// table is AVX2's.
void kq_avx512(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
               const int64_t* lim, float* s, int64_t ld);
void pv_avx512(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans,
               int n_spans, uint64_t stride, bool f16, int32_t d, float* const* out);
double exp_sum_avx512(float* x, int64_t n, float max);
float max_f32_avx512(const float* x, int64_t n);
void scale_f32_avx512(float* x, int64_t n, float s);
void round_f16_avx512(float* x, int64_t n);
#endif

}  // namespace ei::cpu::ops
