// The EdgeInfinite route through real Sessions, against an independent double-precision
// forward pass written here from DESIGN §1 and the README's route section. The reference
// reads the weights as raw f32 from the GGUF, computes RoPE angles, sigma, softmax, SiLU,
// the gates and both fold rules in double, holds every past token by position (no slots),
// and simulates the sink / window / fold rule on its own. It calls none of the runtime's
// rope, sigma, softmax, exp or gate code, so a wrong sign, a wrong key (pre- or post-RoPE),
// a wrong gate half or a fold at the wrong time shows as logits far outside the float
// rounding that separates f32 from double.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "gguf_with_tensors.h"
#include "gguf.h"
#include "model.h"
#include "plan.h"
#include "session.h"

using namespace ei;
using check::ExtraTensor;
using check::write_with_tensors;

namespace {

// ------------------------------------------------------------ a gated copy of a model

enum class GateKind { None, Scalar, ScalarBias, Adaptive };

// Random, non-trivial gates for every layer: scalar weights N(0, 1) (g from about 0.15 to
// 0.85), adaptive weights N(0, 0.5) over [A_mem ; A_local] with a bias N(0, 0.5).
std::vector<ExtraTensor> random_gates(GateKind kind, int n_layer, int n_head, int head_dim, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n1(0.0f, 1.0f), n05(0.0f, 0.5f);
    std::vector<ExtraTensor> out;
    for (int l = 0; l < n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".ei_gate.";
        if (kind == GateKind::Adaptive) {
            ExtraTensor w{p + "weight", {2 * int64_t{head_dim}, n_head}, {}};
            for (int i = 0; i < 2 * head_dim * n_head; ++i) w.data.push_back(n05(rng));
            out.push_back(w);
        } else {
            ExtraTensor w{p + "weight", {n_head}, {}};
            for (int i = 0; i < n_head; ++i) w.data.push_back(n1(rng));
            out.push_back(w);
        }
        if (kind == GateKind::Adaptive || kind == GateKind::ScalarBias) {
            ExtraTensor b{p + "bias", {n_head}, {}};
            for (int i = 0; i < n_head; ++i) b.data.push_back(n05(rng));
            out.push_back(b);
        }
    }
    return out;
}

// ------------------------------------------------------------ the reference model

struct RefModel {
    std::unique_ptr<GgufFile> file;
    int n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0, n_vocab = 0, n_rot = 0;
    double eps = 0, base = 0;
    bool halves = false;  // qwen2 rotates (x_i, x_{i + n_rot/2}); llama adjacent pairs
    const float *embd = nullptr, *out = nullptr, *out_norm = nullptr;
    struct Layer {
        const float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *ffn_norm, *gate, *up, *down;
        GateKind gate_kind = GateKind::None;
        const float *gw = nullptr, *gb = nullptr;
    };
    std::vector<Layer> layers;

