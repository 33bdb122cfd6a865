#include "htp/lowered_backend.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cpu/quants.h"
#include "error.h"
#include "model.h"
#include "htp/device_graphs.h"
#include "htp/emulator.h"
#include "htp/lower.h"
#include "step_inputs.h"
#include "weight_cache.h"

namespace ei::htp {

namespace {

// A graph input or output and the pool bytes it comes from or goes to.
struct Binding {
    uint32_t id = 0;
    uint8_t* data = nullptr;  // the executor's buffer (set when the executor is prepared)
    IoRole role = IoRole::None;
    int32_t layer = -1;
    uint64_t offset = 0;  // the pool region (cache, memory, step input) it maps to
    bool f16 = false;     // the pool region holds f16 (the KV cache)
};

struct Lowered {
    const Graph* source = nullptr;
    std::unique_ptr<QnnGraph> graph;  // stable address: the executor keeps a pointer
    std::vector<Binding> io;
    // Step inputs of the source graph (pool offsets; 0 where the graph has none).
    uint64_t tokens = 0, rope = 0, sink_rope = 0, visible = 0, kv_slot = 0, logit_row = 0, fold_slot = 0,
             fold_rope = 0, logits = 0;
    bool has_sink_rope = false;
};

// The graphs a session prepares (Scheduler::prepare: prefill, decode, fold); the executor is
// prepared once all are lowered, so it sees them together (one QNN context holds them all).
constexpr const char* kPlannedGraphs[] = {"prefill", "decode", "fold"};

class LoweredBackend final : public Backend {
public:
    LoweredBackend(const Scenario& sc, std::unique_ptr<GraphExecutor> exec, bool float_cache)
        : sc_(sc), float_cache_(float_cache), exec_(std::move(exec)), dev_(exec_->name()) {}

    const char* name() const override { return exec_->name(); }
    // The device takes whole graphs; what it cannot lower is refused by prepare(), when the
    // session is made, naming why (a graph split with the CPU is not an NPU graph).
    bool supports(const Op&) const override { return true; }
    uint64_t pool_alignment() const override { return 64; }
    bool reads_step_inputs() const override { return true; }
    // The graphs: float, or quantized with the parameters ei npu-prepare left for this
    // model in the scenario's cache_dir (device_graphs.h).
    void bind_model(const Model& m) override { graphs_src_ = DeviceGraphs::for_model(sc_, m.fingerprint()); }
    const DeviceGraphs& device_graphs() const { return graphs_src_; }

    void prepare(const Graph& g, WeightCache& cache) override {
        if (!weights_) {  // the model's (a 0.5B model's f32 weights are 2 GB)
            weights_ = model_weight_store(cache);
            graphs_src_.share_weights(model_quant_weights(cache));
        }
        if (g.name != "prefill" && g.name != "decode" && g.name != "fold") {
            fail(EI_ERR_UNSUPPORTED, dev_ + ": graph '" + g.name + "' is not a whole planned graph");
        }
        if (prepared_) fail(EI_ERR_INTERNAL, dev_ + ": graph '" + g.name + "' prepared after the executor was");
        LowerOptions opt;
        opt.float_cache = float_cache_;
        add(g, g.name, opt);
        if (g.name == "prefill") {
            LowerOptions all = opt;
            all.all_logits = true;
            add(g, kPrefillAllLogits, all);
        }
        for (const char* name : kPlannedGraphs) {
            if (!graphs_.count(name)) return;
        }
        prepare_executor();
    }

    void compute(const Graph& g, const StepParams& step, PoolBuffer& buffer) override {
        uint8_t* pool = buffer.host();
        if (!pool) fail(EI_ERR_INVALID_ARGUMENT, "the " + dev_ + " backend needs a host-visible pool buffer");
        if (step.n_tokens < 1 || step.n_tokens > g.max_tokens) {
            fail(EI_ERR_INVALID_ARGUMENT, "step of " + std::to_string(step.n_tokens) + " tokens for graph '" + g.name +
                                              "' of at most " + std::to_string(g.max_tokens));
        }
        if (step.observer) {
            // Op observers see the planned ops in the pool; this device runs lowered nodes.
            fail(EI_ERR_UNSUPPORTED, dev_ + ": op observers (imatrix, calibration, gate fitting) need the cpu "
                                     "device; the emulator's own hook is the node observer");
        }
        const bool all = g.name == "prefill" && step.all_logits;
        auto it = graphs_.find(all ? std::string(kPrefillAllLogits) : g.name);
        if (it == graphs_.end() || it->second.source != &g || !prepared_) {
            fail(EI_ERR_INTERNAL, dev_ + ": graph '" + g.name + "' was not prepared");
        }
        Lowered& lw = it->second;
        const bool fold = g.name == "fold";
        if (!fold) visible_slots(lw, pool);
        for (const Binding& b : lw.io) fill(lw, b, step, pool, fold);
        exec_->execute(it->first, observer_);
        for (const Binding& b : lw.io) drain(lw, b, step, pool, all);
    }

