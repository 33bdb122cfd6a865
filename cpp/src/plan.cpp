#include "plan.h"

#include <algorithm>

#include "cpu/quants.h"
#include "error.h"

namespace ei {

const Region& PoolPlan::region(const std::string& name) const {
    for (const Region& r : regions) {
        if (r.name == name) return r;
    }
    fail(EI_ERR_INTERNAL, "pool plan has no region '" + name + "'");
}

namespace {

class PoolBuilder {
public:
    explicit PoolBuilder(uint64_t alignment) { plan_.alignment = alignment; }
    void add(const std::string& name, uint64_t bytes) {
        uint64_t off = (plan_.size + plan_.alignment - 1) / plan_.alignment * plan_.alignment;
        plan_.regions.push_back({name, off, bytes});
        plan_.size = off + bytes;
    }
    PoolPlan finish() {
        plan_.size = (plan_.size + plan_.alignment - 1) / plan_.alignment * plan_.alignment;
        return plan_;
    }

private:
    PoolPlan plan_;
};

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

// Builds graphs over a planned pool: `buf(name, cols)` is an f32 activation of
// max_tokens rows.
class GraphBuilder {
public:
    GraphBuilder(const Model& m, const PoolPlan& pool, int32_t n_ctx, KvType kv)
        : m_(m), hp_(m.hparams()), pool_(pool), n_ctx_(n_ctx), kv_(kv) {
        act_q_ = buf("act_q", 0, 0, GgmlType::I8);
        act_q_.row_bytes = 0;  // the backend lays out converted rows itself
        scores_ = buf("scores", n_ctx, 1);
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

    // The layer's slice of a KV cache region: n_ctx rows of n_embd_kv.
    TensorRef cache(const std::string& name, int32_t layer) const {
        GgmlType t = kv_ == KvType::F16 ? GgmlType::F16 : GgmlType::F32;
        TensorRef r = buf(name, hp_.n_embd_kv(), n_ctx_, t);
        r.offset += static_cast<uint64_t>(layer) * n_ctx_ * r.row_bytes;
        return r;
    }

    Graph build(const std::string& name, int32_t T) const {
        Graph g;
        g.name = name;
        g.max_tokens = T;
        const int64_t q_dim = int64_t{hp_.n_head} * hp_.head_dim;
        const TensorRef x = buf("x", hp_.n_embd, T), xn = buf("xn", hp_.n_embd, T);
        const TensorRef q = buf("q", q_dim, T), k = buf("k", hp_.n_embd_kv(), T), v = buf("v", hp_.n_embd_kv(), T);
        const TensorRef attn = buf("attn", q_dim, T);
        const TensorRef gate = buf("ffn_gate", hp_.n_ff, T), up = buf("ffn_up", hp_.n_ff, T);

        Op embed{OpKind::GetRows, x, weight(m_.tok_embd()), buf("tokens", 1, T, GgmlType::I32), {}, {}};
        g.ops.push_back(embed);
        for (int32_t il = 0; il < hp_.n_layer; ++il) build_layer(g, il, x, xn, q, k, v, attn, gate, up);

        Op norm{OpKind::RmsNorm, xn, x, weight(m_.output_norm()), {}, {}};
        norm.eps = hp_.rms_eps;
        g.ops.push_back(norm);
        Op head{OpKind::MatMul, buf("logits", hp_.n_vocab, 1), weight(m_.output()), xn, {}, {}};
        head.output_head = true;
        head.aux = act_q_;
        g.ops.push_back(head);
        return g;
    }

private:
    // The forward pass of one transformer layer (pre-norm attention + SwiGLU FFN).
    void build_layer(Graph& g, int32_t il, const TensorRef& x, const TensorRef& xn, const TensorRef& q,
                     const TensorRef& k, const TensorRef& v, const TensorRef& attn, const TensorRef& gate,
                     const TensorRef& up) const {
        const LayerWeights& w = m_.layers()[il];
        auto op = [&](OpKind kind, TensorRef dst, TensorRef s0, TensorRef s1 = {}, TensorRef s2 = {}) -> Op& {
            Op o{kind, dst, s0, s1, s2, {}};
            o.layer = il;
            o.eps = hp_.rms_eps;
            o.n_head = hp_.n_head;
            o.n_head_kv = hp_.n_head_kv;
            o.head_dim = hp_.head_dim;
            o.n_rot = hp_.n_rot;
            o.rope_base = hp_.rope_base;
            o.rope_mode = hp_.rope_mode == RopeMode::Halves ? 1 : 0;
            if (kind == OpKind::MatMul) o.aux = act_q_;
            if (kind == OpKind::Attention) o.aux = scores_;
            g.ops.push_back(o);
            return g.ops.back();
        };
        op(OpKind::RmsNorm, xn, x, weight(w.attn_norm));
        op(OpKind::MatMul, q, weight(w.wq), xn, weight(w.bq));
        op(OpKind::MatMul, k, weight(w.wk), xn, weight(w.bk));
        op(OpKind::MatMul, v, weight(w.wv), xn, weight(w.bv));
        op(OpKind::Rope, q, {});                          // rotates n_head heads
        op(OpKind::Rope, k, {}).n_head = hp_.n_head_kv;  // rotates the KV heads
        op(OpKind::KvStore, cache("kv.k", il), k, v, cache("kv.v", il));
        op(OpKind::Attention, attn, q, cache("kv.k", il), cache("kv.v", il));
        op(OpKind::MatMul, x, weight(w.wo), attn).accumulate = true;
        op(OpKind::RmsNorm, xn, x, weight(w.ffn_norm));
        op(OpKind::MatMul, gate, weight(w.ffn_gate), xn);
        op(OpKind::MatMul, up, weight(w.ffn_up), xn);
        op(OpKind::SwiGlu, gate, up);
        op(OpKind::MatMul, x, weight(w.ffn_down), gate).accumulate = true;
    }

    const Model& m_;
    const HParams& hp_;
    const PoolPlan& pool_;
    int32_t n_ctx_;
    KvType kv_;
    TensorRef act_q_, scores_;
};

// Bytes of the widest activation row once converted to the type its weight dots with.
uint64_t max_activation_row_bytes(const Model& m) {
    uint64_t best = 0;
    auto consider = [&](const TensorInfo* t) {
        if (!t) return;
        const cpu::TypeKernels* k = cpu::kernels_for(static_cast<GgmlType>(t->type));
        if (k) best = std::max<uint64_t>(best, cpu::row_size(k->vec_dot_type, t->ne[0]));
    };
    consider(m.output());
    for (const LayerWeights& l : m.layers()) {
        for (const TensorInfo* t : {l.wq, l.wk, l.wv, l.wo, l.ffn_gate, l.ffn_up, l.ffn_down}) consider(t);
    }
    return best;
}

}  // namespace

Plan make_plan(const Model& m, const Scenario& sc) {
    sc.validate();
    if (m.vocab_only()) fail(EI_ERR_STATE, "the model was loaded vocabulary-only and cannot run");
    const HParams& hp = m.hparams();
    Plan plan;
    plan.scenario = sc;
    const uint64_t T = static_cast<uint64_t>(sc.n_batch);
    const uint64_t f32 = 4, q_dim = static_cast<uint64_t>(hp.n_head) * hp.head_dim;
    const uint64_t kv_elem = sc.kv_type == KvType::F16 ? 2 : 4;

    PoolBuilder pb(64);
    pb.add("tokens", T * 4);
    pb.add("x", T * hp.n_embd * f32);
    pb.add("xn", T * hp.n_embd * f32);
    pb.add("q", T * q_dim * f32);
    pb.add("k", T * hp.n_embd_kv() * f32);
    pb.add("v", T * hp.n_embd_kv() * f32);
    pb.add("attn", T * q_dim * f32);
    pb.add("ffn_gate", T * hp.n_ff * f32);
    pb.add("ffn_up", T * hp.n_ff * f32);
    pb.add("act_q", T * max_activation_row_bytes(m));
    pb.add("scores", static_cast<uint64_t>(sc.threads()) * sc.n_ctx * f32);
    pb.add("logits", static_cast<uint64_t>(hp.n_vocab) * f32);
    const uint64_t kv_bytes = static_cast<uint64_t>(hp.n_layer) * sc.n_ctx * hp.n_embd_kv() * kv_elem;
    pb.add("kv.k", kv_bytes);
    pb.add("kv.v", kv_bytes);
    plan.pool = pb.finish();

    GraphBuilder gb(m, plan.pool, sc.n_ctx, sc.kv_type);
    plan.prefill = gb.build("prefill", sc.n_batch);
    plan.decode = gb.build("decode", 1);
    return plan;
}

}  // namespace ei
