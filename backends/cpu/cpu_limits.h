// What the CPU backend can compute, in one place. The backend's supports() and the model
// loader read the same values, so a model that loads can always be planned and run, and a
// model past a limit is refused when it loads, with a message naming its GGUF key.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ggml_types.h"
#include "quants.h"

namespace ei::cpu {

// The attention, memory and RoPE kernels keep one head (queries, a converted key row, the
// rotation table) in fixed stack buffers of this many floats.
constexpr int32_t kMaxHeadDim = 1024;

// A head geometry the attention, memory and RoPE kernels handle: n_rot rotated dims
// (even, at most the head size) of a head of at most kMaxHeadDim.
constexpr bool head_supported(int32_t head_dim, int32_t n_rot) {
    return head_dim >= 1 && head_dim <= kMaxHeadDim && n_rot >= 0 && n_rot <= head_dim && n_rot % 2 == 0;
}

// A weight a matmul or a row lookup can use: the type has kernels, and its rows are whole
// blocks both of the type and of the type the activations are converted to for the dot.
inline bool weight_supported(GgmlType type, int64_t row_length) {
    const TypeKernels* k = kernels_for(type);
    return k != nullptr && row_length > 0 && row_size(type, row_length) != 0 &&
           row_size(k->vec_dot_type, row_length) != 0;
}

// The kernels read weights through pointers to their element or block type, so a tensor's
// data must start at a multiple of that type's alignment (its rows, whole blocks, then
// stay aligned). A file whose general.alignment is smaller, or a model in a misaligned
// caller buffer, could place it elsewhere.
inline bool weight_aligned(GgmlType type, const void* data) {
    size_t a = 1;
    switch (type) {
        case GgmlType::F32: a = alignof(float); break;
        case GgmlType::F16:
        case GgmlType::BF16: a = alignof(uint16_t); break;
        case GgmlType::Q8_0: a = alignof(BlockQ8_0); break;
        case GgmlType::Q4_0: a = alignof(BlockQ4_0); break;
        case GgmlType::Q4_K: a = alignof(BlockQ4_K); break;
        case GgmlType::Q6_K: a = alignof(BlockQ6_K); break;
        default: break;  // no kernels: weight_supported refuses the type
    }
    return reinterpret_cast<uintptr_t>(data) % a == 0;
}

// Norm weights, biases and memory gates are read as plain f32 arrays.
constexpr bool vector_supported(GgmlType type) { return type == GgmlType::F32; }

// KV cache element types.
constexpr bool cache_supported(GgmlType type) { return type == GgmlType::F16 || type == GgmlType::F32; }

}  // namespace ei::cpu
