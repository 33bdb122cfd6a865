// Entry points of the per-ISA kernel files, for the dispatch tables in quants.cpp only.
// Each namespace's functions live in a file compiled with that ISA's flags; calling one on
// a CPU without the ISA is an illegal instruction, so nothing but the dispatch (which
// checks cpu_features()) may reference them.
#pragma once
#include <cstdint>

namespace ei::cpu {

// Scalar reference kernels (quants.cpp). The SIMD tables reuse those they do not replace.
namespace ref {
void to_float_f32(const void* src, float* dst, int64_t n);
void to_float_f16(const void* src, float* dst, int64_t n);
void to_float_bf16(const void* src, float* dst, int64_t n);
void to_float_q8_0(const void* src, float* dst, int64_t n);
void to_float_q4_0(const void* src, float* dst, int64_t n);
void to_float_q5_0(const void* src, float* dst, int64_t n);
void to_float_q4_K(const void* src, float* dst, int64_t n);
void to_float_q6_K(const void* src, float* dst, int64_t n);
void to_float_q8_K(const void* src, float* dst, int64_t n);

void from_float_f32(const float* src, void* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
void from_float_q8_0(const float* src, void* dst, int64_t n);
void from_float_q8_K(const float* src, void* dst, int64_t n);

void vec_dot_f32(int64_t n, float* out, const void* w, const void* a);
void vec_dot_f16(int64_t n, float* out, const void* w, const void* a);
void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a);
}  // namespace ref

#if defined(EI_HAVE_AVX2_KERNELS)
// avx2/quants_avx2.cpp: AVX2 + FMA + F16C.
namespace avx2 {
void to_float_f16(const void* src, float* dst, int64_t n);
void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
void from_float_q8_0(const float* src, void* dst, int64_t n);
void from_float_q8_K(const float* src, void* dst, int64_t n);
void vec_dot_f32(int64_t n, float* out, const void* w, const void* a);
void vec_dot_f16(int64_t n, float* out, const void* w, const void* a);
void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_x4_f32(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride);
void vec_dot_x4_f16(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride);
void vec_dot_x4_q8_0_q8_0(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride);
void vec_dot_x4_q4_0_q8_0(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride);
void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a);
void vec_dot_x4_q4_K_q8_K(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride);
void vec_dot_x4_q6_K_q8_K(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride);
}  // namespace avx2
#endif

#if defined(EI_HAVE_NEON_KERNELS)
// neon/quants_neon.cpp: armv8.0 Advanced SIMD.
namespace neon {
void to_float_f16(const void* src, float* dst, int64_t n);
void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
void from_float_q8_0(const float* src, void* dst, int64_t n);
void from_float_q8_K(const float* src, void* dst, int64_t n);
void vec_dot_f32(int64_t n, float* out, const void* w, const void* a);
void vec_dot_f16(int64_t n, float* out, const void* w, const void* a);
void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a);
}  // namespace neon

// neon/quants_neon_dotprod.cpp: the integer dots with sdot (armv8.2-a+dotprod). The rest
// of that variant's table is the baseline NEON kernels.
namespace neon_dotprod {
void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a);
}  // namespace neon_dotprod

// neon/quants_neon_i8mm.cpp: SMMLA (needs dotprod and i8mm at run time).
namespace neon_i8mm {
void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a);
void vec_dot_2x2_q8_0_q8_0(int64_t n, float* out4, const void* w0, const void* w1, const void* a0, const void* a1);
void vec_dot_2x2_q4_0_q8_0(int64_t n, float* out4, const void* w0, const void* w1, const void* a0, const void* a1);
}  // namespace neon_i8mm
#endif

}  // namespace ei::cpu
