#include "ops.h"

#include <algorithm>
#include <cmath>

#include "cpu_features.h"

namespace ei::cpu::ops {

// SIMD variants of the primitives not covered by quants.h (ops_avx2.cpp, ops_neon.cpp).
#if defined(EI_HAVE_AVX2_KERNELS)
void axpy_f16_avx2(int64_t n, float a, const uint16_t* x, float* y);
void axpy_f32_avx2(int64_t n, float a, const float* x, float* y);
#endif
#if defined(EI_HAVE_NEON_KERNELS)
void axpy_f16_neon(int64_t n, float a, const uint16_t* x, float* y);
void axpy_f32_neon(int64_t n, float a, const float* x, float* y);
#endif

namespace {

void axpy_f16_scalar(int64_t n, float a, const uint16_t* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * fp16_to_fp32(x[i]);
}
void axpy_f32_scalar(int64_t n, float a, const float* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

bool make_table(KernelVariant v, Primitives& t) {
    const TypeKernels* f16 = kernels_for(GgmlType::F16, v);
    const TypeKernels* f32 = kernels_for(GgmlType::F32, v);
    if (!f16 || !f32) return false;
    t.variant = v;
    t.name = variant_name(v);
    t.dot_f16 = f16->vec_dot;
    t.dot_f32 = f32->vec_dot;
    t.f32_to_f16 = f16->from_float;
    switch (v) {
        case KernelVariant::Scalar:
            t.axpy_f16 = axpy_f16_scalar;
            t.axpy_f32 = axpy_f32_scalar;
            return true;
#if defined(EI_HAVE_AVX2_KERNELS)
        case KernelVariant::Avx2:
            t.axpy_f16 = axpy_f16_avx2;
            t.axpy_f32 = axpy_f32_avx2;
            return true;
#endif
#if defined(EI_HAVE_NEON_KERNELS)
        case KernelVariant::Neon:
        case KernelVariant::NeonDotprod:
            t.axpy_f16 = axpy_f16_neon;
            t.axpy_f32 = axpy_f32_neon;
            return true;
#endif
        default:
            return false;
    }
}

struct Tables {
    Primitives table[4];
    bool present[4] = {false, false, false, false};
    int best = 0;
    Tables() {
        const KernelVariant order[4] = {KernelVariant::Scalar, KernelVariant::Avx2, KernelVariant::Neon,
                                        KernelVariant::NeonDotprod};
        for (int i = 0; i < 4; ++i) {
            present[i] = make_table(order[i], table[i]);
            if (present[i]) best = i;
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

int index_of(KernelVariant v) {
    switch (v) {
        case KernelVariant::Scalar: return 0;
        case KernelVariant::Avx2: return 1;
        case KernelVariant::Neon: return 2;
        case KernelVariant::NeonDotprod: return 3;
    }
    return 0;
}

}  // namespace

const Primitives& primitives() { return tables().table[tables().best]; }

const Primitives* primitives(KernelVariant v) {
    int i = index_of(v);
    return tables().present[i] ? &tables().table[i] : nullptr;
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
    double sum = 0;  // float products summed in double, as ggml does
    for (int64_t i = 0; i < n; ++i) sum += double(x[i] * x[i]);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope(const float* x, float* y, int32_t n_head, int32_t head_dim, int32_t n_rot, int64_t pos, float base,
          bool halves) {
    // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication in float exactly
    // as llama.cpp does, so positions far out round the same way.
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
    float cs[512], sn[512];  // n_rot / 2 <= 512: head_dim <= 1024 (checked at load)
    float theta = static_cast<float>(pos);
    const int32_t half = std::min(n_rot / 2, 512);
    for (int32_t i = 0; i < half; ++i) {
        cs[i] = std::cos(theta);
        sn[i] = std::sin(theta);
        theta *= theta_scale;
    }
    for (int32_t h = 0; h < n_head; ++h) {
        const float* v = x + int64_t{h} * head_dim;
        float* o = y + int64_t{h} * head_dim;
        if (o != v) std::copy(v + n_rot, v + head_dim, o + n_rot);  // dims past n_rot pass through
        for (int32_t i = 0; i < half; ++i) {
            const int32_t a = halves ? i : 2 * i, b = halves ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            o[a] = x0 * cs[i] - x1 * sn[i];
            o[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

void swiglu(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) { primitives().f32_to_f16(x, y, n); }

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// The local (softmax) part: out = softmax(q K^T * scale) V over the spans.
void local_attention(const AttentionHead& a, const Primitives& p) {
    const int32_t D = a.head_dim;
    // With an f16 cache, q and the probabilities are rounded to f16 before their dot
    // products, as llama.cpp's mul_mat does with f16 operands; the sums stay in f32.
    alignas(64) uint16_t q16[1024];
    if (a.f16) p.f32_to_f16(a.q, q16, D);
    int64_t n = 0;
    float mx = -INFINITY;
    for (int s = 0; s < a.n_spans; ++s) {
        const uint8_t* k = a.k + static_cast<uint64_t>(a.spans[s].slot) * a.kv_stride;
        for (int64_t j = 0; j < a.spans[s].count; ++j, k += a.kv_stride) {
            float sc;
            if (a.f16) p.dot_f16(D, &sc, k, q16);
            else p.dot_f32(D, &sc, k, a.q);
            sc *= a.scale;
            a.scores[n++] = sc;
            mx = sc > mx ? sc : mx;
        }
    }
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) {
        const float e = std::exp(a.scores[j] - mx);
        a.scores[j] = e;
        sum += e;
    }
    const float inv = static_cast<float>(1.0 / sum);
    std::fill(a.out, a.out + D, 0.0f);
    int64_t j = 0;
    for (int s = 0; s < a.n_spans; ++s) {
        const uint8_t* v = a.v + static_cast<uint64_t>(a.spans[s].slot) * a.kv_stride;
        for (int64_t i = 0; i < a.spans[s].count; ++i, ++j, v += a.kv_stride) {
            const float pr = a.scores[j] * inv;
            if (a.f16) p.axpy_f16(D, fp16_to_fp32(fp32_to_fp16(pr)), reinterpret_cast<const uint16_t*>(v), a.out);
            else p.axpy_f32(D, pr, reinterpret_cast<const float*>(v), a.out);
        }
    }
}

}  // namespace

void segment_attention_head(const AttentionHead& a, const Primitives& p) {
    local_attention(a, p);
    if (!a.mem_m || a.gate == 0) return;  // g = 0: sinks + window only
    const int32_t D = a.head_dim;
    alignas(64) float sq[1024], mem[1024];
    for (int32_t i = 0; i < D; ++i) sq[i] = sigma(a.q_mem[i]);
    float den;
    p.dot_f32(D, &den, sq, a.mem_z);
    std::fill(mem, mem + D, 0.0f);
    for (int32_t i = 0; i < D; ++i) p.axpy_f32(D, sq[i], a.mem_m + int64_t{i} * D, mem);
    const float inv = 1.0f / (den + kMemoryEps);
    for (int32_t i = 0; i < D; ++i) mem[i] *= inv;
    float g;
    if (a.gate == 1) {
        g = sigmoid(a.gate_w[0] + a.gate_b);
    } else {
        float wm, wl;
        p.dot_f32(D, &wm, a.gate_w, mem);
        p.dot_f32(D, &wl, a.gate_w + D, a.out);
        g = sigmoid(wm + wl + a.gate_b);
    }
    for (int32_t i = 0; i < D; ++i) a.out[i] = g * mem[i] + (1.0f - g) * a.out[i];
}

void memory_update(float* M, float* z, const float* sk, float* v, int64_t n, int32_t d, bool delta, float* r,
                   const Primitives& p) {
    if (delta) {
        // Every row's correction uses the memory as it was before the block.
        for (int64_t t = 0; t < n; ++t) {
            const float* s = sk + t * d;
            float den;
            p.dot_f32(d, &den, s, z);
            if (!(den > 0)) continue;  // empty memory retrieves nothing: v stays
            std::fill(r, r + d, 0.0f);
            for (int32_t i = 0; i < d; ++i) p.axpy_f32(d, s[i], M + int64_t{i} * d, r);
            float* vt = v + t * d;
            const float inv = 1.0f / den;
            for (int32_t j = 0; j < d; ++j) vt[j] -= r[j] * inv;
        }
    }
    for (int64_t t = 0; t < n; ++t) {
        const float* s = sk + t * d;
        const float* vt = v + t * d;
        for (int32_t i = 0; i < d; ++i) p.axpy_f32(d, s[i], vt, M + int64_t{i} * d);
        p.axpy_f32(d, 1.0f, s, z);
    }
}

}  // namespace ei::cpu::ops
