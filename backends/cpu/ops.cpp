#include "ops.h"

#include <cmath>

#include "cpu_features.h"
#include "quants.h"

namespace ei::cpu::ops {

#if defined(EI_HAVE_AVX2_KERNELS)
void axpy_f16_avx2(int64_t n, float a, const uint16_t* x, float* y);
#endif
#if defined(EI_HAVE_NEON_KERNELS)
void axpy_f16_neon(int64_t n, float a, const uint16_t* x, float* y);
#endif

void axpy_f16_scalar(int64_t n, float a, const uint16_t* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * fp16_to_fp32(x[i]);
}

namespace {
using AxpyFn = void (*)(int64_t, float, const uint16_t*, float*);
AxpyFn pick_axpy() {
#if defined(EI_HAVE_AVX2_KERNELS)
    if (cpu_features().avx2 && cpu_features().fma && cpu_features().f16c) return axpy_f16_avx2;
#endif
#if defined(EI_HAVE_NEON_KERNELS)
    if (cpu_features().neon) return axpy_f16_neon;
#endif
    return axpy_f16_scalar;
}
}  // namespace

void axpy_f16(int64_t n, float a, const uint16_t* x, float* y) {
    static const AxpyFn fn = pick_axpy();
    fn(n, a, x, y);
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
    double sum = 0;  // double, as ggml accumulates, so long rows do not lose precision
    for (int64_t i = 0; i < n; ++i) sum += double(x[i] * x[i]);  // float products, double sum, as ggml
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope(float* x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos, float base, bool halves) {
    // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication in float exactly
    // as llama.cpp does, so positions far out round the same way.
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
    float cs[512], sn[512];  // n_rot/2 <= 512 (head_dim <= 1024)
    float theta = static_cast<float>(pos);
    const int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half && i < 512; ++i) {
        cs[i] = std::cos(theta);
        sn[i] = std::sin(theta);
        theta *= theta_scale;
    }
    for (int32_t h = 0; h < n_head; ++h) {
        float* v = x + int64_t{h} * head_dim;
        for (int32_t i = 0; i < half; ++i) {
            const int32_t a = halves ? i : 2 * i, b = halves ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

void swiglu(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) { kernels_for(GgmlType::F16)->from_float(x, y, n); }

void attention_head(const AttentionHead& a) {
    const int32_t D = a.head_dim;
    // With an f16 cache, q and the probabilities are rounded to f16 before their dot
    // products, as llama.cpp's mul_mat does with f16 operands; the sums stay in f32.
    const TypeKernels* kd = kernels_for(a.f16 ? GgmlType::F16 : GgmlType::F32);
    alignas(64) uint16_t q16[1024];
    const void* q = a.q;
    if (a.f16) {
        kd->from_float(a.q, q16, D);
        q = q16;
    }
    float mx = -INFINITY;
    for (int32_t j = 0; j < a.n_kv; ++j) {
        float s;
        kd->vec_dot(D, &s, a.k + static_cast<uint64_t>(j) * a.kv_stride, q);
        s *= a.scale;
        a.scores[j] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0;
    for (int32_t j = 0; j < a.n_kv; ++j) {
        const float e = std::exp(a.scores[j] - mx);
        a.scores[j] = e;
        sum += e;
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int32_t d = 0; d < D; ++d) a.out[d] = 0.0f;
    for (int32_t j = 0; j < a.n_kv; ++j) {
        const float p = a.scores[j] * inv;
        const uint8_t* vrow = a.v + static_cast<uint64_t>(j) * a.kv_stride;
        if (a.f16) {
            const float p16 = fp16_to_fp32(fp32_to_fp16(p));
            axpy_f16(D, p16, reinterpret_cast<const uint16_t*>(vrow), a.out);
        } else {
            const float* vf = reinterpret_cast<const float*>(vrow);
            for (int32_t d = 0; d < D; ++d) a.out[d] += p * vf[d];
        }
    }
}

}  // namespace ei::cpu::ops
