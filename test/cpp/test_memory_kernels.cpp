// Segment attention and memory update kernels: every SIMD variant against the scalar
// reference, on odd sizes, wrapped spans and padded segments; plus the memory rules'
// algebra (direct recomputation, delta with a repeated key).
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/cpu_features.h"
#include "cpu/ops.h"

using namespace ei::cpu;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

std::vector<const ops::Primitives*> variants() {
    std::vector<const ops::Primitives*> out;
    for (KernelVariant v : {KernelVariant::Scalar, KernelVariant::Avx2, KernelVariant::Avx512, KernelVariant::Neon,
                            KernelVariant::NeonDotprod}) {
        if (const ops::Primitives* p = ops::primitives(v)) out.push_back(p);
    }
    return out;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0, scale = 1e-6;
    for (size_t i = 0; i < a.size(); ++i) scale = std::max(scale, std::fabs(double(b[i])));
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]) / scale);
    return m;
}

// A small KV cache of `slots` slots for one head of dim d, f16 or f32.
struct Cache {
    int32_t d;
    int64_t slots;
    bool f16;
    std::vector<uint8_t> k, v;
    Cache(int32_t d_, int64_t slots_, bool f16_, uint32_t seed) : d(d_), slots(slots_), f16(f16_) {
        auto kf = randn(size_t(d) * slots, seed), vf = randn(size_t(d) * slots, seed + 1);
        const size_t elem = f16 ? 2 : 4;
        k.resize(kf.size() * elem);
        v.resize(vf.size() * elem);
        if (f16) {
            ops::primitives(KernelVariant::Scalar)->f32_to_f16(kf.data(), k.data(), int64_t(kf.size()));
            ops::primitives(KernelVariant::Scalar)->f32_to_f16(vf.data(), v.data(), int64_t(vf.size()));
        } else {
            std::memcpy(k.data(), kf.data(), k.size());
            std::memcpy(v.data(), vf.data(), v.size());
        }
    }
    uint64_t stride() const { return uint64_t(d) * (f16 ? 2 : 4); }
};

// Runs one head over the given spans for nq queries whose visible prefixes are `visible`.
std::vector<float> run_block(const ops::Primitives& p, const Cache& c, const std::vector<ops::KvSpan>& spans,
                             const std::vector<float>& q, const std::vector<int64_t>& visible, int gate,
                             const std::vector<float>* mem, const std::vector<float>* q_sink = nullptr) {
    const int nq = int(visible.size());
    ops::AttentionBlock a;
    std::vector<float> out(size_t(c.d) * nq), scores(size_t(c.slots) * ops::kMaxQueries + 8);
    std::vector<float> gw = randn(2 * size_t(c.d), 99, 0.3f);
    a.nq = nq;
    for (int i = 0; i < nq; ++i) {
        a.q[i] = q.data() + size_t(i) * c.d;
        a.out[i] = out.data() + size_t(i) * c.d;
        a.visible[i] = visible[i];
        a.q_mem[i] = a.q[i];
        if (q_sink) a.q_sink[i] = q_sink->data() + size_t(i) * c.d;
    }
    a.sink_query = q_sink != nullptr;
    a.k = c.k.data();
    a.v = c.v.data();
    a.kv_stride = c.stride();
    a.f16 = c.f16;
    a.head_dim = c.d;
    a.n_spans = int(spans.size());
    for (size_t i = 0; i < spans.size(); ++i) a.spans[i] = spans[i];
    a.scale = 1.0f / std::sqrt(float(c.d));
    a.scores = scores.data();
    if (gate && mem) {
        a.mem_m = mem->data();
        a.mem_z = mem->data() + size_t(c.d) * c.d;
        a.gate = gate;
        for (int i = 0; i < a.nq; ++i) {
            a.gate_w[i] = gw.data();
            a.gate_b[i] = 0.25f;
        }
    }
    ops::segment_attention(a, p);
    return out;
}

int64_t rows(const std::vector<ops::KvSpan>& spans) {
    int64_t n = 0;
    for (auto& s : spans) n += s.count;
    return n;
}

}  // namespace

