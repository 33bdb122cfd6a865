#include "plan.h"

#include <algorithm>

#include "cpu/ops.h"
#include "cpu/packed_gemm.h"
#include "error.h"

namespace ei {

const Region& PoolPlan::region(const std::string& name) const {
    for (const Region& r : regions) {
        if (r.name == name) return r;
    }
    fail(EI_ERR_INTERNAL, "pool plan has no region '" + name + "'");
}

namespace {

// Every region's size is a product of model and scenario sizes. Each product and sum is
// checked, so no file or scenario can wrap a size around to a small number; a pool past
// kMaxPoolBytes (far beyond any device) is refused as well, which keeps every offset exact
// in a double and positive in a Java long.
constexpr uint64_t kMaxPoolBytes = uint64_t{1} << 48;

class PoolBuilder {
public:
    PoolBuilder(uint64_t alignment, const Scenario& sc) : sc_(sc) { plan_.alignment = alignment; }

    // A region of the product of factors bytes.
    void add(const std::string& name, std::initializer_list<uint64_t> factors) {
        const bool empty = std::find(factors.begin(), factors.end(), uint64_t{0}) != factors.end();
        uint64_t bytes = empty ? 0 : 1;
        for (uint64_t x : factors) {
            if (empty) break;
            if (__builtin_mul_overflow(bytes, x, &bytes) || bytes > kMaxPoolBytes) too_large("region '" + name + "'");
        }
        const uint64_t off = align(plan_.size);
        if (bytes > kMaxPoolBytes - off) too_large("pool (at region '" + name + "')");
        plan_.regions.push_back({name, off, bytes});
        plan_.size = off + bytes;
    }
    PoolPlan finish() {
        plan_.size = align(plan_.size);
        return plan_;
    }

private:
    // Sizes stay below kMaxPoolBytes, so rounding up cannot wrap.
    uint64_t align(uint64_t n) const { return (n + plan_.alignment - 1) / plan_.alignment * plan_.alignment; }

    [[noreturn]] void too_large(const std::string& what) const {
        fail(EI_ERR_OUT_OF_MEMORY, "plan: the " + what + " would need more than 2^48 bytes (256 TiB) for this model "
                                   "and scenario (L = " + std::to_string(sc_.n_batch) + ", S = " +
                                   std::to_string(sc_.n_sink) + ", W = " + std::to_string(sc_.n_window) +
                                   ", threads = " + std::to_string(sc_.threads()) + ")");
    }

    PoolPlan plan_;
    const Scenario& sc_;
};

Op make_op(OpKind kind, TensorRef dst, TensorRef s0, TensorRef s1 = {}, TensorRef s2 = {}) {
    Op o;
    o.kind = kind;
    o.dst = dst;
    o.src0 = s0;
    o.src1 = s1;
    o.src2 = s2;
    return o;
}

// A graph's tensor table as it is built: each name gets one entry, the first time an op
// names it; every operand ref is made from its entry.
class Table {
public:
    explicit Table(Graph& g) : g_(g) {}

    TensorRef add(Tensor t) {
        for (const Tensor& e : g_.tensors) {
            if (e.name != t.name) continue;
            // One name, one tensor: a second use must describe the same thing.
            if (e.where != t.where || e.type != t.type || e.cols != t.cols || e.rows != t.rows ||
                e.row_bytes != t.row_bytes || e.offset != t.offset || e.data != t.data || e.role != t.role) {
                fail(EI_ERR_INTERNAL, "plan: tensor '" + t.name + "' of graph '" + g_.name + "' named twice with different shapes");
            }
            return e.ref();
        }
        t.id = static_cast<int32_t>(g_.tensors.size());
        g_.tensors.push_back(t);
        return g_.tensors.back().ref();
    }

private:
    Graph& g_;
};

// Builds graphs over a planned pool; `buf(name, cols, rows)` is a pool region seen as rows.
class GraphBuilder {
public:
    GraphBuilder(const Model& m, const PoolPlan& pool, const Scenario& sc)
        : m_(m), hp_(m.hparams()), pool_(pool), sc_(sc) {}

