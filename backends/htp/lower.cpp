// The lowering of planned graphs to QNN graphs (lower.h). Each choice is written where it is
// made; in short:
//  - weight matmuls are FullyConnected (x w^T + b over the GGUF's [N, K] rows as they are,
//    no transpose at preparation; QNN's HTP maps it to the same HMX path as a 1x1 Conv2d,
//    and its per-output-channel / block-wise weight encodings are defined on it);
//  - RoPE is two products with cos/sin rows that the host writes (RopeCos/RopeSin) in the
//    halves layout: no trigonometry and no position arithmetic in the graph, and the same
//    graph serves every position;
//  - attention is MatMul(q, concat(KCache, KNew)^T), an additive mask input (AttnMask), a
//    Softmax and a MatMul with concat(VCache, VNew): the cache is an input and the new rows
//    are outputs the host writes into their slots ("smart mask"), so the graph never
//    changes shape while the sink, the ring and its wrap are all in the mask;
//  - GQA by grouping the query heads of a KV head into the rows of one batched MatMul
//    ([Hk, G*L, D] against [Hk, S+L, D]), so K and V are never repeated;
//  - the memory route with the same ops (Elu + 1 is sigma, MatMul, Divide), its gate as
//    Sigmoid over the same sums the CPU forms, switched by the MemoryOn input;
//  - the logits of one row via Gather with the LogitRow input.
#include "htp/lower.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/quants.h"
#include "error.h"
#include "step_inputs.h"

namespace ei::htp {

WeightStore::Data WeightStore::find(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(key);
    return it == data_.end() ? nullptr : it->second;
}

WeightStore::Data WeightStore::put(const std::string& key, std::vector<uint8_t> bytes) {
    Data d = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    std::lock_guard<std::mutex> lock(mu_);
    return data_.emplace(key, std::move(d)).first->second;
}

size_t WeightStore::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return data_.size();
}

uint64_t WeightStore::bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t n = 0;
    for (const auto& [key, d] : data_) n += d->size();
    return n;
}

long WeightStore::min_holders() const {
    std::lock_guard<std::mutex> lock(mu_);
    long m = 0;
    for (const auto& [key, d] : data_) m = m == 0 ? d.use_count() : std::min(m, d.use_count());
    return m;
}

std::vector<int32_t> head_permutation(int32_t head_dim, int32_t n_rot, bool halves) {
    std::vector<int32_t> p(static_cast<size_t>(head_dim));
    for (int32_t i = 0; i < head_dim; ++i) p[size_t(i)] = i;
    if (halves) return p;
    const int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; ++i) {
        p[size_t(i)] = 2 * i;             // x0 of pair i
        p[size_t(half + i)] = 2 * i + 1;  // x1 of pair i
    }
    return p;
}

namespace {

using Dims = std::vector<uint32_t>;

[[noreturn]] void unsupported(const std::string& graph, const std::string& why) {
    fail(EI_ERR_UNSUPPORTED, "htp lowering of graph '" + graph + "': " + why);
}

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

Param uint_tensor(const std::string& name, const std::vector<int64_t>& v) {
    Param p;
    p.name = name;
    p.kind = Param::Kind::TensorUInt32;
    p.values = v;
    p.dims = {u32(static_cast<int64_t>(v.size()))};
    return p;
}
Param scalar(const std::string& name, Param::Kind kind, double v) {
    Param p;
    p.name = name;
    p.kind = kind;
    p.scalar = v;
    return p;
}

// Writes tensors and nodes, computing each output's shape from its op's inputs.
class Builder {
public:
    explicit Builder(const std::string& name) { g_.name = name; }
    QnnGraph take() { return std::move(g_); }
    const Dims& dims(uint32_t id) const { return g_.tensors[id].dims; }

    uint32_t tensor(const std::string& name, TensorKind kind, Dims d, IoRole io = IoRole::None, int32_t layer = -1,
                    DType type = DType::Float32) {
        Tensor t;
        t.id = u32(static_cast<int64_t>(g_.tensors.size()));
        t.name = name;
        t.kind = kind;
        t.dtype = type;
        t.dims = std::move(d);
        t.io = io;
        t.layer = layer;
        g_.tensors.push_back(std::move(t));
        return g_.tensors.back().id;
    }
    uint32_t input(const std::string& name, IoRole io, Dims d, int32_t layer = -1, DType type = DType::Float32) {
        return tensor(name, TensorKind::AppWrite, std::move(d), io, layer, type);
    }
    uint32_t output(const std::string& name, IoRole io, Dims d, int32_t layer = -1, DType type = DType::Float32) {
        return tensor(name, TensorKind::AppRead, std::move(d), io, layer, type);
    }
    uint32_t convert(const std::string& name, uint32_t a, DType to) {
        const uint32_t out = tensor(name, TensorKind::Native, dims(a), IoRole::None, -1, to);
        node_into(name, OpType::Convert, {a}, out);
        return out;
    }
    uint32_t constant(const std::string& name, Dims d, WeightStore::Data data) {
        // A weight two nodes read (a tied embedding: the Gather and the LM head) is one
        // tensor: QNN refuses two tensors of one name in a graph, and one copy is stored.
        for (const Tensor& t : g_.tensors) {
            if (t.name == name && t.kind == TensorKind::Static && t.data == data && t.dims == d) return t.id;
        }
        const uint32_t id = tensor(name, TensorKind::Static, std::move(d));
        g_.tensors[id].data = std::move(data);
        return id;
    }
    // A small float constant (scalars, per-head gate weights), named once per graph.
    uint32_t constant(const std::string& name, Dims d, const std::vector<float>& v) {
        for (const Tensor& t : g_.tensors) {
            if (t.name == name) return t.id;
        }
        std::vector<uint8_t> bytes(v.size() * 4);
        std::memcpy(bytes.data(), v.data(), bytes.size());
        return constant(name, std::move(d), std::make_shared<const std::vector<uint8_t>>(std::move(bytes)));
    }
    uint32_t scalar_const(const std::string& name, float v) { return constant(name, {1}, std::vector<float>{v}); }

