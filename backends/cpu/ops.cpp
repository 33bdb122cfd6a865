#include "ops.h"

#include <algorithm>
#include <cmath>

#include "cpu_features.h"
#include "ops_impl.h"

namespace ei::cpu::ops {

namespace {

// ---- the scalar reference primitives

float row_value(const uint8_t* row, bool f16, int32_t c) {
    return f16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(row)[c]) : reinterpret_cast<const float*>(row)[c];
}

void axpy_f32_scalar(int64_t n, float a, const float* x, float* y) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::fma(a, x[i], y[i]);
}

void kq_scalar(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d, float scale,
               const int64_t* lim, float* s, int64_t ld) {
    for (int i = 0; i < nq; ++i) {
        const float* qi = q + int64_t{i} * kq_stride(d);
        for (int64_t j = 0; j < std::min(n, lim[i]); ++j) {
            const uint8_t* row = k + static_cast<uint64_t>(j) * stride;
            float l[kLanes] = {};
            for (int32_t c = 0; c < d; ++c) l[c % kLanes] = std::fma(qi[c], row_value(row, f16, c), l[c % kLanes]);
            s[int64_t{i} * ld + j] = lane16_reduce(l) * scale;
        }
    }
}

void pv_scalar(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans,
               int n_spans, uint64_t stride, bool f16, int32_t d, float* const* out) {
    for (int i = 0; i < nq; ++i) {
        for (int32_t c = 0; c < d; ++c) {
            float l[kLanes] = {};
            int64_t j = 0;  // list index
            for (int sp = 0; sp < n_spans; ++sp) {
                for (int64_t r = 0; r < spans[sp].count && j < lim[i]; ++r, ++j) {
                    const uint8_t* row = v + static_cast<uint64_t>(spans[sp].slot + r) * stride;
                    l[j % kLanes] = std::fma(p[int64_t{i} * ld + j], row_value(row, f16, c), l[j % kLanes]);
                }
            }
            out[i][c] = lane16_reduce(l);
        }
    }
}

double exp_sum_scalar(float* x, int64_t n, float max) {
    double sum = 0;
    for (int64_t j0 = 0; j0 < n; j0 += kLanes) {
        float l[kLanes] = {};
        for (int64_t j = j0; j < std::min(n, j0 + kLanes); ++j) l[j - j0] = x[j] = fast_exp(x[j] - max);
        sum += lane16_reduce(l);
    }
    return sum;
}

float max_f32_scalar(const float* x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

void scale_f32_scalar(float* x, int64_t n, float s) {
    for (int64_t j = 0; j < n; ++j) x[j] *= s;
}

void round_f16_scalar(float* x, int64_t n) {
    for (int64_t j = 0; j < n; ++j) x[j] = fp16_to_fp32(fp32_to_fp16(x[j]));
}

void silu_mul_scalar(float* gate, const float* up, int64_t n) {
    for (int64_t j = 0; j < n; ++j) gate[j] = fast_silu(gate[j]) * up[j];
}

bool make_table(KernelVariant v, Primitives& t) {
#if defined(EI_HAVE_AVX512_KERNELS)
    if (v == KernelVariant::Avx512) {  // AVX2's table with AVX-512's attention dots
        const CpuFeatures& f = cpu_features();
        if (!f.avx512 || !make_table(KernelVariant::Avx2, t)) return false;
        t.variant = v;
        t.name = variant_name(v);
        t.kq = kq_avx512;
        t.pv = pv_avx512;
        t.exp_sum = exp_sum_avx512;
        t.max_f32 = max_f32_avx512;
        t.scale_f32 = scale_f32_avx512;
        t.round_f16 = round_f16_avx512;
        return true;
    }
#endif
    const TypeKernels* f16 = kernels_for(GgmlType::F16, v);
    const TypeKernels* f32 = kernels_for(GgmlType::F32, v);
    if (!f16 || !f32) return false;
    t.variant = v;
    t.name = variant_name(v);
    t.dot_f32 = f32->vec_dot;
    t.f32_to_f16 = f16->from_float;
    t.max_f32 = max_f32_scalar;  // plain loops: the compiler vectorizes the scaling
    t.scale_f32 = scale_f32_scalar;
#define EI_FILL(sfx)                    \
    t.axpy_f32 = axpy_f32_##sfx;        \
    t.kq = kq_##sfx;                    \
    t.pv = pv_##sfx;                    \
    t.exp_sum = exp_sum_##sfx;          \
    t.round_f16 = round_f16_##sfx;      \
    t.silu_mul = silu_mul_##sfx;        \
    return true;
    switch (v) {
        case KernelVariant::Scalar: EI_FILL(scalar)
#if defined(EI_HAVE_AVX2_KERNELS)
        case KernelVariant::Avx2:
            t.max_f32 = max_f32_avx2;
            EI_FILL(avx2)
#endif
#if defined(EI_HAVE_NEON_KERNELS)
        case KernelVariant::Neon:
        case KernelVariant::NeonDotprod:
        case KernelVariant::NeonI8mm: EI_FILL(neon)
#endif
        default:
            return false;
    }
#undef EI_FILL
}

struct Tables {
    Primitives table[6];
    bool present[6] = {false, false, false, false, false, false};
    int best = 0;
    Tables() {
        const KernelVariant order[6] = {KernelVariant::Scalar,      KernelVariant::Avx2,     KernelVariant::Neon,
                                        KernelVariant::NeonDotprod, KernelVariant::NeonI8mm, KernelVariant::Avx512};
        for (int i = 0; i < 6; ++i) {
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
        case KernelVariant::NeonI8mm: return 4;
        case KernelVariant::Avx512: return 5;
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
    float cs[kMaxHeadDim / 2], sn[kMaxHeadDim / 2];  // n_rot <= head_dim <= kMaxHeadDim (checked at load)
    float theta = static_cast<float>(pos);
    const int32_t half = std::min(n_rot / 2, kMaxHeadDim / 2);
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
            // Contracted to fused multiply-adds as GCC compiles ggml's rotation.
            o[a] = std::fma(x0, cs[i], -(x1 * sn[i]));
            o[b] = std::fma(x0, sn[i], x1 * cs[i]);
        }
    }
}

void swiglu(float* gate, const float* up, int64_t n) { primitives().silu_mul(gate, up, n); }

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) { primitives().f32_to_f16(x, y, n); }


