// Elementwise, attention and memory kernels of the CPU backend (f32 activations). The
// attention and memory kernels are written once over a table of SIMD primitives; each
// variant (scalar reference, AVX2, NEON) is that table, so tests compare variants by
// running the same kernel over each table.
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu_limits.h"
#include "float_math.h"
#include "quants.h"

namespace ei::cpu::ops {

// One run of consecutive cache slots in an attention list (see segment_attention).
struct KvSpan {
    int64_t slot = 0;
    int64_t count = 0;
};

// Queries are stored kq_stride(d) floats apart, zero-padded, so the 16-lane dots over a
// head need no tail handling.
constexpr int32_t kq_stride(int32_t d) { return (d + kLanes - 1) / kLanes * kLanes; }
static_assert(kq_stride(kMaxHeadDim) == kMaxHeadDim, "the kernels' head buffers hold a padded head");

// Every primitive computes in the order of float_math.h, so all variants give the same bits.
struct Primitives {
    KernelVariant variant;
    const char* name;
    void (*dot_f32)(int64_t n, float* out, const void* x, const void* y);
    void (*f32_to_f16)(const float* x, void* y, int64_t n);
    void (*axpy_f32)(int64_t n, float a, const float* x, float* y);  // y += a * x
    // Attention over a block of nq queries (rows of q, kq_stride(d) floats apart, already
    // rounded to the cache precision) and cached rows (keys or values, `stride` bytes
    // apart, f16 or f32). Each query i only looks at the first lim[i] rows (lim grows with
    // i). Each row is converted once and used by every query.
    //   kq: s[i * ld + j] = (q_i . k_j) * scale for the n rows at k, j < lim[i]
    //   pv: out_i = sum_j p[i * ld + j] * v_j over the rows of the spans, in list order
    //       (the sum's lanes are list indices mod 16), j < lim[i]
    void (*kq)(const float* q, int nq, const uint8_t* k, int64_t n, uint64_t stride, bool f16, int32_t d,
               float scale, const int64_t* lim, float* s, int64_t ld);
    void (*pv)(const float* p, int nq, int64_t ld, const int64_t* lim, const uint8_t* v, const KvSpan* spans,
               int n_spans, uint64_t stride, bool f16, int32_t d, float* const* out);
    // x[j] = fast_exp(x[j] - max) for j < n; returns the sum (16-lane chunks, each summed
    // as a tree and added in double, as llama.cpp's softmax does).
    double (*exp_sum)(float* x, int64_t n, float max);
    // The largest x[j], j < n (-inf when n = 0; NaN elements are skipped); a zero maximum
    // may come out as either zero (only ever subtracted).
    float (*max_f32)(const float* x, int64_t n);
    // x[j] *= s
    void (*scale_f32)(float* x, int64_t n, float s);
    // x[j] = x[j] rounded to the nearest f16 value (as f32).
    void (*round_f16)(float* x, int64_t n);
    // gate[j] = fast_silu(gate[j]) * up[j]
    void (*silu_mul)(float* gate, const float* up, int64_t n);
};
// The best table for this CPU.
const Primitives& primitives();
// A specific variant's table, or nullptr when it is not built or cannot run here.
const Primitives* primitives(KernelVariant v);

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// y = x with n_head heads of head_dim rotated to absolute position pos (negative pos
// rotates back); halves = NEOX pairing. x and y may alias.
void rope(const float* x, float* y, int32_t n_head, int32_t head_dim, int32_t n_rot, int64_t pos, float base,
          bool halves);
void swiglu(float* gate, const float* up, int64_t n);  // gate = silu(gate) * up
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
// sigma(x) = elu(x) + 1, the feature map of linear attention (Infini-attention).
inline float sigma(float x) { return x > 0 ? x + 1.0f : std::exp(x); }

// Segment attention for one head and a block of up to kMaxQueries consecutive queries of
// a segment. The cached rows they may see form one list in position order: the sink, then
// the ring from its oldest position (one span, or two where the ring wraps). Positions
// grow along the list, so each query sees a prefix of it (its causal limit). Per query,
// the arithmetic does not depend on the block or the spans, so attention without memory
// is bit-identical to plain full attention, whatever L, threads or block sizes.
constexpr int kMaxQueries = 16;
struct AttentionBlock {
    int nq = 0;
    const float* q[kMaxQueries] = {};  // rotated queries (head_dim each)
    float* out[kMaxQueries] = {};      // head_dim floats each
    int64_t visible[kMaxQueries] = {}; // how many list rows each query sees
    const uint8_t* k = nullptr;        // slot 0 of this KV head's keys
    const uint8_t* v = nullptr;
    uint64_t kv_stride = 0;            // bytes between slots
    bool f16 = true;
    int32_t head_dim = 0;
    KvSpan spans[3];
    int n_spans = 0;
    float scale = 1.0f;
    float* scores = nullptr;           // scratch: nq x (rows of all spans) floats
    // When set, spans[0] is the sink and its keys are scored with these queries instead of
    // q: the same queries rotated to an earlier position, which places the sink keys closer
    // (sinks kept at a constant distance behind the window; see Scenario::sinks_follow).
    const float* q_sink[kMaxQueries] = {};
    bool sink_query = false;
    // Memory retrieval and gate; used when mem_m is set and gate != 0.
    const float* q_mem[kMaxQueries] = {};  // the query as the memory sees it (pre- or post-RoPE)
    const float* mem_m = nullptr;      // d x d
    const float* mem_z = nullptr;      // d
    int gate = 0;                      // 0 none, 1 scalar, 2 adaptive
    // Per query (the queries of a block may be different heads of one KV head: decode):
    const float* gate_w[kMaxQueries] = {};  // scalar: 1 value; adaptive: 2*d values
    float gate_b[kMaxQueries] = {};
};
void segment_attention(const AttentionBlock& a, const Primitives& p);

// Folds n rows into one KV head's memory. sk = sigma(K) rows and v rows (n x d each, f32).
// linear: M += sk^T v; delta: M += sk^T (v - sk M / (sk z)), with M and z as they were
// before the block; z += sum of sk rows. v is overwritten (delta); r is d floats scratch.
void memory_update(float* M, float* z, const float* sk, float* v, int64_t n, int32_t d, bool delta, float* r,
                   const Primitives& p);

// Memory retrieval: out = (sq M) / (sq . z + eps) for sq = sigma(q) (d floats, scratch).
constexpr float kMemoryEps = 1e-6f;

}  // namespace ei::cpu::ops