    // A node whose output is a new Native tensor named after the node.
    // The output's type: data movement keeps its input's (f16 cache rows stay f16), the
    // arithmetic computes in float.
    uint32_t node(const std::string& name, OpType type, std::vector<uint32_t> in, Dims out_dims,
                  std::vector<Param> params = {}) {
        const bool moves = type == OpType::Concat || type == OpType::Reshape || type == OpType::Transpose ||
                           type == OpType::StridedSlice;
        const DType dt = moves ? g_.tensors[in.at(0)].dtype : DType::Float32;
        const uint32_t out = tensor(name, TensorKind::Native, std::move(out_dims), IoRole::None, -1, dt);
        node_into(name, type, std::move(in), out, std::move(params));
        return out;
    }
    void node_into(const std::string& name, OpType type, std::vector<uint32_t> in, uint32_t out,
                   std::vector<Param> params = {}) {
        Node n;
        n.name = name;
        n.type = type;
        n.inputs = std::move(in);
        n.outputs = {out};
        n.params = std::move(params);
        g_.nodes.push_back(std::move(n));
    }

    // ---- ops with their shapes
    uint32_t fc(const std::string& name, uint32_t x, uint32_t w, int64_t bias) {
        Dims d = dims(x);
        d.back() = dims(w)[0];
        std::vector<uint32_t> in{x, w};
        if (bias >= 0) in.push_back(u32(bias));
        return node(name, OpType::FullyConnected, in, d);
    }
    uint32_t matmul(const std::string& name, uint32_t a, uint32_t b, bool t0, bool t1) {
        const Dims& da = dims(a);
        const Dims& db = dims(b);
        Dims d = da;
        const size_t r = da.size();
        d[r - 2] = t0 ? da[r - 1] : da[r - 2];
        d[r - 1] = t1 ? db[r - 2] : db[r - 1];
        return node(name, OpType::MatMul, {a, b}, d,
                    {scalar("transpose_in0", Param::Kind::Bool, t0), scalar("transpose_in1", Param::Kind::Bool, t1)});
    }
    uint32_t eltwise(const std::string& name, OpType type, uint32_t a, uint32_t b) {
        const Dims& da = dims(a);
        const Dims& db = dims(b);
        const size_t r = std::max(da.size(), db.size());
        Dims d(r);
        for (size_t i = 0; i < r; ++i) {
            const uint32_t x = i + da.size() >= r ? da[i + da.size() - r] : 1;
            const uint32_t y = i + db.size() >= r ? db[i + db.size() - r] : 1;
            d[i] = std::max(x, y);
        }
        return node(name, type, {a, b}, d);
    }
    uint32_t unary(const std::string& name, OpType type, uint32_t a, std::vector<Param> params = {}) {
        return node(name, type, {a}, dims(a), std::move(params));
    }
    uint32_t reshape(const std::string& name, uint32_t a, Dims d) { return node(name, OpType::Reshape, {a}, d); }
    uint32_t transpose(const std::string& name, uint32_t a, const std::vector<int64_t>& perm) {
        Dims d;
        for (int64_t p : perm) d.push_back(dims(a)[size_t(p)]);
        return node(name, OpType::Transpose, {a}, d, {uint_tensor("perm", perm)});
    }
    uint32_t concat(const std::string& name, std::vector<uint32_t> in, uint32_t axis) {
        Dims d = dims(in[0]);
        d[axis] = 0;
        for (uint32_t t : in) d[axis] += dims(t)[axis];
        return node(name, OpType::Concat, in, d, {scalar("axis", Param::Kind::UInt32, axis)});
    }
    // Elements [begin, end) along axis, everything along the others.
    uint32_t slice(const std::string& name, uint32_t a, size_t axis, int64_t begin, int64_t end) {
        const Dims& da = dims(a);
        Param p;
        p.name = "ranges";
        p.kind = Param::Kind::TensorInt32;
        p.dims = {u32(static_cast<int64_t>(da.size())), 3};
        Dims d = da;
        for (size_t i = 0; i < da.size(); ++i) {
            const int64_t b = i == axis ? begin : 0, e = i == axis ? end : da[i];
            p.values.insert(p.values.end(), {b, e, 1});
            d[i] = u32(e - b);
        }
        return node(name, OpType::StridedSlice, {a}, d, {p});
    }
    uint32_t reduce_sum(const std::string& name, uint32_t a, uint32_t axis, bool keep) {
        Dims d = dims(a);
        if (keep) {
            d[axis] = 1;
        } else {
            d.erase(d.begin() + axis);
        }
        return node(name, OpType::ReduceSum, {a}, d,
                    {uint_tensor("axes", {axis}), scalar("keep_dims", Param::Kind::Bool, keep)});
    }
    uint32_t rms_norm(const std::string& name, uint32_t x, uint32_t gamma, uint32_t beta, float eps) {
        const uint32_t last = u32(static_cast<int64_t>(dims(x).size()) - 1);
        return node(name, OpType::RmsNorm, {x, gamma, beta}, dims(x),
                    {scalar("epsilon", Param::Kind::Float, eps), uint_tensor("axes", {last})});
    }

private:
    QnnGraph g_;
};

// What the graph's ops tell about the model and scenario.
struct Geometry {
    int32_t E = 0, H = 0, Hk = 0, D = 0, R = 0, G = 0, V = 0, L = 0, slots = 0, n_sink = 0;
    int32_t n_layer = 0;
    float eps = 0;
    bool halves = true;
    int64_t kv_dim() const { return int64_t{Hk} * D; }
};

// The ops of one layer of prefill / decode, as the planner emits them (plan.cpp build_layer).
struct LayerOps {
    const Op *attn_norm, *q, *k, *v, *rope_q, *rope_k, *store, *attn, *o, *ffn_norm, *gate, *up, *swiglu, *down;
};

class Lowering {
public:
    Lowering(const Graph& g, const Scenario& sc, WeightStore& ws, const LowerOptions& opt)
        : g_(g), sc_(sc), ws_(ws), opt_(opt), b_(g.name) {}

