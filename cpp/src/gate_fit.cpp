#include "gate_fit.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "cpu/ops.h"
#include "cpu/quants.h"
#include "error.h"
#include "session.h"

namespace ei {

namespace {

namespace ops = cpu::ops;

template <typename T>
const T* row_of(const uint8_t* pool, const TensorRef& r, int64_t row) {
    return reinterpret_cast<const T*>(pool + r.offset + static_cast<uint64_t>(row) * r.row_bytes);
}

// Watches the teacher's SegmentAttention ops. After each one, the cache holds this layer's
// K/V up to the segment's last position (at slots = positions: the teacher never wraps),
// src0 / q_nope its queries and dst the teacher's output: all the route needs to compute
// A_local and A_mem for the segment, with the route's fold schedule replayed per layer.
class Collector final : public OpObserver {
public:
    Collector(const Plan& route, const Scenario& teacher, const GateSampleFn& fn)
        : sc_(route.scenario), teacher_(teacher), hp_(route.model->hparams()), fn_(fn),
          prim_(ops::primitives()) {
        const int64_t D = hp_.head_dim;
        mem_m_.assign(static_cast<size_t>(hp_.n_layer) * hp_.n_head_kv * D * D, 0.0f);
        mem_z_.assign(static_cast<size_t>(hp_.n_layer) * hp_.n_head_kv * D, 0.0f);
        ring_start_.assign(hp_.n_layer, 0);
        folded_.assign(hp_.n_layer, 0);
        fold_k_.resize(static_cast<size_t>(sc_.n_batch) * D);
        fold_v_.resize(static_cast<size_t>(sc_.n_batch) * D);
        fold_r_.resize(D);
        scores_.resize(static_cast<size_t>(ops::kMaxQueries) * (int64_t{sc_.n_sink} + sc_.n_window + sc_.n_batch));
        local_.resize(static_cast<size_t>(ops::kMaxQueries) * D);
        q_sink_.resize(static_cast<size_t>(ops::kMaxQueries) * D);
        mem_.resize(D);
    }

    void begin_sequence(const float* weights) {
        std::fill(mem_m_.begin(), mem_m_.end(), 0.0f);
        std::fill(mem_z_.begin(), mem_z_.end(), 0.0f);
        std::fill(ring_start_.begin(), ring_start_.end(), int64_t{sc_.n_sink});
        std::fill(folded_.begin(), folded_.end(), 0);
        weights_ = weights;
    }

    void after(const Graph&, const Op& op, const StepParams& s, const uint8_t* pool) override {
        if (op.kind != OpKind::SegmentAttention) return;
        const int32_t l = op.layer;
        // The route's fold rule (Session::fold_if_needed), replayed: before a segment that
        // would overflow the ring of W + L, its oldest L tokens go into memory.
        if (s.pos0 + s.n_tokens - ring_start_[l] > int64_t{sc_.n_window} + sc_.n_batch) {
            fold(op, l, pool);
            ring_start_[l] += sc_.n_batch;
            folded_[l] += sc_.n_batch;
        }
        if (folded_[l] == 0) return;  // memory empty: the route uses no gate here
        score(op, s, l, pool);
    }

private:
    bool f16(const Op& op) const { return op.src1.type == GgmlType::F16; }

    void read_row(const Op& op, const TensorRef& cache, int64_t pos, int32_t hk, float* out, const uint8_t* pool) const {
        const int32_t D = hp_.head_dim;
        const uint8_t* r = row_of<uint8_t>(pool, cache, teacher_.slot_of(pos)) + static_cast<uint64_t>(hk) * D * (f16(op) ? 2 : 4);
        for (int32_t j = 0; j < D; ++j) {
            out[j] = f16(op) ? cpu::fp16_to_fp32(reinterpret_cast<const uint16_t*>(r)[j]) : reinterpret_cast<const float*>(r)[j];
        }
    }

