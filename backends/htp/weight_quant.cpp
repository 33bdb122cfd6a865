// Weight quantizers of the NPU path (weight_quant.h: the formats and how scales are chosen).
#include "htp/weight_quant.h"

#include <algorithm>
#include <cmath>

#include "cpu/quants.h"
#include "error.h"
#include "htp/fixed_point.h"

namespace ei::htp {

std::vector<float> dequantize_gguf(GgmlType type, const void* data, int64_t rows, int64_t cols) {
    const cpu::TypeKernels* k = cpu::kernels_for(type);
    const TypeTraits tt = type_traits(type);
    if (!k || !tt.name)
        fail(EI_ERR_UNSUPPORTED, std::string("weight quantization: GGUF type ") +
                                     (tt.name ? tt.name : std::to_string(static_cast<int>(type))) +
                                     " cannot be dequantized");
    if (rows <= 0 || cols <= 0 || cols % tt.block_size != 0)
        fail(EI_ERR_INVALID_ARGUMENT, "weight quantization: " + std::to_string(cols) + " columns is not a multiple of " +
                                          tt.name + "'s block of " + std::to_string(tt.block_size));
    const size_t rb = cpu::row_size(type, cols);
    std::vector<float> out(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        k->to_float(static_cast<const uint8_t*>(data) + rb * static_cast<size_t>(r), out.data() + r * cols, cols);
    return out;
}

bool gguf_type_is_quantized(GgmlType type) {
    return !(type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 || type == GgmlType::F64);
}

double sqnr_db(const float* ref, const float* x, uint64_t n) {
    double s = 0, e = 0;
    for (uint64_t i = 0; i < n; ++i) {
        s += static_cast<double>(ref[i]) * ref[i];
        const double d = static_cast<double>(ref[i]) - x[i];
        e += d * d;
    }
    if (s == 0) return 0;
    if (e == 0) return 200;
    return std::min(200.0, 10 * std::log10(s / e));
}

static void check_shape(const float* w, int64_t rows, int64_t cols, const char* what) {
    if (!w || rows <= 0 || cols <= 0)
        fail(EI_ERR_INVALID_ARGUMENT, std::string(what) + ": empty weight [" + std::to_string(rows) + ", " +
                                          std::to_string(cols) + "]");
    for (int64_t i = 0; i < rows * cols; ++i)
        if (!std::isfinite(w[i]))
            fail(EI_ERR_INVALID_ARGUMENT, std::string(what) + ": non-finite weight at row " + std::to_string(i / cols));
}

QuantizedWeight quantize_int8_per_channel(const float* w, int64_t rows, int64_t cols) {
    check_shape(w, rows, cols, "int8 per-channel quantization");
    QuantizedWeight q;
    q.dtype = DType::SFixed8;
    q.rows = rows;
    q.cols = cols;
    q.enc.kind = Encoding::Kind::PerChannel;
    q.enc.axis = 0;
    q.enc.scales.resize(static_cast<size_t>(rows));
    q.enc.offsets.assign(static_cast<size_t>(rows), 0);
    q.data.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = w + r * cols;
        float amax = 0;
        for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(row[c]));
        const float s = amax > 0 ? amax / 127.0f : 1.0f;
        q.enc.scales[static_cast<size_t>(r)] = s;
        for (int64_t c = 0; c < cols; ++c)
            q.data[static_cast<size_t>(r * cols + c)] =
                static_cast<uint8_t>(static_cast<int8_t>(fx::saturate(fx::round_half_up(row[c] / s), -127, 127)));
    }
    q.packed_bytes = static_cast<uint64_t>(rows * cols) + 4u * static_cast<uint64_t>(rows);
    const std::vector<float> back = dequantize_weight(q);
    q.sqnr_db = sqnr_db(w, back.data(), static_cast<uint64_t>(rows * cols));
    return q;
}

// Squared error of a block quantized with step d (q = round(w/d) in [-8, 7]).
static double block_error(const float* b, int n, double d) {
    double e = 0;
    for (int i = 0; i < n; ++i) {
        const double q = d > 0 ? static_cast<double>(fx::saturate(fx::round_half_up(b[i] / d), -8, 7)) : 0.0;
        const double diff = b[i] - q * d;
        e += diff * diff;
    }
    return e;
}