    Graph build(const std::string& name, int32_t T) const {
        Graph g;
        g.name = name;
        g.max_tokens = T;
        Table tab(g);
        const int64_t q_dim = int64_t{hp_.n_head} * hp_.head_dim;
        auto act = [&](const char* n, int64_t cols) { return buf(tab, n, TensorRole::Activation, cols, T); };
        Rows r{act("x", hp_.n_embd),        act("xn", hp_.n_embd),       act("q", q_dim),
               act("q_rope", q_dim),        act("k", hp_.n_embd_kv()),   act("k_rope", hp_.n_embd_kv()),
               act("v", hp_.n_embd_kv()),   act("attn", q_dim),          act("ffn_gate", hp_.n_ff),
               act("ffn_up", hp_.n_ff),      {}, {}, {}, {}, {}};

        // The step inputs (StepInputWriter fills them).
        r.pos = step_in(tab, "step.pos", 1, T, GgmlType::I64);
        r.slots = step_in(tab, "step.kv_slot", 1, T, GgmlType::I32);
        r.rope = step_in(tab, "step.rope", rope_cols(), T);
        r.visible = step_in(tab, "step.visible", kVisibleInts, 1, GgmlType::I32);
        if (sc_.memory && sc_.sinks_follow && sc_.n_sink > 0) r.sink_rope = step_in(tab, "step.sink_rope", rope_cols(), T);
        g.ops.push_back(make_op(OpKind::GetRows, r.x, weight(tab, m_.tok_embd()),
                                buf(tab, "tokens", TensorRole::StepInput, 1, T, GgmlType::I32)));
        for (int32_t il = 0; il < hp_.n_layer; ++il) build_layer(g, tab, il, r);

        Op norm = make_op(OpKind::RmsNorm, r.xn, r.x, weight(tab, m_.output_norm()));
        norm.eps = hp_.rms_eps;
        g.ops.push_back(norm);
        Op head = make_op(OpKind::MatMul, buf(tab, "logits", TensorRole::Output, hp_.n_vocab, 1), weight(tab, m_.output()),
                          r.xn);
        head.output_head = true;
        head.aux = act_q(tab);
        head.logit_row = step_in(tab, "step.logit_row", 1, 1, GgmlType::I32);
        g.ops.push_back(head);
        finish(g);
        return g;
    }

    // Folds L tokens of every layer into memory: one MemoryUpdate per layer.
    Graph build_fold() const {
        Graph g;
        g.name = "fold";
        g.max_tokens = sc_.n_batch;
        Table tab(g);
        for (int32_t il = 0; il < hp_.n_layer; ++il) {
            Op o = base_op(tab, OpKind::MemoryUpdate, il);
            o.dst = o.mem_m;
            o.src1 = cache(tab, "kv.k", il);
            o.src2 = cache(tab, "kv.v", il);
            o.aux = fold_scratch(tab);
            o.slots = step_in(tab, "step.fold_slot", 1, sc_.n_batch, GgmlType::I32);
            if (!sc_.memory_rope) o.rope_rows = step_in(tab, "step.fold_rope", rope_cols(), sc_.n_batch);
            g.ops.push_back(o);
        }
        finish(g);
        return g;
    }

private:
    struct Rows {
        TensorRef x, xn, q, q_rope, k, k_rope, v, attn, gate, up;
        TensorRef pos, slots, rope, visible, sink_rope;  // step inputs
    };

    TensorRef step_in(Table& tab, const std::string& name, int64_t cols, int64_t rows, GgmlType type = GgmlType::F32) const {
        return buf(tab, name, TensorRole::StepInput, cols, rows, type);
    }
    // RoPE rows: cos then sin, n_rot / 2 each (one unused column when nothing rotates).
    int64_t rope_cols() const { return std::max<int64_t>(1, hp_.n_rot); }

    // Every op's reads, writes and updates, from its operands.
    static void finish(Graph& g) {
        for (Op& op : g.ops) op_access(op, op.reads, op.writes, op.updates);
    }

    // Rows `first`.. of a pool region, under their own name.
    TensorRef buf(Table& tab, const std::string& name, TensorRole role, int64_t cols, int64_t rows,
                  GgmlType type = GgmlType::F32, const std::string& region = "", int64_t first = 0) const {
        Tensor t;
        t.name = name;
        t.role = role;
        t.where = TensorRef::Where::Pool;
        t.type = type;
        t.cols = cols;
        t.rows = rows;
        t.row_bytes = static_cast<uint64_t>(cols) * static_cast<uint64_t>(type_traits(type).type_size);
        t.offset = pool_.region(region.empty() ? name : region).offset + static_cast<uint64_t>(first) * t.row_bytes;
        return tab.add(t);
    }

