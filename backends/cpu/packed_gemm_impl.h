// Entry points of the per-ISA packed GEMM files, for packed_gemm.cpp's dispatch only (as
// quants_impl.h is for quants.cpp): calling one on a CPU without its ISA is an illegal
// instruction.
#pragma once
#include <cstddef>
#include <cstdint>

#include "quants.h"

namespace ei::cpu {

// The r16 layout's shared pieces (packed_gemm.cpp).
namespace r16 {
size_t quant_bytes(bool q4);            // one block's quants for 16 rows
size_t group_bytes(bool q4, int64_t k);  // one group of 16 rows, padded to 64 bytes

// A prepared activation row of nb blocks, as the kernels read it: the int8 quants, the
// block scales and the correction terms (packed_gemm.h).
struct ActRow {
    const int8_t* q;
    const float* d;
    const int32_t* corr;
};
inline ActRow act_row(const uint8_t* row, int64_t nb) {
    return {reinterpret_cast<const int8_t*>(row), reinterpret_cast<const float*>(row + nb * kQK),
            reinterpret_cast<const int32_t*>(row + nb * (kQK + 4))};
}
}  // namespace r16

#if defined(EI_HAVE_AVX512_KERNELS)
// avx512/packed_gemm_avx512.cpp: AVX-512 F/BW/VL/DQ + VNNI.
namespace avx512vnni {
void gemm_q8_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate);
void gemm_q4_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate);
}  // namespace avx512vnni
#endif

#if defined(EI_HAVE_NEON_KERNELS)
// neon/packed_gemm_neon_dotprod.cpp: SDOT (armv8.2-a+dotprod).
namespace neon_dotprod {
void gemm_q8_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate);
void gemm_q5_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate);
void gemm_q4_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate);
}  // namespace neon_dotprod
#endif

}  // namespace ei::cpu