    QnnGraph run() {
        if (g_.ops.empty()) unsupported(g_.name, "the graph has no ops (a graph split across devices?)");
        if (g_.name == "fold") {
            lower_fold();
        } else {
            lower_forward();
        }
        QnnGraph q = b_.take();
        q.validate();
        return q;
    }

private:
    [[noreturn]] void bad(const std::string& why) const {
        fail(EI_ERR_INTERNAL, "htp lowering of graph '" + g_.name + "': " + why);
    }
    const std::string& name_of(const TensorRef& r) const { return g_.tensor(r.id).name; }

    void geometry(const Op& op) {
        geo_.H = op.n_head;
        geo_.Hk = op.n_head_kv;
        geo_.D = op.head_dim;
        geo_.R = op.n_rot;
        geo_.halves = op.rope_mode == 1;
        geo_.slots = sc_.kv_slots();
        geo_.n_sink = sc_.n_sink;
        geo_.L = g_.max_tokens;
        geo_.eps = op.eps;
        if (geo_.Hk <= 0 || geo_.H % geo_.Hk != 0) bad("head counts");
        geo_.G = geo_.H / geo_.Hk;
        if (geo_.R % 2 != 0 || geo_.R > geo_.D) unsupported(g_.name, "n_rot " + std::to_string(geo_.R) + " is odd or past the head");
        perm_ = head_permutation(geo_.D, geo_.R, geo_.halves);
    }

    // ---- weights: converted once to float rows (the float path; the quantization pass
    // re-encodes these), Q and K rows permuted per head where the model pairs adjacent dims.
    uint32_t weight(const TensorRef& w, int32_t permute_heads = 0) {
        if (!w.valid() || w.where != TensorRef::Where::Weight) bad("an op's weight operand is not a model weight");
        const std::string& name = name_of(w);
        const bool permute = permute_heads > 0 && !geo_.halves;
        const std::string key = name + (permute ? "#halves" : "");
        WeightStore::Data data = ws_.find(key);
        if (!data) {
            const cpu::TypeKernels* k = cpu::kernels_for(w.type);
            if (w.type != GgmlType::F32 && (!k || !k->to_float)) {
                unsupported(g_.name, "no float conversion for weight '" + name + "' of type " + type_traits(w.type).name);
            }
            std::vector<uint8_t> bytes(static_cast<size_t>(w.rows * w.cols) * 4);
            float* out = reinterpret_cast<float*>(bytes.data());
            for (int64_t r = 0; r < w.rows; ++r) {
                // Graph row r holds the GGUF's row src: within each head, dim perm[i].
                int64_t src = r;
                if (permute) src = r / geo_.D * geo_.D + perm_[size_t(r % geo_.D)];
                const uint8_t* row = static_cast<const uint8_t*>(w.data) + static_cast<uint64_t>(src) * w.row_bytes;
                if (w.type == GgmlType::F32) {
                    std::memcpy(out + r * w.cols, row, static_cast<size_t>(w.cols) * 4);
                } else {
                    k->to_float(row, out + r * w.cols, w.cols);
                }
            }
            data = ws_.put(key, std::move(bytes));
        }
        Dims d = w.rows == 1 ? Dims{u32(w.cols)} : Dims{u32(w.rows), u32(w.cols)};
        return b_.constant(key, d, data);
    }
    int64_t bias(const TensorRef& b, int32_t permute_heads = 0) {
        if (!b.valid()) return -1;
        return weight(b, permute_heads);
    }

