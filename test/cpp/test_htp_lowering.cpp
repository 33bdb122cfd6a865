// The lowering (backends/htp/lower.h) and the emulator's float kernels: every lowered graph
// of several models and scenarios validates and uses only QNN op types with the io roles the
// host binds; the llama Q/K rows are permuted into the halves layout; each float kernel
// against a double-precision reference written here, on odd sizes; refusals name the problem.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/quants.h"
#include "error.h"
#include "htp/emulator.h"
#include "htp/lower.h"
#include "model.h"
#include "plan.h"
#include "session_harness.h"

using namespace ei;
using namespace ei::htp;

namespace {

const htp::Tensor* find_tensor(const QnnGraph& g, const std::string& name) {
    for (const htp::Tensor& t : g.tensors) {
        if (t.name == name) return &t;
    }
    return nullptr;
}
int count_role(const QnnGraph& g, IoRole r) {
    int n = 0;
    for (const htp::Tensor& t : g.tensors) n += t.io == r;
    return n;
}

}  // namespace

TEST(every_lowered_graph_validates_with_its_io_roles) {
    struct Sc {
        bool memory, delta, sinks_follow, memory_rope;
        int S;
    };
    const Sc scs[] = {{false, false, false, false, 4}, {true, false, true, false, 4}, {true, true, true, true, 4},
                      {true, false, false, false, 0}};
    for (const char* file : {"models/tiny-llama-f32.gguf", "models/tiny-qwen2-q8_0.gguf", "models/tiny-llama-q4_k_m.gguf"}) {
        auto model = Model::load(check::testdata(file));
        const HParams& hp = model->hparams();
        for (const Sc& s : scs) {
            Scenario sc;
            sc.memory = s.memory;
            sc.rule = s.delta ? MemoryRule::Delta : MemoryRule::Linear;
            sc.sinks_follow = s.sinks_follow;
            sc.memory_rope = s.memory_rope;
            sc.n_sink = s.S;
            sc.n_window = 16;
            sc.n_batch = 8;
            const Plan plan = make_plan(model, sc);
            WeightStore ws;
            const LoweredPlan lp = lower_plan(plan.prefill, plan.decode, plan.fold, sc, ws);
            for (const QnnGraph* g : {&lp.prefill, &lp.prefill_all_logits, &lp.decode, &lp.fold}) {
                g->validate();  // lower_graph validated too; a second look costs nothing
                CHECK(!g->nodes.empty());
                CHECK(!g->describe().empty());
            }
            // Per layer: the cache in, the new rows out; one logits output.
            for (const QnnGraph* g : {&lp.prefill, &lp.decode, &lp.prefill_all_logits}) {
                CHECK_EQ(count_role(*g, IoRole::KCache), hp.n_layer);
                CHECK_EQ(count_role(*g, IoRole::VNew), hp.n_layer);
                CHECK_EQ(count_role(*g, IoRole::KNew), hp.n_layer);
                CHECK_EQ(count_role(*g, IoRole::AttnMask), 1);
                CHECK_EQ(count_role(*g, IoRole::Logits), 1);
                CHECK_EQ(count_role(*g, IoRole::SinkRopeCos), s.memory && s.sinks_follow && s.S > 0 ? 1 : 0);
                // Tensors named after what they are, for the quantization pass.
                CHECK(find_tensor(*g, "blk.0.attn_q") && find_tensor(*g, "blk.0.attn_q")->kind == TensorKind::Native);
                CHECK(find_tensor(*g, "blk." + std::to_string(hp.n_layer - 1) + ".attn_scores"));
                CHECK(find_tensor(*g, "blk.1.ffn_down"));
            }
            // The scenario's f16 cache goes in and out as FLOAT_16 (the pool's bits as they are).
            for (const htp::Tensor& t : lp.prefill.tensors) {
                if (t.io == IoRole::KCache || t.io == IoRole::VNew || t.io == IoRole::KNew) CHECK(t.dtype == DType::Float16);
            }
            for (const htp::Tensor& t : lp.fold.tensors) {
                if (t.io == IoRole::FoldK) CHECK(t.dtype == DType::Float16);
            }
            const htp::Tensor* logits = find_tensor(lp.prefill, "logits");
            CHECK(logits && logits->dims == (std::vector<uint32_t>{1, uint32_t(hp.n_vocab)}));
            CHECK_EQ(count_role(lp.prefill, IoRole::LogitRow), 1);
            const htp::Tensor* all = find_tensor(lp.prefill_all_logits, "logits");
            CHECK(all && all->dims == (std::vector<uint32_t>{8, uint32_t(hp.n_vocab)}));
            CHECK_EQ(count_role(lp.prefill_all_logits, IoRole::LogitRow), 0);
            CHECK_EQ(find_tensor(lp.decode, "tokens")->dims[0], 1u);
            // Memory inputs only where a layer has a gate (these models have none).
            CHECK_EQ(count_role(lp.prefill, IoRole::MemM), 0);
            CHECK_EQ(count_role(lp.fold, IoRole::MemMOut), hp.n_layer);
            CHECK_EQ(count_role(lp.fold, IoRole::FoldRopeCos), s.memory_rope ? 0 : 1);
            // The emulator's arena: inner tensors share bytes once dead, the inputs and
            // outputs keep theirs.
            uint64_t all_bytes = 0, io_bytes = 0;
            for (const htp::Tensor& t : lp.prefill.tensors) {
                if (t.kind != TensorKind::Static) all_bytes += t.bytes();
                if (t.io != IoRole::None) io_bytes += t.bytes();
            }
            const Emulator emu(lp.prefill);
            std::printf("  %-30s prefill: %zu nodes, arena %llu of %llu bytes of non-static tensors\n", file,
                        lp.prefill.nodes.size(), (unsigned long long)emu.buffer_bytes(), (unsigned long long)all_bytes);
            CHECK(emu.buffer_bytes() >= io_bytes);
            CHECK(emu.buffer_bytes() < all_bytes / 2);
            // The three graphs bind the same weight data.
            CHECK(find_tensor(lp.prefill, "blk.0.ffn_up.weight")->data == find_tensor(lp.decode, "blk.0.ffn_up.weight")->data);
        }
    }
}