    bool set_observer(NodeObserver* o) {
        if (!exec_->observes_nodes()) return false;
        observer_ = o;
        return true;
    }

private:
    void add(const Graph& g, const std::string& key, const LowerOptions& opt) {
        if (graphs_.count(key)) return;
        Lowered lw;
        lw.source = &g;
        lw.graph = std::make_unique<QnnGraph>(obtain_graph(g, opt));
        // One name per graph in the executor (a QNN context): the all-logits prefill too.
        lw.graph->name = key;
        auto region = [&](const std::string& name, bool required = true) -> const ei::Tensor* {
            for (const ei::Tensor& t : g.tensors) {
                if (t.name == name) return &t;
            }
            if (required) fail(EI_ERR_INTERNAL, dev_ + ": graph '" + g.name + "' has no tensor '" + name + "'");
            return nullptr;
        };
        auto off = [&](const std::string& name) {
            const ei::Tensor* t = region(name, false);
            return t ? t->offset : 0;
        };
        lw.tokens = off("tokens");
        lw.rope = off("step.rope");
        lw.has_sink_rope = region("step.sink_rope", false) != nullptr;
        lw.sink_rope = off("step.sink_rope");
        lw.visible = off("step.visible");
        lw.kv_slot = off("step.kv_slot");
        lw.logit_row = off("step.logit_row");
        lw.fold_slot = off("step.fold_slot");
        lw.fold_rope = off("step.fold_rope");
        lw.logits = off("logits");
        const QnnGraph& q = *lw.graph;
        for (const htp::Tensor& t : q.tensors) {
            if (t.io == IoRole::None) continue;
            Binding b;
            b.id = t.id;
            b.role = t.io;
            b.layer = t.layer;
            const std::string l = std::to_string(t.layer);
            switch (t.io) {
                case IoRole::KCache: case IoRole::KNew: case IoRole::FoldK: {
                    const ei::Tensor* r = region("kv.k." + l);
                    b.offset = r->offset;
                    b.f16 = r->type == GgmlType::F16;
                    break;
                }
                case IoRole::VCache: case IoRole::VNew: case IoRole::FoldV: {
                    const ei::Tensor* r = region("kv.v." + l);
                    b.offset = r->offset;
                    b.f16 = r->type == GgmlType::F16;
                    break;
                }
                case IoRole::MemM: case IoRole::MemMOut: b.offset = region("mem.M." + l)->offset; break;
                case IoRole::MemZ: case IoRole::MemZOut: b.offset = region("mem.z." + l)->offset; break;
                default: break;
            }
            lw.io.push_back(b);
        }
        if (perm_.empty()) {
            for (const Op& op : g.ops) {
                if (op.head_dim > 0) {
                    perm_ = head_permutation(op.head_dim, op.n_rot, op.rope_mode == 1);
                    rot_ = op.n_rot;
                    break;
                }
            }
        }
        mask_row_.reserve(size_t(sc_.kv_slots()));  // compute() never allocates
        graphs_.emplace(key, std::move(lw));
    }

    // The one place the backend gets its graphs: the planned graph lowered for this scenario.
    QnnGraph obtain_graph(const Graph& g, const LowerOptions& opt) { return graphs_src_.lower(g, sc_, *weights_, opt); }

    void prepare_executor() {
        std::vector<const QnnGraph*> list;
        for (const auto& [key, lw] : graphs_) list.push_back(lw.graph.get());
        exec_->prepare(list);
        for (auto& [key, lw] : graphs_) {
            for (Binding& b : lw.io) {
                b.data = exec_->io_buffer(key, b.id);
                if (!b.data) fail(EI_ERR_INTERNAL, dev_ + ": no buffer for io tensor " + std::to_string(b.id) + " of graph '" + key + "'");
            }
        }
        prepared_ = true;
    }

    template <class T>
    static T* io(const Binding& b) { return reinterpret_cast<T*>(b.data); }

    template <class T>
    static const T* at(const uint8_t* pool, uint64_t off) {
        return reinterpret_cast<const T*>(pool + off);
    }

