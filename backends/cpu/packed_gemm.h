// Register-tiled matmul over weights repacked once per model ("packed"): the prefill and
// decode path for the types that have one on this CPU. A GGUF row-major weight is
// regrouped, without changing a single quantized value, so one vector register holds the
// same 4 consecutive inputs of 16 output rows: a VNNI dot (VPDPBUSD) with one activation
// word broadcast then advances 16 outputs at once, a tile of 16 rows x up to 8 tokens stays
// in registers for a whole 32-element block, and no horizontal sum is ever needed.
//
// Layout "r16" (Q8_0, Q4_0, Q5_0), per group of 16 rows (the last one padded with zero rows):
// the quants of every 32-element block b in order, then the scales of every block (16 f16
// per block, row order), then padding to 64 bytes. The quants of a block:
//   Q8_0: 8 chunks of 64 bytes; chunk j holds, for row r at bytes 4r..4r+3, the row's
//         elements 4j..4j+3 plus 128 (as unsigned bytes: VPDPBUSD multiplies u8 by s8);
//   Q4_0: 4 chunks of 64 bytes; chunk p holds, for row r at bytes 4r..4r+3, the row's
//         quant bytes 4p..4p+3 unchanged (low nibbles: elements 4p.., high: 16+4p..);
//   Q5_0: as Q8_0, each element's 5-bit value (0..31) in a byte (the packed copy is
//         larger than the GGUF's 22 bytes per 32: prefill first, decode pays for it).
// So the packed Q8_0 and Q4_0 weights are exactly as large as the GGUF ones (decode streams every weight
// once per token and is bound by memory bandwidth), and every chunk is cache-line aligned.
// Activations are prepared per token row as [nb x 32 int8 (Q8_0 quantization, bit for bit
// ggml's)] [nb x f32 block scale] [nb x int32 correction = -offset * sum of the block's
// int8], offset being what the layout adds to each weight (128; 8 for Q4_0, 16 for Q5_0).
//
// Arithmetic (every implementation of a type gives the same bits, whatever the tiling):
// per row and token, acc = 0; for each block b in order, isum_b = exact integer dot,
// acc = fmaf((float)isum_b, w_scale_b * a_scale_b, acc); then y = acc (+ bias) (+ y when
// accumulating). It differs from the row-at-a-time kernels of quants.h only in the float
// summation order, as those differ among themselves.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ggml_types.h"

namespace ei::cpu {

constexpr int kPackRows = 16;

struct PackedGemm {
    ei::GgmlType type;  // the GGUF weight type it packs
    const char* name;   // the instruction set, e.g. "avx512vnni"
    // Bytes of the packed form of a rows x k weight.
    size_t (*packed_size)(int64_t rows, int64_t k);
    // Packs the row groups [g0, g1) of a GGUF weight (rows row_bytes apart) into out, the
    // whole packed buffer; disjoint group ranges may be packed concurrently.
    void (*pack)(const uint8_t* w, uint64_t row_bytes, int64_t rows, int64_t k, int64_t g0, int64_t g1, uint8_t* out);
    // Bytes of one prepared activation row of k elements, and its preparation.
    size_t (*act_row_size)(int64_t k);
    void (*prepare_act)(const float* x, int64_t k, uint8_t* out);
    // For the row groups [g0, g1) and the n_tok prepared activation rows (act_stride bytes
    // apart): y[t * y_stride + r] = dot(row r, token t) (+ bias[r]), or y += that when
    // accumulating. Rows at or past `rows` (the padding) are never written.
    void (*gemm)(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
                 uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate);
};

// The packed GEMM this CPU uses for a weight type, or nullptr (then the row-at-a-time
// kernels of quants.h serve it): AVX-512 VNNI on x86_64; SDOT on aarch64 CPUs with dotprod
// but no i8mm (llama.cpp's choice too: its 4x4 dotprod repack for those, SMMLA tiles for
// i8mm ones; here i8mm CPUs keep the SMMLA row-pair kernels). EI_CPU_DISABLE=avx512vnni or
// dotprod turns them off; EI_CPU_DISABLE=i8mm puts an i8mm CPU on the packed SDOT path.
const PackedGemm* packed_gemm_for(ei::GgmlType t);
// Every packed GEMM this CPU can run for a type, chosen or not: the tests' list.
std::vector<const PackedGemm*> packed_gemm_all(ei::GgmlType t);
// The portable scalar implementation of the same layout and arithmetic: the tests' reference.
const PackedGemm* packed_gemm_reference(ei::GgmlType t);

}  // namespace ei::cpu
