// Fixed-shape graphs, planned once per scenario (prefill of up to L tokens, decode of 1,
// fold): a table of every tensor the graph touches and a list of ops over tensor ids.
// Backends execute them; the graph code never knows which backend runs it. The CPU
// lowering addresses operands by their pool offsets (TensorRef); a device compiler reads
// the table and each op's reads / writes / updates.
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
    int32_t id = -1;              // the graph's tensor table entry this ref was made from
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;          // Pool: byte offset
    const void* data = nullptr;   // Weight: mapped data
    int64_t cols = 0;
    int64_t rows = 0;
    uint64_t row_bytes = 0;       // stride between rows

    bool valid() const { return where != Where::None; }
};

// What a tensor is to a graph. A static-graph compiler binds weights once, feeds step
// inputs each step, keeps state across steps (it persists in the pool), and may place
// activations and scratch anywhere it likes.
enum class TensorRole : uint8_t {
    Weight,      // model data, read-only
    StepInput,   // written by the session before each step (token ids), read-only to ops
    Activation,  // produced and consumed within one step
    State,       // persists across steps: KV cache, memory M and z
    Output,      // read by the session after a step (logits)
    Scratch,     // an op's private workspace (converted activations, scores)
};
const char* role_name(TensorRole r);

// How a tensor's elements are quantized. Today the ggml block layout (its scales live in
// the blocks); an NPU's per-tensor or per-channel affine encoding gets its fields here.
struct QuantParams {
    GgmlType block_type = GgmlType::F32;  // the ggml block type of the data
    int64_t block_size = 1;               // elements per block
    uint64_t block_bytes = 0;             // bytes per block
};

// One entry of a graph's tensor table: a 2-D tensor of `rows` rows of `cols` elements.
// Names: GGUF names for weights ("blk.3.attn_q.weight"), pool region names for the rest,
// with the layer for per-layer state ("kv.k.3", "mem.M.3").
struct Tensor {
    int32_t id = -1;
    std::string name;
    TensorRole role = TensorRole::Activation;
    GgmlType type = GgmlType::F32;
    int64_t cols = 0, rows = 0;
    uint64_t row_bytes = 0;
    TensorRef::Where where = TensorRef::Where::None;
    uint64_t offset = 0;          // Pool: byte offset of row 0
    const void* data = nullptr;   // Weight: mapped data
    bool quantized = false;
    QuantParams quant;            // meaningful when quantized

    uint64_t bytes() const { return row_bytes * static_cast<uint64_t>(rows); }
    // The operand an op names: everything from this entry.
    TensorRef ref() const {
        TensorRef r;
        r.where = where;
        r.id = id;
        r.type = type;
        r.offset = offset;
        r.data = data;
        r.cols = cols;
        r.rows = rows;
        r.row_bytes = row_bytes;
        return r;
    }
};

enum class OpKind : uint8_t {
    GetRows,    // dst[t] = dequant(src0[tokens[t]])              (src1 = token ids, i32)
    RmsNorm,    // dst[t] = src0[t] / rms(src0[t]) * weight(src1)
    MatMul,     // dst[t] (+)= src0(weights) . src1[t] (+ bias src2); accumulate adds into dst
    Rope,       // dst[t] = src0[t] with each head rotated for position pos0 + t
    KvStore,    // write src0 (k) and src1 (v) rows into cache slots dst / src2 for pos0 + t
    // dst[t] = the segment attention of query q = src0[t] (DESIGN §1): softmax attention
    // over the sink, the window ring and the causal part of its own segment (cache src1 /
    // src2), blended by the memory gate with the memory retrieval sigma(q) M / (sigma(q) z)
    // when the memory holds tokens and the layer has a gate.
    SegmentAttention,
    // Folds the oldest L ring tokens (from StepParams::fold_start) of one layer into its
    // memory: dst = M, src2 = z, from the K/V cache src1... (see cpu backend).
    MemoryUpdate,
    SwiGlu,     // dst[t] = silu(dst[t]) * src0[t]
};

const char* op_name(OpKind k);

