// The EdgeInfinite route on a real (tiny) model, checked against independent
// recomputations: placement of every token, the folded memory, windowed attention, the
// full-attention route's bit-identity, bounded memory over long prompts.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include "check.h"
#include "cpu/ops.h"
#include "model.h"
#include "plan.h"
#include "session.h"

using namespace ei;

namespace {

struct Harness {
    std::shared_ptr<const Model> model;
    Plan plan;
    uint8_t* pool = nullptr;
    std::unique_ptr<Session> session;

    Harness(const std::string& path, const Scenario& sc) : model(Model::load(path)) {
        plan = make_plan(model, sc);
        pool = static_cast<uint8_t*>(std::aligned_alloc(64, plan.pool.size));
        session = std::make_unique<Session>(plan, pool, plan.pool.size);
    }
    ~Harness() {
        session.reset();
        std::free(pool);
    }
    template <typename T>
    T* region(const char* name) {
        return reinterpret_cast<T*>(pool + plan.pool.region(name).offset);
    }
};

std::string tiny() { return check::testdata("models/tiny-llama-q8_0.gguf"); }

Scenario small(int32_t S, int32_t W, int32_t L) {
    Scenario sc;
    sc.n_sink = S;
    sc.n_window = W;
    sc.n_batch = L;
    sc.n_threads = 2;
    return sc;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = 3 + int32_t(rng() % 1000);
    return t;
}

int64_t peak_rss_kb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6);
    }
    return -1;
}

}  // namespace

TEST(every_token_lives_in_exactly_one_place) {
    Harness h(tiny(), small(5, 40, 16));
    const std::vector<size_t> chunks = {3, 16, 1, 40, 7, 100, 1, 1, 1, 131};
    size_t total = 0;
    for (size_t c : chunks) total += c;
    auto t = tokens(total, 1);
    size_t done = 0;
    for (size_t chunk : chunks) {
        h.session->eval(t.data() + done, int32_t(chunk));
        done += chunk;
        Session::Placement p = h.session->placement();
        CHECK_EQ(p.sink + p.window + p.memory, int64_t(done));
        CHECK(p.sink == std::min<int64_t>(5, int64_t(done)));
        CHECK(p.window <= 40 + 16);
        CHECK(p.memory % 16 == 0);
        if (done > 5 + 40 + 16) CHECK(p.window >= 40);
    }
    CHECK(h.session->route() == Route::Memory);
}

// M and z after many folds equal sigma(K)^T V and sum sigma(K) recomputed from the keys
// and values of exactly the folded tokens, read from the cache before they were folded.
TEST(memory_equals_direct_recomputation) {
    for (MemoryRule rule : {MemoryRule::Linear}) {
        Scenario sc = small(3, 32, 8);
        sc.rule = rule;
        Harness h(tiny(), sc);
        const HParams& hp = h.model->hparams();
        const int32_t D = hp.head_dim, KV = hp.n_head_kv, kv_dim = hp.n_embd_kv();
        const int64_t slots = sc.kv_slots();
        std::vector<double> M(size_t(hp.n_layer) * KV * D * D, 0.0), z(size_t(hp.n_layer) * KV * D, 0.0);
        auto t = tokens(200, 2);
        for (size_t done = 0; done < t.size(); done += 8) {
            // Tokens about to fold: the oldest L of the ring when it would overflow.
            Session::Placement p = h.session->placement();
            const int64_t ring_start = sc.n_sink + p.memory, n_past = h.session->n_past();
            if (n_past + 8 - ring_start > sc.n_window + sc.n_batch) {
                for (int32_t l = 0; l < hp.n_layer; ++l) {
                    const uint16_t* K = h.region<uint16_t>("kv.k") + size_t(l) * slots * kv_dim;
                    const uint16_t* V = h.region<uint16_t>("kv.v") + size_t(l) * slots * kv_dim;
                    for (int64_t pos = ring_start; pos < ring_start + sc.n_batch; ++pos) {
                        const int64_t slot = sc.slot_of(pos);
                        for (int32_t hk = 0; hk < KV; ++hk) {
                            float k[256], kn[256];
                            for (int32_t i = 0; i < D; ++i) k[i] = cpu::fp16_to_fp32(K[slot * kv_dim + hk * D + i]);
                            cpu::ops::rope(k, kn, 1, D, hp.n_rot, -pos, hp.rope_base, false);  // back to NoPE
                            for (int32_t i = 0; i < D; ++i) {
                                const double s = cpu::ops::sigma(kn[i]);
                                z[(size_t(l) * KV + hk) * D + i] += s;
                                for (int32_t j = 0; j < D; ++j) {
                                    M[((size_t(l) * KV + hk) * D + i) * D + j] +=
                                        s * cpu::fp16_to_fp32(V[slot * kv_dim + hk * D + j]);
                                }
                            }
                        }
                    }
                }
            }
            h.session->eval(t.data() + done, 8);
        }
        CHECK(h.session->placement().memory > 100);
        const float* Mg = h.region<float>("mem.M");
        const float* zg = h.region<float>("mem.z");
        double worst = 0;
        for (size_t i = 0; i < M.size(); ++i) worst = std::max(worst, std::fabs(Mg[i] - M[i]) / (1 + std::fabs(M[i])));
        for (size_t i = 0; i < z.size(); ++i) worst = std::max(worst, std::fabs(zg[i] - z[i]) / (1 + std::fabs(z[i])));
        std::printf("memory vs recomputation: max relative difference %.3g\n", worst);
        CHECK(worst < 1e-4);  // float sums of ~200 terms against double ones
    }
}