QuantizedWeight quantize_int4_blockwise(const float* w, int64_t rows, int64_t cols, int block_size,
                                        int block_scale_bits) {
    check_shape(w, rows, cols, "int4 block-wise quantization");
    if (block_size != 32 && block_size != 64)
        fail(EI_ERR_INVALID_ARGUMENT, "int4 block-wise quantization: block size " + std::to_string(block_size) +
                                          " (32 or 64)");
    if (block_scale_bits != 4 && block_scale_bits != 8)
        fail(EI_ERR_INVALID_ARGUMENT, "int4 block-wise quantization: block scale bits " +
                                          std::to_string(block_scale_bits) + " (4 or 8)");
    if (cols % block_size != 0)
        fail(EI_ERR_INVALID_ARGUMENT, "int4 block-wise quantization: " + std::to_string(cols) +
                                          " inputs is not a multiple of the block size " + std::to_string(block_size));
    const int64_t nb = cols / block_size;
    const int mmax = (1 << block_scale_bits) - 1;
    QuantizedWeight q;
    q.dtype = DType::SFixed4;
    q.rows = rows;
    q.cols = cols;
    q.enc.kind = Encoding::Kind::BlockwiseExpansion;
    q.enc.axis = 0;
    q.enc.block_size = block_size;
    q.enc.block_scale_bits = block_scale_bits;
    q.enc.scales.resize(static_cast<size_t>(rows));
    q.enc.offsets.assign(static_cast<size_t>(rows), 0);
    q.enc.block_scales.resize(static_cast<size_t>(rows * nb));
    q.data.resize(static_cast<size_t>(rows * cols));
    std::vector<double> ideal(static_cast<size_t>(nb));
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = w + r * cols;
        double dmax = 0;
        for (int64_t b = 0; b < nb; ++b) {
            float amax = 0;
            for (int i = 0; i < block_size; ++i) amax = std::max(amax, std::fabs(row[b * block_size + i]));
            ideal[static_cast<size_t>(b)] = amax / 7.0;  // the step that maps the block's max to 7
            dmax = std::max(dmax, ideal[static_cast<size_t>(b)]);
        }
        const float s = dmax > 0 ? static_cast<float>(dmax / mmax) : 1.0f;
        q.enc.scales[static_cast<size_t>(r)] = s;
        for (int64_t b = 0; b < nb; ++b) {
            const float* blk = row + b * block_size;
            const double x = ideal[static_cast<size_t>(b)] / s;
            // The step that maps the block's max to 7 is not always the best one: a
            // smaller step that clips the largest value (or maps a negative max to -8)
            // can lower the block's error. Try a few fractions of it, each at the floor and
            // ceiling multiplier, and keep the best.
            int m = 0;
            if (x > 0) {
                double best = -1;
                for (double f : {1.0, 0.95, 0.9, 0.875, 0.85, 0.8, 0.75, 0.7}) {
                    const double xf = x * f;
                    for (int cand : {static_cast<int>(std::floor(xf)), static_cast<int>(std::ceil(xf))}) {
                        cand = std::min(mmax, std::max(1, cand));
                        const double e = block_error(blk, block_size, static_cast<double>(s) * cand);
                        if (best < 0 || e < best) best = e, m = cand;
                    }
                }
            }
            q.enc.block_scales[static_cast<size_t>(r * nb + b)] = static_cast<uint8_t>(m);
            const double d = static_cast<double>(s) * m;
            for (int i = 0; i < block_size; ++i)
                q.data[static_cast<size_t>(r * cols + b * block_size + i)] = static_cast<uint8_t>(static_cast<int8_t>(
                    d > 0 ? fx::saturate(fx::round_half_up(blk[i] / d), -8, 7) : 0));
        }
    }
    q.packed_bytes = static_cast<uint64_t>(rows * cols) / 2 + 4u * static_cast<uint64_t>(rows) +
                     static_cast<uint64_t>(rows * nb) * static_cast<uint64_t>(block_scale_bits) / 8;
    const std::vector<float> back = dequantize_weight(q);
    q.sqnr_db = sqnr_db(w, back.data(), static_cast<uint64_t>(rows * cols));
    return q;
}

std::vector<float> dequantize_weight(const QuantizedWeight& q) {
    std::vector<float> out(static_cast<size_t>(q.rows * q.cols));
    const bool block = q.enc.kind == Encoding::Kind::BlockwiseExpansion;
    const int64_t nb = block ? q.cols / q.enc.block_size : 1;
    for (int64_t r = 0; r < q.rows; ++r)
        for (int64_t c = 0; c < q.cols; ++c) {
            float s = q.enc.scales[static_cast<size_t>(r)];
            if (block) s *= q.enc.block_scales[static_cast<size_t>(r * nb + c / q.enc.block_size)];
            out[static_cast<size_t>(r * q.cols + c)] =
                s * static_cast<float>(static_cast<int8_t>(q.data[static_cast<size_t>(r * q.cols + c)]));
        }
    return out;
}

}  // namespace ei::htp
