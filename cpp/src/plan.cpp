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

TensorRef weight(const TensorInfo* t) {
    TensorRef r;
    if (!t) return r;
    r.where = TensorRef::Where::Weight;
    r.type = static_cast<GgmlType>(t->type);
    r.data = t->data;
    r.cols = t->ne[0];
    r.rows = t->rows();
    r.row_bytes = t->rows() ? t->n_bytes / static_cast<uint64_t>(t->rows()) : 0;
    return r;
}

// Builds graphs over a planned pool; `buf(name, cols, rows)` is a pool region seen as rows.
class GraphBuilder {
public:
    GraphBuilder(const Model& m, const PoolPlan& pool, const Scenario& sc)
        : m_(m), hp_(m.hparams()), pool_(pool), sc_(sc) {
        act_q_ = buf("act_q", 0, 0, GgmlType::I8);
        act_q_.row_bytes = 0;  // the backend lays out converted rows itself
        scores_ = buf("scores", sc.kv_slots(), 1);
        fold_ = buf("fold", 0, 0);
    }

    TensorRef buf(const std::string& name, int64_t cols, int64_t rows, GgmlType type = GgmlType::F32) const {
        TensorRef r;
        r.where = TensorRef::Where::Pool;
        r.type = type;
        r.offset = pool_.region(name).offset;
        r.cols = cols;
        r.rows = rows;
        r.row_bytes = static_cast<uint64_t>(cols) * (type == GgmlType::F16 ? 2 : 4);
        return r;
    }

    // The layer's slice of a per-layer region of `rows` rows of `cols`.
    TensorRef layer_slice(const std::string& name, int32_t layer, int64_t cols, int64_t rows,
                          GgmlType type = GgmlType::F32) const {
        TensorRef r = buf(name, cols, rows, type);
        r.offset += static_cast<uint64_t>(layer) * rows * r.row_bytes;
        return r;
    }

    TensorRef cache(const std::string& name, int32_t layer) const {
        return layer_slice(name, layer, hp_.n_embd_kv(), sc_.kv_slots(),
                           sc_.kv_type == KvType::F16 ? GgmlType::F16 : GgmlType::F32);
    }

    Graph build(const std::string& name, int32_t T) const {
        Graph g;
        g.name = name;
        g.max_tokens = T;
        const int64_t q_dim = int64_t{hp_.n_head} * hp_.head_dim;
        Rows r{buf("x", hp_.n_embd, T),        buf("xn", hp_.n_embd, T),         buf("q", q_dim, T),
               buf("q_rope", q_dim, T),        buf("k", hp_.n_embd_kv(), T),     buf("k_rope", hp_.n_embd_kv(), T),
               buf("v", hp_.n_embd_kv(), T),   buf("attn", q_dim, T),            buf("ffn_gate", hp_.n_ff, T),
               buf("ffn_up", hp_.n_ff, T)};

        g.ops.push_back(make_op(OpKind::GetRows, r.x, weight(m_.tok_embd()), buf("tokens", 1, T, GgmlType::I32)));
        for (int32_t il = 0; il < hp_.n_layer; ++il) build_layer(g, il, r);

        Op norm = make_op(OpKind::RmsNorm, r.xn, r.x, weight(m_.output_norm()));
        norm.eps = hp_.rms_eps;
        g.ops.push_back(norm);
        Op head = make_op(OpKind::MatMul, buf("logits", hp_.n_vocab, 1), weight(m_.output()), r.xn);
        head.output_head = true;
        head.aux = act_q_;
        g.ops.push_back(head);
        return g;
    }