    // The route's MemoryUpdate of positions [ring_start, ring_start + L) of layer l: the same
    // cache rows (post-RoPE, in the cache's precision), rotated back for NoPE memory, through
    // the same kernel.
    void fold(const Op& op, int32_t l, const uint8_t* pool) {
        const int32_t D = hp_.head_dim, L = sc_.n_batch;
        for (int32_t hk = 0; hk < hp_.n_head_kv; ++hk) {
            for (int32_t i = 0; i < L; ++i) {
                const int64_t pos = ring_start_[l] + i;
                float* k = fold_k_.data() + int64_t{i} * D;
                read_row(op, op.src1, pos, hk, k, pool);
                read_row(op, op.src2, pos, hk, fold_v_.data() + int64_t{i} * D, pool);
                if (!sc_.memory_rope) ops::rope(k, k, 1, D, hp_.n_rot, -pos, hp_.rope_base, hp_.rope_mode == RopeMode::Halves);
                for (int32_t j = 0; j < D; ++j) k[j] = ops::sigma(k[j]);
            }
            ops::memory_update(m_of(l, hk), z_of(l, hk), fold_k_.data(), fold_v_.data(), L, D,
                               sc_.rule == MemoryRule::Delta, fold_r_.data(), prim_);
        }
    }

    float* m_of(int32_t l, int32_t hk) {
        return mem_m_.data() + (static_cast<int64_t>(l) * hp_.n_head_kv + hk) * hp_.head_dim * hp_.head_dim;
    }
    float* z_of(int32_t l, int32_t hk) {
        return mem_z_.data() + (static_cast<int64_t>(l) * hp_.n_head_kv + hk) * hp_.head_dim;
    }

    void score(const Op& op, const StepParams& s, int32_t l, const uint8_t* pool) {
        const int32_t H = hp_.n_head, D = hp_.head_dim, group = hp_.n_head / hp_.n_head_kv;
        const int64_t S = sc_.n_sink, ring_start = ring_start_[l];
        const bool is_f16 = f16(op);
        const uint64_t elem = is_f16 ? 2 : 4;
        for (int32_t h = 0; h < H; ++h) {
            const int32_t hk = h / group;
            for (int32_t t0 = 0; t0 < s.n_tokens; t0 += ops::kMaxQueries) {
                const int nq = std::min<int32_t>(ops::kMaxQueries, s.n_tokens - t0);
                // A_local: the route's kernel with the route's list (sink, then the ring
                // from ring_start), gate off. Per query its arithmetic does not depend on
                // how the list is split into spans, so the teacher's unwrapped slots give
                // the route's bits.
                ops::AttentionBlock a;
                a.nq = nq;
                const int64_t last = s.pos0 + t0 + nq - 1;
                if (S > 0) a.spans[a.n_spans++] = {0, S};
                a.spans[a.n_spans++] = {teacher_.slot_of(ring_start), last - ring_start + 1};
                // Sinks behind the window (the route's default): the route scores the sink
                // with each query rotated for its position minus the folded tokens.
                const int64_t shift = sc_.sinks_follow && S > 0 ? ring_start - S : 0;
                for (int i = 0; i < nq; ++i) {
                    a.q[i] = row_of<float>(pool, op.src0, t0 + i) + int64_t{h} * D;
                    a.out[i] = local_.data() + int64_t{i} * D;
                    a.visible[i] = S + (s.pos0 + t0 + i - ring_start + 1);
                    if (shift > 0) {
                        float* qs = q_sink_.data() + int64_t{i} * D;
                        ops::rope(row_of<float>(pool, op.q_nope, t0 + i) + int64_t{h} * D, qs, 1, D, op.n_rot,
                                  s.pos0 + t0 + i - shift, op.rope_base, op.rope_mode == 1);
                        a.q_sink[i] = qs;
                    }
                }
                a.sink_query = shift > 0;
                a.k = row_of<uint8_t>(pool, op.src1, 0) + static_cast<uint64_t>(hk) * D * elem;
                a.v = row_of<uint8_t>(pool, op.src2, 0) + static_cast<uint64_t>(hk) * D * elem;
                a.kv_stride = op.src1.row_bytes;
                a.f16 = is_f16;
                a.head_dim = D;
                a.scale = 1.0f / std::sqrt(static_cast<float>(D));
                a.scores = scores_.data();
                ops::segment_attention(a, prim_);
                for (int i = 0; i < nq; ++i) {
                    const int64_t t = t0 + i, pos = s.pos0 + t;
                    const float* q = sc_.memory_rope ? row_of<float>(pool, op.src0, t) : row_of<float>(pool, op.q_nope, t);
                    retrieve(q + int64_t{h} * D, m_of(l, hk), z_of(l, hk));
                    GateSample g;
                    g.layer = l;
                    g.head = h;
                    g.pos = pos;
                    g.weight = weights_ ? weights_[pos] : 1.0f;
                    g.dim = D;
                    g.local = a.out[i];
                    g.mem = mem_.data();
                    g.full = row_of<float>(pool, op.dst, t) + int64_t{h} * D;
                    fn_(g);
                }
            }
        }
    }