// With g = 0 (this model has no gates) the last layer's attention output must equal a
// naive softmax over exactly the sink and window positions, recomputed here in double.
TEST(gate_zero_equals_naive_sink_plus_window_attention) {
    Scenario sc = small(4, 24, 8);
    Harness h(tiny(), sc);
    const HParams& hp = h.model->hparams();
    const int32_t D = hp.head_dim, H = hp.n_head, kv_dim = hp.n_embd_kv(), group = hp.n_head / hp.n_head_kv;
    const int64_t slots = sc.kv_slots(), last = hp.n_layer - 1;
    auto t = tokens(170, 3);
    int checked = 0;
    double worst = 0;
    for (size_t done = 0; done < t.size();) {
        const int32_t n = done + 8 <= t.size() ? 8 : int32_t(t.size() - done);  // the last one is short
        h.session->eval(t.data() + done, n);
        // The window after this step starts at the oldest unfolded position.
        const int64_t ring_start = sc.n_sink + h.session->placement().memory;
        const float* q = h.region<float>("q_rope");
        const float* attn = h.region<float>("attn");
        const uint16_t* K = h.region<uint16_t>("kv.k") + size_t(last) * slots * kv_dim;
        const uint16_t* V = h.region<uint16_t>("kv.v") + size_t(last) * slots * kv_dim;
        for (int32_t r = 0; r < n; ++r) {
            const int64_t qp = int64_t(done) + r;
            for (int32_t hh = 0; hh < H; ++hh) {
                std::vector<int64_t> visible;
                for (int64_t p = 0; p <= qp; ++p) {
                    if (p < sc.n_sink || p >= ring_start) visible.push_back(p);
                }
                std::vector<double> w;
                double mx = -1e300;
                const int32_t hk = hh / group;
                for (int64_t p : visible) {
                    double s = 0;
                    for (int32_t i = 0; i < D; ++i) {
                        s += double(q[size_t(r) * H * D + hh * D + i]) * cpu::fp16_to_fp32(K[sc.slot_of(p) * kv_dim + hk * D + i]);
                    }
                    w.push_back(s / std::sqrt(double(D)));
                    mx = std::max(mx, w.back());
                }
                double sum = 0;
                for (double& x : w) sum += (x = std::exp(x - mx));
                for (int32_t i = 0; i < D; ++i) {
                    double o = 0;
                    for (size_t j = 0; j < visible.size(); ++j) {
                        o += w[j] / sum * cpu::fp16_to_fp32(V[sc.slot_of(visible[j]) * kv_dim + hk * D + i]);
                    }
                    worst = std::max(worst, std::fabs(o - attn[size_t(r) * H * D + hh * D + i]));
                    ++checked;
                }
            }
        }
        done += n;
    }
    std::printf("windowed attention vs naive: %d values, max abs difference %.3g\n", checked, worst);
    CHECK(h.session->placement().memory > 0);
    CHECK(worst < 5e-3);  // q and the weights are rounded to f16 as in llama.cpp
}

// Work that fits in S + W runs plain full attention: bit-identical to memory off.
TEST(full_route_is_bit_identical_to_memory_off) {
    for (int32_t S : {0, 4}) {
        Scenario on = small(S, 96, 16), off = small(S, 96, 16);
        off.memory = false;
        Harness a(tiny(), on), b(tiny(), off);
        auto t = tokens(size_t(S) + 96, 4);
        const int32_t V = a.model->hparams().n_vocab;
        std::vector<float> la(t.size() * V), lb(t.size() * V);
        a.session->eval(t.data(), int32_t(t.size()), la.data());
        b.session->eval(t.data(), int32_t(t.size()), lb.data());
        CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
        CHECK(a.session->route() == Route::Full);
        // One more token overflows nothing yet (the ring has L slack) but exceeds S + W:
        // a planned longer generation takes the memory route.
        a.session->plan_route(1);
        CHECK(a.session->route() == Route::Memory);
    }
    // A one-segment prompt with empty memory is causal attention within the segment.
    Scenario seg = small(0, 16, 16), full = small(0, 64, 16);
    full.memory = false;
    Harness a(tiny(), seg), b(tiny(), full);
    auto t = tokens(16, 5);
    const int32_t V = a.model->hparams().n_vocab;
    std::vector<float> la(16 * V), lb(16 * V);
    a.session->eval(t.data(), 16, la.data());
    b.session->eval(t.data(), 16, lb.data());
    CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
}

// The pool is planned before any token, and nothing grows with the prompt: the process's
// peak RSS after 64K tokens is what it was after 1K.
TEST(pool_and_peak_rss_do_not_grow_with_prompt_length) {
    const char* env = std::getenv("EI_LONG_TOKENS");
    const int64_t long_n = env ? std::atoll(env) : 65536;
    Scenario sc = small(64, 512, 128);
    Harness h(tiny(), sc);
    const uint64_t pool_size = h.plan.pool.size;
    std::memset(h.pool, 0, pool_size);  // touch every page so the pool counts in full from the start
    auto t = tokens(1024, 6);
    h.session->eval(t.data(), 1024);
    const int64_t rss_1k = peak_rss_kb();
    for (int64_t done = 1024; done < long_n; done += 1024) h.session->eval(t.data(), 1024);
    const int64_t rss_long = peak_rss_kb();
    std::printf("pool %.1f MiB; peak RSS after 1K tokens %lld KiB, after %lld tokens %lld KiB\n", pool_size / 1048576.0,
                (long long)rss_1k, (long long)long_n, (long long)rss_long);
    CHECK(make_plan(h.model, sc).pool.size == pool_size);
    CHECK_EQ(h.session->placement().sink + h.session->placement().window + h.session->placement().memory, long_n);
    CHECK(rss_long - rss_1k < 1024);  // < 1 MiB of drift (allocator noise), not per-token growth
}