    // A cache row between the pool (f16 or f32, the scenario's) and the graph's tensor (the
    // cache's type by default, Float32 with LowerOptions::float_cache), in the graph's head
    // layout (keys permuted). Equal types move as they are.
    void move_row(const uint8_t* src, bool src_f16, uint8_t* dst, bool dst_f16, size_t n, bool permute, bool to_pool) const {
        const size_t D = perm_.size();
        const size_t es = src_f16 ? 2 : 4, ed = dst_f16 ? 2 : 4;
        for (size_t c = 0; c < n; ++c) {
            const size_t p = permute ? c / D * D + size_t(perm_[c % D]) : c;
            const size_t from = to_pool ? c : p, to = to_pool ? p : c;
            if (src_f16 == dst_f16) {
                std::memcpy(dst + to * ed, src + from * es, es);
            } else if (src_f16) {
                uint16_t h;
                std::memcpy(&h, src + from * 2, 2);
                const float f = cpu::fp16_to_fp32(h);
                std::memcpy(dst + to * 4, &f, 4);
            } else {
                float f;
                std::memcpy(&f, src + from * 4, 4);
                const uint16_t h = cpu::fp32_to_fp16(f);
                std::memcpy(dst + to * 2, &h, 2);
            }
        }
    }
    static bool graph_f16(const htp::Tensor& t) {
        if (t.dtype != DType::Float16 && t.dtype != DType::Float32) {
            fail(EI_ERR_UNSUPPORTED, "htp: cache tensor '" + t.name + "' is " + dtype_name(t.dtype) +
                                         "; the host binds FLOAT_16 or FLOAT_32 cache tensors");
        }
        return t.dtype == DType::Float16;
    }

    // Which cache slots the step's queries see (step.visible): the older sink slots and the
    // ring's older spans (the step's own rows come from KNew / VNew).
    void visible_slots(const Lowered& lw, const uint8_t* pool) {
        const int32_t* vis = at<int32_t>(pool, lw.visible);
        std::vector<uint8_t>& seen = mask_row_;
        seen.assign(size_t(sc_.kv_slots()), 0);
        auto mark = [&](int64_t first, int64_t count) {
            if (first < 0 || count < 0 || first + count > int64_t(seen.size())) {
                fail(EI_ERR_INTERNAL, dev_ + ": step.visible names slots outside the cache");
            }
            std::fill(seen.begin() + first, seen.begin() + first + count, 1);
        };
        mark(0, vis[kVisSinkCount]);
        mark(vis[kVisSpanAFirst], vis[kVisSpanACount]);
        mark(vis[kVisSpanBFirst], vis[kVisSpanBCount]);
    }

    // cos (first) or sin (second) halves of RoPE rows [rows][n_rot] into [L][1][n_rot/2];
    // rows past n hold the identity rotation (their results are never used).
    void fill_rope(float* dst, const uint8_t* pool, uint64_t off, int32_t L, int32_t n, bool sin) const {
        const int32_t half = rot_ / 2;
        const float* src = at<float>(pool, off);
        const int32_t cols = std::max(1, rot_);
        for (int32_t t = 0; t < L; ++t) {
            for (int32_t i = 0; i < half; ++i) {
                dst[t * half + i] = t < n ? src[t * cols + (sin ? half : 0) + i] : (sin ? 0.0f : 1.0f);
            }
        }
    }