// llama pairs adjacent dims; the lowering permutes Q and K rows so each head's pairs are
// (i, i + n_rot/2): graph row h*D + i is GGUF row h*D + perm[i], with perm the evens then the odds.
TEST(llama_q_and_k_rows_are_permuted_to_halves) {
    const std::vector<int32_t> p = head_permutation(8, 6, false);
    CHECK((p == std::vector<int32_t>{0, 2, 4, 1, 3, 5, 6, 7}));
    CHECK((head_permutation(6, 6, true) == std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
    auto model = Model::load(check::testdata("models/tiny-llama-f32.gguf"));
    const HParams& hp = model->hparams();
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_batch = 8;
    const Plan plan = make_plan(model, sc);
    WeightStore ws;
    const QnnGraph g = lower_graph(plan.decode, sc, ws);
    const std::vector<int32_t> perm = head_permutation(hp.head_dim, hp.n_rot, false);
    for (const char* w : {"attn_q", "attn_k"}) {
        const std::string name = std::string("blk.2.") + w + ".weight";
        const htp::Tensor* t = find_tensor(g, name + "#halves");
        CHECK(t != nullptr);
        if (!t) continue;
        const TensorInfo* src = model->gguf().tensor(name);
        const float* a = reinterpret_cast<const float*>(t->data->data());
        const float* b = reinterpret_cast<const float*>(src->data);
        const int64_t K = src->ne[0];
        bool same = true;
        for (int64_t r = 0; r < src->ne[1]; ++r) {
            const int64_t from = r / hp.head_dim * hp.head_dim + perm[size_t(r % hp.head_dim)];
            same &= std::memcmp(a + r * K, b + from * K, size_t(K) * 4) == 0;
        }
        CHECK(same);
    }
    // V is not permuted.
    CHECK(find_tensor(g, "blk.2.attn_v.weight") != nullptr);
}

// ---- the float kernels, each on a graph of one node against a reference in double

namespace {

struct OneNode {
    QnnGraph g;
    std::vector<std::vector<float>> inputs;  // values of each AppWrite tensor, in order

    uint32_t add_tensor(const std::string& name, std::vector<uint32_t> dims, TensorKind kind,
                        DType type = DType::Float32) {
        htp::Tensor t;
        t.id = uint32_t(g.tensors.size());
        t.name = name;
        t.kind = kind;
        t.dtype = type;
        t.dims = std::move(dims);
        if (kind == TensorKind::AppWrite) t.io = IoRole::TokenIds;  // any role: the test binds by id
        if (kind == TensorKind::AppRead) t.io = IoRole::Logits;
        g.tensors.push_back(t);
        return t.id;
    }
};

std::vector<float> random_values(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// Runs one node over float inputs of the given dims; returns its output.
std::vector<float> run_node(OpType type, const std::vector<std::vector<uint32_t>>& in_dims, std::vector<uint32_t> out_dims,
                            const std::vector<std::vector<float>>& values, std::vector<Param> params = {},
                            std::vector<DType> types = {}) {
    OneNode o;
    Node n;
    n.name = "node";
    n.type = type;
    for (size_t i = 0; i < in_dims.size(); ++i) {
        n.inputs.push_back(o.add_tensor("in" + std::to_string(i), in_dims[i], TensorKind::AppWrite,
                                        i < types.size() ? types[i] : DType::Float32));
    }
    n.outputs.push_back(o.add_tensor("out", out_dims, TensorKind::AppRead));
    n.params = std::move(params);
    o.g.name = "one";
    o.g.nodes.push_back(n);
    Emulator e(o.g);
    for (size_t i = 0; i < values.size(); ++i) std::memcpy(e.data(uint32_t(i)), values[i].data(), values[i].size() * 4);
    e.run();
    const htp::Tensor& t = e.graph().tensors.back();
    std::vector<float> out(t.elements());
    std::memcpy(out.data(), e.data(t.id), out.size() * 4);
    return out;
}

Param boolp(const char* name, bool v) {
    Param p;
    p.name = name;
    p.kind = Param::Kind::Bool;
    p.scalar = v;
    return p;
}
Param uintp(const char* name, double v) {
    Param p;
    p.name = name;
    p.kind = Param::Kind::UInt32;
    p.scalar = v;
    return p;
}
Param tensorp(const char* name, std::vector<int64_t> v, std::vector<uint32_t> dims, bool i32 = false) {
    Param p;
    p.name = name;
    p.kind = i32 ? Param::Kind::TensorInt32 : Param::Kind::TensorUInt32;
    p.values = std::move(v);
    p.dims = std::move(dims);
    return p;
}

double max_err(const std::vector<float>& a, const std::vector<double>& b) {
    double m = a.size() == b.size() ? 0 : 1e30;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
    return m;
}

}  // namespace

TEST(matmul_and_fully_connected_equal_a_double_reference) {
    const uint32_t B = 3, M = 5, K = 7, N = 3;
    for (int t0 = 0; t0 < 2; ++t0) {
        for (int t1 = 0; t1 < 2; ++t1) {
            const std::vector<float> a = random_values(B * M * K, 1), b = random_values(B * K * N, 2);
            std::vector<double> ref(B * M * N);
            for (uint32_t bt = 0; bt < B; ++bt) {
                for (uint32_t i = 0; i < M; ++i) {
                    for (uint32_t j = 0; j < N; ++j) {
                        double s = 0;
                        for (uint32_t k = 0; k < K; ++k) {
                            const double x = t0 ? a[bt * M * K + k * M + i] : a[bt * M * K + i * K + k];
                            const double y = t1 ? b[bt * K * N + j * K + k] : b[bt * K * N + k * N + j];
                            s += x * y;
                        }
                        ref[(bt * M + i) * N + j] = s;
                    }
                }
            }
            const std::vector<float> out =
                run_node(OpType::MatMul, {t0 ? std::vector<uint32_t>{B, K, M} : std::vector<uint32_t>{B, M, K},
                                          t1 ? std::vector<uint32_t>{B, N, K} : std::vector<uint32_t>{B, K, N}},
                         {B, M, N}, {a, b}, {boolp("transpose_in0", t0), boolp("transpose_in1", t1)});
            CHECK(max_err(out, ref) < 1e-5);
        }
    }
    // FullyConnected: x [2, 3, 9] w [5, 9] b [5]
    const std::vector<float> x = random_values(54, 3), w = random_values(45, 4), bias = random_values(5, 5);
    std::vector<double> ref(30);
    for (int r = 0; r < 6; ++r) {
        for (int o = 0; o < 5; ++o) {
            double s = bias[size_t(o)];
            for (int k = 0; k < 9; ++k) s += double(x[size_t(r * 9 + k)]) * w[size_t(o * 9 + k)];
            ref[size_t(r * 5 + o)] = s;
        }
    }
    CHECK(max_err(run_node(OpType::FullyConnected, {{2, 3, 9}, {5, 9}, {5}}, {2, 3, 5}, {x, w, bias}), ref) < 1e-5);
}

TEST(elementwise_norm_softmax_kernels_equal_a_double_reference) {
    // Broadcasting [2, 3, 5] with [3, 1].
    const std::vector<float> a = random_values(30, 6), b = random_values(3, 7);
    std::vector<double> add(30), mul(30), sub(30), div(30);
    for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 3; ++j) {
            for (int k = 0; k < 5; ++k) {
                const size_t o = size_t((i * 3 + j) * 5 + k);
                add[o] = double(a[o]) + b[size_t(j)];
                sub[o] = double(a[o]) - b[size_t(j)];
                mul[o] = double(a[o]) * b[size_t(j)];
                div[o] = double(a[o]) / b[size_t(j)];
            }
        }
    }
    CHECK(max_err(run_node(OpType::ElementWiseAdd, {{2, 3, 5}, {3, 1}}, {2, 3, 5}, {a, b}), add) < 1e-6);
    CHECK(max_err(run_node(OpType::ElementWiseSubtract, {{2, 3, 5}, {3, 1}}, {2, 3, 5}, {a, b}), sub) < 1e-6);
    CHECK(max_err(run_node(OpType::ElementWiseMultiply, {{2, 3, 5}, {3, 1}}, {2, 3, 5}, {a, b}), mul) < 1e-6);
    CHECK(max_err(run_node(OpType::ElementWiseDivide, {{2, 3, 5}, {3, 1}}, {2, 3, 5}, {a, b}), div) < 1e-4);
    std::vector<double> sg(30), el(30), ng(30);
    for (size_t i = 0; i < 30; ++i) {
        sg[i] = 1.0 / (1.0 + std::exp(-double(a[i])));
        el[i] = a[i] > 0 ? a[i] : std::expm1(double(a[i]));
        ng[i] = -double(a[i]);
    }
    CHECK(max_err(run_node(OpType::Sigmoid, {{30}}, {30}, {a}), sg) < 1e-6);
    CHECK(max_err(run_node(OpType::Elu, {{30}}, {30}, {a}), el) < 1e-6);
    CHECK(max_err(run_node(OpType::ElementWiseNeg, {{30}}, {30}, {a}), ng) == 0);
    // RmsNorm over rows of 5 (odd), and Softmax over rows of 5.
    const std::vector<float> gamma = random_values(5, 8), beta = random_values(5, 9);
    std::vector<double> rn(30), sm(30);
    for (int r = 0; r < 6; ++r) {
        double ss = 0, mx = -1e30, sum = 0;
        for (int c = 0; c < 5; ++c) {
            ss += double(a[size_t(r * 5 + c)]) * a[size_t(r * 5 + c)];
            mx = std::max(mx, double(a[size_t(r * 5 + c)]));
        }
        for (int c = 0; c < 5; ++c) sum += std::exp(double(a[size_t(r * 5 + c)]) - mx);
        for (int c = 0; c < 5; ++c) {
            rn[size_t(r * 5 + c)] = a[size_t(r * 5 + c)] / std::sqrt(ss / 5 + 1e-5) * gamma[size_t(c)] + beta[size_t(c)];
            sm[size_t(r * 5 + c)] = std::exp(double(a[size_t(r * 5 + c)]) - mx) / sum;
        }
    }
    Param eps;
    eps.name = "epsilon";
    eps.kind = Param::Kind::Float;
    eps.scalar = 1e-5;
    CHECK(max_err(run_node(OpType::RmsNorm, {{2, 3, 5}, {5}, {5}}, {2, 3, 5}, {a, gamma, beta}, {eps}), rn) < 1e-5);
    CHECK(max_err(run_node(OpType::Softmax, {{2, 3, 5}}, {2, 3, 5}, {a}, {uintp("axis", 2)}), sm) < 1e-6);
}

TEST(data_movement_kernels_equal_a_reference) {
    const std::vector<float> a = random_values(2 * 3 * 5, 10);
    auto at = [&](int i, int j, int k) { return double(a[size_t((i * 3 + j) * 5 + k)]); };
    // Transpose perm {2, 0, 1}: out [5, 2, 3].
    std::vector<double> tr;
    for (int k = 0; k < 5; ++k)
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 3; ++j) tr.push_back(at(i, j, k));
    CHECK(max_err(run_node(OpType::Transpose, {{2, 3, 5}}, {5, 2, 3}, {a}, {tensorp("perm", {2, 0, 1}, {3})}), tr) == 0);
    // StridedSlice [0:2, 1:3, 1:5:2].
    std::vector<double> sl;
    for (int i = 0; i < 2; ++i)
        for (int j = 1; j < 3; ++j)
            for (int k = 1; k < 5; k += 2) sl.push_back(at(i, j, k));
    CHECK(max_err(run_node(OpType::StridedSlice, {{2, 3, 5}}, {2, 2, 2}, {a},
                           {tensorp("ranges", {0, 2, 1, 1, 3, 1, 1, 5, 2}, {3, 3}, true)}),
                  sl) == 0);
    // Concat along axis 1 of [2, 3, 5] and [2, 1, 5].
    const std::vector<float> b = random_values(10, 11);
    std::vector<double> cc;
    for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 5; ++k) cc.push_back(at(i, j, k));
        for (int k = 0; k < 5; ++k) cc.push_back(b[size_t(i * 5 + k)]);
    }
    CHECK(max_err(run_node(OpType::Concat, {{2, 3, 5}, {2, 1, 5}}, {2, 4, 5}, {a, b}, {uintp("axis", 1)}), cc) == 0);
    // ReduceSum over axis 1, kept and dropped.
    std::vector<double> rs(10, 0.0);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 5; ++k) rs[size_t(i * 5 + k)] += at(i, j, k);
    CHECK(max_err(run_node(OpType::ReduceSum, {{2, 3, 5}}, {2, 1, 5}, {a}, {tensorp("axes", {1}, {1}), boolp("keep_dims", true)}),
                  rs) < 1e-6);
    CHECK(max_err(run_node(OpType::ReduceSum, {{2, 3, 5}}, {2, 5}, {a}, {tensorp("axes", {1}, {1}), boolp("keep_dims", false)}),
                  rs) < 1e-6);
    // Gather rows {2, 0, 2} of [3, 5]; an index out of range is an error naming it.
    const std::vector<float> data = random_values(15, 12);
    std::vector<float> idx_bits(3);
    const int32_t idx[3] = {2, 0, 2};
    std::memcpy(idx_bits.data(), idx, sizeof(idx));
    std::vector<double> ga;
    for (int r : {2, 0, 2})
        for (int k = 0; k < 5; ++k) ga.push_back(data[size_t(r * 5 + k)]);
    Param axis0;
    axis0.name = "axis";
    axis0.kind = Param::Kind::Int32;
    CHECK(max_err(run_node(OpType::Gather, {{3, 5}, {3}}, {3, 5}, {data, idx_bits}, {axis0}, {DType::Float32, DType::Int32}),
                  ga) == 0);
    const int32_t bad[3] = {0, 3, 1};
    std::memcpy(idx_bits.data(), bad, sizeof(bad));
    CHECK_THROWS(run_node(OpType::Gather, {{3, 5}, {3}}, {3, 5}, {data, idx_bits}, {axis0}, {DType::Float32, DType::Int32}),
                 EI_ERR_INVALID_ARGUMENT, "index 3 outside [0, 3)");
    // Convert f32 -> f16 -> f32 rounds to the nearest half (ties to even), as the CPU's
    // f16 cache stores: 1 + 2^-11 is a tie (to 1), 1 + 3 * 2^-11 rounds up to 1 + 2^-9.
    {
        OneNode o;
        o.g.name = "round";
        const uint32_t x = o.add_tensor("x", {4}, TensorKind::AppWrite);
        const uint32_t h = o.add_tensor("h", {4}, TensorKind::Native, DType::Float16);
        const uint32_t y = o.add_tensor("y", {4}, TensorKind::AppRead);
        Node c1;
        c1.name = "to_half";
        c1.type = OpType::Convert;
        c1.inputs = {x};
        c1.outputs = {h};
        Node c2 = c1;
        c2.name = "to_float";
        c2.inputs = {h};
        c2.outputs = {y};
        o.g.nodes = {c1, c2};
        Emulator e(o.g);
        const float in[4] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -2.5f, 70000.0f};
        std::memcpy(e.data(x), in, sizeof(in));
        e.run();
        const float* out = e.data_as<float>(y);
        CHECK(out[0] == 1.0f);
        CHECK(out[1] == 1.0f + 0x1p-9f);
        CHECK(out[2] == -2.5f);
        CHECK(std::isinf(out[3]));
    }
    // Reshape keeps the bytes.
    std::vector<double> same(a.begin(), a.end());
    CHECK(max_err(run_node(OpType::Reshape, {{2, 3, 5}}, {6, 5}, {a}), same) == 0);
}