    // ---- RoPE in the halves layout: with x1 = the first n_rot/2 dims of a head and x2 the
    // next n_rot/2, out1 = x1 cos - x2 sin, out2 = x2 cos + x1 sin (the CPU's rotation of each
    // pair), dims past n_rot pass through. cos/sin are [L, 1, n_rot/2]: one row per token,
    // broadcast over the heads.
    uint32_t rope(const std::string& name, uint32_t x_heads, uint32_t cos, uint32_t sin) {
        const int32_t R = geo_.R, D = geo_.D;
        if (R == 0) return x_heads;
        const uint32_t x1 = b_.slice(name + ".x1", x_heads, 2, 0, R / 2);
        const uint32_t x2 = b_.slice(name + ".x2", x_heads, 2, R / 2, R);
        const uint32_t a = b_.eltwise(name + ".x1cos", OpType::ElementWiseMultiply, x1, cos);
        const uint32_t bb = b_.eltwise(name + ".x2sin", OpType::ElementWiseMultiply, x2, sin);
        const uint32_t c = b_.eltwise(name + ".x2cos", OpType::ElementWiseMultiply, x2, cos);
        const uint32_t d = b_.eltwise(name + ".x1sin", OpType::ElementWiseMultiply, x1, sin);
        const uint32_t o1 = b_.eltwise(name + ".out1", OpType::ElementWiseSubtract, a, bb);
        const uint32_t o2 = b_.eltwise(name + ".out2", OpType::ElementWiseAdd, c, d);
        std::vector<uint32_t> parts{o1, o2};
        if (R < D) parts.push_back(b_.slice(name + ".pass", x_heads, 2, R, D));
        return b_.concat(name, parts, 2);
    }
    uint32_t rope_input(const std::string& name, IoRole io) {
        return b_.input(name, io, {u32(geo_.L), 1, u32(std::max(geo_.R / 2, 1))});
    }

    // [L, H*D] rows -> [Hk, G*L, D]: the query heads of KV head hk (h = hk*G + g) stacked as
    // rows of one batched MatMul against that KV head's keys.
    uint32_t group_heads(const std::string& name, uint32_t x_heads) {
        const uint32_t L = u32(geo_.L), Hk = u32(geo_.Hk), G = u32(geo_.G), D = u32(geo_.D);
        const uint32_t r = b_.reshape(name + ".split", x_heads, {L, Hk, G, D});
        const uint32_t t = b_.transpose(name + ".t", r, {1, 2, 0, 3});
        return b_.reshape(name, t, {Hk, G * L, D});
    }
    uint32_t sigma(const std::string& name, uint32_t x) {
        // sigma(x) = elu(x) + 1 = (x > 0 ? x + 1 : e^x): the memory's feature map.
        const uint32_t e = b_.unary(name + ".elu", OpType::Elu, x, {scalar("alpha", Param::Kind::Float, 1.0)});
        return b_.eltwise(name, OpType::ElementWiseAdd, e, b_.scalar_const("one", 1.0f));
    }
    // The KV cache's element type in the graph: f16 when the scenario's cache is (the host
    // then copies the pool's bits as they are), else f32.
    DType cache_type() const {
        return sc_.kv_type == KvType::F16 && !opt_.float_cache ? DType::Float16 : DType::Float32;
    }
    // With an f16 cache the CPU rounds q and the attention weights to f16 before their dot
    // products with the cache (as llama.cpp does): the same rounding, as a pair of Converts.
    uint32_t cache_rounded(const std::string& name, uint32_t x) {
        if (cache_type() == DType::Float32) return x;
        return b_.convert(name, b_.convert(name + ".f16", x, DType::Float16), DType::Float32);
    }
    uint32_t zeros(int64_t n) {
        return b_.constant("zeros." + std::to_string(n), {u32(n)}, std::vector<float>(static_cast<size_t>(n), 0.0f));
    }

    std::vector<LayerOps> layer_ops(const Op*& embed, const Op*& out_norm, const Op*& head) {
        std::vector<LayerOps> layers;
        size_t i = 0;
        auto next = [&](OpKind kind) -> const Op* {
            if (i >= g_.ops.size() || g_.ops[i].kind != kind) {
                unsupported(g_.name, std::string("expected a ") + op_name(kind) + " op at #" + std::to_string(i) +
                                         " (only whole graphs as the planner makes them are lowered)");
            }
            return &g_.ops[i++];
        };
        embed = next(OpKind::GetRows);
        while (i + 2 < g_.ops.size()) {
            LayerOps l{};
            l.attn_norm = next(OpKind::RmsNorm);
            l.q = next(OpKind::MatMul);
            l.k = next(OpKind::MatMul);
            l.v = next(OpKind::MatMul);
            l.rope_q = next(OpKind::Rope);
            l.rope_k = next(OpKind::Rope);
            l.store = next(OpKind::KvStore);
            l.attn = next(OpKind::SegmentAttention);
            l.o = next(OpKind::MatMul);
            l.ffn_norm = next(OpKind::RmsNorm);
            l.gate = next(OpKind::MatMul);
            l.up = next(OpKind::MatMul);
            l.swiglu = next(OpKind::SwiGlu);
            l.down = next(OpKind::MatMul);
            layers.push_back(l);
        }
        out_norm = next(OpKind::RmsNorm);
        head = next(OpKind::MatMul);
        if (!head->output_head || i != g_.ops.size()) bad("the graph does not end with the output head");
        return layers;
    }