    // Folds L tokens of every layer into memory: one MemoryUpdate per layer.
    Graph build_fold() const {
        Graph g;
        g.name = "fold";
        g.max_tokens = sc_.n_batch;
        for (int32_t il = 0; il < hp_.n_layer; ++il) {
            Op o = base_op(OpKind::MemoryUpdate, il);
            o.dst = o.mem_m;
            o.src1 = cache("kv.k", il);
            o.src2 = cache("kv.v", il);
            o.aux = fold_;
            g.ops.push_back(o);
        }
        return g;
    }

private:
    struct Rows {
        TensorRef x, xn, q, q_rope, k, k_rope, v, attn, gate, up;
    };

    // Every op of a layer carries the layer's geometry and memory settings.
    Op base_op(OpKind kind, int32_t il) const {
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
        const int64_t d = hp_.head_dim;
        o.mem_m = layer_slice("mem.M", il, d * d, hp_.n_head_kv);
        o.mem_z = layer_slice("mem.z", il, d, hp_.n_head_kv);
        o.memory_rope = sc_.memory_rope;
        o.delta_rule = sc_.rule == MemoryRule::Delta;
        o.sinks_follow = sc_.sinks_follow;
        const LayerWeights& w = m_.layers()[il];
        o.gate = sc_.gates_off ? 0 : w.gate == LayerWeights::Gate::Scalar ? 1 : w.gate == LayerWeights::Gate::Adaptive ? 2 : 0;
        o.gate_w = weight(w.gate_w);
        o.gate_b = weight(w.gate_b);
        return o;
    }

    // The forward pass of one transformer layer: pre-norm segment attention, SwiGLU FFN.
    void build_layer(Graph& g, int32_t il, const Rows& r) const {
        const LayerWeights& w = m_.layers()[il];
        auto op = [&](OpKind kind, TensorRef dst, TensorRef s0, TensorRef s1 = {}, TensorRef s2 = {}) -> Op& {
            Op o = base_op(kind, il);
            o.dst = dst;
            o.src0 = s0;
            o.src1 = s1;
            o.src2 = s2;
            if (kind == OpKind::MatMul) o.aux = act_q_;
            if (kind == OpKind::SegmentAttention) o.aux = scores_;
            g.ops.push_back(o);
            return g.ops.back();
        };
        op(OpKind::RmsNorm, r.xn, r.x, weight(w.attn_norm));
        op(OpKind::MatMul, r.q, weight(w.wq), r.xn, weight(w.bq));
        op(OpKind::MatMul, r.k, weight(w.wk), r.xn, weight(w.bk));
        op(OpKind::MatMul, r.v, weight(w.wv), r.xn, weight(w.bv));
        op(OpKind::Rope, r.q_rope, r.q);                           // rotates n_head heads
        op(OpKind::Rope, r.k_rope, r.k).n_head = hp_.n_head_kv;   // rotates the KV heads
        op(OpKind::KvStore, cache("kv.k", il), r.k_rope, r.v, cache("kv.v", il));
        op(OpKind::SegmentAttention, r.attn, r.q_rope, cache("kv.k", il), cache("kv.v", il)).q_nope = r.q;
        op(OpKind::MatMul, r.x, weight(w.wo), r.attn).accumulate = true;
        op(OpKind::RmsNorm, r.xn, r.x, weight(w.ffn_norm));
        op(OpKind::MatMul, r.gate, weight(w.ffn_gate), r.xn);
        op(OpKind::MatMul, r.up, weight(w.ffn_up), r.xn);
        op(OpKind::SwiGlu, r.gate, r.up);
        op(OpKind::MatMul, r.x, weight(w.ffn_down), r.gate).accumulate = true;
    }

    const Model& m_;
    const HParams& hp_;
    const PoolPlan& pool_;
    const Scenario& sc_;
    TensorRef act_q_, scores_, fold_;
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
    plan.pool = pb.finish();

    GraphBuilder gb(m, plan.pool, plan.scenario);
    plan.prefill = gb.build("prefill", sc.n_batch);
    plan.decode = gb.build("decode", 1);
    plan.fold = gb.build_fold();
    plan.placement = place_graphs(plan);
    return plan;
}

}  // namespace ei