struct Op {
    OpKind kind = OpKind::GetRows;
    TensorRef dst, src0, src1, src2;
    TensorRef aux;              // pool scratch: MatMul's converted activations, Attention's scores
    int32_t layer = -1;
    bool accumulate = false;    // MatMul: dst += result
    // The output head: by default only the last valid row is computed, into dst row 0;
    // with StepParams::all_logits every valid row goes to StepParams::logits_out.
    bool output_head = false;
    float eps = 0;              // RmsNorm
    // Rope / attention geometry
    int32_t n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
    float rope_base = 0;
    int32_t rope_mode = 0;      // 0 adjacent pairs, 1 halves
    // KV slots: S sink slots then a ring of `ring` slots (kv_slot)
    int32_t n_sink = 0, ring = 0;
    // Memory (SegmentAttention, MemoryUpdate): M [n_head_kv][d][d] and z [n_head_kv][d] of
    // this layer; the queries/keys it uses are pre-RoPE unless memory_rope.
    TensorRef mem_m, mem_z, q_nope, gate_w, gate_b;
    int32_t gate = 0;           // 0 none, 1 scalar, 2 adaptive
    bool memory_rope = false;
    bool delta_rule = false;
    // SegmentAttention: the sink keys are seen as if they sat right behind the window (their
    // positions moved up by the folded tokens), not at their absolute positions.
    bool sinks_follow = false;
    // Step inputs (role StepInput, written by StepInputWriter, step_inputs.h) the op reads:
    // Rope: rope_rows (cos/sin of each row's position); KvStore: slots (write slot per row);
    // SegmentAttention: positions, slots (its own rows), visible (sinks and ring spans) and,
    // with sinks behind the window, rope_rows for the sink queries; MemoryUpdate: slots and
    // rope_rows (un-RoPE) of the folded tokens; the output head: logit_row. Backends that
    // lower from StepParams (the CPU) ignore them.
    TensorRef positions, slots, visible, rope_rows, logit_row;

    // The op's dataflow over tensor ids, from op_access (the planner fills it): tensors it
    // only reads, tensors it writes without reading their old contents, and tensors it
    // updates in place (reads, then writes: an accumulating MatMul's dst, SwiGlu's dst,
    // the KV cache rows KvStore writes, the memory a fold changes). Each id once.
    std::vector<int32_t> reads, writes, updates;
};

// Reads, writes and in-place updates of op, from its kind and operands (ids of the refs;
// refs without an id are left out). The one place that knows each operand's direction.
void op_access(const Op& op, std::vector<int32_t>& reads, std::vector<int32_t>& writes, std::vector<int32_t>& updates);

// The KV slot of a token: S sink slots hold positions 0..S-1, then a ring of `ring` slots
// holds later positions, each at S + (pos - S) mod ring. Planner, session and backends
// all place tokens with this one function.
inline int64_t kv_slot(int64_t pos, int64_t n_sink, int64_t ring) {
    return pos < n_sink ? pos : n_sink + (pos - n_sink) % ring;
}

struct Graph {
    std::string name;
    int32_t max_tokens = 0;     // L for prefill, 1 for decode
    std::vector<Tensor> tensors;  // the table: tensors[i].id == i
    std::vector<Op> ops;

    const Tensor& tensor(int32_t id) const;  // throws EI_ERR_INTERNAL for an id not in the table
};

// The table and ops of graph as text, one tensor or op per line (ei plan --graph).
std::string describe_graph(const Graph& graph);

struct StepParams;

// Watches a step op by op, for the tools that measure what the model computes (importance
// matrix, calibration ranges, gate fitting): before() sees an op's inputs in the pool,
// after() its output. Ops may update in place (SwiGlu, an accumulating MatMul), so an op's
// inputs are only there before it runs. Backends call it between ops, on the calling
// thread; a null observer (every normal run) costs one branch per op.
class OpObserver {
public:
    virtual ~OpObserver() = default;
    virtual void before(const Graph& graph, const Op& op, const StepParams& step, const uint8_t* pool) {
        (void)graph, (void)op, (void)step, (void)pool;
    }
    virtual void after(const Graph& graph, const Op& op, const StepParams& step, const uint8_t* pool) {
        (void)graph, (void)op, (void)step, (void)pool;
    }
};

// What changes between runs of one graph; everything else is fixed at planning.
struct StepParams {
    int32_t n_tokens = 0;       // valid rows, 1..max_tokens (the rest is padding)
    int64_t pos0 = 0;           // absolute position of row 0
    int64_t ring_start = 0;     // oldest position still in the window ring (>= S)
    int64_t mem_tokens = 0;     // tokens folded into memory so far (0: memory empty)
    int64_t fold_start = 0;     // MemoryUpdate: first position of the L tokens to fold
    bool all_logits = false;    // compute the output head for every row, not just the last
    float* logits_out = nullptr;  // when all_logits: n_tokens x n_vocab destination
    OpObserver* observer = nullptr;  // tools only (see OpObserver)
};

}  // namespace ei