    void lower_forward() {
        const Op *embed, *out_norm, *head;
        const std::vector<LayerOps> layers = layer_ops(embed, out_norm, head);
        if (layers.empty()) bad("no layers");
        geometry(*layers[0].attn);
        const uint32_t L = u32(geo_.L), D = u32(geo_.D), Hk = u32(geo_.Hk), G = u32(geo_.G);
        const uint32_t S = u32(geo_.slots);
        const int64_t E = embed->dst.cols;
        const std::string pfx;

        // Inputs every layer shares.
        const uint32_t tokens = b_.input("tokens", IoRole::TokenIds, {L}, -1, DType::Int32);
        uint32_t cos = 0, sin = 0, sink_cos = 0, sink_sin = 0;
        if (geo_.R > 0) {
            cos = rope_input("rope_cos", IoRole::RopeCos);
            sin = rope_input("rope_sin", IoRole::RopeSin);
        }
        // Sinks behind the window (Scenario::sinks_follow): the sink keys are scored against
        // the query rotated for an earlier position, cos/sin of which the host writes here
        // (the same rows as rope_cos/rope_sin while nothing is folded).
        const bool sink_query = layers[0].attn->rope_rows.valid() && geo_.n_sink > 0 && geo_.R > 0;
        if (sink_query) {
            sink_cos = rope_input("sink_rope_cos", IoRole::SinkRopeCos);
            sink_sin = rope_input("sink_rope_sin", IoRole::SinkRopeSin);
        }
        // The visibility of sink + ring + the step's own rows, expanded by the host from
        // step.visible: one additive mask for every head and layer.
        const uint32_t mask = b_.input("attn_mask", IoRole::AttnMask, {L, S + L});
        bool any_memory = false;
        for (const LayerOps& l : layers) any_memory |= sc_.memory && l.attn->gate != 0;
        const uint32_t memory_on = any_memory ? b_.input("memory_on", IoRole::MemoryOn, {1}) : 0;

        // Embedding: a Gather of the token rows from the float table.
        uint32_t x = b_.node("token_embd", OpType::Gather, {weight(embed->src0), tokens}, {L, u32(E)},
                             {scalar("axis", Param::Kind::Int32, 0)});
        for (size_t il = 0; il < layers.size(); ++il) x = lower_layer(int32_t(il), layers[il], x, cos, sin, sink_cos,
                                                                      sink_sin, mask, memory_on);
        const uint32_t xn = b_.rms_norm("output_norm", x, weight(out_norm->src1), zeros(E), out_norm->eps);
        const uint32_t w_out = weight(head->src0);
        const uint32_t V = b_.dims(w_out)[0];
        if (opt_.all_logits) {
            // all_logits: the head over every row, Logits [L, n_vocab]; a graph of its own
            // (the backend lowers both and runs this one when a step asks for every row).
            const uint32_t logits = b_.output("logits", IoRole::Logits, {L, V});
            b_.node_into("logits", OpType::FullyConnected, {xn, w_out}, logits);
        } else {
            // Only the last valid row's logits: Gather of the row the host names, so the head's
            // matmul (the largest of a small model) runs over one row whatever L is.
            const uint32_t row = b_.input("logit_row", IoRole::LogitRow, {1}, -1, DType::Int32);
            const uint32_t last = b_.node("output_row", OpType::Gather, {xn, row}, {1, u32(E)},
                                          {scalar("axis", Param::Kind::Int32, 0)});
            const uint32_t logits = b_.output("logits", IoRole::Logits, {1, V});
            b_.node_into("logits", OpType::FullyConnected, {last, w_out}, logits);
        }
        (void)D, (void)Hk, (void)G;
    }