    const float* tensor(const std::string& name, bool required = true) const {
        const TensorInfo* t = file->tensor(name);
        if (!t) {
            if (required) {
                std::fprintf(stderr, "reference: tensor %s missing\n", name.c_str());
                CHECK(false);
            }
            return nullptr;
        }
        CHECK(t->type == 0);  // the reference reads f32 models only
        return reinterpret_cast<const float*>(t->data);
    }
};

std::unique_ptr<RefModel> load_reference(const std::string& path) {
    auto m = std::make_unique<RefModel>();
    m->file = GgufFile::open(path);
    const GgufFile& f = *m->file;
    const std::string a = f.get_string("general.architecture") + ".";
    m->halves = a == "qwen2.";
    m->n_embd = int(f.get_int(a + "embedding_length", 0));
    m->n_layer = int(f.get_int(a + "block_count", 0));
    m->n_head = int(f.get_int(a + "attention.head_count", 0));
    m->n_head_kv = int(f.get_int(a + "attention.head_count_kv", m->n_head));
    m->n_ff = int(f.get_int(a + "feed_forward_length", 0));
    m->head_dim = m->n_embd / m->n_head;
    m->n_rot = int(f.get_int(a + "rope.dimension_count", m->head_dim));
    m->eps = f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5);
    m->base = f.get_float(a + "rope.freq_base", 10000.0);
    CHECK(m->n_embd % 4 == 0 && m->n_ff % 4 == 0 && m->head_dim % 4 == 0);  // matvec's four sums
    m->embd = m->tensor("token_embd.weight");
    m->n_vocab = int(f.tensor("token_embd.weight")->ne[1]);
    m->out_norm = m->tensor("output_norm.weight");
    m->out = m->tensor("output.weight", false);
    if (!m->out) m->out = m->embd;  // tied embeddings
    for (int l = 0; l < m->n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        RefModel::Layer L{};
        L.attn_norm = m->tensor(p + "attn_norm.weight");
        L.wq = m->tensor(p + "attn_q.weight");
        L.wk = m->tensor(p + "attn_k.weight");
        L.wv = m->tensor(p + "attn_v.weight");
        L.wo = m->tensor(p + "attn_output.weight");
        L.bq = m->tensor(p + "attn_q.bias", false);
        L.bk = m->tensor(p + "attn_k.bias", false);
        L.bv = m->tensor(p + "attn_v.bias", false);
        L.ffn_norm = m->tensor(p + "ffn_norm.weight");
        L.gate = m->tensor(p + "ffn_gate.weight");
        L.up = m->tensor(p + "ffn_up.weight");
        L.down = m->tensor(p + "ffn_down.weight");
        if (const TensorInfo* g = f.tensor(p + "ei_gate.weight")) {
            L.gate_kind = g->n_dims == 2 ? GateKind::Adaptive : GateKind::Scalar;
            L.gw = m->tensor(p + "ei_gate.weight");
            L.gb = m->tensor(p + "ei_gate.bias", false);
        }
        m->layers.push_back(L);
    }
    return m;
}

double sigma(double x) { return x > 0 ? x + 1.0 : std::exp(x); }  // elu(x) + 1
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// y = W x (+ b) for W of `rows` rows of `cols` floats.
void matvec(const float* W, int rows, int cols, const double* x, double* y, const float* b = nullptr) {
    for (int r = 0; r < rows; ++r) {
        const float* w = W + int64_t{r} * cols;
        double s[4] = {0, 0, 0, 0};  // four sums: the loop runs at a few times the speed (cols % 4 == 0)
        for (int c = 0; c < cols; c += 4) {
            for (int i = 0; i < 4; ++i) s[i] += double(w[c + i]) * x[c + i];
        }
        y[r] = (s[0] + s[1]) + (s[2] + s[3]) + (b ? double(b[r]) : 0.0);
    }
}

void rms_norm(const double* x, const float* w, double* y, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += x[i] * x[i];
    const double k = 1.0 / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i) y[i] = x[i] * k * double(w[i]);
}