    // A_mem = sigma(q) M / (sigma(q) z + eps), in the segment attention kernel's order.
    void retrieve(const float* q, const float* M, const float* z) {
        const int32_t D = hp_.head_dim;
        alignas(64) float sq[cpu::kMaxHeadDim];
        for (int32_t c = 0; c < D; ++c) sq[c] = ops::sigma(q[c]);
        float den;
        prim_.dot_f32(D, &den, sq, z);
        std::fill(mem_.begin(), mem_.end(), 0.0f);
        for (int32_t c = 0; c < D; ++c) prim_.axpy_f32(D, sq[c], M + int64_t{c} * D, mem_.data());
        const float inv = 1.0f / (den + ops::kMemoryEps);
        for (int32_t c = 0; c < D; ++c) mem_[c] *= inv;
    }

    const Scenario& sc_;
    const Scenario& teacher_;
    const HParams& hp_;
    const GateSampleFn& fn_;
    const ops::Primitives& prim_;
    const float* weights_ = nullptr;
    std::vector<float> mem_m_, mem_z_;
    std::vector<int64_t> ring_start_, folded_;
    std::vector<float> fold_k_, fold_v_, fold_r_, scores_, local_, mem_;
    std::vector<float> q_sink_;  // queries rotated for the sink (sinks behind the window)
};

void check_calibration(const Plan& route, const GateCalibration& cal) {
    const Scenario& sc = route.scenario;
    auto bad = [](const std::string& m) { fail(EI_ERR_INVALID_ARGUMENT, "gate fit: " + m); };
    if (!sc.memory) bad("the scenario has memory off: there is no memory to gate");
    if (cal.n_seqs <= 0) bad("no calibration sequences");
    if (!cal.tokens || !cal.lengths) bad("null tokens or lengths");
    int64_t offset = 0;
    for (int32_t i = 0; i < cal.n_seqs; ++i) {
        const int64_t n = cal.lengths[i];
        if (n <= sc.full_capacity()) {
            bad("calibration sequence " + std::to_string(i) + " has " + std::to_string(n) +
                " tokens, not more than S + W = " + std::to_string(sc.full_capacity()) +
                ": the route would never fold any of it into memory");
        }
        if (n > (int64_t{1} << 24)) bad("calibration sequence " + std::to_string(i) + " exceeds 16M tokens");
        if (cal.weights) {
            for (int64_t p = 0; p < n; ++p) {
                const float w = cal.weights[offset + p];
                if (!(w >= 0.0f) || !std::isfinite(w)) {
                    bad("weight " + std::to_string(w) + " at position " + std::to_string(p) + " of sequence " +
                        std::to_string(i) + " is not a finite number >= 0");
                }
            }
        }
        offset += n;
    }
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Solves (A + lambda D) x = -g in place of g for a symmetric positive semi-definite A
// (upper triangle filled), D = diag(A) + a small floor: Levenberg-Marquardt damping that is
// scale-free per feature. Raises lambda until the Cholesky factor exists.
std::vector<double> damped_step(const std::vector<double>& A, const std::vector<double>& g, int64_t P, double lambda) {
    double tr = 0;
    for (int64_t i = 0; i < P; ++i) tr += A[i * P + i];
    const double floor = 1e-12 * std::max(tr / static_cast<double>(P), 1e-300);
    for (int tries = 0; tries < 30; ++tries, lambda *= 10) {
        std::vector<double> Lc(static_cast<size_t>(P * P), 0.0);
        bool ok = true;
        for (int64_t i = 0; i < P && ok; ++i) {
            for (int64_t j = 0; j <= i; ++j) {
                double sum = A[j * P + i];  // upper triangle: (j, i) with j <= i
                if (i == j) sum += lambda * (A[i * P + i] + floor);
                for (int64_t k = 0; k < j; ++k) sum -= Lc[i * P + k] * Lc[j * P + k];
                if (i == j) {
                    if (!(sum > 0)) {
                        ok = false;
                        break;
                    }
                    Lc[i * P + i] = std::sqrt(sum);
                } else {
                    Lc[i * P + j] = sum / Lc[j * P + j];
                }
            }
        }
        if (!ok) continue;
        std::vector<double> x(static_cast<size_t>(P));
        for (int64_t i = 0; i < P; ++i) {  // L y = -g
            double sum = -g[i];
            for (int64_t k = 0; k < i; ++k) sum -= Lc[i * P + k] * x[k];
            x[i] = sum / Lc[i * P + i];
        }
        for (int64_t i = P - 1; i >= 0; --i) {  // L^T x = y
            double sum = x[i];
            for (int64_t k = i + 1; k < P; ++k) sum -= Lc[k * P + i] * x[k];
            x[i] = sum / Lc[i * P + i];
        }
        return x;
    }
    return std::vector<double>(static_cast<size_t>(P), 0.0);  // no usable step: stay
}

}  // namespace

void collect_gate_samples(const Plan& route, const GateCalibration& cal, const GateSampleFn& fn) {
    check_calibration(route, cal);
    int64_t longest = 0;
    for (int32_t i = 0; i < cal.n_seqs; ++i) longest = std::max(longest, cal.lengths[i]);
    // The teacher: the same model, L, S, KV type and threads, memory off and a window that
    // holds the longest sequence, so every query attends to every earlier token.
    Scenario t = route.scenario;
    t.memory = false;
    t.n_window = static_cast<int32_t>(std::max<int64_t>(longest - t.n_sink, t.n_batch));
    const Plan teacher = make_plan(route.model, t);
    struct Free {
        void operator()(uint8_t* p) const { std::free(p); }
    };
    const uint64_t align = std::max<uint64_t>(teacher.pool.alignment, 64);
    std::unique_ptr<uint8_t, Free> pool(static_cast<uint8_t*>(std::aligned_alloc(align, (teacher.pool.size + align - 1) / align * align)));
    if (!pool) fail(EI_ERR_OUT_OF_MEMORY, "gate fit: cannot allocate the teacher's pool (" + std::to_string(teacher.pool.size) + " bytes)");
    Session session(teacher, pool.get(), teacher.pool.size);
    Collector collector(route, teacher.scenario, fn);
    session.set_observer(&collector);
    int64_t offset = 0;
    for (int32_t i = 0; i < cal.n_seqs; ++i) {
        session.reset();
        collector.begin_sequence(cal.weights ? cal.weights + offset : nullptr);
        session.eval(cal.tokens + offset, static_cast<int32_t>(cal.lengths[i]));
        offset += cal.lengths[i];
    }
}

double scalar_gate(double b, double c) {
    if (!(b > 0)) return kGateClip;
    return std::clamp(c / b, kGateClip, 1.0 - kGateClip);
}

GateFitResult fit_gates(const Plan& route, const GateCalibration& cal, GateKind kind, int32_t steps, double ridge) {
    check_calibration(route, cal);  // before the first run, not inside it
    const HParams& hp = route.model->hparams();
    return fit_gates_over([&](const GateSampleFn& fn) { collect_gate_samples(route, cal, fn); }, hp.n_layer, hp.n_head,
                          hp.head_dim, kind, steps, ridge);
}

GateFitResult fit_gates_over(const GateSamplePass& pass, int32_t NL, int32_t H, int32_t D, GateKind kind,
                             int32_t steps, double ridge) {
    if (kind != GateKind::Scalar && kind != GateKind::Adaptive) {
        fail(EI_ERR_INVALID_ARGUMENT, "gate fit: gate kind must be 1 (scalar) or 2 (adaptive), got " +
                                          std::to_string(static_cast<int>(kind)));
    }
    if (steps < 0 || steps > 100) fail(EI_ERR_INVALID_ARGUMENT, "gate fit: steps must be 0 to 100, got " + std::to_string(steps));
    if (!(ridge >= 0) || !std::isfinite(ridge)) {
        fail(EI_ERR_INVALID_ARGUMENT, "gate fit: ridge must be a finite number >= 0, got " + std::to_string(ridge));
    }
    const bool adaptive = kind == GateKind::Adaptive;
    const int64_t P = 2 * int64_t{D} + 1;  // adaptive parameters per head: w (2D), then b
    const int64_t heads = int64_t{NL} * H;
    GateFitResult r;
    r.kind = kind;
    r.n_layer = NL;
    r.n_head = H;
    r.head_dim = D;
    r.report.assign(static_cast<size_t>(heads), {});

    // Pass 1: the blend error is quadratic in a per-head constant g, so three weighted sums
    // per head decide it: b = sum w |d|^2, c = sum w <d, r>, e0 = sum w |r|^2 with d = A_mem
    // - A_local and r = A_full - A_local; error(g) = e0 - 2 g c + g^2 b.
    std::vector<double> sum_b(static_cast<size_t>(heads)), sum_c(static_cast<size_t>(heads));
    // The adaptive gate's penalty ridge * w^T C w, C = sum w_t |d_t|^2 x_t x_t^T over the
    // features x = [A_mem ; A_local]: the logit's adaptive part, squared and weighted as the
    // error weighs a change of g at that token (|d|^2), so ridge is free of units; it only
    // depends on the data, so it is summed once, here (upper triangle).
    std::vector<double> C(adaptive && ridge > 0 ? static_cast<size_t>(heads * P * P) : 0);
    std::vector<double> x(static_cast<size_t>(P));
    pass([&](const GateSample& s) {
        const int64_t k = int64_t{s.layer} * H + s.head;
        double b = 0, c = 0, e0 = 0, f2 = 0;
        for (int32_t j = 0; j < s.dim; ++j) {
            const double d = double(s.mem[j]) - s.local[j], rr = double(s.full[j]) - s.local[j];
            b += d * d;
            c += d * rr;
            e0 += rr * rr;
            f2 += double(s.full[j]) * s.full[j];
        }
        sum_b[k] += s.weight * b;
        sum_c[k] += s.weight * c;
        if (!C.empty() && s.weight * b > 0) {
            for (int32_t j = 0; j < s.dim; ++j) x[j] = s.mem[j], x[s.dim + j] = s.local[j];
            double* A = C.data() + k * P * P;
            for (int64_t i = 0; i < P - 1; ++i) {
                const double hx = s.weight * b * x[i];
                for (int64_t j2 = i; j2 < P - 1; ++j2) A[i * P + j2] += hx * x[j2];
            }
        }
        GateHeadReport& rep = r.report[k];
        rep.err_before += s.weight * e0;
        rep.energy += s.weight * f2;
        rep.weight += s.weight;
    });
    r.passes = 1;
    std::vector<double> beta(static_cast<size_t>(heads));
    for (int64_t k = 0; k < heads; ++k) {
        const double g = scalar_gate(sum_b[k], sum_c[k]);
        beta[k] = std::log(g / (1 - g));
        GateHeadReport& rep = r.report[k];
        rep.err_after = std::max(0.0, rep.err_before - 2 * g * sum_c[k] + g * g * sum_b[k]);
    }
    if (kind == GateKind::Scalar) {
        r.w.assign(beta.begin(), beta.end());
        r.b.assign(static_cast<size_t>(heads), 0.0f);
        return r;
    }

    // Adaptive: g_t = sigmoid(theta . x_t), x_t = [A_mem ; A_local ; 1]. Per token the
    // error is b_t (g_t - c_t / b_t)^2 + const, so Gauss-Newton on it needs, per head,
    // J^T J = sum w b_t s'^2 x x^T and J^T e = sum w s' (g_t b_t - c_t) x (s' = g(1-g)), one
    // teacher run per step. Started from the scalar fit (w = 0, b = beta), each step is
    // accepted per head only if the next run measures a lower error; a rejected step is
    // retried at a quarter of its length (backtracking), so no head ends worse than scalar.
    std::vector<double> theta(static_cast<size_t>(heads * P), 0.0), best(theta.size(), 0.0), dir(theta.size(), 0.0);
    for (int64_t k = 0; k < heads; ++k) theta[k * P + P - 1] = best[k * P + P - 1] = beta[k];
    std::vector<double> best_err(static_cast<size_t>(heads), INFINITY), best_obj(best_err), shrink(static_cast<size_t>(heads), 1.0);
    std::vector<double> JJ(static_cast<size_t>(heads * P * P)), Je(static_cast<size_t>(heads * P)), err(static_cast<size_t>(heads));
    // penalty(theta) = ridge * w^T C w; adds ridge C w to grad, the scale of J^T e (both are
    // half the gradient of error + penalty). C is symmetric, its upper triangle stored.
    auto penalty = [&](int64_t k, const double* th, double* grad) {
        if (C.empty()) return 0.0;
        const double* A = C.data() + k * P * P;
        double v = 0;
        for (int64_t i = 0; i < P - 1; ++i) {
            double row = 0;
            for (int64_t j2 = 0; j2 < P - 1; ++j2) row += (j2 >= i ? A[i * P + j2] : A[j2 * P + i]) * th[j2];
            v += th[i] * row;
            if (grad) grad[i] += ridge * row;
        }
        return ridge * v;
    };
    for (int32_t step = 0; step <= steps; ++step) {
        std::fill(JJ.begin(), JJ.end(), 0.0);
        std::fill(Je.begin(), Je.end(), 0.0);
        std::fill(err.begin(), err.end(), 0.0);
        pass([&](const GateSample& s) {
            const int64_t k = int64_t{s.layer} * H + s.head;
            const double* th = theta.data() + k * P;
            double u = th[P - 1], b = 0, c = 0, e0 = 0;
            for (int32_t j = 0; j < s.dim; ++j) {
                x[j] = s.mem[j];
                x[s.dim + j] = s.local[j];
                u += th[j] * s.mem[j] + th[s.dim + j] * s.local[j];
                const double d = double(s.mem[j]) - s.local[j], rr = double(s.full[j]) - s.local[j];
                b += d * d;
                c += d * rr;
                e0 += rr * rr;
            }
            x[P - 1] = 1.0;
            const double g = sigmoid(u), sp = g * (1 - g);
            err[k] += s.weight * std::max(0.0, e0 - 2 * g * c + g * g * b);
            const double h = s.weight * b * sp * sp, e = s.weight * sp * (g * b - c);
            if (h == 0 && e == 0) return;
            double* A = JJ.data() + k * P * P;
            double* v = Je.data() + k * P;
            for (int64_t i = 0; i < P; ++i) {
                const double hx = h * x[i];
                if (hx != 0) {
                    double* row = A + i * P;
                    for (int64_t j2 = i; j2 < P; ++j2) row[j2] += hx * x[j2];
                }
                v[i] += e * x[i];
            }
        });
        ++r.passes;
        for (int64_t k = 0; k < heads; ++k) {
            double* th = theta.data() + k * P;
            std::vector<double> g(Je.begin() + k * P, Je.begin() + (k + 1) * P);
            const double objective = err[k] + penalty(k, th, g.data());
            if (objective < best_obj[k]) {  // accepted (the first pass measures the scalar start)
                best_obj[k] = objective;
                best_err[k] = err[k];
                std::copy(th, th + P, best.data() + k * P);
                if (step == steps) continue;
                // Gauss-Newton on error + penalty: (J^T J + ridge C) step = -(J^T e + ridge C w).
                std::vector<double> A(JJ.begin() + k * P * P, JJ.begin() + (k + 1) * P * P);
                if (!C.empty()) {
                    for (int64_t i = 0; i < P * P; ++i) A[static_cast<size_t>(i)] += ridge * C[static_cast<size_t>(k * P * P + i)];
                }
                std::vector<double> step = damped_step(A, g, P, 1e-3);
                std::copy(step.begin(), step.end(), dir.data() + k * P);
                shrink[k] = 1.0;
            } else {
                shrink[k] *= 0.25;  // backtrack along the last accepted point's direction
            }
            for (int64_t i = 0; i < P; ++i) th[i] = best[k * P + i] + shrink[k] * dir[k * P + i];
        }
    }
    r.w.resize(static_cast<size_t>(heads * 2 * D));
    r.b.resize(static_cast<size_t>(heads));
    for (int64_t k = 0; k < heads; ++k) {
        for (int64_t i = 0; i < 2 * D; ++i) r.w[k * 2 * D + i] = static_cast<float>(best[k * P + i]);
        r.b[k] = static_cast<float>(best[k * P + P - 1]);
        if (std::isfinite(best_err[k])) r.report[k].err_after = best_err[k];
    }
    return r;
}

}  // namespace ei
