// The CPU backend: executes every op of a planned graph over the pool, with the weight
// kernels of quants.h (scalar / AVX2 / NEON, picked at run time) and the elementwise and
// attention kernels of ops.h, split across a thread pool.
#include "cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "cpu_limits.h"
#include "error.h"
#include "ops.h"
#include "packed_gemm.h"
#include "quants.h"
#include "thread_pool.h"
#include "weight_cache.h"

namespace ei::cpu {

namespace {

template <typename T>
T* at(uint8_t* pool, const TensorRef& r, int64_t row) {
    return reinterpret_cast<T*>(pool + r.offset + static_cast<uint64_t>(row) * r.row_bytes);
}
const uint8_t* weight_row(const TensorRef& w, int64_t row) {
    return static_cast<const uint8_t*>(w.data) + static_cast<uint64_t>(row) * w.row_bytes;
}

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int n_threads) : pool_(n_threads), profile_(std::getenv("EI_PROFILE") != nullptr) {}

    // EI_PROFILE=1: time per op kind, printed to stderr when the session ends.
    ~CpuBackend() override {
        if (!profile_) return;
        double total = 0;
        for (double t : op_seconds_) total += t;
        std::fprintf(stderr, "cpu backend profile (%d threads):\n", pool_.size());
        for (int k = 0; k < kOpKinds; ++k) {
            if (op_seconds_[k] > 0) {
                std::fprintf(stderr, "  %-18s %9.3f s %5.1f%%\n", op_name(static_cast<OpKind>(k)), op_seconds_[k],
                             100.0 * op_seconds_[k] / total);
            }
        }
    }

    const char* name() const override { return "cpu"; }
    uint64_t pool_alignment() const override { return 64; }

    bool supports(const Op& op) const override { return why_unsupported(op).empty(); }

    // Every matmul weight moves into the model's cache (shared by its sessions) once: repacked
    // where this CPU has a packed GEMM for its type, else copied as it is, so that all weights
    // stream from the cache's huge pages rather than the GGUF's 4 KiB mapped pages. The
    // session keeps a map from each weight to its cached form.
    void prepare(const Graph& g, WeightCache& cache) override {
        for (const Op& op : g.ops) {
            if (op.kind != OpKind::MatMul || cached_.count(op.src0.data)) continue;
            const TensorRef& w = op.src0;
            const PackedGemm* pg = packed_gemm_for(op.src0.type);
            if (!pg) {
                const uint64_t bytes = w.row_bytes * static_cast<uint64_t>(w.rows);
                const uint8_t* src = static_cast<const uint8_t*>(w.data);
                const uint8_t* copy = cache.get(w.data, bytes, "copy", bytes, [&](uint8_t* out) {
                    pool_.run(w.rows, [&](int64_t b, int64_t e, int) {
                        std::memcpy(out + b * w.row_bytes, src + b * w.row_bytes, (e - b) * w.row_bytes);
                    });
                });
                cached_.emplace(w.data, Cached{nullptr, copy});
                continue;
            }
            const int64_t groups = (w.rows + kPackRows - 1) / kPackRows;
            const uint8_t* data =
                cache.get(w.data, w.row_bytes * static_cast<uint64_t>(w.rows), std::string("r16-") + pg->name,
                          pg->packed_size(w.rows, w.cols), [&](uint8_t* out) {
                    pool_.run(groups, [&](int64_t b, int64_t e, int) {
                        pg->pack(static_cast<const uint8_t*>(w.data), w.row_bytes, w.rows, w.cols, b, e, out);
                    });
                });
            cached_.emplace(w.data, Cached{pg, data});
        }
    }

