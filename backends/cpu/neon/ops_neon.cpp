// NEON (armv8.0) variants of the elementwise kernels in ops.h.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstdint>

#include "cpu/quants.h"

namespace ei::cpu::ops {

void axpy_f16_neon(int64_t n, float a, const uint16_t* x, float* y) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t xv = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i)));
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), xv, a));
    }
    for (; i < n; ++i) y[i] += a * fp16_to_fp32(x[i]);
}

void axpy_f32_neon(int64_t n, float a, const float* x, float* y) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace ei::cpu::ops
#endif