    void fill(const Lowered& lw, const Binding& b, const StepParams& s, const uint8_t* pool, bool fold) {
        const htp::Tensor& t = lw.graph->tensors[b.id];
        if (t.kind != TensorKind::AppWrite) return;
        const int32_t L = lw.source->max_tokens, n = s.n_tokens;
        float* f = io<float>(b);
        const int32_t* vis = lw.visible ? at<int32_t>(pool, lw.visible) : nullptr;
        switch (b.role) {
            case IoRole::TokenIds: {
                int32_t* d = io<int32_t>(b);
                const int32_t* src = at<int32_t>(pool, lw.tokens);
                for (int32_t i = 0; i < L; ++i) d[i] = i < n ? src[i] : 0;
                break;
            }
            case IoRole::RopeCos: case IoRole::RopeSin:
                fill_rope(f, pool, lw.rope, L, n, b.role == IoRole::RopeSin);
                break;
            case IoRole::SinkRopeCos: case IoRole::SinkRopeSin:
                // Until something folds (kVisSinkQuery 0) the sink keys see the plain query.
                fill_rope(f, pool, vis[kVisSinkQuery] ? lw.sink_rope : lw.rope, L, n, b.role == IoRole::SinkRopeSin);
                break;
            case IoRole::FoldRopeCos: case IoRole::FoldRopeSin:
                fill_rope(f, pool, lw.fold_rope, L, n, b.role == IoRole::FoldRopeSin);
                break;
            case IoRole::AttnMask: {
                // Columns: the S + W + L cache slots, then the step's own L rows. Every query
                // sees the older sink slots and the older ring spans; causally, its own rows
                // up to itself (padding rows too, so no row is all hidden).
                const int64_t slots = int64_t(t.dims[1]) - L;
                const std::vector<uint8_t>& seen = mask_row_;
                for (int32_t q = 0; q < L; ++q) {
                    float* row = f + int64_t{q} * (slots + L);
                    for (int64_t j = 0; j < slots; ++j) row[j] = seen[size_t(j)] ? 0.0f : kMaskHidden;
                    for (int32_t u = 0; u < L; ++u) row[slots + u] = u <= q ? 0.0f : kMaskHidden;
                }
                break;
            }
            case IoRole::MemoryOn: f[0] = vis[kVisMemory] ? 1.0f : 0.0f; break;
            case IoRole::LogitRow: {
                const int32_t r = *at<int32_t>(pool, lw.logit_row);
                io<int32_t>(b)[0] = r >= 0 ? r : n - 1;
                break;
            }
            case IoRole::KCache: case IoRole::VCache: {
                const uint64_t cols = t.dims[1], rows = t.dims[0];
                const bool gf = graph_f16(t);
                const uint64_t prb = cols * (b.f16 ? 2 : 4), grb = cols * (gf ? 2 : 4);
                uint8_t* d = b.data;
                // Only the rows this step sees: the others (never written, or stale) are
                // zeros, so a hidden row adds exactly 0 (weight 0 times a finite value) and
                // uninitialized pool memory never reaches the arithmetic.
                for (uint64_t r = 0; r < rows; ++r) {
                    if (mask_row_[r]) {
                        move_row(pool + b.offset + r * prb, b.f16, d + r * grb, gf, cols, b.role == IoRole::KCache, false);
                    } else {
                        std::memset(d + r * grb, 0, grb);
                    }
                }
                break;
            }
            case IoRole::FoldK: case IoRole::FoldV: {
                const uint64_t cols = t.dims[1];
                const bool gf = graph_f16(t);
                const uint64_t prb = cols * (b.f16 ? 2 : 4), grb = cols * (gf ? 2 : 4);
                uint8_t* d = b.data;
                const int32_t* slot = at<int32_t>(pool, lw.fold_slot);
                for (int32_t r = 0; r < L; ++r) {
                    move_row(pool + b.offset + uint64_t(slot[r]) * prb, b.f16, d + uint64_t(r) * grb, gf, cols,
                             b.role == IoRole::FoldK, false);
                }
                break;
            }
            case IoRole::MemM: case IoRole::MemZ: {
                // M [Hk][D][D]: row i of each head is the key dim perm[i]; z [Hk][D] likewise.
                const uint64_t D = perm_.size();
                const uint64_t row = b.role == IoRole::MemM ? D : 1;
                const float* src = at<float>(pool, b.offset);
                const uint64_t heads = t.dims[0];
                // An empty memory (MemoryOn 0) is not read: zeros keep its 0-weighted
                // retrieval finite whatever the pool holds there.
                if (!fold && !vis[kVisMemory]) {
                    std::fill(f, f + t.elements(), 0.0f);
                    break;
                }
                for (uint64_t h = 0; h < heads; ++h) {
                    for (uint64_t i = 0; i < D; ++i) {
                        std::memcpy(f + (h * D + i) * row, src + (h * D + uint64_t(perm_[i])) * row, row * 4);
                    }
                }
                break;
            }
            default:
                fail(EI_ERR_INTERNAL, dev_ + ": no host input for io role " + io_role_name(b.role));
        }
        (void)fold;
    }