    // The layer's slice ("kv.k.3") of a per-layer region of `rows` rows of `cols`.
    TensorRef layer_slice(Table& tab, const std::string& region, int32_t layer, int64_t cols, int64_t rows,
                          GgmlType type = GgmlType::F32) const {
        return buf(tab, region + "." + std::to_string(layer), TensorRole::State, cols, rows, type, region,
                   int64_t{layer} * rows);
    }

    TensorRef cache(Table& tab, const std::string& name, int32_t layer) const {
        return layer_slice(tab, name, layer, hp_.n_embd_kv(), sc_.kv_slots(),
                           sc_.kv_type == KvType::F16 ? GgmlType::F16 : GgmlType::F32);
    }

    // Scratch the backend lays out itself, seen as bytes: MatMul's converted activations.
    TensorRef act_q(Table& tab) const {
        return buf(tab, "act_q", TensorRole::Scratch, static_cast<int64_t>(pool_.region("act_q").size), 1, GgmlType::I8);
    }
    // Attention scores: rows of kv_slots floats (per thread, kMaxQueries rows each).
    TensorRef scores(Table& tab) const {
        const int64_t cols = sc_.kv_slots();
        return buf(tab, "scores", TensorRole::Scratch, cols,
                   static_cast<int64_t>(pool_.region("scores").size / (static_cast<uint64_t>(cols) * 4)));
    }
    // The fold's per-thread workspace, rows of head_dim floats.
    TensorRef fold_scratch(Table& tab) const {
        const int64_t d = hp_.head_dim;
        return buf(tab, "fold", TensorRole::Scratch, d,
                   static_cast<int64_t>(pool_.region("fold").size / (static_cast<uint64_t>(d) * 4)));
    }

    static TensorRef weight(Table& tab, const TensorInfo* w) {
        if (!w) return {};
        Tensor t;
        t.name = w->name;
        t.role = TensorRole::Weight;
        t.where = TensorRef::Where::Weight;
        t.type = static_cast<GgmlType>(w->type);
        t.data = w->data;
        t.cols = w->ne[0];
        t.rows = w->rows();
        t.row_bytes = w->rows() ? w->n_bytes / static_cast<uint64_t>(w->rows()) : 0;
        const TypeTraits tt = type_traits(t.type);
        t.quantized = tt.block_size > 1;
        if (t.quantized) t.quant = {t.type, tt.block_size, static_cast<uint64_t>(tt.type_size)};
        return tab.add(t);
    }

    // Every op of a layer carries the layer's geometry and memory settings.
    Op base_op(Table& tab, OpKind kind, int32_t il) const {
        Op o;
        o.kind = kind;
        o.layer = il;
        o.eps = hp_.rms_eps;
        o.n_head = hp_.n_head;
        o.n_head_kv = hp_.n_head_kv;
        o.head_dim = hp_.head_dim;
        o.n_rot = hp_.n_rot;
        o.rope_base = hp_.rope_base;
        o.rope_mode = hp_.rope_mode == RopeMode::Halves ? 1 : 0;
        o.n_sink = sc_.n_sink;
        o.ring = sc_.n_window + sc_.n_batch;
        o.memory_rope = sc_.memory_rope;
        o.delta_rule = sc_.rule == MemoryRule::Delta;
        o.sinks_follow = sc_.sinks_follow;
        const LayerWeights& w = m_.layers()[il];
        o.gate = sc_.gates_off ? 0 : w.gate == LayerWeights::Gate::Scalar ? 1 : w.gate == LayerWeights::Gate::Adaptive ? 2 : 0;
        // Only the ops that use the memory name it (the table holds what ops touch).
        if (kind == OpKind::SegmentAttention || kind == OpKind::MemoryUpdate) {
            const int64_t d = hp_.head_dim;
            o.mem_m = layer_slice(tab, "mem.M", il, d * d, hp_.n_head_kv);
            o.mem_z = layer_slice(tab, "mem.z", il, d, hp_.n_head_kv);
        }
        if (kind == OpKind::SegmentAttention && o.gate != 0) {
            o.gate_w = weight(tab, w.gate_w);
            o.gate_b = weight(tab, w.gate_b);
        }
        return o;
    }