    uint32_t lower_layer(int32_t il, const LayerOps& l, uint32_t x, uint32_t cos, uint32_t sin, uint32_t sink_cos,
                         uint32_t sink_sin, uint32_t mask, uint32_t memory_on) {
        const std::string p = "blk." + std::to_string(il) + ".";
        const uint32_t L = u32(geo_.L), D = u32(geo_.D), H = u32(geo_.H), Hk = u32(geo_.Hk), G = u32(geo_.G);
        const uint32_t S = u32(geo_.slots), KV = u32(geo_.kv_dim());
        const int64_t E = l.attn_norm->dst.cols;
        const uint32_t xn = b_.rms_norm(p + "attn_norm", x, weight(l.attn_norm->src1), zeros(E), l.attn_norm->eps);
        // Q and K rows permuted per head (halves layout); V and everything else as in the GGUF.
        const uint32_t q = b_.fc(p + "attn_q", xn, weight(l.q->src0, geo_.H), bias(l.q->src2, geo_.H));
        const uint32_t k = b_.fc(p + "attn_k", xn, weight(l.k->src0, geo_.Hk), bias(l.k->src2, geo_.Hk));
        // The new K/V rows leave the graph in the cache's type (the host writes them into
        // their slots as they are); attention reads them back from there, as the CPU reads
        // the rows it stored.
        const DType ct = cache_type();
        uint32_t v_new;
        if (ct == DType::Float32) {  // V's projection writes straight into the VNew output
            v_new = b_.output(p + "attn_v", IoRole::VNew, {L, KV}, il);
            std::vector<uint32_t> in{xn, weight(l.v->src0)};
            if (l.v->src2.valid()) in.push_back(weight(l.v->src2));
            b_.node_into(p + "attn_v", OpType::FullyConnected, in, v_new);
        } else {
            const uint32_t v = b_.fc(p + "attn_v", xn, weight(l.v->src0), bias(l.v->src2));
            v_new = b_.output(p + "v_new", IoRole::VNew, {L, KV}, il, ct);
            b_.node_into(p + "v_new", OpType::Convert, {v}, v_new);
        }
        const uint32_t q_heads = b_.reshape(p + "attn_q_heads", q, {L, H, D});
        const uint32_t q_rope = rope(p + "attn_q_rope", q_heads, cos, sin);
        const uint32_t k_heads = b_.reshape(p + "attn_k_heads", k, {L, Hk, D});
        const uint32_t k_rope = rope(p + "attn_k_rope", k_heads, cos, sin);
        const uint32_t k_new = b_.output(p + "k_new", IoRole::KNew, {L, KV}, il, ct);
        if (ct == DType::Float32) {
            b_.node_into(p + "k_new", OpType::Reshape, {k_rope}, k_new);
        } else {
            b_.node_into(p + "k_new", OpType::Convert, {b_.reshape(p + "attn_k_rows", k_rope, {L, KV})}, k_new);
        }

        // Keys and values: the cache before the step, then the step's own rows.
        const uint32_t k_cache = b_.input(p + "k_cache", IoRole::KCache, {S, KV}, il, ct);
        const uint32_t v_cache = b_.input(p + "v_cache", IoRole::VCache, {S, KV}, il, ct);
        auto heads_of = [&](const std::string& n, uint32_t cache, uint32_t fresh) {
            uint32_t all = b_.concat(n + "_all", {cache, fresh}, 0);
            if (ct != DType::Float32) all = b_.convert(n + "_all.f32", all, DType::Float32);
            const uint32_t r = b_.reshape(n + "_all.heads", all, {S + L, Hk, D});
            return b_.transpose(n + "_all.t", r, {1, 0, 2});  // [Hk, S+L, D]
        };
        const uint32_t keys = heads_of(p + "attn_k", k_cache, k_new);
        const uint32_t values = heads_of(p + "attn_v", v_cache, v_new);

        const uint32_t qg = group_heads(p + "attn_q_grouped", q_rope);  // [Hk, G*L, D]
        const uint32_t qk = cache_rounded(p + "attn_q_cache", qg);      // q as the cache's dots see it
        uint32_t kq;
        if (sink_cos) {
            // Sink columns [0, n_sink) scored with the sink queries, the rest with q.
            const uint32_t ns = u32(geo_.n_sink);
            const uint32_t qs = rope(p + "attn_q_sink_rope", q_heads, sink_cos, sink_sin);
            const uint32_t qsg = cache_rounded(p + "attn_q_sink_cache", group_heads(p + "attn_q_sink_grouped", qs));
            const uint32_t ks = b_.slice(p + "attn_k_sink", keys, 1, 0, ns);
            const uint32_t kr = b_.slice(p + "attn_k_rest", keys, 1, ns, S + L);
            const uint32_t s1 = b_.matmul(p + "attn_kq_sink", qsg, ks, false, true);
            const uint32_t s2 = b_.matmul(p + "attn_kq_rest", qk, kr, false, true);
            kq = b_.concat(p + "attn_kq", {s1, s2}, 2);
        } else {
            kq = b_.matmul(p + "attn_kq", qk, keys, false, true);  // [Hk, G*L, S+L]
        }
        const uint32_t scaled = b_.eltwise(p + "attn_kq_scaled", OpType::ElementWiseMultiply, kq,
                                           b_.scalar_const("kq_scale", 1.0f / std::sqrt(float(geo_.D))));
        const uint32_t s4 = b_.reshape(p + "attn_kq_rows", scaled, {Hk, G, L, S + L});
        const uint32_t scores = b_.eltwise(p + "attn_scores", OpType::ElementWiseAdd, s4, mask);
        const uint32_t probs = b_.node(p + "attn_probs", OpType::Softmax, {scores}, b_.dims(scores),
                                       {scalar("axis", Param::Kind::UInt32, 3), scalar("beta", Param::Kind::Float, 1.0)});
        const uint32_t p3 = b_.reshape(p + "attn_probs_rows", cache_rounded(p + "attn_probs_cache", probs), {Hk, G * L, S + L});
        const uint32_t local = b_.matmul(p + "attn_local", p3, values, false, false);  // [Hk, G*L, D]
        uint32_t out4 = b_.reshape(p + "attn_local_heads", local, {Hk, G, L, D});

        const Op& a = *l.attn;
        if (sc_.memory && a.gate != 0) {
            // Retrieval sigma(q) M / (sigma(q) z + eps) with the query the memory sees (before
            // RoPE unless the scenario's memory is post-RoPE), in the permuted head layout: M's
            // rows and z are permuted the same way, so the products are the CPU's.
            const uint32_t qm = sc_.memory_rope ? qg : group_heads(p + "mem_q", q_heads);
            const uint32_t sq = sigma(p + "mem_sigma_q", qm);
            const uint32_t m = b_.input(p + "mem_M", IoRole::MemM, {Hk, D, D}, il);
            const uint32_t z = b_.input(p + "mem_z", IoRole::MemZ, {Hk, D}, il);
            const uint32_t zc = b_.reshape(p + "mem_z_col", z, {Hk, D, 1});
            const uint32_t num = b_.matmul(p + "mem_num", sq, m, false, false);
            const uint32_t den = b_.matmul(p + "mem_den", sq, zc, false, false);
            const uint32_t den_eps =
                b_.eltwise(p + "mem_den_eps", OpType::ElementWiseAdd, den, b_.scalar_const("mem_eps", kMemoryEps));
            const uint32_t ret = b_.eltwise(p + "mem_retrieved", OpType::ElementWiseDivide, num, den_eps);
            const uint32_t ret4 = b_.reshape(p + "mem_retrieved_heads", ret, {Hk, G, L, D});
            // The gate per query head h = hk*G + g.
            const float* gw = static_cast<const float*>(a.gate_w.data);
            const float* gb = a.gate_b.valid() ? static_cast<const float*>(a.gate_b.data) : nullptr;
            std::vector<float> bias_v(size_t(H), 0.0f);
            for (uint32_t h = 0; h < H; ++h) bias_v[h] = gb ? gb[h] : 0.0f;
            uint32_t gate;
            if (a.gate == 1) {
                // Scalar: g_h = sigmoid(w_h + b_h), the same for every query.
                std::vector<float> w(static_cast<size_t>(H), 0.0f);
                for (uint32_t h = 0; h < H; ++h) w[h] = gw[h];
                const uint32_t wc = b_.constant(p + "gate_w", {Hk, G, 1, 1}, w);
                const uint32_t bc = b_.constant(p + "gate_b", {Hk, G, 1, 1}, bias_v);
                gate = b_.unary(p + "gate", OpType::Sigmoid, b_.eltwise(p + "gate_logit", OpType::ElementWiseAdd, wc, bc));
            } else {
                // Adaptive: g_{h,t} = sigmoid(w_h[:D] . retrieved + w_h[D:] . local + b_h): the
                // dots as a product and a ReduceSum over the head's dims.
                std::vector<float> wm(size_t(H) * D), wl(size_t(H) * D);
                for (uint32_t h = 0; h < H; ++h) {
                    for (uint32_t c = 0; c < D; ++c) {
                        // The retrieved and local vectors are in the V layout (never permuted).
                        wm[size_t(h) * D + c] = gw[size_t(h) * 2 * D + c];
                        wl[size_t(h) * D + c] = gw[size_t(h) * 2 * D + D + c];
                    }
                }
                const uint32_t wmc = b_.constant(p + "gate_w_mem", {Hk, G, 1, D}, wm);
                const uint32_t wlc = b_.constant(p + "gate_w_local", {Hk, G, 1, D}, wl);
                const uint32_t bc = b_.constant(p + "gate_b", {Hk, G, 1, 1}, bias_v);
                const uint32_t dm = b_.reduce_sum(p + "gate_mem_dot",
                                                  b_.eltwise(p + "gate_mem_prod", OpType::ElementWiseMultiply, ret4, wmc), 3, true);
                const uint32_t dl = b_.reduce_sum(p + "gate_local_dot",
                                                  b_.eltwise(p + "gate_local_prod", OpType::ElementWiseMultiply, out4, wlc), 3, true);
                const uint32_t lg = b_.eltwise(p + "gate_logit", OpType::ElementWiseAdd,
                                               b_.eltwise(p + "gate_dots", OpType::ElementWiseAdd, dm, dl), bc);
                gate = b_.unary(p + "gate", OpType::Sigmoid, lg);
            }
            // MemoryOn = 0 (nothing folded yet) turns the blend into 0 * retrieved + 1 * local:
            // exactly the local attention, as the CPU skips the memory then.
            const uint32_t g_on = b_.eltwise(p + "gate_on", OpType::ElementWiseMultiply, gate, memory_on);
            const uint32_t g_off = b_.eltwise(p + "gate_off", OpType::ElementWiseSubtract, b_.scalar_const("one", 1.0f), g_on);
            const uint32_t mp = b_.eltwise(p + "attn_mem_part", OpType::ElementWiseMultiply, g_on, ret4);
            const uint32_t lp = b_.eltwise(p + "attn_local_part", OpType::ElementWiseMultiply, g_off, out4);
            out4 = b_.eltwise(p + "attn_blend", OpType::ElementWiseAdd, mp, lp);
        }
        const uint32_t t = b_.transpose(p + "attn_out_t", out4, {2, 0, 1, 3});  // [L, Hk, G, D]
        const uint32_t attn = b_.reshape(p + "attn_out", t, {L, H * D});
        const uint32_t o = b_.fc(p + "attn_output", attn, weight(l.o->src0), bias(l.o->src2));
        x = b_.eltwise(p + "attn_residual", OpType::ElementWiseAdd, x, o);

        // SwiGLU FFN: silu(gate) * up as Sigmoid and two products.
        const uint32_t fn = b_.rms_norm(p + "ffn_norm", x, weight(l.ffn_norm->src1), zeros(E), l.ffn_norm->eps);
        const uint32_t gt = b_.fc(p + "ffn_gate", fn, weight(l.gate->src0), bias(l.gate->src2));
        const uint32_t up = b_.fc(p + "ffn_up", fn, weight(l.up->src0), bias(l.up->src2));
        const uint32_t sg = b_.unary(p + "ffn_gate_sigmoid", OpType::Sigmoid, gt);
        const uint32_t silu = b_.eltwise(p + "ffn_gate_silu", OpType::ElementWiseMultiply, gt, sg);
        const uint32_t act = b_.eltwise(p + "ffn_act", OpType::ElementWiseMultiply, silu, up);
        const uint32_t down = b_.fc(p + "ffn_down", act, weight(l.down->src0), bias(l.down->src2));
        return b_.eltwise(p + "ffn_residual", OpType::ElementWiseAdd, x, down);
    }