TEST(segment_attention_variants_match_scalar) {
    const ops::Primitives* ref = ops::primitives(KernelVariant::Scalar);
    CHECK(ref != nullptr);
    int compared = 0;
    for (int32_t d : {8, 13, 40, 64, 72}) {  // 13: the 16-lane dots' padded tail
        for (bool f16 : {true, false}) {
            Cache c(d, 301, f16, 7u + d);
            // memory: M (d x d) then z (d), as a fold of a few random rows would leave it
            std::vector<float> mem(size_t(d) * d + d);
            for (auto& x : mem) x = std::fabs(randn(1, uint32_t(&x - mem.data()))[0]);
            const std::vector<std::vector<ops::KvSpan>> cases = {
                {{0, 1}},                          // the first token alone
                {{0, 4}, {4, 97}},                 // sink + unwrapped ring
                {{0, 4}, {250, 51}, {4, 33}},      // sink + wrapped ring
                {{0, 301}},                        // one long span (odd length)
            };
            for (const auto& spans : cases) {
                // Blocks of 13 queries (odd: a padded last segment), 16 (a full one) and 1
                // (decode); the kernels switch tiling with the block size. The last query sees
                // every row, earlier ones a causal prefix each.
                for (int nq : {13, 16, 1}) {
                    const int64_t n = rows(spans);
                    std::vector<int64_t> visible;
                    for (int i = 0; i < nq; ++i) visible.push_back(std::max<int64_t>(1, n - (nq - 1) + i));
                    auto qs = randn(size_t(d) * nq, 3u + d);
                    for (int gate : {0, 1, 2}) {
                        auto want = run_block(*ref, c, spans, qs, visible, gate, &mem);
                        for (const ops::Primitives* p : variants()) {
                            // Every variant computes in the order of float_math.h: the same bits.
                            auto got = run_block(*p, c, spans, qs, visible, gate, &mem);
                            if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) != 0) {
                                std::fprintf(stderr, "%s d=%d f16=%d nq=%d gate=%d rel=%g\n", p->name, d, f16, nq, gate,
                                             max_rel(got, want));
                                CHECK(false);
                            }
                            ++compared;
                        }
                    }
                }
            }
        }
    }
    std::printf("segment attention: %d comparisons over %zu variants\n", compared, variants().size());
#if defined(__x86_64__)
    const KernelVariant want = cpu_features().avx512 ? KernelVariant::Avx512 : KernelVariant::Avx2;
    CHECK(ops::primitives().variant == want || std::getenv("EI_CPU_DISABLE") != nullptr);
#endif
}

TEST(rows_a_query_does_not_see_never_touch_its_sums) {
    // A value row that only the last query sees holds infinity: every other query's
    // output must stay finite and every variant must give the scalar kernel's bits (a kernel
    // that added 0 * row for the unseen rows would turn them into NaN).
    const ops::Primitives* ref = ops::primitives(KernelVariant::Scalar);
    for (int32_t d : {20, 64}) {
        for (bool f16 : {true, false}) {
            Cache c(d, 40, f16, 70u + d);
            for (int32_t j = 0; j < d; ++j) {
                if (f16) {
                    reinterpret_cast<uint16_t*>(c.v.data())[39 * d + j] = 0x7C00;  // +inf
                } else {
                    reinterpret_cast<float*>(c.v.data())[39 * d + j] = INFINITY;
                }
            }
            for (int nq : {16, 9, 2}) {
                std::vector<int64_t> visible;
                for (int i = 0; i < nq; ++i) visible.push_back(40 - (nq - 1) + i - (i + 1 < nq ? 1 : 0));
                auto q = randn(size_t(d) * nq, 80u + d);
                auto want = run_block(*ref, c, {{0, 4}, {4, 36}}, q, visible, 0, nullptr);
                for (int i = 0; i + 1 < nq; ++i) {
                    for (int32_t j = 0; j < d; ++j) CHECK(std::isfinite(want[size_t(i) * d + j]));
                }
                for (const ops::Primitives* p : variants()) {
                    auto got = run_block(*p, c, {{0, 4}, {4, 36}}, q, visible, 0, nullptr);
                    if (std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) != 0) {
                        std::fprintf(stderr, "%s d=%d f16=%d nq=%d\n", p->name, d, f16, nq);
                        CHECK(false);
                    }
                }
            }
        }
    }
}