    // The CPU lowering computes on the pool's host memory in place.
    void compute(const Graph& g, const StepParams& step, PoolBuffer& buffer) override {
        uint8_t* pool = buffer.host();
        if (!pool) fail(EI_ERR_INVALID_ARGUMENT, "the CPU backend needs a host-visible pool buffer");
        if (step.n_tokens < 1 || step.n_tokens > g.max_tokens) {
            fail(EI_ERR_INVALID_ARGUMENT, "step of " + std::to_string(step.n_tokens) + " tokens for graph '" + g.name +
                                              "' of at most " + std::to_string(g.max_tokens));
        }
        for (const Op& op : g.ops) {
            const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
            if (step.observer) step.observer->before(g, op, step, pool);
            switch (op.kind) {
                case OpKind::GetRows: get_rows(op, step, pool); break;
                case OpKind::RmsNorm: rms_norm(op, step, pool); break;
                case OpKind::MatMul: mat_mul(op, step, pool); break;
                case OpKind::Rope: rope(op, step, pool); break;
                case OpKind::KvStore: kv_store(op, step, pool); break;
                case OpKind::SegmentAttention: segment_attention(op, step, pool); break;
                case OpKind::MemoryUpdate: memory_update(op, step, pool); break;
                case OpKind::SwiGlu: swiglu(op, step, pool); break;
            }
            if (step.observer) step.observer->after(g, op, step, pool);
            if (profile_) {
                op_seconds_[static_cast<int>(op.kind)] +=
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            }
        }
    }

private:
    void get_rows(const Op& op, const StepParams& s, uint8_t* pool) {
        const TypeKernels* k = kernels_for(op.src0.type);
        const int32_t* ids = at<int32_t>(pool, op.src1, 0);
        each_token(s, [&](int32_t t) { k->to_float(weight_row(op.src0, ids[t]), at<float>(pool, op.dst, t), op.src0.cols); });
    }

    void rms_norm(const Op& op, const StepParams& s, uint8_t* pool) {
        const float* w = static_cast<const float*>(op.src1.data);
        each_token(s, [&](int32_t t) {
            ops::rms_norm(at<float>(pool, op.src0, t), w, at<float>(pool, op.dst, t), op.dst.cols, op.eps);
        });
    }

    void mat_mul(const Op& op, const StepParams& s, uint8_t* pool) {
        const TypeKernels* k = kernels_for(op.src0.type);
        const int64_t K = op.src0.cols, N = op.src0.rows;
        // Rows of the input that matter: all valid rows, or just the last for the head.
        const bool head_last_only = op.output_head && !s.all_logits;
        const int32_t first = head_last_only ? s.n_tokens - 1 : 0;
        const int32_t n_rows = head_last_only ? 1 : s.n_tokens;
        TensorRef w = op.src0;
        if (auto it = cached_.find(w.data); it != cached_.end()) {
            if (it->second.packed) {
                packed_mat_mul(op, s, pool, it->second, first, n_rows);
                return;
            }
            w.data = it->second.data;
        }

        // Convert activations once into the type the weights dot with.
        const uint8_t* act = nullptr;
        uint64_t act_stride = 0;
        if (k->vec_dot_type == GgmlType::F32) {
            act = at<uint8_t>(pool, op.src1, first);
            act_stride = op.src1.row_bytes;
        } else {
            act_stride = row_size(k->vec_dot_type, K);
            uint8_t* q = pool + op.aux.offset;
            pool_.run(n_rows, [&](int64_t b, int64_t e, int) {
                for (int64_t t = b; t < e; ++t) k->from_float(at<float>(pool, op.src1, first + t), q + t * act_stride, K);
            });
            act = q;
        }
        const float* bias = op.src2.valid() ? static_cast<const float*>(op.src2.data) : nullptr;
        auto dst_row = [&](int64_t t) -> float* {
            if (op.output_head && s.all_logits) return s.logits_out + t * N;
            return at<float>(pool, op.dst, t);
        };
        // Blocks of weight rows, each dotted with every activation row while it is in cache;
        // where the type has one, a kernel dots each weight row with 4 activation rows at once.
        constexpr int64_t kRowBlock = 16;
        const int64_t n_blocks = (N + kRowBlock - 1) / kRowBlock;
        const bool acc = op.accumulate;
        const VecDotX4 x4 = vec_dot_x4_for(k->type, k->variant);
        const VecDot2x2 k22 = vec_dot_2x2_for(k->type, k->variant);
        pool_.run(n_blocks, [&](int64_t b, int64_t e, int) {
            for (int64_t blk = b; blk < e; ++blk) {
                const int64_t r0 = blk * kRowBlock, r1 = std::min(N, r0 + kRowBlock);
                auto store = [&](int32_t t, int64_t r, float v) {
                    if (bias) v += bias[r];
                    float* y = dst_row(t);
                    y[r] = acc ? y[r] + v : v;
                };
                int32_t t = 0;
                if (k22) {  // pairs of weight rows x pairs of activation rows
                    for (; t + 2 <= n_rows; t += 2) {
                        int64_t r = r0;
                        for (; r + 2 <= r1; r += 2) {
                            float v[4];
                            k22(K, v, weight_row(w, r), weight_row(w, r + 1), act + t * act_stride,
                                act + (t + 1) * act_stride);
                            store(t, r, v[0]);
                            store(t + 1, r, v[1]);
                            store(t, r + 1, v[2]);
                            store(t + 1, r + 1, v[3]);
                        }
                        for (; r < r1; ++r) {
                            for (int32_t i = 0; i < 2; ++i) {
                                float v;
                                k->vec_dot(K, &v, weight_row(w, r), act + (t + i) * act_stride);
                                store(t + i, r, v);
                            }
                        }
                    }
                }
                if (x4) {
                    for (; t + 4 <= n_rows; t += 4) {
                        for (int64_t r = r0; r < r1; ++r) {
                            float v[4];
                            x4(K, v, weight_row(w, r), act + t * act_stride, act_stride);
                            for (int i = 0; i < 4; ++i) store(t + i, r, v[i]);
                        }
                    }
                }
                for (; t < n_rows; ++t) {
                    const uint8_t* a = act + t * act_stride;
                    for (int64_t r = r0; r < r1; ++r) {
                        float v;
                        k->vec_dot(K, &v, weight_row(w, r), a);
                        store(t, r, v);
                    }
                }
            }
        });
    }