    void drain(const Lowered& lw, const Binding& b, const StepParams& s, uint8_t* pool, bool all) {
        const htp::Tensor& t = lw.graph->tensors[b.id];
        if (t.kind != TensorKind::AppRead) return;
        const float* f = io<float>(b);
        switch (b.role) {
            case IoRole::KNew: case IoRole::VNew: {
                // The step's valid rows into their slots ("smart mask": the host's write).
                const uint64_t cols = t.dims[1];
                const bool gf = graph_f16(t);
                const uint64_t prb = cols * (b.f16 ? 2 : 4), grb = cols * (gf ? 2 : 4);
                const uint8_t* src = b.data;
                const int32_t* slot = at<int32_t>(pool, lw.kv_slot);
                for (int32_t r = 0; r < s.n_tokens; ++r) {
                    move_row(src + uint64_t(r) * grb, gf, pool + b.offset + uint64_t(slot[r]) * prb, b.f16, cols,
                             b.role == IoRole::KNew, true);
                }
                break;
            }
            case IoRole::MemMOut: case IoRole::MemZOut: {
                const uint64_t D = perm_.size();
                const uint64_t row = b.role == IoRole::MemMOut ? D : 1;
                float* dst = reinterpret_cast<float*>(pool + b.offset);
                for (uint64_t h = 0; h < t.dims[0]; ++h) {
                    for (uint64_t i = 0; i < D; ++i) {
                        std::memcpy(dst + (h * D + uint64_t(perm_[i])) * row, f + (h * D + i) * row, row * 4);
                    }
                }
                break;
            }
            case IoRole::Logits: {
                const uint64_t V = t.dims.back();
                if (all) {
                    std::memcpy(s.logits_out, f, uint64_t(s.n_tokens) * V * 4);
                } else if (s.all_logits) {  // decode with every row wanted: its one row
                    std::memcpy(s.logits_out, f, V * 4);
                } else {
                    std::memcpy(pool + lw.logits, f, V * 4);
                }
                break;
            }
            default:
                fail(EI_ERR_INTERNAL, dev_ + ": no host output for io role " + io_role_name(b.role));
        }
    }

    Scenario sc_;
    bool float_cache_ = false;
    std::unique_ptr<GraphExecutor> exec_;
    std::string dev_;  // the device's name, for messages
    bool prepared_ = false;
    std::shared_ptr<WeightStore> weights_;  // the model's (WeightCache)
    DeviceGraphs graphs_src_;
    std::map<std::string, Lowered> graphs_;
    std::vector<int32_t> perm_;  // the head layout (lower.h head_permutation)
    int32_t rot_ = 0;
    std::vector<uint8_t> mask_row_;
    NodeObserver* observer_ = nullptr;
};

// The emulator as an executor: one Emulator (its arena holds the io buffers) per graph.
class EmulatorExecutor final : public GraphExecutor {
public:
    const char* name() const override { return "htp-emulator"; }
    void prepare(const std::vector<const QnnGraph*>& graphs) override {
        for (const QnnGraph* g : graphs) emus_[g->name] = std::make_unique<Emulator>(*g);
    }
    uint8_t* io_buffer(const std::string& graph, uint32_t tensor) override { return emu(graph).data(tensor); }
    void execute(const std::string& graph, NodeObserver* observer) override { emu(graph).run(observer); }
    bool observes_nodes() const override { return true; }

private:
    Emulator& emu(const std::string& graph) {
        auto it = emus_.find(graph);
        if (it == emus_.end()) fail(EI_ERR_INTERNAL, "htp-emulator: no graph '" + graph + "'");
        return *it->second;
    }
    std::map<std::string, std::unique_ptr<Emulator>> emus_;
};

}  // namespace

std::unique_ptr<GraphExecutor> make_emulator_executor() { return std::make_unique<EmulatorExecutor>(); }

std::unique_ptr<Backend> make_lowered_backend(const Scenario& scenario, std::unique_ptr<GraphExecutor> executor,
                                              bool float_cache) {
    if (!executor) fail(EI_ERR_INVALID_ARGUMENT, "the lowered backend needs an executor");
    return std::make_unique<LoweredBackend>(scenario, std::move(executor), float_cache);
}

bool set_node_observer(Backend& backend, NodeObserver* observer) {
    auto* b = dynamic_cast<LoweredBackend*>(&backend);
    return b && b->set_observer(observer);
}

const DeviceGraphs* device_graphs(const Backend& backend) {
    auto* b = dynamic_cast<const LoweredBackend*>(&backend);
    return b ? &b->device_graphs() : nullptr;
}

namespace {
const char kModelWeightsKey = 0;  // the WeightCache source key of both objects below
}  // namespace

std::shared_ptr<WeightStore> model_weight_store(WeightCache& cache) {
    return std::static_pointer_cast<WeightStore>(cache.get_object(
        &kModelWeightsKey, "htp-float-weights", [] { return std::static_pointer_cast<void>(std::make_shared<WeightStore>()); }));
}

std::shared_ptr<QuantWeightCache> model_quant_weights(WeightCache& cache) {
    return std::static_pointer_cast<QuantWeightCache>(cache.get_object(&kModelWeightsKey, "htp-quantized-weights", [] {
        return std::static_pointer_cast<void>(std::make_shared<QuantWeightCache>());
    }));
}

}  // namespace ei::htp