TEST(blocks_and_spans_do_not_change_a_single_bit) {
    // Full attention is attention over one span; the same slots cut into spans, and the
    // same queries grouped into other blocks, must give exactly the same bits (this is what
    // makes the full route bit-identical and results independent of L and threads).
    Cache c(64, 200, true, 11);
    auto q = randn(64 * 6, 12);
    const std::vector<int64_t> vis = {145, 146, 147, 148, 149, 150};
    for (const ops::Primitives* p : variants()) {
        auto one = run_block(*p, c, {{0, 150}}, q, vis, 0, nullptr);
        auto two = run_block(*p, c, {{0, 64}, {64, 86}}, q, vis, 0, nullptr);
        CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
        for (int i = 0; i < 6; ++i) {
            std::vector<float> qi(q.begin() + i * 64, q.begin() + (i + 1) * 64);
            auto single = run_block(*p, c, {{0, 64}, {64, 86}}, qi, {vis[i]}, 0, nullptr);
            CHECK(std::memcmp(single.data(), one.data() + i * 64, 64 * sizeof(float)) == 0);
        }
    }
}

// Sinks behind the window: the first span (the sink) is scored with its own queries.
// Checked against a double-precision softmax attention written here, on odd head sizes,
// a wrapped ring and a padded block of queries with causal prefixes (some shorter than the
// sink), f16 and f32 caches; every variant gives the scalar kernel's bits; and sink queries
// equal to the queries change no bit.
TEST(sink_queries_score_the_sink_span) {
    const ops::Primitives* ref = ops::primitives(KernelVariant::Scalar);
    for (int32_t d : {13, 40, 64}) {
        for (bool f16 : {true, false}) {
            Cache c(d, 301, f16, 40u + d);
            const std::vector<ops::KvSpan> spans = {{0, 5}, {250, 51}, {5, 33}};
            const int64_t n = rows(spans);
            std::vector<int64_t> visible;
            for (int i = 0; i < 11; ++i) visible.push_back(i < 2 ? 3 + i : n - 10 + i);  // odd, padded block
            auto q = randn(size_t(d) * 11, 50u + d), qs = randn(size_t(d) * 11, 60u + d);
            auto got = run_block(*ref, c, spans, q, visible, 0, nullptr, &qs);
            // The rows of the list in order: the slots of each span.
            std::vector<int64_t> slot;
            for (auto& sp : spans) {
                for (int64_t r = 0; r < sp.count; ++r) slot.push_back(sp.slot + r);
            }
            auto val = [&](const std::vector<uint8_t>& m, int64_t sl, int j) {
                return f16 ? double(fp16_to_fp32(reinterpret_cast<const uint16_t*>(m.data())[sl * d + j]))
                           : double(reinterpret_cast<const float*>(m.data())[sl * d + j]);
            };
            auto rnd = [&](float x) { return f16 ? double(fp16_to_fp32(fp32_to_fp16(x))) : double(x); };
            double err = 0, scale = 0;
            for (int i = 0; i < 11; ++i) {
                std::vector<double> sc(visible[i]);
                double mx = -1e300;
                for (int64_t j = 0; j < visible[i]; ++j) {
                    const std::vector<float>& qq = j < spans[0].count ? qs : q;
                    double dot = 0;
                    for (int e = 0; e < d; ++e) dot += rnd(qq[size_t(i) * d + e]) * val(c.k, slot[j], e);
                    sc[j] = dot / std::sqrt(double(d));
                    mx = std::max(mx, sc[j]);
                }
                double sum = 0;
                for (double& x : sc) sum += (x = std::exp(x - mx));
                for (int e = 0; e < d; ++e) {
                    double o = 0;
                    for (int64_t j = 0; j < visible[i]; ++j) o += sc[j] / sum * val(c.v, slot[j], e);
                    err = std::max(err, std::fabs(o - got[size_t(i) * d + e]));
                    scale = std::max(scale, std::fabs(o));
                }
            }
            // f16: the attention weights are rounded to f16 before the V sum (as llama.cpp does).
            CHECK(err <= (f16 ? 2e-3 : 2e-6) * std::max(1.0, scale));
            // The sink queries matter: scoring the sink with q instead is far off.
            auto plain = run_block(*ref, c, spans, q, visible, 0, nullptr);
            CHECK(max_rel(plain, got) > 1e-2);
            auto same = run_block(*ref, c, spans, q, visible, 0, nullptr, &q);
            CHECK(std::memcmp(same.data(), plain.data(), plain.size() * sizeof(float)) == 0);
            for (const ops::Primitives* p : variants()) {
                auto v = run_block(*p, c, spans, q, visible, 0, nullptr, &qs);
                CHECK(std::memcmp(v.data(), got.data(), got.size() * sizeof(float)) == 0);
            }
        }
    }
}

