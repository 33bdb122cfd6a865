// Gate fitting (cpp/src/gate_fit.*): the collector computes what the route computes, the
// scalar closed form is the minimum a brute-force search finds, the fit recovers gates
// that are known by construction (scalar and adaptive), weights move the fit towards the
// weighted positions, and bad calibration input is refused with a message.
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "error.h"
#include "gate_fit.h"
#include "gguf_with_tensors.h"
#include "model.h"
#include "plan.h"
#include "session.h"
#include "session_harness.h"

using namespace ei;

namespace {

std::string tiny() { return check::testdata("models/tiny-llama-f32.gguf"); }

Scenario small(MemoryRule rule = MemoryRule::Linear, bool rope = false) {
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 32;
    sc.n_batch = 16;
    sc.n_threads = 2;
    sc.rule = rule;
    sc.memory_rope = rope;
    return sc;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = 3 + int32_t(rng() % 1000);
    return t;
}

// Every sample of one (layer, head), copied out of the callbacks.
struct Collected {
    struct Sample {
        int64_t pos;
        float weight;
        std::vector<float> local, mem, full;
    };
    std::map<std::pair<int, int>, std::vector<Sample>> by_head;

    GateSampleFn fn() {
        return [this](const GateSample& s) {
            by_head[{s.layer, s.head}].push_back({s.pos, s.weight, std::vector<float>(s.local, s.local + s.dim),
                                                  std::vector<float>(s.mem, s.mem + s.dim),
                                                  std::vector<float>(s.full, s.full + s.dim)});
        };
    }
};

double blend_error(const std::vector<Collected::Sample>& v, double g, bool weighted = true) {
    double e = 0;
    for (const auto& s : v) {
        for (size_t j = 0; j < s.full.size(); ++j) {
            const double d = g * s.mem[j] + (1 - g) * s.local[j] - s.full[j];
            e += (weighted ? s.weight : 1.0) * d * d;
        }
    }
    return e;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

// Layer 0 sees the same inputs in the teacher and in the route (the embeddings), so there
// the collector's A_local and A_mem must be what the route blends: a route with a known
// scalar gate g gives g A_mem + (1 - g) A_local at every scored position. Run with both
// fold rules and both memory key choices: a fold at the wrong time, a wrong rule or a
// wrong key would all show here.
TEST(collector_sees_what_the_route_blends_at_layer_0) {
    const std::string gated = "gate_fit_scalar_0p7.gguf";
    auto base = Model::load(tiny());
    const int NL = base->hparams().n_layer, H = base->hparams().n_head, D = base->hparams().head_dim;
    std::vector<check::ExtraTensor> gates;
    for (int l = 0; l < NL; ++l) gates.push_back({"blk." + std::to_string(l) + ".ei_gate.weight", {H}, std::vector<float>(H, 0.7f)});
    check::write_with_tensors(tiny(), gated, gates);
    const float g = 1.0f / (1.0f + std::exp(-0.7f));
    for (int variant = 0; variant < 3; ++variant) {
        const Scenario sc = variant == 0 ? small() : variant == 1 ? small(MemoryRule::Delta) : small(MemoryRule::Linear, true);
        const std::vector<int32_t> t = tokens(150, 5 + variant);
        // The route's layer-0 output at every position, via the observer.
        struct Watch : OpObserver {
            std::map<int64_t, std::vector<float>> out;
            int64_t D = 0;
            void after(const Graph& gr, const Op& op, const StepParams& s, const uint8_t* pool) override {
                if (gr.name == "fold" || op.kind != OpKind::SegmentAttention || op.layer != 0) return;
                for (int32_t i = 0; i < s.n_tokens; ++i) {
                    const float* r = reinterpret_cast<const float*>(pool + op.dst.offset + uint64_t(i) * op.dst.row_bytes);
                    out[s.pos0 + i] = std::vector<float>(r, r + op.dst.cols);
                }
            }
        } watch;
        check::Harness route(gated, sc);
        route.session->set_observer(&watch);
        route.session->eval(t.data(), int32_t(t.size()));
        Collected c;
        const int64_t len = int64_t(t.size());
        collect_gate_samples(route.plan, {t.data(), &len, 1, nullptr}, c.fn());
        CHECK(c.by_head.size() == size_t(NL * H));
        size_t checked = 0;
        double worst = 0;
        for (int h = 0; h < H; ++h) {
            const auto& v = c.by_head[{0, h}];
            // The first fold comes before the first segment p0 (a multiple of L = 16) with
            // p0 + L - S > W + L, i.e. p0 > S + W = 36: p0 = 48; from there on all is scored.
            CHECK(!v.empty() && v.front().pos == 48);
            CHECK_EQ(int64_t(v.size()), len - v.front().pos);
            for (const auto& s : v) {
                const std::vector<float>& o = watch.out[s.pos];
                for (int j = 0; j < D; ++j) {
                    const double want = double(g) * s.mem[j] + (1.0 - g) * s.local[j];
                    worst = std::max(worst, std::fabs(o[size_t(h) * D + j] - want) / (1.0 + std::fabs(want)));
                }
                ++checked;
            }
        }
        std::printf("variant %d: %zu layer-0 samples, worst relative difference %.3g\n", variant, checked, worst);
        CHECK(checked > 0);
        CHECK(worst < 1e-5);
    }
    std::remove(gated.c_str());
}

// The scalar gate's closed form against a brute-force search over g on the collected data:
// the same minimum (to the grid's resolution) and the same errors before and after.
TEST(scalar_closed_form_matches_brute_force) {
    check::Harness route(tiny(), small());
    std::vector<int32_t> t = tokens(200, 11), t2 = tokens(130, 12);
    t.insert(t.end(), t2.begin(), t2.end());
    const int64_t lens[2] = {200, 130};
    std::vector<float> w(t.size());
    std::mt19937 rng(3);
    for (float& x : w) x = float(rng() % 1000) / 500.0f;  // non-uniform weights in [0, 2)
    const GateCalibration cal{t.data(), lens, 2, w.data()};
    Collected c;
    collect_gate_samples(route.plan, cal, c.fn());
    const GateFitResult r = fit_gates(route.plan, cal, GateKind::Scalar, 0);
    CHECK_EQ(r.passes, 1);
    int interior = 0;
    for (const auto& [key, v] : c.by_head) {
        const int64_t k = int64_t(key.first) * r.n_head + key.second;
        double best_g = 0, best_e = INFINITY;
        for (int i = 0; i <= 10000; ++i) {
            const double g = i / 10000.0;
            const double e = blend_error(v, g);
            if (e < best_e) best_e = e, best_g = g;
        }
        const double g = sigmoid(r.w[size_t(k)]);
        const double tol = 1e-4 + 2 * kGateClip;
        CHECK_NEAR(g, std::clamp(best_g, kGateClip, 1 - kGateClip), tol);
        CHECK_NEAR(r.report[size_t(k)].err_before, blend_error(v, 0), 1e-6 * blend_error(v, 0));
        CHECK_NEAR(r.report[size_t(k)].err_after, blend_error(v, g), 1e-6 * blend_error(v, 0));
        CHECK(r.report[size_t(k)].err_after <= best_e * (1 + 1e-9) + 1e-12);
        if (best_g > 0.01 && best_g < 0.99) ++interior;
    }
    std::printf("%d of %zu heads have an interior optimum\n", interior, c.by_head.size());
    CHECK(interior > 0);  // the comparison must not be all clipped ends
}

namespace {

// Synthetic samples whose best gate is known: A_full is an exact blend of A_mem and A_local
// with, per head, a constant g (scalar) or g = sigmoid(w . [A_mem ; A_local] + b) (adaptive).
struct Synthetic {
    int NL = 2, H = 3, D = 8, n = 400;
    bool adaptive = false;
    std::vector<double> g_head, w, b;  // the truth

    Synthetic(bool adaptive_) : adaptive(adaptive_) {
        std::mt19937 rng(7);
        std::normal_distribution<double> nd(0, 1);
        for (int k = 0; k < NL * H; ++k) {
            g_head.push_back(0.1 + 0.8 * (k + 0.5) / (NL * H));
            b.push_back(nd(rng) * 0.5);
            for (int i = 0; i < 2 * D; ++i) w.push_back(nd(rng) * 0.4);
        }
    }

    void run(const GateSampleFn& fn) const {
        std::mt19937 rng(9);  // the same samples every pass
        std::normal_distribution<double> nd(0, 1);
        std::vector<float> local(D), mem(D), full(D);
        for (int l = 0; l < NL; ++l) {
            for (int h = 0; h < H; ++h) {
                const int k = l * H + h;
                for (int t = 0; t < n; ++t) {
                    double u = b[k];
                    for (int j = 0; j < D; ++j) {
                        local[j] = float(nd(rng));
                        mem[j] = float(nd(rng) + 0.5);
                        u += w[size_t(k) * 2 * D + j] * mem[j] + w[size_t(k) * 2 * D + D + j] * local[j];
                    }
                    const double g = adaptive ? sigmoid(u) : g_head[k];
                    for (int j = 0; j < D; ++j) full[j] = float(g * mem[j] + (1 - g) * local[j]);
                    GateSample s;
                    s.layer = l, s.head = h, s.pos = t, s.dim = D;
                    s.local = local.data(), s.mem = mem.data(), s.full = full.data();
                    fn(s);
                }
            }
        }
    }
};

}  // namespace

TEST(scalar_fit_recovers_a_known_gate) {
    Synthetic syn(false);
    const GateFitResult r = fit_gates_over([&](const GateSampleFn& fn) { syn.run(fn); }, syn.NL, syn.H, syn.D,
                                           GateKind::Scalar, 0);
    for (int k = 0; k < syn.NL * syn.H; ++k) {
        CHECK_NEAR(sigmoid(r.w[size_t(k)]), syn.g_head[size_t(k)], 1e-5);
        CHECK(r.report[size_t(k)].err_after < 1e-8 * r.report[size_t(k)].err_before);
        CHECK_EQ(r.b[size_t(k)], 0.0f);
    }
}

TEST(adaptive_fit_recovers_a_known_gate) {
    Synthetic syn(true);
    int passes = 0;
    const GateFitResult r = fit_gates_over([&](const GateSampleFn& fn) { ++passes, syn.run(fn); }, syn.NL, syn.H,
                                           syn.D, GateKind::Adaptive, 12);
    CHECK_EQ(passes, 14);
    CHECK_EQ(r.passes, 14);
    // The scalar fit cannot express a per-token gate; the adaptive one reaches the truth.
    const GateFitResult s = fit_gates_over([&](const GateSampleFn& fn) { syn.run(fn); }, syn.NL, syn.H, syn.D,
                                           GateKind::Scalar, 0);
    for (int k = 0; k < syn.NL * syn.H; ++k) {
        const GateHeadReport& rep = r.report[size_t(k)];
        std::printf("head %d: error g=0 %.4g scalar %.4g adaptive %.4g\n", k, rep.err_before,
                    s.report[size_t(k)].err_after, rep.err_after);
        CHECK(s.report[size_t(k)].err_after > 1e-3 * rep.err_before);
        CHECK(rep.err_after < 1e-6 * rep.err_before);
        CHECK_NEAR(r.b[size_t(k)], syn.b[size_t(k)], 1e-2);
        for (int i = 0; i < 2 * syn.D; ++i) CHECK_NEAR(r.w[size_t(k) * 2 * syn.D + i], syn.w[size_t(k) * 2 * syn.D + i], 1e-2);
    }    // A heavy ridge keeps the per-token part small: the fit stays near the scalar one, and
    // never above it (the scalar start is the first accepted point).
    const GateFitResult h = fit_gates_over([&](const GateSampleFn& fn) { syn.run(fn); }, syn.NL, syn.H, syn.D,
                                           GateKind::Adaptive, 4, 1e4);
    for (int k = 0; k < syn.NL * syn.H; ++k) {
        double norm = 0, truth = 0;
        for (int i = 0; i < 2 * syn.D; ++i) {
            norm += double(h.w[size_t(k) * 2 * syn.D + i]) * h.w[size_t(k) * 2 * syn.D + i];
            truth += syn.w[size_t(k) * 2 * syn.D + i] * syn.w[size_t(k) * 2 * syn.D + i];
        }
        CHECK(norm < 1e-2 * truth);
        CHECK(h.report[size_t(k)].err_after <= s.report[size_t(k)].err_after * (1 + 1e-9));
        CHECK(h.report[size_t(k)].err_after > 1e-3 * h.report[size_t(k)].err_before);
    }
}

// Weights enter the same sums: with weight only on a set of positions, the fit is the
// closed form over those positions alone; with more weight on them than elsewhere it lies
// between that and the uniform fit.
TEST(weights_pull_the_fit_towards_the_weighted_positions) {
    check::Harness route(tiny(), small());
    std::vector<int32_t> t = tokens(220, 21);
    const int64_t len = 220;
    auto answer = [](int64_t p) { return (p / 10) % 3 == 0; };  // "answer" positions
    std::vector<float> only(t.size()), more(t.size());
    for (size_t p = 0; p < t.size(); ++p) {
        only[p] = answer(int64_t(p)) ? 1.0f : 0.0f;
        more[p] = answer(int64_t(p)) ? 5.0f : 1.0f;
    }
    Collected c;
    collect_gate_samples(route.plan, {t.data(), &len, 1, nullptr}, c.fn());
    const GateFitResult uni = fit_gates(route.plan, {t.data(), &len, 1, nullptr}, GateKind::Scalar, 0);
    const GateFitResult ans = fit_gates(route.plan, {t.data(), &len, 1, only.data()}, GateKind::Scalar, 0);
    const GateFitResult mix = fit_gates(route.plan, {t.data(), &len, 1, more.data()}, GateKind::Scalar, 0);
    int moved = 0;
    for (const auto& [key, v] : c.by_head) {
        const size_t k = size_t(key.first) * uni.n_head + key.second;
        double b = 0, cc = 0, wsum = 0;
        for (const auto& s : v) {
            if (!answer(s.pos)) continue;
            wsum += 1;
            for (size_t j = 0; j < s.full.size(); ++j) {
                const double d = double(s.mem[j]) - s.local[j];
                b += d * d;
                cc += d * (double(s.full[j]) - s.local[j]);
            }
        }
        CHECK_NEAR(sigmoid(ans.w[k]), scalar_gate(b, cc), 1e-5);
        CHECK_NEAR(ans.report[k].weight, wsum, 1e-9);
        const double gu = sigmoid(uni.w[k]), ga = sigmoid(ans.w[k]), gm = sigmoid(mix.w[k]);
        CHECK(gm >= std::min(gu, ga) - 1e-6 && gm <= std::max(gu, ga) + 1e-6);
        if (std::fabs(ga - gu) > 1e-3) ++moved;
    }
    CHECK(moved > 0);
}

namespace {
void expect_error(const std::function<void()>& fn, ei_status status, const std::string& fragment) {
    try {
        fn();
        std::fprintf(stderr, "expected an error containing '%s'\n", fragment.c_str());
        CHECK(false);
    } catch (const Error& e) {
        if (std::string(e.what()).find(fragment) == std::string::npos) std::fprintf(stderr, "message: %s\n", e.what());
        CHECK(e.status() == status);
        CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
}
}  // namespace

TEST(bad_calibration_is_refused_with_a_message) {
    check::Harness route(tiny(), small());
    std::vector<int32_t> t = tokens(100, 1);
    const int64_t short_len = 36, ok_len = 100;  // S + W = 36
    expect_error([&] { fit_gates(route.plan, {t.data(), &short_len, 1, nullptr}, GateKind::Scalar, 0); },
                 EI_ERR_INVALID_ARGUMENT, "not more than S + W = 36");
    std::vector<float> w(100, 1.0f);
    w[57] = NAN;
    expect_error([&] { fit_gates(route.plan, {t.data(), &ok_len, 1, w.data()}, GateKind::Scalar, 0); },
                 EI_ERR_INVALID_ARGUMENT, "position 57");
    w[57] = -1.0f;
    expect_error([&] { fit_gates(route.plan, {t.data(), &ok_len, 1, w.data()}, GateKind::Scalar, 0); },
                 EI_ERR_INVALID_ARGUMENT, "position 57");
    expect_error([&] { fit_gates(route.plan, {t.data(), &ok_len, 0, nullptr}, GateKind::Scalar, 0); },
                 EI_ERR_INVALID_ARGUMENT, "no calibration sequences");
    expect_error([&] { fit_gates(route.plan, {t.data(), &ok_len, 1, nullptr}, GateKind(3), 0); },
                 EI_ERR_INVALID_ARGUMENT, "gate kind");
    expect_error([&] { fit_gates(route.plan, {t.data(), &ok_len, 1, nullptr}, GateKind::Adaptive, 1, -1.0); },
                 EI_ERR_INVALID_ARGUMENT, "ridge");
    Scenario off = small();
    off.memory = false;
    check::Harness full(tiny(), off);
    expect_error([&] { fit_gates(full.plan, {t.data(), &ok_len, 1, nullptr}, GateKind::Scalar, 0); },
                 EI_ERR_INVALID_ARGUMENT, "memory off");
    t[40] = 999999;
    expect_error([&] { fit_gates(route.plan, {t.data(), &ok_len, 1, nullptr}, GateKind::Scalar, 0); },
                 EI_ERR_INVALID_ARGUMENT, "out of range");
}
