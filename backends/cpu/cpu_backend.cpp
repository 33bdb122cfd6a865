// The CPU backend: executes every op of a planned graph over the pool, with the weight
// kernels of quants.h (scalar / AVX2 / NEON, picked at run time) and the elementwise and
// attention kernels of ops.h, split across a thread pool.
#include "cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "error.h"
#include "ops.h"
#include "quants.h"
#include "thread_pool.h"

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
    explicit CpuBackend(int n_threads) : pool_(n_threads) {}

    const char* name() const override { return "cpu"; }
    uint64_t pool_alignment() const override { return 64; }

    bool supports(const Op& op) const override {
        auto is_f32_weight = [](const TensorRef& r) { return !r.valid() || r.type == GgmlType::F32; };
        switch (op.kind) {
            case OpKind::GetRows:
            case OpKind::MatMul: return kernels_for(op.src0.type) != nullptr && is_f32_weight(op.src2);
            case OpKind::RmsNorm: return is_f32_weight(op.src1);
            case OpKind::KvStore:
            case OpKind::Attention: return op.src1.type == GgmlType::F16 || op.src1.type == GgmlType::F32;
            case OpKind::Rope:
            case OpKind::SwiGlu: return true;
        }
        return false;
    }

    void compute(const Graph& g, const StepParams& step, uint8_t* pool) override {
        if (step.n_tokens < 1 || step.n_tokens > g.max_tokens) {
            fail(EI_ERR_INVALID_ARGUMENT, "step of " + std::to_string(step.n_tokens) + " tokens for graph '" + g.name +
                                              "' of at most " + std::to_string(g.max_tokens));
        }
        for (const Op& op : g.ops) {
            switch (op.kind) {
                case OpKind::GetRows: get_rows(op, step, pool); break;
                case OpKind::RmsNorm: rms_norm(op, step, pool); break;
                case OpKind::MatMul: mat_mul(op, step, pool); break;
                case OpKind::Rope: rope(op, step, pool); break;
                case OpKind::KvStore: kv_store(op, step, pool); break;
                case OpKind::Attention: attention(op, step, pool); break;
                case OpKind::SwiGlu: swiglu(op, step, pool); break;
            }
        }
    }

private:
    void get_rows(const Op& op, const StepParams& s, uint8_t* pool) {
        const TypeKernels* k = kernels_for(op.src0.type);
        const int32_t* ids = at<int32_t>(pool, op.src1, 0);
        for (int32_t t = 0; t < s.n_tokens; ++t) {
            k->to_float(weight_row(op.src0, ids[t]), at<float>(pool, op.dst, t), op.src0.cols);
        }
    }

    void rms_norm(const Op& op, const StepParams& s, uint8_t* pool) {
        const float* w = static_cast<const float*>(op.src1.data);
        for (int32_t t = 0; t < s.n_tokens; ++t) {
            ops::rms_norm(at<float>(pool, op.src0, t), w, at<float>(pool, op.dst, t), op.dst.cols, op.eps);
        }
    }

    void mat_mul(const Op& op, const StepParams& s, uint8_t* pool) {
        const TypeKernels* k = kernels_for(op.src0.type);
        const int64_t K = op.src0.cols, N = op.src0.rows;
        // Rows of the input that matter: all valid rows, or just the last for the head.
        const bool head_last_only = op.output_head && !s.all_logits;
        const int32_t first = head_last_only ? s.n_tokens - 1 : 0;
        const int32_t n_rows = head_last_only ? 1 : s.n_tokens;

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
        // Blocks of weight rows, each dotted with every activation row while it is in cache.
        constexpr int64_t kRowBlock = 16;
        const int64_t n_blocks = (N + kRowBlock - 1) / kRowBlock;
        const bool acc = op.accumulate;
        pool_.run(n_blocks, [&](int64_t b, int64_t e, int) {
            for (int64_t blk = b; blk < e; ++blk) {
                const int64_t r0 = blk * kRowBlock, r1 = std::min(N, r0 + kRowBlock);
                for (int32_t t = 0; t < n_rows; ++t) {
                    float* y = dst_row(t);
                    const uint8_t* a = act + t * act_stride;
                    for (int64_t r = r0; r < r1; ++r) {
                        float v;
                        k->vec_dot(K, &v, weight_row(op.src0, r), a);
                        if (bias) v += bias[r];
                        y[r] = acc ? y[r] + v : v;
                    }
                }
            }
        });
    }

    void rope(const Op& op, const StepParams& s, uint8_t* pool) {
        for (int32_t t = 0; t < s.n_tokens; ++t) {
            ops::rope(at<float>(pool, op.dst, t), op.n_head, op.head_dim, op.n_rot, s.pos0 + t, op.rope_base,
                      op.rope_mode == 1);
        }
    }

    void kv_store(const Op& op, const StepParams& s, uint8_t* pool) {
        const int64_t n = op.src0.cols;
        for (int32_t t = 0; t < s.n_tokens; ++t) {
            const int64_t pos = s.pos0 + t;
            if (pos >= op.dst.rows) fail(EI_ERR_STATE, "KV cache full (" + std::to_string(op.dst.rows) + " positions)");
            const float* k = at<float>(pool, op.src0, t);
            const float* v = at<float>(pool, op.src1, t);
            if (op.dst.type == GgmlType::F16) {
                ops::f32_to_f16_row(k, at<uint16_t>(pool, op.dst, pos), n);
                ops::f32_to_f16_row(v, at<uint16_t>(pool, op.src2, pos), n);
            } else {
                std::memcpy(at<float>(pool, op.dst, pos), k, n * sizeof(float));
                std::memcpy(at<float>(pool, op.src2, pos), v, n * sizeof(float));
            }
        }
    }

    void attention(const Op& op, const StepParams& s, uint8_t* pool) {
        const int32_t H = op.n_head, D = op.head_dim, group = op.n_head / op.n_head_kv;
        const float scale = 1.0f / std::sqrt(static_cast<float>(D));
        const int64_t n_tasks = int64_t{s.n_tokens} * H;
        pool_.run(n_tasks, [&](int64_t b, int64_t e, int tid) {
            float* scores = reinterpret_cast<float*>(pool + op.aux.offset) + static_cast<int64_t>(tid) * op.aux.cols;
            for (int64_t task = b; task < e; ++task) {
                const int32_t t = static_cast<int32_t>(task / H), h = static_cast<int32_t>(task % H);
                const int32_t hk = h / group;
                const int32_t n_kv = s.pos0 + t + 1;  // causal: positions 0..pos0+t
                ops::AttentionHead a;
                a.q = at<float>(pool, op.src0, t) + int64_t{h} * D;
                a.k = at<uint8_t>(pool, op.src1, 0) + static_cast<uint64_t>(hk) * D * (op.src1.type == GgmlType::F16 ? 2 : 4);
                a.v = at<uint8_t>(pool, op.src2, 0) + static_cast<uint64_t>(hk) * D * (op.src2.type == GgmlType::F16 ? 2 : 4);
                a.kv_stride = op.src1.row_bytes;
                a.f16 = op.src1.type == GgmlType::F16;
                a.head_dim = D;
                a.n_kv = n_kv;
                a.scale = scale;
                a.scores = scores;
                a.out = at<float>(pool, op.dst, t) + int64_t{h} * D;
                ops::attention_head(a);
            }
        });
    }

    void swiglu(const Op& op, const StepParams& s, uint8_t* pool) {
        for (int32_t t = 0; t < s.n_tokens; ++t) {
            ops::swiglu(at<float>(pool, op.dst, t), at<float>(pool, op.src0, t), op.dst.cols);
        }
    }

    ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace ei::cpu