TEST(gate_blends_memory_and_local_attention) {
    Cache c(32, 50, false, 21);
    auto q = randn(32, 22);
    // With M and z constant 0.5, A_mem = (sq . 0.5 1) / (sq . 0.5 + eps) = 1 in every dim.
    std::vector<float> mem(32 * 32 + 32, 0.5f);
    const ops::Primitives& p = ops::primitives();
    auto local = run_block(p, c, {{0, 50}}, q, {50}, 0, &mem);
    auto mixed = run_block(p, c, {{0, 50}}, q, {50}, 1, &mem);  // scalar gate weight gw[0]
    const std::vector<float> gw = randn(64, 99, 0.3f);  // run_block's gate weights, bias 0.25
    const double g = 1.0 / (1.0 + std::exp(-(gw[0] + 0.25)));
    for (int i = 0; i < 32; ++i) CHECK_NEAR(mixed[i], g * 1.0 + (1 - g) * local[i], 1e-5);
    // Adaptive: g = sigmoid(w[0:d] . A_mem + w[d:2d] . A_local + b), the first half on A_mem.
    auto adaptive = run_block(p, c, {{0, 50}}, q, {50}, 2, &mem);
    double logit = 0.25;
    for (int i = 0; i < 32; ++i) logit += double(gw[i]) * 1.0 + double(gw[32 + i]) * local[i];
    const double ga = 1.0 / (1.0 + std::exp(-logit));
    for (int i = 0; i < 32; ++i) CHECK_NEAR(adaptive[i], ga * 1.0 + (1 - ga) * local[i], 1e-5);
}

TEST(linear_fold_equals_direct_sum) {
    const int32_t d = 24;
    const int64_t n = 37;
    auto k = randn(size_t(n) * d, 31), v = randn(size_t(n) * d, 32);
    std::vector<double> M(size_t(d) * d, 0.0), z(d, 0.0);
    for (int64_t t = 0; t < n; ++t) {
        for (int32_t i = 0; i < d; ++i) {
            const double s = ops::sigma(k[t * d + i]);
            z[i] += s;
            for (int32_t j = 0; j < d; ++j) M[i * d + j] += s * v[t * d + j];
        }
    }
    for (const ops::Primitives* p : variants()) {
        std::vector<float> Mf(size_t(d) * d, 0.0f), zf(d, 0.0f), r(d);
        // Fold in two blocks of odd sizes (the last one "padded": shorter).
        for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 29}, {29, n}}) {
            std::vector<float> sk, vv(v.begin() + b * d, v.begin() + e * d);
            for (int64_t t = b; t < e; ++t) {
                for (int32_t i = 0; i < d; ++i) sk.push_back(ops::sigma(k[t * d + i]));
            }
            ops::memory_update(Mf.data(), zf.data(), sk.data(), vv.data(), e - b, d, false, r.data(), *p);
        }
        for (size_t i = 0; i < Mf.size(); ++i) CHECK_NEAR(Mf[i], M[i], 1e-4 * (1 + std::fabs(M[i])));
        for (int32_t i = 0; i < d; ++i) CHECK_NEAR(zf[i], z[i], 1e-4 * (1 + z[i]));
        if (p == variants().front()) continue;
        // and the fold is bit-identical to the scalar one
        std::vector<float> Ms(size_t(d) * d, 0.0f), zs(d, 0.0f);
        for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 29}, {29, n}}) {
            std::vector<float> sk, vv(v.begin() + b * d, v.begin() + e * d);
            for (int64_t t = b; t < e; ++t) {
                for (int32_t i = 0; i < d; ++i) sk.push_back(ops::sigma(k[t * d + i]));
            }
            ops::memory_update(Ms.data(), zs.data(), sk.data(), vv.data(), e - b, d, false, r.data(),
                               *variants().front());
        }
        CHECK(std::memcmp(Ms.data(), Mf.data(), Ms.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(zs.data(), zf.data(), zs.size() * sizeof(float)) == 0);
    }
}