    // A weight's form in the model's cache: packed for `packed`'s GEMM, or (null) a plain copy.
    struct Cached {
        const PackedGemm* packed;
        const uint8_t* data;
    };

    void packed_mat_mul(const Op& op, const StepParams& s, uint8_t* pool, const Cached& p, int32_t first,
                        int32_t n_rows) {
        const PackedGemm& pg = *p.packed;
        const int64_t K = op.src0.cols, N = op.src0.rows;
        const uint64_t act_stride = pg.act_row_size(K);
        uint8_t* act = pool + op.aux.offset;
        pool_.run(n_rows, [&](int64_t b, int64_t e, int) {
            for (int64_t t = b; t < e; ++t) pg.prepare_act(at<float>(pool, op.src1, first + t), K, act + t * act_stride);
        });
        const bool to_logits = op.output_head && s.all_logits;
        float* y = to_logits ? s.logits_out : at<float>(pool, op.dst, 0);
        const uint64_t y_stride = to_logits ? static_cast<uint64_t>(N) : op.dst.row_bytes / sizeof(float);
        const float* bias = op.src2.valid() ? static_cast<const float*>(op.src2.data) : nullptr;
        pool_.run((N + kPackRows - 1) / kPackRows, [&](int64_t b, int64_t e, int) {
            pg.gemm(p.data, N, K, b, e, act, act_stride, n_rows, y, y_stride, bias, op.accumulate);
        });
    }

    void rope(const Op& op, const StepParams& s, uint8_t* pool) {
        each_token(s, [&](int32_t t) {
            ops::rope(at<float>(pool, op.src0, t), at<float>(pool, op.dst, t), op.n_head, op.head_dim, op.n_rot,
                      s.pos0 + t, op.rope_base, op.rope_mode == 1);
        });
    }

    static int64_t slot_of(const Op& op, int64_t pos) { return kv_slot(pos, op.n_sink, op.ring); }

