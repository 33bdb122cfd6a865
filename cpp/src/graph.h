// Fixed-shape graphs: a list of ops over buffers at fixed pool offsets, planned once per
// scenario (prefill of up to L tokens, decode of 1). Backends execute them; the graph
// code never knows which backend runs it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ggml_types.h"

namespace ei {

// A 2-D operand: `rows` rows of `cols` elements of `type`. Either a weight (a pointer into
// the mapped model) or a pool region (an offset into the session's pool).
struct TensorRef {
    enum class Where : uint8_t { None, Pool, Weight };
    Where where = Where::None;
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;          // Pool: byte offset
    const void* data = nullptr;   // Weight: mapped data
    int64_t cols = 0;
    int64_t rows = 0;
    uint64_t row_bytes = 0;       // stride between rows

    bool valid() const { return where != Where::None; }
};

enum class OpKind : uint8_t {
    GetRows,    // dst[t] = dequant(src0[tokens[t]])              (src1 = token ids, i32)
    RmsNorm,    // dst[t] = src0[t] / rms(src0[t]) * weight(src1)
    MatMul,     // dst[t] (+)= src0(weights) . src1[t] (+ bias src2); accumulate adds into dst
    Rope,       // in place on dst: rotate each head at position pos0 + t
    KvStore,    // write src0 (k) and src1 (v) rows into the layer's cache at pos0 + t
    Attention,  // dst[t] = softmax(q[t] K^T / sqrt(d)) V over cache positions <= pos0 + t
    SwiGlu,     // dst[t] = silu(dst[t]) * src0[t]
};

const char* op_name(OpKind k);

struct Op {
    OpKind kind;
    TensorRef dst, src0, src1, src2;
    TensorRef aux;              // pool scratch: MatMul's converted activations, Attention's scores
    int32_t layer = -1;
    bool accumulate = false;    // MatMul: dst += result
    // The output head: by default only the last valid row is computed, into dst row 0;
    // with StepParams::all_logits every valid row goes to StepParams::logits_out.
    bool output_head = false;
    float eps = 0;              // RmsNorm
    // Rope / Attention geometry
    int32_t n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
    float rope_base = 0;
    int32_t rope_mode = 0;      // 0 adjacent pairs, 1 halves
};

struct Graph {
    std::string name;
    int32_t max_tokens = 0;     // L for prefill, 1 for decode
    std::vector<Op> ops;
};

// What changes between runs of one graph; everything else is fixed at planning.
struct StepParams {
    int32_t n_tokens = 0;       // valid rows, 1..max_tokens (the rest is padding)
    int32_t pos0 = 0;           // absolute position of row 0
    bool all_logits = false;    // compute the output head for every row, not just the last
    float* logits_out = nullptr;  // when all_logits: n_tokens x n_vocab destination
};

}  // namespace ei