    // The forward pass of one transformer layer: pre-norm segment attention, SwiGLU FFN.
    void build_layer(Graph& g, Table& tab, int32_t il, const Rows& r) const {
        const LayerWeights& w = m_.layers()[il];
        auto op = [&](OpKind kind, TensorRef dst, TensorRef s0, TensorRef s1 = {}, TensorRef s2 = {}) -> Op& {
            Op o = base_op(tab, kind, il);
            o.dst = dst;
            o.src0 = s0;
            o.src1 = s1;
            o.src2 = s2;
            if (kind == OpKind::MatMul) o.aux = act_q(tab);
            if (kind == OpKind::SegmentAttention) o.aux = scores(tab);
            g.ops.push_back(o);
            return g.ops.back();
        };
        auto wt = [&](const TensorInfo* t) { return weight(tab, t); };
        op(OpKind::RmsNorm, r.xn, r.x, wt(w.attn_norm));
        op(OpKind::MatMul, r.q, wt(w.wq), r.xn, wt(w.bq));
        op(OpKind::MatMul, r.k, wt(w.wk), r.xn, wt(w.bk));
        op(OpKind::MatMul, r.v, wt(w.wv), r.xn, wt(w.bv));
        op(OpKind::Rope, r.q_rope, r.q).rope_rows = r.rope;       // rotates n_head heads
        Op& rope_k = op(OpKind::Rope, r.k_rope, r.k);
        rope_k.n_head = hp_.n_head_kv;                            // rotates the KV heads
        rope_k.rope_rows = r.rope;
        op(OpKind::KvStore, cache(tab, "kv.k", il), r.k_rope, r.v, cache(tab, "kv.v", il)).slots = r.slots;
        Op& attn = op(OpKind::SegmentAttention, r.attn, r.q_rope, cache(tab, "kv.k", il), cache(tab, "kv.v", il));
        attn.q_nope = r.q;
        attn.positions = r.pos;
        attn.slots = r.slots;
        attn.visible = r.visible;
        attn.rope_rows = r.sink_rope;
        op(OpKind::MatMul, r.x, wt(w.wo), r.attn).accumulate = true;
        op(OpKind::RmsNorm, r.xn, r.x, wt(w.ffn_norm));
        op(OpKind::MatMul, r.gate, wt(w.ffn_gate), r.xn);
        op(OpKind::MatMul, r.up, wt(w.ffn_up), r.xn);
        op(OpKind::SwiGlu, r.gate, r.up);
        op(OpKind::MatMul, r.x, wt(w.ffn_down), r.gate).accumulate = true;
    }