    void kv_store(const Op& op, const StepParams& s, uint8_t* pool) {
        const int64_t n = op.src0.cols;
        each_token(s, [&](int32_t t) {
            const int64_t slot = slot_of(op, s.pos0 + t);
            const float* k = at<float>(pool, op.src0, t);
            const float* v = at<float>(pool, op.src1, t);
            if (op.dst.type == GgmlType::F16) {
                ops::f32_to_f16_row(k, at<uint16_t>(pool, op.dst, slot), n);
                ops::f32_to_f16_row(v, at<uint16_t>(pool, op.src2, slot), n);
            } else {
                std::memcpy(at<float>(pool, op.dst, slot), k, n * sizeof(float));
                std::memcpy(at<float>(pool, op.src2, slot), v, n * sizeof(float));
            }
        });
    }

    // The cached rows the queries of a block attend, in position order: the sink, then
    // the ring from its oldest position up to the block's last query (one span, or two
    // where the ring wraps). Returns how many rows of that list query position qp sees.
    static int spans_for(const Op& op, const StepParams& s, int64_t last_qp, ops::KvSpan* spans, int64_t* sink_rows) {
        int n = 0;
        const int64_t sink = std::min<int64_t>(op.n_sink, last_qp + 1);
        *sink_rows = sink;
        if (sink > 0) spans[n++] = {0, sink};
        if (last_qp >= s.ring_start) {
            const int64_t count = last_qp - s.ring_start + 1, first = slot_of(op, s.ring_start);
            const int64_t end = int64_t{op.n_sink} + op.ring;
            if (first + count <= end) {
                spans[n++] = {first, count};
            } else {
                spans[n++] = {first, end - first};
                spans[n++] = {op.n_sink, count - (end - first)};
            }
        }
        return n;
    }