// The delta rule on a memory that already holds something, against its formula in double:
// every row corrected with the memory from before the block, M += sk^T (v - sk M / (sk z)).
TEST(delta_fold_equals_direct_recomputation) {
    const int32_t d = 20;
    const int64_t n0 = 23, n = 11;
    auto k = randn(size_t(n0 + n) * d, 81), v = randn(size_t(n0 + n) * d, 82);
    std::vector<double> sk(k.size());
    for (size_t i = 0; i < k.size(); ++i) sk[i] = k[i] > 0 ? k[i] + 1.0 : std::exp(double(k[i]));  // elu + 1
    // The first n0 rows fold linearly into an empty memory, then n rows by the delta rule.
    std::vector<double> M(size_t(d) * d, 0.0), z(d, 0.0);
    for (int64_t t = 0; t < n0; ++t) {
        for (int32_t i = 0; i < d; ++i) {
            z[i] += sk[t * d + i];
            for (int32_t j = 0; j < d; ++j) M[i * d + j] += sk[t * d + i] * v[t * d + j];
        }
    }
    std::vector<double> corrected(size_t(n) * d);
    for (int64_t t = 0; t < n; ++t) {
        const double* s = &sk[(n0 + t) * d];
        double den = 0;
        for (int32_t i = 0; i < d; ++i) den += s[i] * z[i];
        for (int32_t j = 0; j < d; ++j) {
            double r = 0;
            for (int32_t i = 0; i < d; ++i) r += s[i] * M[i * d + j];
            corrected[t * d + j] = v[(n0 + t) * d + j] - r / den;
        }
    }
    std::vector<double> want = M, want_z = z;
    for (int64_t t = 0; t < n; ++t) {
        for (int32_t i = 0; i < d; ++i) {
            want_z[i] += sk[(n0 + t) * d + i];
            for (int32_t j = 0; j < d; ++j) want[i * d + j] += sk[(n0 + t) * d + i] * corrected[t * d + j];
        }
    }
    double scale = 0;
    for (double x : want) scale = std::max(scale, std::fabs(x));
    for (const ops::Primitives* p : variants()) {
        std::vector<float> Mf(size_t(d) * d, 0.0f), zf(d, 0.0f), r(d);
        std::vector<float> skf(sk.begin(), sk.end()), vf = v;
        ops::memory_update(Mf.data(), zf.data(), skf.data(), vf.data(), n0, d, false, r.data(), *p);
        ops::memory_update(Mf.data(), zf.data(), skf.data() + n0 * d, vf.data() + n0 * d, n, d, true, r.data(), *p);
        double worst = 0;
        for (size_t i = 0; i < Mf.size(); ++i) worst = std::max(worst, std::fabs(Mf[i] - want[i]) / scale);
        for (int32_t i = 0; i < d; ++i) CHECK_NEAR(zf[i], want_z[i], 1e-5 * want_z[i]);
        CHECK(worst < 1e-5);
    }
}

TEST(delta_fold_with_repeated_key_leaves_m_unchanged) {
    const int32_t d = 16;
    auto k = randn(d, 41), v = randn(d, 42);
    std::vector<float> sk(d);
    for (int32_t i = 0; i < d; ++i) sk[i] = ops::sigma(k[i]);
    for (const ops::Primitives* p : variants()) {
        std::vector<float> M(size_t(d) * d, 0.0f), z(d, 0.0f), r(d);
        std::vector<float> v1 = v;
        ops::memory_update(M.data(), z.data(), sk.data(), v1.data(), 1, d, true, r.data(), *p);
        const std::vector<float> before = M;
        double norm = 0;
        for (float x : M) norm = std::max(norm, double(std::fabs(x)));
        CHECK(norm > 0.1);  // the first fold stored something
        std::vector<float> v2 = v;
        ops::memory_update(M.data(), z.data(), sk.data(), v2.data(), 1, d, true, r.data(), *p);
        for (size_t i = 0; i < M.size(); ++i) CHECK_NEAR(M[i], before[i], 1e-5 * norm);
        // z still counts the key twice: the normaliser grows, the content does not.
        for (int32_t i = 0; i < d; ++i) CHECK_NEAR(z[i], 2 * sk[i], 1e-5);
    }
}

