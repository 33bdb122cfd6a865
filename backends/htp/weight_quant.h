// Weight quantizers of the NPU path: a GGUF weight (any type the CPU backend reads) to the
// fixed-point forms qnn_ir.h's FullyConnected takes, each with its error against the
// source weights.
//  - SFixed8 per output channel, symmetric: scale_c = max|w_c| / 127, q in [-127, 127]
//    (the -128 code is left unused so the grid is symmetric about 0).
//  - SFixed4 block-wise expansion (QNN's BLOCKWISE_EXPANSION): blocks of 32 or 64 along
//    the input dimension; each channel a float scale s_c, each block an unsigned integer
//    multiplier m_cb of 4 or 8 bits; real = s_c * m_cb * q, q in [-8, 7]. s_c is chosen so
//    the channel's largest block needs the largest multiplier; each block's multiplier is
//    the one with the smallest squared error over the block among the floor and ceiling
//    of a few fractions (0.7..1) of its max-to-7 step over s_c (a 4-bit multiplier is
//    coarse, and a slightly clipped step often beats the unclipped one).
// Weights are [rows = output channels N, cols = inputs K], row-major, as GGUF stores them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ggml_types.h"
#include "htp/qnn_ir.h"

namespace ei::htp {

struct QuantizedWeight {
    DType dtype = DType::SFixed8;   // SFixed8 or SFixed4
    Encoding enc;                   // PerChannel (axis 0) or BlockwiseExpansion (axis 0)
    std::vector<uint8_t> data;      // [N][K] one value per byte (qnn_ir.h storage)
    int64_t rows = 0, cols = 0;
    double sqnr_db = 0;             // against the float weights it was made from
    uint64_t packed_bytes = 0;      // on the device: int4 two per byte, plus the scales
};

// The weights of a GGUF tensor as floats, through the CPU backend's dequantizers.
// Throws EI_ERR_UNSUPPORTED for a type without kernels, EI_ERR_INVALID_ARGUMENT for a
// column count that is not a multiple of the type's block.
std::vector<float> dequantize_gguf(GgmlType type, const void* data, int64_t rows, int64_t cols);
// True for the GGUF types that are already quantized (the SQNR is then against their
// dequantized values, not against the model's original float weights).
bool gguf_type_is_quantized(GgmlType type);

QuantizedWeight quantize_int8_per_channel(const float* w, int64_t rows, int64_t cols);
// block_size 32 or 64 (cols a multiple of it); block_scale_bits 4 or 8.
QuantizedWeight quantize_int4_blockwise(const float* w, int64_t rows, int64_t cols, int block_size,
                                        int block_scale_bits);
// The real values a quantized weight stands for, [rows][cols].
std::vector<float> dequantize_weight(const QuantizedWeight& q);

// 10 log10(sum ref^2 / sum (ref - x)^2); 200 dB for an exact match, 0 when ref is all zero.
double sqnr_db(const float* ref, const float* x, uint64_t n);

}  // namespace ei::htp