    void segment_attention(const Op& op, const StepParams& s, uint8_t* pool) {
        const int32_t H = op.n_head, D = op.head_dim, group = op.n_head / op.n_head_kv;
        const float scale = 1.0f / std::sqrt(static_cast<float>(D));
        const bool f16 = op.src1.type == GgmlType::F16;
        const uint64_t elem = f16 ? 2 : 4;
        const bool use_memory = s.mem_tokens > 0 && op.gate != 0;
        // Sinks behind the window: a query at qp sees sink key j (stored rotated for j) as if
        // it sat at j + shift, i.e. it scores the sink with itself rotated for qp - shift
        // (RoPE depends on the difference only). Nothing folded: shift 0, the plain path.
        const int64_t shift = op.sinks_follow && op.n_sink > 0 ? s.ring_start - op.n_sink : 0;
        const ops::Primitives& prim = ops::primitives();
        // Tasks: blocks of queries on one KV head, which share every key and value row they
        // load. When the step's tokens times a KV head's query heads fit one block (decode)
        // and the KV heads alone keep every thread busy, a block is all of them (GQA: the K/V
        // rows are read once for the group, not once per query head); else it is up to
        // kMaxQueries tokens of one query head. Each query's arithmetic is the same in either.
        const bool by_kv_head = int64_t{s.n_tokens} * group <= ops::kMaxQueries && op.n_head_kv >= pool_.size();
        const int32_t heads_per_task = by_kv_head ? group : 1;
        const int32_t tokens_per_block = by_kv_head ? s.n_tokens : ops::kMaxQueries;
        const int64_t blocks = (s.n_tokens + tokens_per_block - 1) / tokens_per_block;
        const int64_t tasks_per_block = H / heads_per_task;
        pool_.run(blocks * tasks_per_block, [&](int64_t b, int64_t e, int tid) {
            float* scores = reinterpret_cast<float*>(pool + op.aux.offset) +
                            static_cast<int64_t>(tid) * ops::kMaxQueries * op.aux.cols;
            alignas(64) float q_sink[ops::kMaxQueries * kMaxHeadDim];  // used when shift > 0
            for (int64_t task = b; task < e; ++task) {
                const int32_t blk = static_cast<int32_t>(task / tasks_per_block);
                const int32_t h0 = static_cast<int32_t>(task % tasks_per_block) * heads_per_task;
                const int32_t hk = h0 / group;
                const int32_t t0 = blk * tokens_per_block;
                const int32_t nt = std::min<int32_t>(tokens_per_block, s.n_tokens - t0);
                ops::AttentionBlock a;
                a.nq = nt * heads_per_task;
                int64_t sink_rows;
                a.n_spans = spans_for(op, s, s.pos0 + t0 + nt - 1, a.spans, &sink_rows);
                for (int i = 0; i < a.nq; ++i) {
                    const int32_t t = t0 + i / heads_per_task, h = h0 + i % heads_per_task;
                    const int64_t qp = s.pos0 + t;
                    a.q[i] = at<float>(pool, op.src0, t) + int64_t{h} * D;
                    a.out[i] = at<float>(pool, op.dst, t) + int64_t{h} * D;
                    // Rows are in position order: the query sees the sink rows up to its
                    // position and the ring rows from ring_start up to its position.
                    a.visible[i] = qp < op.n_sink ? qp + 1 : sink_rows + std::max<int64_t>(0, qp - s.ring_start + 1);
                    if (use_memory) {
                        a.q_mem[i] = op.memory_rope ? a.q[i] : at<float>(pool, op.q_nope, t) + int64_t{h} * D;
                        const float* gw = static_cast<const float*>(op.gate_w.data);
                        a.gate_w[i] = op.gate == 1 ? gw + h : gw + int64_t{h} * 2 * D;
                        a.gate_b[i] = op.gate_b.valid() ? static_cast<const float*>(op.gate_b.data)[h] : 0.0f;
                    }
                    if (shift > 0 && sink_rows > 0) {
                        float* qs = q_sink + int64_t{i} * D;
                        ops::rope(at<float>(pool, op.q_nope, t) + int64_t{h} * D, qs, 1, D, op.n_rot, qp - shift,
                                  op.rope_base, op.rope_mode == 1);
                        a.q_sink[i] = qs;
                    }
                }
                a.sink_query = shift > 0 && sink_rows > 0;
                a.k = at<uint8_t>(pool, op.src1, 0) + static_cast<uint64_t>(hk) * D * elem;
                a.v = at<uint8_t>(pool, op.src2, 0) + static_cast<uint64_t>(hk) * D * elem;
                a.kv_stride = op.src1.row_bytes;
                a.f16 = f16;
                a.head_dim = D;
                a.scale = scale;
                a.scores = scores;
                if (use_memory) {
                    a.mem_m = at<float>(pool, op.mem_m, hk);
                    a.mem_z = at<float>(pool, op.mem_z, hk);
                    a.gate = op.gate;
                }
                ops::segment_attention(a, prim);
            }
        });
    }

