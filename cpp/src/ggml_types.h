// The ggml tensor types as GGUF numbers them, with their block geometry. This table is
// what the GGUF reader uses to bound tensor data; which types the kernels can compute
// with is a separate question answered by the backends.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ei {

enum class GgmlType : int32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
};

struct TypeTraits {
    const char* name;    // nullptr: not a known type
    int64_t block_size;  // elements per block
    int64_t type_size;   // bytes per block
};

// Traits of a type number, or {nullptr,0,0} for a number ggml does not define.
TypeTraits type_traits(int32_t type);
inline TypeTraits type_traits(GgmlType t) { return type_traits(static_cast<int32_t>(t)); }

}  // namespace ei