    // The fold: the oldest L ring rows of every layer (gathered by the host into FoldK /
    // FoldV) go into the memory: M += sigma(K)^T V (delta rule: V - sigma(K) M / (sigma(K) z)
    // with M, z before the block), z += the sum of the sigma(K) rows, as MatMul, ReduceSum and
    // Add; with pre-RoPE memory, the cached keys are first rotated back by the FoldRope angles.
    void lower_fold() {
        const Op& first = g_.ops[0];
        geometry(first);
        const uint32_t L = u32(geo_.L), D = u32(geo_.D), Hk = u32(geo_.Hk), KV = u32(geo_.kv_dim());
        uint32_t cos = 0, sin = 0;
        const bool unrope = !sc_.memory_rope && geo_.R > 0;
        if (unrope) {
            cos = rope_input("fold_rope_cos", IoRole::FoldRopeCos);
            sin = rope_input("fold_rope_sin", IoRole::FoldRopeSin);
        }
        for (const Op& op : g_.ops) {
            if (op.kind != OpKind::MemoryUpdate) unsupported(g_.name, std::string("unexpected op ") + op_name(op.kind));
            const int32_t il = op.layer;
            const std::string p = "blk." + std::to_string(il) + ".";
            const DType ct = cache_type();
            uint32_t fk = b_.input(p + "fold_k", IoRole::FoldK, {L, KV}, il, ct);
            uint32_t fv = b_.input(p + "fold_v", IoRole::FoldV, {L, KV}, il, ct);
            if (ct != DType::Float32) {
                fk = b_.convert(p + "fold_k_f32", fk, DType::Float32);
                fv = b_.convert(p + "fold_v_f32", fv, DType::Float32);
            }
            uint32_t kh = b_.reshape(p + "fold_k_heads", fk, {L, Hk, D});
            if (unrope) kh = rope(p + "fold_k_nope", kh, cos, sin);
            const uint32_t kt = b_.transpose(p + "fold_k_t", kh, {1, 0, 2});  // [Hk, L, D]
            const uint32_t sk = sigma(p + "fold_sigma_k", kt);
            const uint32_t vt =
                b_.transpose(p + "fold_v_t", b_.reshape(p + "fold_v_heads", fv, {L, Hk, D}), {1, 0, 2});
            const uint32_t m = b_.input(p + "mem_M", IoRole::MemM, {Hk, D, D}, il);
            const uint32_t z = b_.input(p + "mem_z", IoRole::MemZ, {Hk, D}, il);
            uint32_t v_use = vt;
            if (op.delta_rule) {
                // The CPU skips the correction where sigma(k) . z is 0 (an empty memory, where M
                // is 0 too); here 0 / (0 + eps) is that 0, and a non-empty memory's
                // denominator (a sum of positive terms) barely sees the eps.
                const uint32_t zc = b_.reshape(p + "fold_z_col", z, {Hk, D, 1});
                const uint32_t den = b_.matmul(p + "fold_den", sk, zc, false, false);
                const uint32_t den_eps =
                    b_.eltwise(p + "fold_den_eps", OpType::ElementWiseAdd, den, b_.scalar_const("mem_eps", kMemoryEps));
                const uint32_t num = b_.matmul(p + "fold_num", sk, m, false, false);
                const uint32_t ret = b_.eltwise(p + "fold_retrieved", OpType::ElementWiseDivide, num, den_eps);
                v_use = b_.eltwise(p + "fold_v_delta", OpType::ElementWiseSubtract, vt, ret);
            }
            const uint32_t upd = b_.matmul(p + "fold_update", sk, v_use, true, false);  // [Hk, D, D]
            const uint32_t m_out = b_.output(p + "mem_M_out", IoRole::MemMOut, {Hk, D, D}, il);
            b_.node_into(p + "mem_M_out", OpType::ElementWiseAdd, {m, upd}, m_out);
            const uint32_t ks = b_.reduce_sum(p + "fold_sigma_k_sum", sk, 1, false);  // [Hk, D]
            const uint32_t z_out = b_.output(p + "mem_z_out", IoRole::MemZOut, {Hk, D}, il);
            b_.node_into(p + "mem_z_out", OpType::ElementWiseAdd, {z, ks}, z_out);
        }
    }

    const Graph& g_;
    const Scenario& sc_;
    WeightStore& ws_;
    LowerOptions opt_;
    Builder b_;
    Geometry geo_;
    std::vector<int32_t> perm_;
};

}  // namespace

QnnGraph lower_graph(const Graph& graph, const Scenario& sc, WeightStore& weights, const LowerOptions& opt) {
    return Lowering(graph, sc, weights, opt).run();
}

LoweredPlan lower_plan(const Graph& prefill, const Graph& decode, const Graph& fold, const Scenario& sc,
                       WeightStore& weights) {
    LoweredPlan p;
    p.prefill = lower_graph(prefill, sc, weights);
    LowerOptions all;
    all.all_logits = true;
    p.prefill_all_logits = lower_graph(prefill, sc, weights, all);
    p.decode = lower_graph(decode, sc, weights);
    p.fold = lower_graph(fold, sc, weights);
    return p;
}

}  // namespace ei::htp
