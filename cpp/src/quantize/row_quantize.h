// Row quantizers of `ei quantize`: f32 rows into the block types the CPU backend reads
// (layouts in backends/cpu/quants.h), plus the multithreaded driver behind the C ABI's
// ei_quantize_rows. The backend only reads these types; writing them lives here.
//
// What each quantizer minimizes (w_j = the importance of column j when an importance
// matrix is given, else 1; x_j the row's values, x^_j what dequantizing the result gives):
//  - unweighted Q8_0, Q4_0, Q5_0: none; ggml's reference rounding, bit for bit (a fixed
//    rule: the block's largest magnitude sets the scale), so files match llama.cpp's;
//  - weighted Q8_0, Q4_0, Q5_0: per block of 32, the scale d minimizing
//    sum_j w_j (x_j - x^_j)^2 over a grid of candidate scales, each refit by weighted least
//    squares for its levels; then levels re-rounded to the stored f16 scale;
//  - Q6_K (both): per sub-block of 16 the same symmetric scale search, the 16 scales coded
//    in 8 bits against the f16 super-scale, then the super-scale refit by least squares with
//    levels re-rounded (a few rounds, the best kept) - all measuring sum_j w_j (x_j - x^_j)^2;
//  - Q4_K (both): per sub-block of 32, scale s and min m (x^ = s q - m, q in 0..15, m >= 0)
//    from a grid of candidate scales, each refit by weighted least squares for (s, m); the
//    8 scales and 8 mins coded in 6 bits against the f16 d and dmin, then (d, dmin) refit
//    jointly by least squares with levels re-rounded, the best of a few rounds kept.
// A block whose importances are all zero is quantized as if unweighted (w_j = 1).
#pragma once
#include <cstddef>
#include <cstdint>

#include "ggml_types.h"

namespace ei::quant {

// True for the types quantize_row can write: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K.
bool can_write(GgmlType t);

// Quantizes n floats (n a multiple of the type's block size) into dst.
// w: nullptr (plain squared error) or n non-negative finite importances.
void quantize_row(GgmlType t, const float* x, int64_t n, const float* w, void* dst);

// sum_j w_j (x_j - x^_j)^2 of a quantized row q against x (w nullptr: all 1).
double weighted_error(GgmlType t, const void* q, const float* x, int64_t n, const float* w);

// rows x cols values of type src_t (F32, F16, BF16, or any type the CPU backend reads, for
// requantizing) into dst_t, rows spread over n_threads (<= 0: one per core). importance:
// nullptr or cols finite non-negative values. Throws ei::Error on bad arguments.
void quantize_rows(GgmlType dst_t, GgmlType src_t, const void* src, int64_t rows, int64_t cols,
                   const float* importance, int n_threads, void* dst);

// Bytes of a row of n elements of t; 0 when t is unknown or n not a multiple of its block.
size_t row_bytes(GgmlType t, int64_t n);

}  // namespace ei::quant