    // Folds the L oldest ring tokens of one layer into its memory, one KV head per task.
    void memory_update(const Op& op, const StepParams& s, uint8_t* pool) {
        const int32_t D = op.head_dim;
        const int64_t n = s.n_tokens;  // the fold graph always folds L tokens
        const bool f16 = op.src1.type == GgmlType::F16;
        const uint64_t elem = f16 ? 2 : 4;
        const ops::Primitives& prim = ops::primitives();
        const int64_t per_thread = 2 * int64_t{s.n_tokens} * D + D;
        pool_.run(op.n_head_kv, [&](int64_t b, int64_t e, int tid) {
            float* sk = reinterpret_cast<float*>(pool + op.aux.offset) + tid * per_thread;
            float* v = sk + n * D;
            float* r = v + n * D;
            for (int64_t hk = b; hk < e; ++hk) {
                for (int64_t i = 0; i < n; ++i) {
                    const int64_t pos = s.fold_start + i, slot = slot_of(op, pos);
                    const uint8_t* kr = at<uint8_t>(pool, op.src1, slot) + hk * D * elem;
                    const uint8_t* vr = at<uint8_t>(pool, op.src2, slot) + hk * D * elem;
                    float* ki = sk + i * D;
                    float* vi = v + i * D;
                    for (int32_t j = 0; j < D; ++j) {
                        ki[j] = f16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(kr)[j]) : reinterpret_cast<const float*>(kr)[j];
                        vi[j] = f16 ? fp16_to_fp32(reinterpret_cast<const uint16_t*>(vr)[j]) : reinterpret_cast<const float*>(vr)[j];
                    }
                    // The cache holds keys after RoPE; NoPE memory wants them before it.
                    if (!op.memory_rope) ops::rope(ki, ki, 1, D, op.n_rot, -pos, op.rope_base, op.rope_mode == 1);
                    for (int32_t j = 0; j < D; ++j) ki[j] = ops::sigma(ki[j]);
                }
                ops::memory_update(at<float>(pool, op.dst, hk), at<float>(pool, op.mem_z, hk), sk, v, n, D,
                                   op.delta_rule, r, prim);
            }
        });
    }

    void swiglu(const Op& op, const StepParams& s, uint8_t* pool) {
        each_token(s, [&](int32_t t) { ops::swiglu(at<float>(pool, op.dst, t), at<float>(pool, op.src0, t), op.dst.cols); });
    }

    // Row-wise ops: tokens are independent, so splitting them over the threads changes no bit.
    template <typename F>
    void each_token(const StepParams& s, F&& fn) {
        pool_.run(s.n_tokens, [&](int64_t b, int64_t e, int) {
            for (int64_t t = b; t < e; ++t) fn(static_cast<int32_t>(t));
        });
    }

    ThreadPool pool_;
    std::unordered_map<const void*, Cached> cached_;  // filled by prepare(), read-only after
    static constexpr int kOpKinds = static_cast<int>(OpKind::SwiGlu) + 1;
    bool profile_;
    double op_seconds_[kOpKinds] = {};
};

}  // namespace

// The same predicates (cpu_limits.h) decide what the model loader accepts.
std::string why_unsupported(const Op& op) {
    auto vector_ok = [](const TensorRef& r) {
        return !r.valid() || (vector_supported(r.type) && weight_aligned(r.type, r.data));
    };
    auto weight_ok = [](const TensorRef& r) { return weight_supported(r.type, r.cols) && weight_aligned(r.type, r.data); };
    auto weight = [](const TensorRef& r) {
        return std::string("no CPU kernel for ") + type_traits(r.type).name + " weights of " + std::to_string(r.cols) +
               " columns at this alignment";
    };
    auto vec = [](const TensorRef& r) {
        return std::string("no CPU kernel for a ") + type_traits(r.type).name + " norm weight or bias at this alignment";
    };
    auto cache = [](const TensorRef& r) { return std::string("no CPU kernel for a ") + type_traits(r.type).name + " KV cache"; };
    auto head = [](const Op& o) {
        return "head size " + std::to_string(o.head_dim) + " (rotated " + std::to_string(o.n_rot) +
               ") is beyond the CPU kernels' limits";
    };
    switch (op.kind) {
        case OpKind::GetRows: return weight_ok(op.src0) ? "" : weight(op.src0);
        case OpKind::MatMul:
            if (!weight_ok(op.src0)) return weight(op.src0);
            return vector_ok(op.src2) ? "" : vec(op.src2);
        case OpKind::RmsNorm: return vector_ok(op.src1) ? "" : vec(op.src1);
        case OpKind::KvStore: return cache_supported(op.dst.type) ? "" : cache(op.dst);
        case OpKind::SegmentAttention:
        case OpKind::MemoryUpdate:
            if (!cache_supported(op.src1.type)) return cache(op.src1);
            if (!head_supported(op.head_dim, op.n_rot)) return head(op);
            if (!vector_ok(op.gate_w)) return vec(op.gate_w);
            return vector_ok(op.gate_b) ? "" : vec(op.gate_b);
        case OpKind::Rope: return head_supported(op.head_dim, op.n_rot) ? "" : head(op);
        case OpKind::SwiGlu: return "";
    }
    return "unknown op kind";
}

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace ei::cpu