namespace {
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void segment_attention(const AttentionBlock& a, const Primitives& p) {
    const int32_t D = a.head_dim;
    const int nq = a.nq;
    int64_t total = 0;
    for (int s = 0; s < a.n_spans; ++s) total += a.spans[s].count;
    // With an f16 cache, q and the attention weights are rounded to f16 before their dot
    // products, as llama.cpp's mul_mat does with f16 operands; the sums stay in f32.
    const int32_t dq = kq_stride(D);
    alignas(64) float q[kMaxQueries * kMaxHeadDim];  // dq <= kMaxHeadDim (a multiple of 16)
    auto load = [&](const float* const* src, float* dst) {
        for (int i = 0; i < nq; ++i) {
            float* qi = dst + int64_t{i} * dq;
            std::copy(src[i], src[i] + D, qi);
            std::fill(qi + D, qi + dq, 0.0f);
            if (a.f16) p.round_f16(qi, D);
        }
    };
    load(a.q, q);
    alignas(64) float q_sink[kMaxQueries * kMaxHeadDim];  // untouched unless sink_query
    if (a.sink_query) load(a.q_sink, q_sink);
    // Each span sees, per query, the part of its prefix that falls in the span.
    int64_t lim[kMaxQueries];
    int64_t off = 0;
    for (int s = 0; s < a.n_spans; ++s) {
        for (int i = 0; i < nq; ++i) lim[i] = std::clamp<int64_t>(a.visible[i] - off, 0, a.spans[s].count);
        const float* qs = a.sink_query && s == 0 ? q_sink : q;
        p.kq(qs, nq, a.k + static_cast<uint64_t>(a.spans[s].slot) * a.kv_stride, a.spans[s].count, a.kv_stride, a.f16,
             D, a.scale, lim, a.scores + off, total);
        off += a.spans[s].count;
    }
    for (int i = 0; i < nq; ++i) {
        float* row = a.scores + int64_t{i} * total;
        const int64_t n = a.visible[i];
        const float mx = p.max_f32(row, n);
        const float inv = static_cast<float>(1.0 / p.exp_sum(row, n, mx));
        p.scale_f32(row, n, inv);
        if (a.f16) p.round_f16(row, n);
    }
    p.pv(a.scores, nq, total, a.visible, a.v, a.spans, a.n_spans, a.kv_stride, a.f16, D, a.out);
    if (!a.mem_m || a.gate == 0) return;  // g = 0: sinks + window only
    for (int i = 0; i < nq; ++i) {
        alignas(64) float sq[kMaxHeadDim], mem[kMaxHeadDim];
        for (int32_t c = 0; c < D; ++c) sq[c] = sigma(a.q_mem[i][c]);
        float den;
        p.dot_f32(D, &den, sq, a.mem_z);
        std::fill(mem, mem + D, 0.0f);
        for (int32_t c = 0; c < D; ++c) p.axpy_f32(D, sq[c], a.mem_m + int64_t{c} * D, mem);
        const float inv = 1.0f / (den + kMemoryEps);
        for (int32_t c = 0; c < D; ++c) mem[c] *= inv;
        float g;
        if (a.gate == 1) {
            g = sigmoid(a.gate_w[i][0] + a.gate_b[i]);
        } else {
            float wm, wl;
            p.dot_f32(D, &wm, a.gate_w[i], mem);
            p.dot_f32(D, &wl, a.gate_w[i] + D, a.out[i]);
            g = sigmoid(wm + wl + a.gate_b[i]);
        }
        float* o = a.out[i];
        for (int32_t c = 0; c < D; ++c) o[c] = g * mem[c] + (1.0f - g) * o[c];
    }
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