// Rotates every head of x to absolute position pos: angle pos * base^(-2i/n_rot) for
// pair i, computed in double.
void rope(double* x, int n_heads, int D, int n_rot, int64_t pos, double base, bool halves) {
    for (int h = 0; h < n_heads; ++h) {
        double* v = x + int64_t{h} * D;
        for (int i = 0; i < n_rot / 2; ++i) {
            const double theta = double(pos) * std::pow(base, -2.0 * i / n_rot);
            const double c = std::cos(theta), s = std::sin(theta);
            const int a = halves ? i : 2 * i, b = halves ? i + n_rot / 2 : 2 * i + 1;
            const double x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

struct RouteSettings {
    int S = 4, W = 32, L = 16;
    bool delta = false;      // fold rule
    bool rope_keys = false;  // memory keys and queries after RoPE
    bool sinks_follow = true;  // sink keys seen right behind the window (else at their own positions)
};

// One conversation over the reference model, the route simulated from its description:
// positions < S stay in the sink; the window keeps positions from ring_start on, at most
// W + L of them; before a segment would push it past W + L, its oldest L positions fold
// into the memory (M, z) of every layer and KV head.
class RefSession {
public:
    RefSession(const RefModel& m, RouteSettings r) : m_(m), r_(r), ring_start_(r.S) {
        const int D = m.head_dim;
        kpre_.resize(m.n_layer);
        krot_.resize(m.n_layer);
        v_.resize(m.n_layer);
        M_.assign(size_t(m.n_layer) * m.n_head_kv, std::vector<double>(size_t(D) * D, 0.0));
        z_.assign(size_t(m.n_layer) * m.n_head_kv, std::vector<double>(D, 0.0));
    }

    int64_t folded() const { return folded_; }

    // Tokens in segments of at most L, as Session::eval cuts them; logits of every token.
    void eval(const int32_t* tokens, int n, double* logits) {
        for (int done = 0; done < n;) {
            const int chunk = std::min(r_.L, n - done);
            if (n_past_ + chunk - ring_start_ > r_.W + r_.L) fold();
            for (int i = 0; i < chunk; ++i) token(tokens[done + i], logits + int64_t{done + i} * m_.n_vocab);
            done += chunk;
        }
    }

private:
    void fold() {
        const int D = m_.head_dim, L = r_.L;
        for (int l = 0; l < m_.n_layer; ++l) {
            for (int hk = 0; hk < m_.n_head_kv; ++hk) {
                std::vector<double>& M = M_[size_t(l) * m_.n_head_kv + hk];
                std::vector<double>& z = z_[size_t(l) * m_.n_head_kv + hk];
                std::vector<double> sk(size_t(L) * D), vv(size_t(L) * D);
                for (int t = 0; t < L; ++t) {
                    const int64_t p = ring_start_ + t;
                    const double* k = (r_.rope_keys ? krot_ : kpre_)[l][p].data() + int64_t{hk} * D;
                    const double* v = v_[l][p].data() + int64_t{hk} * D;
                    for (int c = 0; c < D; ++c) {
                        sk[size_t(t) * D + c] = sigma(k[c]);
                        vv[size_t(t) * D + c] = v[c];
                    }
                }
                if (r_.delta) {  // every row corrected against the memory from before the fold
                    for (int t = 0; t < L; ++t) {
                        const double* s = &sk[size_t(t) * D];
                        double den = 0;
                        for (int i = 0; i < D; ++i) den += s[i] * z[i];
                        if (den == 0) continue;  // empty memory: nothing retrieved
                        for (int j = 0; j < D; ++j) {
                            double r = 0;
                            for (int i = 0; i < D; ++i) r += s[i] * M[size_t(i) * D + j];
                            vv[size_t(t) * D + j] -= r / den;
                        }
                    }
                }
                for (int t = 0; t < L; ++t) {
                    for (int i = 0; i < D; ++i) {
                        const double s = sk[size_t(t) * D + i];
                        z[i] += s;
                        for (int j = 0; j < D; ++j) M[size_t(i) * D + j] += s * vv[size_t(t) * D + j];
                    }
                }
            }
        }
        ring_start_ += L;
        folded_ += L;
    }

    void token(int32_t id, double* logits) {
        const RefModel& m = m_;
        const int E = m.n_embd, D = m.head_dim, H = m.n_head, KV = m.n_head_kv, group = H / KV;
        const int q_dim = H * D, kv_dim = KV * D;
        const int64_t pos = n_past_;
        std::vector<double> x(E), xn(E), q(q_dim), qr(q_dim), k(kv_dim), kr(kv_dim), v(kv_dim), attn(q_dim);
        std::vector<double> g(m.n_ff), u(m.n_ff), tmp(E);
        for (int i = 0; i < E; ++i) x[i] = m.embd[int64_t{id} * E + i];
        for (int l = 0; l < m.n_layer; ++l) {
            const RefModel::Layer& w = m.layers[l];
            rms_norm(x.data(), w.attn_norm, xn.data(), E, m.eps);
            matvec(w.wq, q_dim, E, xn.data(), q.data(), w.bq);
            matvec(w.wk, kv_dim, E, xn.data(), k.data(), w.bk);
            matvec(w.wv, kv_dim, E, xn.data(), v.data(), w.bv);
            qr = q;
            kr = k;
            rope(qr.data(), H, D, m.n_rot, pos, m.base, m.halves);
            rope(kr.data(), KV, D, m.n_rot, pos, m.base, m.halves);
            // Sinks behind the window: sink j sits at j + folded, so its score is the query
            // rotated for pos - folded against the key as stored (rotated for j).
            std::vector<double> qs = q;
            rope(qs.data(), H, D, m.n_rot, r_.sinks_follow ? pos - folded_ : pos, m.base, m.halves);
            kpre_[l].push_back(k);
            krot_[l].push_back(kr);
            v_[l].push_back(v);
            for (int h = 0; h < H; ++h) {
                const int hk = h / group;
                // A_local: softmax over the sink, the window and this segment, up to pos.
                std::vector<int64_t> seen;
                std::vector<double> s;
                double mx = -1e300;
                for (int64_t j = 0; j <= pos; ++j) {
                    if (j >= r_.S && j < ring_start_) continue;  // folded into memory
                    const std::vector<double>& qj = j < r_.S ? qs : qr;
                    double d = 0;
                    for (int c = 0; c < D; ++c) d += qj[size_t(h) * D + c] * krot_[l][j][size_t(hk) * D + c];
                    seen.push_back(j);
                    s.push_back(d / std::sqrt(double(D)));
                    mx = std::max(mx, s.back());
                }
                double sum = 0;
                for (double& e : s) sum += (e = std::exp(e - mx));
                double* out = &attn[size_t(h) * D];
                for (int c = 0; c < D; ++c) {
                    double o = 0;
                    for (size_t j = 0; j < seen.size(); ++j) o += s[j] / sum * v_[l][seen[j]][size_t(hk) * D + c];
                    out[c] = o;
                }
                if (folded_ == 0 || w.gate_kind == GateKind::None) continue;  // empty memory, or g = 0
                // A_mem = sigma(q) M / (sigma(q) z + 1e-6), the memory as it was before this segment.
                const double* qm = (r_.rope_keys ? qr : q).data() + size_t(h) * D;
                const std::vector<double>& M = M_[size_t(l) * KV + hk];
                const std::vector<double>& z = z_[size_t(l) * KV + hk];
                std::vector<double> sq(D), mem(D, 0.0);
                double den = 0;
                for (int i = 0; i < D; ++i) den += (sq[i] = sigma(qm[i])) * z[i];
                for (int i = 0; i < D; ++i) {
                    for (int j = 0; j < D; ++j) mem[j] += sq[i] * M[size_t(i) * D + j];
                }
                for (int j = 0; j < D; ++j) mem[j] /= den + 1e-6;
                double gl = w.gb ? double(w.gb[h]) : 0.0;
                if (w.gate_kind == GateKind::Adaptive) {
                    const float* gw = w.gw + int64_t{h} * 2 * D;  // first D weigh A_mem, then A_local
                    for (int c = 0; c < D; ++c) gl += double(gw[c]) * mem[c] + double(gw[D + c]) * out[c];
                } else {
                    gl += double(w.gw[h]);
                }
                const double gate = sigmoid(gl);
                for (int c = 0; c < D; ++c) out[c] = gate * mem[c] + (1 - gate) * out[c];
            }
            matvec(w.wo, E, q_dim, attn.data(), tmp.data());
            for (int i = 0; i < E; ++i) x[i] += tmp[i];
            rms_norm(x.data(), w.ffn_norm, xn.data(), E, m.eps);
            matvec(w.gate, m.n_ff, E, xn.data(), g.data());
            matvec(w.up, m.n_ff, E, xn.data(), u.data());
            for (int i = 0; i < m.n_ff; ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];  // SiLU(gate) * up
            matvec(w.down, E, m.n_ff, g.data(), tmp.data());
            for (int i = 0; i < E; ++i) x[i] += tmp[i];
        }
        rms_norm(x.data(), m.out_norm, xn.data(), E, m.eps);
        matvec(m.out, m.n_vocab, E, xn.data(), logits);
        ++n_past_;
    }

    const RefModel& m_;
    RouteSettings r_;
    int64_t n_past_ = 0, ring_start_, folded_ = 0;
    std::vector<std::vector<std::vector<double>>> kpre_, krot_, v_;  // [layer][position][kv_dim]
    std::vector<std::vector<double>> M_, z_;                        // [layer * n_head_kv + hk]
};

// ------------------------------------------------------------ sessions vs the reference

struct Case {
    const char* name;
    const char* model;  // under models/
    GateKind gate;
    RouteSettings route;
    bool quick = false;  // one of the cases run under EI_REFERENCE_QUICK
};

// Prompt pieces (several segments each, short ones, decode steps), 142 tokens: with
// S 4, W 32, L 16 the ring of 48 slots overflows 6 times, and 6 folds happen.
const std::vector<int> kChunks = {37, 16, 5, 40, 1, 1, 23, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

struct Result {
    double max_abs = 0, max_logit = 0;
    int64_t folded = 0;
};

Result run_case(const Case& c, const std::vector<RouteSettings>& wrong, std::vector<Result>* wrong_results) {
    const std::string src = check::testdata(std::string("models/") + c.model);
    std::string path = src;
    std::string tmp;
    if (c.gate != GateKind::None) {
        auto base = load_reference(src);
        char name[] = "/tmp/ei_gated_XXXXXX";
        const int fd = mkstemp(name);
        CHECK(fd >= 0);
        if (fd >= 0) close(fd);
        tmp = path = name;
        write_with_tensors(src, path, random_gates(c.gate, base->n_layer, base->n_head, base->head_dim, 17));
    }
    auto model = Model::load(path);
    auto ref = load_reference(path);
    if (!tmp.empty()) std::remove(tmp.c_str());  // both hold a mapping of their own
    CHECK(model->layers()[0].gate == (c.gate == GateKind::None       ? LayerWeights::Gate::None
                                      : c.gate == GateKind::Adaptive ? LayerWeights::Gate::Adaptive
                                                                     : LayerWeights::Gate::Scalar));

    Scenario sc;
    sc.n_sink = c.route.S;
    sc.n_window = c.route.W;
    sc.n_batch = c.route.L;
    sc.rule = c.route.delta ? MemoryRule::Delta : MemoryRule::Linear;
    sc.memory_rope = c.route.rope_keys;
    sc.sinks_follow = c.route.sinks_follow;
    sc.kv_type = KvType::F32;  // no f16 rounding of K and V: the reference keeps them exact
    sc.n_threads = 2;
    Plan plan = make_plan(model, sc);
    uint8_t* pool = static_cast<uint8_t*>(std::aligned_alloc(64, plan.pool.size));
    Result res;
    {
        Session s(plan, pool, plan.pool.size);
        RefSession r(*ref, c.route);
        std::vector<RefSession> others;
        for (const RouteSettings& w : wrong) others.emplace_back(*ref, w);
        if (wrong_results) wrong_results->assign(wrong.size(), Result{});
        std::mt19937 rng(5);
        const int V = ref->n_vocab;
        for (int n : kChunks) {
            std::vector<int32_t> t(n);
            for (auto& x : t) x = 3 + int32_t(rng() % uint32_t(V - 3));
            std::vector<float> got(size_t(n) * V);
            std::vector<double> want(size_t(n) * V);
            s.eval(t.data(), n, got.data());
            r.eval(t.data(), n, want.data());
            for (size_t i = 0; i < got.size(); ++i) {
                res.max_abs = std::max(res.max_abs, std::fabs(got[i] - want[i]));
                res.max_logit = std::max(res.max_logit, std::fabs(want[i]));
            }
            for (size_t k = 0; k < others.size(); ++k) {
                others[k].eval(t.data(), n, want.data());
                for (size_t i = 0; i < got.size(); ++i) {
                    (*wrong_results)[k].max_abs = std::max((*wrong_results)[k].max_abs, std::fabs(got[i] - want[i]));
                }
            }
            // The session's fold count follows the rule as simulated here.
            CHECK_EQ(s.placement().memory, r.folded());
        }
        res.folded = r.folded();
        CHECK(s.route() == Route::Memory);
    }
    std::free(pool);
    return res;
}

// Float against double through 3-4 layers: measured at 3e-7 to 1.7e-6 of the largest
// logit (the runtime's RoPE angles alone, built by float multiplication as llama.cpp does,
// are off by up to ~1e-5 rad at these positions). A real error in the route is orders larger.
double tolerance(const Result& r) { return 3e-5 * std::max(1.0, r.max_logit); }

void report(const Case& c, const Result& r) {
    std::printf("  %-40s folds %lld  max |logit| %6.3f  max abs error %.3g (tolerance %.3g)\n", c.name,
                (long long)(r.folded / c.route.L), r.max_logit, r.max_abs, tolerance(r));
}

}  // namespace

TEST(route_matches_double_reference) {
    const RouteSettings lin{4, 32, 16, false, false}, del{4, 32, 16, true, false};
    const RouteSettings lin_rope{4, 32, 16, false, true}, del_rope{4, 32, 16, true, true};
    const RouteSettings lin_abs{4, 32, 16, false, false, false};
    // Every rule x keys pair, each gate kind with both rules and both key kinds, both
    // architectures (GQA, adjacent-pair RoPE, untied output / QKV biases, halves RoPE,
    // tied output), and g = 0 (sink + window only, with folds happening unseen).
    const Case cases[] = {
        {"llama   linear nope  scalar", "tiny-llama-f32.gguf", GateKind::Scalar, lin},
        {"llama   delta  nope  adaptive", "tiny-llama-f32.gguf", GateKind::Adaptive, del},
        {"llama   linear rope  adaptive", "tiny-llama-f32.gguf", GateKind::Adaptive, lin_rope, true},
        {"llama   delta  rope  scalar+bias", "tiny-llama-f32.gguf", GateKind::ScalarBias, del_rope},
        {"llama   linear nope  no gate", "tiny-llama-f32.gguf", GateKind::None, lin},
        {"qwen2   delta  nope  adaptive", "tiny-qwen2-f32.gguf", GateKind::Adaptive, del, true},
        {"qwen2   linear rope  scalar", "tiny-qwen2-f32.gguf", GateKind::Scalar, lin_rope},
        // Sinks at their absolute positions (the setting's other value), and g = 0 with
        // sinks behind the window: local attention alone shows the sink positions.
        {"llama   linear nope  scalar  abs sinks", "tiny-llama-f32.gguf", GateKind::Scalar, lin_abs},
        {"qwen2   linear nope  no gate abs sinks", "tiny-qwen2-f32.gguf", GateKind::None, lin_abs},
        {"qwen2   linear nope  no gate", "tiny-qwen2-f32.gguf", GateKind::None, lin},
    };
    // Where every instruction is emulated or instrumented (CI's qemu and sanitizer runs),
    // two cases cover both models, both rules and both key kinds between them.
    const bool quick = std::getenv("EI_REFERENCE_QUICK") != nullptr;
    for (const Case& c : cases) {
        if (quick && !c.quick) continue;
        Result r = run_case(c, {}, nullptr);
        report(c, r);
        CHECK(r.folded >= 4 * c.route.L);
        CHECK(r.max_abs <= tolerance(r));
    }
}

// The comparison can fail: references that get one thing wrong (the rule, the keys, the
// fold timing) sit far outside the tolerance of the right one.
TEST(reference_tells_wrong_routes_apart) {
    if (std::getenv("EI_REFERENCE_QUICK")) {  // the test's own sensitivity: the same on every CPU
        std::printf("  skipped (EI_REFERENCE_QUICK)\n");
        return;
    }
    const Case c{"llama   delta  nope  adaptive", "tiny-llama-f32.gguf", GateKind::Adaptive, {4, 32, 16, true, false}};
    const std::vector<RouteSettings> wrong = {
        {4, 32, 16, false, false},  // linear instead of delta
        {4, 32, 16, true, true},    // memory keys after RoPE
        {4, 48, 16, true, false},   // folds one segment later (a larger window)
        {4, 32, 16, true, false, false},  // sinks at their absolute positions
    };
    const char* what[] = {"linear rule", "rope keys", "later folds", "abs sinks"};
    std::vector<Result> w;
    Result r = run_case(c, wrong, &w);
    report(c, r);
    CHECK(r.max_abs <= tolerance(r));
    for (size_t k = 0; k < wrong.size(); ++k) {
        std::printf("  against a reference with %-12s max abs difference %.3g\n", what[k], w[k].max_abs);
        CHECK(w[k].max_abs > 20 * tolerance(r));
    }
}