    const Model& m_;
    const HParams& hp_;
    const PoolPlan& pool_;
    const Scenario& sc_;
};

// Bytes of the widest activation row once converted to the type its weight dots with.
uint64_t max_activation_row_bytes(const Model& m) {
    uint64_t best = 0;
    auto consider = [&](const TensorInfo* t) {
        if (!t) return;
        const cpu::TypeKernels* k = cpu::kernels_for(static_cast<GgmlType>(t->type));
        if (k) best = std::max<uint64_t>(best, cpu::row_size(k->vec_dot_type, t->ne[0]));
        if (const cpu::PackedGemm* p = cpu::packed_gemm_for(static_cast<GgmlType>(t->type))) {
            best = std::max<uint64_t>(best, p->act_row_size(t->ne[0]));
        }
    };
    consider(m.output());
    for (const LayerWeights& l : m.layers()) {
        for (const TensorInfo* t : {l.wq, l.wk, l.wv, l.wo, l.ffn_gate, l.ffn_up, l.ffn_down}) consider(t);
    }
    return best;
}

}  // namespace

Plan make_plan(std::shared_ptr<const Model> model, const Scenario& sc) {
    if (!model) fail(EI_ERR_INVALID_ARGUMENT, "model is null");
    const Model& m = *model;
    sc.validate();
    if (m.vocab_only()) fail(EI_ERR_STATE, "the model was loaded vocabulary-only and cannot run");
    const HParams& hp = m.hparams();
    Plan plan;
    plan.model = std::move(model);
    plan.scenario = sc;
    const uint64_t T = static_cast<uint64_t>(sc.n_batch), threads = static_cast<uint64_t>(sc.threads());
    const uint64_t f32 = 4, q_dim = static_cast<uint64_t>(hp.n_head) * hp.head_dim, kv_dim = hp.n_embd_kv();
    const uint64_t d = hp.head_dim, layers = hp.n_layer;
    const uint64_t kv_elem = sc.kv_type == KvType::F16 ? 2 : 4;

    // The scenario is validated (L <= 4096, S + W + L <= 2^24, threads <= 256) and the
    // model's sizes are below 2^30 each (read_hparams), but their products are not bounded:
    // PoolBuilder checks each.
    const uint64_t slots = static_cast<uint64_t>(sc.kv_slots()), n_embd = hp.n_embd, n_ff = hp.n_ff;
    PoolBuilder pb(64, sc);
    pb.add("tokens", {T, 4});
    pb.add("x", {T, n_embd, f32});
    pb.add("xn", {T, n_embd, f32});
    pb.add("q", {T, q_dim, f32});
    pb.add("q_rope", {T, q_dim, f32});
    pb.add("k", {T, kv_dim, f32});
    pb.add("k_rope", {T, kv_dim, f32});
    pb.add("v", {T, kv_dim, f32});
    pb.add("attn", {T, q_dim, f32});
    pb.add("ffn_gate", {T, n_ff, f32});
    pb.add("ffn_up", {T, n_ff, f32});
    pb.add("act_q", {T, max_activation_row_bytes(m)});
    // Per thread: one score row per query of an attention block.
    pb.add("scores", {threads, static_cast<uint64_t>(cpu::ops::kMaxQueries), slots, f32});
    pb.add("fold", {threads, 2 * T + 1, d, f32});  // per thread: sigma(K), V (or V - retrieved), a row
    pb.add("logits", {static_cast<uint64_t>(hp.n_vocab), f32});
    pb.add("kv.k", {layers, slots, kv_dim, kv_elem});
    pb.add("kv.v", {layers, slots, kv_dim, kv_elem});
    pb.add("mem.M", {layers, static_cast<uint64_t>(hp.n_head_kv), d, d, f32});
    pb.add("mem.z", {layers, static_cast<uint64_t>(hp.n_head_kv), d, f32});
    // Step inputs, sized by L (step_inputs.h).
    const uint64_t rope_cols = std::max<uint64_t>(1, static_cast<uint64_t>(hp.n_rot));
    pb.add("step.pos", {T, 8});
    pb.add("step.kv_slot", {T, 4});
    pb.add("step.rope", {T, rope_cols, f32});
    pb.add("step.sink_rope", {T, rope_cols, f32});
    pb.add("step.visible", {static_cast<uint64_t>(kVisibleInts), 4});
    pb.add("step.logit_row", {4});
    pb.add("step.fold_slot", {T, 4});
    pb.add("step.fold_rope", {T, rope_cols, f32});
    plan.pool = pb.finish();
    StepInputLayout& si = plan.step_inputs;
    si.max_tokens = sc.n_batch;
    si.n_rot = hp.n_rot;
    si.rope_base = hp.rope_base;
    si.n_sink = sc.n_sink;
    si.ring = sc.n_window + sc.n_batch;
    si.sinks_follow = sc.sinks_follow;
    si.pos = plan.pool.region("step.pos").offset;
    si.kv_slot = plan.pool.region("step.kv_slot").offset;
    si.rope = plan.pool.region("step.rope").offset;
    si.sink_rope = plan.pool.region("step.sink_rope").offset;
    si.visible = plan.pool.region("step.visible").offset;
    si.logit_row = plan.pool.region("step.logit_row").offset;
    si.fold_slot = plan.pool.region("step.fold_slot").offset;
    si.fold_rope = plan.pool.region("step.fold_rope").offset;

    GraphBuilder gb(m, plan.pool, plan.scenario);
    plan.prefill = gb.build("prefill", sc.n_batch);
    plan.decode = gb.build("decode", 1);
    plan.fold = gb.build_fold();
    plan.placement = place_graphs(plan);
    return plan;
}

}  // namespace ei