TEST(refusals_name_the_problem) {
    auto model = Model::load(check::testdata("models/tiny-llama-f32.gguf"));
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_batch = 8;
    const Plan plan = make_plan(model, sc);
    WeightStore ws;
    // A part of a graph (as a split with the CPU would hand it) is not lowered.
    Graph part = plan.prefill;
    part.ops.erase(part.ops.begin() + 3);
    CHECK_THROWS(lower_graph(part, sc, ws), EI_ERR_UNSUPPORTED, "only whole graphs");
    Graph empty = plan.decode;
    empty.ops.clear();
    CHECK_THROWS(lower_graph(empty, sc, ws), EI_ERR_UNSUPPORTED, "no ops");
    // A graph that reads a tensor nothing produced is refused by validation (the emulator's
    // constructor validates).
    QnnGraph g;
    g.name = "broken";
    htp::Tensor t;
    t.name = "x";
    t.dims = {2};
    g.tensors.push_back(t);
    t.id = 1;
    t.name = "y";
    g.tensors.push_back(t);
    Node n;
    n.name = "neg";
    n.type = OpType::ElementWiseNeg;
    n.inputs = {0};
    n.outputs = {1};
    g.nodes.push_back(n);
    CHECK_THROWS(Emulator{g}, EI_ERR_INTERNAL, "before anything produces it");
    // Op observers see planned ops in the pool, which this device does not run: refused.
    sc.device = "htp-emulator";
    check::Harness h(check::testdata("models/tiny-llama-f32.gguf"), sc);
    struct Nop : OpObserver {} nop;
    h.session->set_observer(&nop);
    const int32_t tok = 5;
    CHECK_THROWS(h.session->eval(&tok, 1), EI_ERR_UNSUPPORTED, "op observers");
}
