// C ABI: row quantization for `ei quantize` (the Java command reads and writes the GGUF
// files; the quantizers live in quantize/).
#include "capi_common.h"
#include "quantize/row_quantize.h"

using ei::capi::guard;

extern "C" {

uint64_t ei_tensor_row_size(int32_t type, int64_t n_cols) {
    return ei::quant::row_bytes(static_cast<ei::GgmlType>(type), n_cols);
}

ei_status ei_quantize_rows(int32_t dst_type, int32_t src_type, const void* src, uint64_t src_size, int64_t rows,
                           int64_t cols, const float* importance, int32_t n_threads, void* dst, uint64_t dst_size) {
    return guard([&] {
        const auto dt = static_cast<ei::GgmlType>(dst_type), st = static_cast<ei::GgmlType>(src_type);
        if (!ei::type_traits(dst_type).name) ei::fail(EI_ERR_UNSUPPORTED, "unknown tensor type " + std::to_string(dst_type));
        if (!ei::type_traits(src_type).name) ei::fail(EI_ERR_UNSUPPORTED, "unknown tensor type " + std::to_string(src_type));
        if (!ei::quant::can_write(dt)) {
            ei::fail(EI_ERR_UNSUPPORTED, std::string("cannot quantize to type ") + ei::type_traits(dst_type).name);
        }
        if (rows < 0 || cols <= 0) ei::fail(EI_ERR_INVALID_ARGUMENT, "bad shape");
        if (rows > 0 && (!src || !dst)) ei::fail(EI_ERR_INVALID_ARGUMENT, "src or dst is null");
        const uint64_t src_row = ei::quant::row_bytes(st, cols), dst_row = ei::quant::row_bytes(dt, cols);
        // Sizes checked with the rows that fit, so the products below cannot overflow.
        if (src_row != 0 && (src_size / src_row < static_cast<uint64_t>(rows) || src_size != src_row * static_cast<uint64_t>(rows))) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "src_size " + std::to_string(src_size) + " is not " + std::to_string(rows) +
                                                  " rows of " + std::to_string(src_row) + " bytes");
        }
        if (dst_row != 0 && (dst_size / dst_row < static_cast<uint64_t>(rows) || dst_size != dst_row * static_cast<uint64_t>(rows))) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "dst_size " + std::to_string(dst_size) + " is not " + std::to_string(rows) +
                                                  " rows of " + std::to_string(dst_row) + " bytes");
        }
        ei::quant::quantize_rows(dt, st, src, rows, cols, importance, n_threads, dst);
    });
}

}  // extern "C"
