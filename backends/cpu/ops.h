// Elementwise and attention kernels of the CPU backend (f32 activations). Scalar code
// written so compilers vectorize the inner loops; the weight dot products live in quants.h.
#pragma once
#include <cstdint>

namespace ei::cpu::ops {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// Rotates n_head heads of head_dim at absolute position pos; halves = NEOX pairing.
void rope(float* x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos, float base, bool halves);
void swiglu(float* gate, const float* up, int64_t n);  // gate = silu(gate) * up
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
// y += a * x for an f16 row x (AVX2 / NEON when present).
void axpy_f16(int64_t n, float a, const uint16_t* x, float* y);
void axpy_f16_scalar(int64_t n, float a, const uint16_t* x, float* y);

// One query head attending over n_kv cached positions (rows kv_stride bytes apart).
struct AttentionHead {
    const float* q = nullptr;
    const uint8_t* k = nullptr;  // first position's key for this KV head
    const uint8_t* v = nullptr;
    uint64_t kv_stride = 0;
    bool f16 = true;
    int32_t head_dim = 0;
    int32_t n_kv = 0;
    float scale = 1.0f;
    float* scores = nullptr;  // scratch, n_kv floats
    float* out = nullptr;     // head_dim floats
};
void attention_head(const AttentionHead& a);

}  // namespace ei::cpu::ops