TEST(delta_and_linear_agree_on_an_empty_memory) {
    const int32_t d = 12;
    const int64_t n = 5;
    auto k = randn(size_t(n) * d, 51), v = randn(size_t(n) * d, 52);
    std::vector<float> sk(k.size());
    for (size_t i = 0; i < k.size(); ++i) sk[i] = ops::sigma(k[i]);
    const ops::Primitives& p = ops::primitives();
    std::vector<float> Ml(size_t(d) * d, 0.0f), zl(d, 0.0f), Md = Ml, zd = zl, r(d);
    std::vector<float> v1 = v, v2 = v;
    ops::memory_update(Ml.data(), zl.data(), sk.data(), v1.data(), n, d, false, r.data(), p);
    ops::memory_update(Md.data(), zd.data(), sk.data(), v2.data(), n, d, true, r.data(), p);
    // Within one block every row sees the memory from before the block: empty, so the
    // delta rule's correction is zero and both rules store the same thing.
    for (size_t i = 0; i < Ml.size(); ++i) CHECK_NEAR(Ml[i], Md[i], 1e-6);
}

TEST(rope_inverse_restores_keys) {
    auto x = randn(2 * 64, 61);
    std::vector<float> y(x.size()), back(x.size());
    for (bool halves : {false, true}) {
        ops::rope(x.data(), y.data(), 2, 64, 64, 12345, 10000.0f, halves);
        ops::rope(y.data(), back.data(), 2, 64, 64, -12345, 10000.0f, halves);
        for (size_t i = 0; i < x.size(); ++i) CHECK_NEAR(back[i], x[i], 2e-3);
    }
}

// fast_exp (float_math.h) is ggml's polynomial: within 2.5 ulp of exp over the float range,
// 0 below it and inf above, NaN for NaN; every variant's exp_sum and silu_mul give the
// scalar bits, also where results are subnormal, overflow, or take the exact slow path.
TEST(fast_exp_is_accurate_and_identical_in_every_variant) {
    double worst_ulp = 0;
    for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
        const double e = std::exp(double(x));
        const float got = fast_exp(x);
        const double ulp = std::ldexp(1.0, std::ilogb(float(e)) - 23);
        worst_ulp = std::max(worst_ulp, std::fabs(got - e) / ulp);
    }
    std::printf("fast_exp: worst error %.2f ulp on [-87, 88]\n", worst_ulp);
    CHECK(worst_ulp <= 2.5);  // documented: 1.45 ulp + 0.5 rounding, measured against a rounded exp
    CHECK(fast_exp(0.0f) == 1.0f);
    CHECK(fast_exp(-1000.0f) == 0.0f);
    CHECK(std::isinf(fast_exp(1000.0f)));
    CHECK(std::isnan(fast_exp(std::nanf(""))));
    const float sub = fast_exp(-100.0f);  // subnormal: 3.7e-44
    CHECK(sub > 0.0f && sub < 1e-38f && std::fabs(sub - std::exp(-100.0)) <= 1.5e-45);

    // Inputs: ordinary values, plus some that drive whole vectors and single lanes into
    // the under/overflow paths; odd lengths for the padded last chunk.
    std::vector<float> x = randn(203, 71, 4.0f);
    for (int i = 0; i < 16; ++i) x[32 + i] = -90.0f - 7.0f * i;  // a chunk entirely below -87
    x[5] = -150.0f;
    x[70] = -200.0f;
    x[71] = 95.0f;
    x[90] = -INFINITY;
    const ops::Primitives* ref = ops::primitives(KernelVariant::Scalar);
    for (int64_t n : {int64_t(1), int64_t(15), int64_t(17), int64_t(203)}) {
        std::vector<float> want(x.begin(), x.begin() + n);
        const double want_sum = ref->exp_sum(want.data(), n, 3.0f);
        std::vector<float> up = randn(size_t(n), 72), silu_want(x.begin(), x.begin() + n);
        ref->silu_mul(silu_want.data(), up.data(), n);
        for (const ops::Primitives* p : variants()) {
            std::vector<float> got(x.begin(), x.begin() + n);
            const double got_sum = p->exp_sum(got.data(), n, 3.0f);
            CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
            CHECK(std::memcmp(&got_sum, &want_sum, sizeof(double)) == 0);
            std::vector<float> silu(x.begin(), x.begin() + n);
            p->silu_mul(silu.data(), up.data(), n);
            CHECK(std::memcmp(silu.data(), silu_want.data(), silu.size() * sizeof(float)) == 0);
        }
        for (int64_t j = 0; j < n; ++j) CHECK(want[j] == fast_exp(x[j] - 3.0f));
    }
}
