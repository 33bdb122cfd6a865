// The QNN adapter (backends/htp/qnn_adapter.h) against the project's fake QNN backend
// library (test/fake_qnn), which rebuilds the lowered graph from the API calls it receives:
// hand-built graphs covering every op type, data type, encoding kind and param kind of
// qnn_ir.h go through the adapter and must come back identical; executions must bind every
// buffer to its own tensor; the context cache must store, load, and refuse a foreign or
// corrupt file; a missing library, a library without an HTP provider, an API too old and a
// failing call must give clear errors.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "error.h"
#include "fake_qnn.h"
#include "htp/qnn_adapter.h"
#include "htp/qnn_context_cache.h"

using namespace ei;
using namespace ei::htp;

namespace {

// The fake's hooks, from the same library the adapter opens.
struct Fake {
    void* dl = nullptr;
    ei_fake_qnn_reset_fn reset = nullptr;
    ei_fake_qnn_set_htp_provider_fn set_htp = nullptr;
    ei_fake_qnn_fail_fn fail = nullptr;
    ei_fake_qnn_calls_fn calls = nullptr;
    ei_fake_qnn_graph_fn graph = nullptr;
    ei_fake_qnn_input_fn input = nullptr;

    Fake() {
        dl = dlopen(EI_FAKE_QNN_LIB, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            std::fprintf(stderr, "cannot load the fake QNN library %s: %s\n", EI_FAKE_QNN_LIB, dlerror());
            std::abort();
        }
        reset = reinterpret_cast<ei_fake_qnn_reset_fn>(dlsym(dl, "ei_fake_qnn_reset"));
        set_htp = reinterpret_cast<ei_fake_qnn_set_htp_provider_fn>(dlsym(dl, "ei_fake_qnn_set_htp_provider"));
        fail = reinterpret_cast<ei_fake_qnn_fail_fn>(dlsym(dl, "ei_fake_qnn_fail"));
        calls = reinterpret_cast<ei_fake_qnn_calls_fn>(dlsym(dl, "ei_fake_qnn_calls"));
        graph = reinterpret_cast<ei_fake_qnn_graph_fn>(dlsym(dl, "ei_fake_qnn_graph"));
        input = reinterpret_cast<ei_fake_qnn_input_fn>(dlsym(dl, "ei_fake_qnn_input"));
        if (!reset || !set_htp || !fail || !calls || !graph || !input) std::abort();
        reset();
    }
    ~Fake() { dlclose(dl); }
    const QnnGraph* rebuilt(const std::string& name) const { return static_cast<const QnnGraph*>(graph(name.c_str())); }
    size_t count(const std::string& line_prefix) const {
        const std::string all = calls();
        size_t n = 0, pos = 0;
        while ((pos = all.find(line_prefix, pos)) != std::string::npos) {
            if (pos == 0 || all[pos - 1] == '\n') ++n;
            pos += line_prefix.size();
        }
        return n;
    }
};

QnnAdapter::Options fake_options(const std::string& soc = "test-soc") {
    QnnAdapter::Options o;
    o.library = EI_FAKE_QNN_LIB;
    o.soc = soc;
    return o;
}

using Data = std::shared_ptr<const std::vector<uint8_t>>;

// Deterministic bytes; `lo`..`hi` is the range of each byte seen as int8 (for int4 weights).
Data bytes(size_t n, uint32_t seed, int lo = -128, int hi = 127) {
    auto v = std::make_shared<std::vector<uint8_t>>(n);
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; ++i) {
        s = s * 1664525u + 1013904223u;
        (*v)[i] = static_cast<uint8_t>(static_cast<int8_t>(lo + static_cast<int>((s >> 8) % static_cast<uint32_t>(hi - lo + 1))));
    }
    return v;
}

Encoding per_tensor(float scale, int32_t offset) {
    Encoding e;
    e.kind = Encoding::Kind::PerTensor;
    e.scale = scale;
    e.offset = offset;
    return e;
}

struct Builder {
    QnnGraph g;
    uint32_t t(const std::string& name, TensorKind kind, DType dt, std::vector<uint32_t> dims, Encoding enc = {},
               IoRole io = IoRole::None, int32_t layer = -1, Data data = nullptr) {
        Tensor x;
        x.id = static_cast<uint32_t>(g.tensors.size());
        x.name = name;
        x.kind = kind;
        x.dtype = dt;
        x.dims = std::move(dims);
        x.enc = std::move(enc);
        x.io = io;
        x.layer = layer;
        x.data = std::move(data);
        g.tensors.push_back(std::move(x));
        return g.tensors.back().id;
    }
    void n(const std::string& name, OpType type, std::vector<uint32_t> in, std::vector<uint32_t> out, std::vector<Param> params = {}) {
        Node x;
        x.name = name;
        x.type = type;
        x.inputs = std::move(in);
        x.outputs = std::move(out);
        x.params = std::move(params);
        g.nodes.push_back(std::move(x));
    }
};

Param scalar(const std::string& name, Param::Kind k, double v) {
    Param p;
    p.name = name;
    p.kind = k;
    p.scalar = v;
    return p;
}
Param tensor_param(const std::string& name, Param::Kind k, std::vector<int64_t> values, std::vector<uint32_t> dims) {
    Param p;
    p.name = name;
    p.kind = k;
    p.values = std::move(values);
    p.dims = std::move(dims);
    return p;
}

// The weights prefill and decode share (one model).
struct Weights {
    static constexpr uint32_t D = 64, V = 16, KV = 32;
    Data embed = bytes(V * D * 4, 1, 0, 60);           // small positive floats' bit patterns are fine here
    Data gamma = bytes(D * 4, 2, 0, 60), beta = bytes(D * 4, 3, 0, 60);
    Data wq = bytes(D * D, 4);                          // int8
    Data bq = bytes(D * 4, 5);                          // int32
    Data wk = bytes(KV * D, 6, -8, 7);                  // int4, one per byte
    Encoding wq_enc, wk_enc;
    Weights() {
        wq_enc.kind = Encoding::Kind::PerChannel;
        wq_enc.axis = 0;
        for (uint32_t c = 0; c < D; ++c) {
            wq_enc.scales.push_back(0.001f * static_cast<float>(c + 1));
            wq_enc.offsets.push_back(static_cast<int32_t>(c % 3) - 1);
        }
        wk_enc.kind = Encoding::Kind::BlockwiseExpansion;
        wk_enc.axis = 0;
        wk_enc.block_size = 32;
        wk_enc.block_scale_bits = 4;
        for (uint32_t c = 0; c < KV; ++c) wk_enc.scales.push_back(0.01f / static_cast<float>(c + 1));
        for (uint32_t i = 0; i < KV * (D / 32); ++i) wk_enc.block_scales.push_back(static_cast<uint8_t>(1 + i % 15));
    }
};

// A graph using every op type, data type, encoding kind and param kind of qnn_ir.h (the
// shapes are consistent; the numbers are not a model's).
QnnGraph full_graph(const std::string& name, uint32_t L, const Weights& w) {
    constexpr uint32_t D = Weights::D, V = Weights::V, KV = Weights::KV;
    using K = TensorKind;
    using PK = Param::Kind;
    Builder b;
    b.g.name = name;
    const uint32_t tok = b.t("tokens", K::AppWrite, DType::Int32, {L}, {}, IoRole::TokenIds);
    const uint32_t cos = b.t("rope_cos", K::AppWrite, DType::Float32, {L, KV}, {}, IoRole::RopeCos);
    const uint32_t mask = b.t("mask", K::AppWrite, DType::Float32, {L, L}, {}, IoRole::AttnMask);
    b.t("k_cache.0", K::AppWrite, DType::UFixed8, {8, KV}, per_tensor(0.02f, -128), IoRole::KCache, 0);
    b.t("memory_on", K::AppWrite, DType::Bool8, {1}, {}, IoRole::MemoryOn);
    b.t("logit_row", K::AppWrite, DType::UInt32, {1}, {}, IoRole::LogitRow);
    const uint32_t embed = b.t("token_embd", K::Static, DType::Float32, {V, D}, {}, IoRole::None, -1, w.embed);
    const uint32_t gamma = b.t("norm.gamma", K::Static, DType::Float32, {D}, {}, IoRole::None, -1, w.gamma);
    const uint32_t beta = b.t("norm.beta", K::Static, DType::Float32, {D}, {}, IoRole::None, -1, w.beta);
    const uint32_t wq = b.t("attn_q.weight", K::Static, DType::SFixed8, {D, D}, w.wq_enc, IoRole::None, -1, w.wq);
    const uint32_t bq = b.t("attn_q.bias", K::Static, DType::SFixed32, {D}, per_tensor(1e-5f, 0), IoRole::None, -1, w.bq);
    const uint32_t wk = b.t("attn_k.weight", K::Static, DType::SFixed4, {KV, D}, w.wk_enc, IoRole::None, -1, w.wk);
    const uint32_t x = b.t("x", K::Native, DType::Float32, {L, D});
    const uint32_t h = b.t("h", K::Native, DType::Float32, {L, D});
    const uint32_t hq = b.t("hq", K::Native, DType::UFixed16, {L, D}, per_tensor(0.0005f, -32768));
    const uint32_t q = b.t("q", K::Native, DType::UFixed16, {L, D}, per_tensor(0.001f, -32768));
    const uint32_t knew = b.t("k_new.0", K::AppRead, DType::UFixed8, {L, KV}, per_tensor(0.03f, -128), IoRole::KNew, 0);
    const uint32_t qf = b.t("qf", K::Native, DType::Float32, {L, D});
    const uint32_t qr = b.t("qr", K::Native, DType::Float32, {L, 2, KV});
    const uint32_t qt = b.t("qt", K::Native, DType::Float32, {2, L, KV});
    const uint32_t qs = b.t("qs", K::Native, DType::Float32, {2, L, KV});
    const uint32_t qm = b.t("qm", K::Native, DType::Float32, {2, L, KV});
    const uint32_t qn = b.t("qn", K::Native, DType::Float32, {2, L, KV});
    const uint32_t qa = b.t("qa", K::Native, DType::Float32, {2, L, KV});
    const uint32_t qc = b.t("qc", K::Native, DType::Float32, {2, L, D});
    const uint32_t sc = b.t("scores", K::Native, DType::Float32, {2, L, L});
    const uint32_t sm = b.t("masked", K::Native, DType::Float32, {2, L, L});
    const uint32_t p = b.t("probs", K::Native, DType::Float32, {2, L, L});
    const uint32_t ps = b.t("sig", K::Native, DType::Float32, {2, L, L});
    const uint32_t pe = b.t("elu", K::Native, DType::Float32, {2, L, L});
    const uint32_t pd = b.t("div", K::Native, DType::Float32, {2, L, L});
    const uint32_t rs = b.t("rsum", K::Native, DType::Float32, {2, L, 1});
    const uint32_t logits = b.t("logits", K::AppRead, DType::Float32, {2 * L}, {}, IoRole::Logits);
    b.n("embed", OpType::Gather, {embed, tok}, {x}, {scalar("axis", PK::Int32, 0)});
    b.n("norm", OpType::RmsNorm, {x, gamma, beta}, {h}, {scalar("epsilon", PK::Float, 1e-6), tensor_param("axes", PK::TensorUInt32, {1}, {1})});
    b.n("quant_in", OpType::Convert, {h}, {hq});
    b.n("attn_q", OpType::FullyConnected, {hq, wq, bq}, {q}, {scalar("keep_dims", PK::Bool, 0)});
    b.n("attn_k", OpType::FullyConnected, {hq, wk}, {knew});
    b.n("dequant_q", OpType::Convert, {q}, {qf});
    b.n("heads", OpType::Reshape, {qf}, {qr});
    b.n("heads_first", OpType::Transpose, {qr}, {qt}, {tensor_param("perm", PK::TensorUInt32, {1, 0, 2}, {3})});
    b.n("slice", OpType::StridedSlice, {qt}, {qs}, {tensor_param("ranges", PK::TensorInt32, {0, 2, 1, 0, static_cast<int64_t>(L), 1, 0, KV, 1}, {3, 3})});
    b.n("rope_mul", OpType::ElementWiseMultiply, {qs, cos}, {qm});
    b.n("rope_neg", OpType::ElementWiseNeg, {qm}, {qn});
    b.n("rope_add", OpType::ElementWiseAdd, {qm, qn}, {qa});
    b.n("rope_cat", OpType::Concat, {qa, qm}, {qc}, {scalar("axis", PK::UInt32, 2)});
    b.n("qk", OpType::MatMul, {qc, qc}, {sc}, {scalar("transpose_in0", PK::Bool, 0), scalar("transpose_in1", PK::Bool, 1)});
    b.n("mask_sub", OpType::ElementWiseSubtract, {sc, mask}, {sm});
    b.n("softmax", OpType::Softmax, {sm}, {p}, {scalar("axis", PK::UInt32, 2), scalar("beta", PK::Float, 1.0)});
    b.n("sigmoid", OpType::Sigmoid, {p}, {ps});
    b.n("elu", OpType::Elu, {ps}, {pe}, {scalar("alpha", PK::Float, 1.0)});
    b.n("div", OpType::ElementWiseDivide, {pe, ps}, {pd});
    b.n("rsum", OpType::ReduceSum, {pd}, {rs}, {tensor_param("axes", PK::TensorUInt32, {2}, {1}), scalar("keep_dims", PK::Bool, 1)});
    b.n("flatten", OpType::Reshape, {rs}, {logits});
    b.g.validate();
    return b.g;
}

// A small third graph on the same weights (the fold's place in one context).
QnnGraph fold_graph(const Weights& w) {
    Builder b;
    b.g.name = "fold";
    const uint32_t in = b.t("fold_k", TensorKind::AppWrite, DType::UFixed16, {2, Weights::D}, per_tensor(0.001f, -32768), IoRole::FoldK, 0);
    const uint32_t wq = b.t("attn_q.weight", TensorKind::Static, DType::SFixed8, {Weights::D, Weights::D}, w.wq_enc, IoRole::None, -1, w.wq);
    const uint32_t out = b.t("mem_m_out.0", TensorKind::AppRead, DType::UFixed16, {2, Weights::D}, per_tensor(0.002f, -32768), IoRole::MemMOut, 0);
    b.n("fold_proj", OpType::FullyConnected, {in, wq}, {out});
    b.g.validate();
    return b.g;
}

bool same_encoding(const Encoding& a, const Encoding& b) {
    if (a.kind != b.kind) return false;
    auto offsets = [](const Encoding& e) {
        return e.offsets.empty() ? std::vector<int32_t>(e.scales.size(), 0) : e.offsets;
    };
    switch (a.kind) {
        case Encoding::Kind::None: return true;
        case Encoding::Kind::PerTensor: return a.scale == b.scale && a.offset == b.offset;
        case Encoding::Kind::PerChannel: return a.axis == b.axis && a.scales == b.scales && offsets(a) == offsets(b);
        case Encoding::Kind::BlockwiseExpansion:
            return a.axis == b.axis && a.scales == b.scales && offsets(a) == offsets(b) && a.block_size == b.block_size &&
                   a.block_scale_bits == b.block_scale_bits && a.block_scales == b.block_scales;
    }
    return false;
}

// Everything QNN is told about g must have arrived (io roles and layers stay on the host).
void check_same_graph(const QnnGraph& sent, const QnnGraph* got) {
    CHECK(got != nullptr);
    if (!got) return;
    CHECK(got->name == sent.name);
    CHECK_EQ(got->tensors.size(), sent.tensors.size());
    CHECK_EQ(got->nodes.size(), sent.nodes.size());
    for (size_t i = 0; i < sent.tensors.size() && i < got->tensors.size(); ++i) {
        const Tensor &a = sent.tensors[i], &b = got->tensors[i];
        const bool ok = a.name == b.name && a.kind == b.kind && a.dtype == b.dtype && a.dims == b.dims && same_encoding(a.enc, b.enc) &&
                        (a.data == nullptr) == (b.data == nullptr) && (!a.data || *a.data == *b.data);
        if (!ok) std::fprintf(stderr, "tensor %zu (%s) differs after transmission\n", i, a.name.c_str());
        CHECK(ok);
    }
    for (size_t i = 0; i < sent.nodes.size() && i < got->nodes.size(); ++i) {
        const Node &a = sent.nodes[i], &b = got->nodes[i];
        bool ok = a.name == b.name && a.type == b.type && a.inputs == b.inputs && a.outputs == b.outputs && a.params.size() == b.params.size();
        for (size_t k = 0; ok && k < a.params.size(); ++k) {
            const Param &pa = a.params[k], &pb = b.params[k];
            const bool scalar_kind = pa.kind == Param::Kind::Bool || pa.kind == Param::Kind::UInt32 || pa.kind == Param::Kind::Int32 ||
                                     pa.kind == Param::Kind::Float;
            ok = pa.name == pb.name && pa.kind == pb.kind &&
                 (scalar_kind ? static_cast<float>(pa.scalar) == static_cast<float>(pb.scalar) : pa.values == pb.values && pa.dims == pb.dims);
        }
        if (!ok) std::fprintf(stderr, "node %zu (%s) differs after transmission\n", i, a.name.c_str());
        CHECK(ok);
    }
}

std::string g_temp_dir;

// A folder of this run's own for cache files, removed (with what is left in it) at exit.
std::string temp_dir() {
    if (g_temp_dir.empty()) {
        char tmpl[] = "/tmp/ei-qnn-test-XXXXXX";
        const char* d = mkdtemp(tmpl);
        if (!d) std::abort();
        g_temp_dir = d;
        std::atexit([] {
            for (const char* f : {"x.bin", "x.bin.tmp"}) std::remove((g_temp_dir + "/" + f).c_str());
            rmdir(g_temp_dir.c_str());
        });
    }
    return g_temp_dir;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_file(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Buffers for every io tensor of g; inputs filled with a pattern of their own.
struct IoSet {
    std::vector<std::vector<uint8_t>> buf;
    std::vector<QnnIoBuffer> io;
    explicit IoSet(const QnnGraph& g) {
        for (const Tensor& t : g.tensors) {
            if (t.kind != TensorKind::AppWrite && t.kind != TensorKind::AppRead) continue;
            buf.emplace_back(t.bytes());
            if (t.kind == TensorKind::AppWrite) {
                for (size_t k = 0; k < buf.back().size(); ++k) buf.back()[k] = static_cast<uint8_t>(t.id * 31 + k);
            }
        }
        size_t i = 0;
        for (const Tensor& t : g.tensors) {
            if (t.kind != TensorKind::AppWrite && t.kind != TensorKind::AppRead) continue;
            io.push_back({t.id, buf[i].data(), buf[i].size()});
            ++i;
        }
    }
};

}  // namespace

TEST(hand_built_graph_covers_the_whole_ir) {
    // If qnn_ir.h grows an op, data type, encoding or param kind, this graph must grow too.
    const Weights w;
    const QnnGraph g = full_graph("prefill", 4, w);
    std::set<int> ops, dtypes, encs, params;
    for (const Tensor& t : g.tensors) {
        dtypes.insert(static_cast<int>(t.dtype));
        encs.insert(static_cast<int>(t.enc.kind));
    }
    for (const Node& n : g.nodes) {
        ops.insert(static_cast<int>(n.type));
        for (const Param& p : n.params) params.insert(static_cast<int>(p.kind));
    }
    CHECK_EQ(ops.size(), static_cast<size_t>(OpType::Convert) + 1);
    CHECK_EQ(dtypes.size(), static_cast<size_t>(DType::SFixed32) + 1);
    CHECK_EQ(encs.size(), static_cast<size_t>(Encoding::Kind::BlockwiseExpansion) + 1);
    CHECK_EQ(params.size(), static_cast<size_t>(Param::Kind::TensorInt32) + 1);
}

TEST(adapter_transmits_the_whole_graph) {
    Fake fake;
    const Weights w;
    const QnnGraph prefill = full_graph("prefill", 4, w), decode = full_graph("decode", 1, w), fold = fold_graph(w);
    QnnAdapter a(fake_options());
    CHECK(a.provider_name() == "fake_HTP");  // the CPU provider listed first is passed over
    CHECK(a.build_id() == "fake-qnn-1.0");
    CHECK_EQ(a.api_version().core.major, 2u);
    a.build(prefill);
    a.build(decode);
    a.build(fold);
    check_same_graph(prefill, fake.rebuilt("prefill"));
    check_same_graph(decode, fake.rebuilt("decode"));
    check_same_graph(fold, fake.rebuilt("fold"));
    // One creation call per tensor and param tensor, one addNode per node, in order.
    size_t param_tensors = 0;
    for (const Node& n : prefill.nodes) {
        for (const Param& p : n.params) param_tensors += p.kind == Param::Kind::TensorUInt32 || p.kind == Param::Kind::TensorInt32;
    }
    CHECK_EQ(fake.count("QnnTensor_createGraphTensor"), 2 * (prefill.tensors.size() + param_tensors) + fold.tensors.size());
    CHECK_EQ(fake.count("QnnGraph_addNode"), prefill.nodes.size() + decode.nodes.size() + fold.nodes.size());
    CHECK_EQ(fake.count("QnnGraph_finalize"), 3u);
    CHECK(a.has_graph("decode"));
    CHECK_THROWS(a.build(decode), EI_ERR_INVALID_ARGUMENT, "already in the context");
}

TEST(adapter_binds_every_io_buffer_to_its_tensor) {
    Fake fake;
    const Weights w;
    const QnnGraph g = full_graph("prefill", 4, w);
    QnnAdapter a(fake_options());
    a.build(g);
    IoSet s(g);
    a.execute("prefill", s.io);
    size_t i = 0;
    for (const Tensor& t : g.tensors) {
        if (t.kind != TensorKind::AppWrite && t.kind != TensorKind::AppRead) continue;
        const std::vector<uint8_t>& b = s.buf[i++];
        if (t.kind == TensorKind::AppWrite) {
            size_t n = 0;
            const uint8_t* got = fake.input("prefill", t.name.c_str(), &n);
            CHECK(got != nullptr && n == b.size() && std::memcmp(got, b.data(), n) == 0);
        } else {
            const uint8_t seed = ei_fake_qnn_pattern_seed(t.name.c_str());
            bool ok = true;
            for (size_t k = 0; k < b.size(); ++k) ok = ok && b[k] == static_cast<uint8_t>(seed + k);
            CHECK(ok);
        }
    }
    // Bindings that are not exactly every io tensor once, at its size, are refused.
    std::vector<QnnIoBuffer> missing(s.io.begin(), s.io.end() - 1);
    CHECK_THROWS(a.execute("prefill", missing), EI_ERR_INVALID_ARGUMENT, "is not bound");
    std::vector<QnnIoBuffer> twice = s.io;
    twice.push_back(s.io[0]);
    CHECK_THROWS(a.execute("prefill", twice), EI_ERR_INVALID_ARGUMENT, "bound twice");
    std::vector<QnnIoBuffer> small = s.io;
    small[1].bytes -= 1;
    CHECK_THROWS(a.execute("prefill", small), EI_ERR_INVALID_ARGUMENT, "rope_cos");
    std::vector<QnnIoBuffer> native = s.io;
    native[0].tensor = 12;  // "x", a Native tensor
    CHECK_THROWS(a.execute("prefill", native), EI_ERR_INVALID_ARGUMENT, "no input or output with tensor id 12");
    CHECK_THROWS(a.execute("decode", s.io), EI_ERR_INVALID_ARGUMENT, "no graph 'decode'");
}

TEST(context_cache_stores_loads_and_refuses) {
    Fake fake;
    const Weights w;
    const QnnGraph prefill = full_graph("prefill", 4, w), decode = full_graph("decode", 1, w), fold = fold_graph(w);
    const std::vector<const QnnGraph*> graphs = {&prefill, &decode, &fold};
    const std::string dir = temp_dir();
    std::string path;
    {
        QnnAdapter a(fake_options());
        path = a.cache_file(dir, graphs);
        std::remove(path.c_str());
        std::string why;
        CHECK(!a.prepare(graphs, dir, &why));
        CHECK(why.find("no cache file") != std::string::npos);
        CHECK(a.has_graph("prefill") && a.has_graph("decode") && a.has_graph("fold"));
    }
    CHECK(!read_file(path).empty());
    {
        // A second process on the same device: loaded, no graph built, and it executes.
        fake.reset();
        QnnAdapter a(fake_options());
        std::string why;
        CHECK(a.prepare(graphs, dir, &why));
        CHECK(why.empty());
        CHECK_EQ(fake.count("QnnContext_createFromBinary"), 1u);
        CHECK_EQ(fake.count("QnnGraph_create"), 0u);
        CHECK_EQ(fake.count("QnnGraph_retrieve"), 3u);
        IoSet s(decode);
        a.execute("decode", s.io);
        IoSet f(fold);
        a.execute("fold", f.io);
        size_t n = 0;
        CHECK(fake.input("fold", "fold_k", &n) != nullptr && n == f.buf[0].size());
    }
    {
        // Another SoC: the key differs, the file is refused and rebuilt under its own name.
        QnnAdapter other(fake_options("other-soc"));
        CHECK(other.cache_file(dir, graphs) != path);
        CHECK_THROWS(other.load_context(path, graphs), EI_ERR_FORMAT, "another device, SoC");
    }
    {
        // A changed model (one weight byte) is another key too.
        Weights w2;
        auto changed = std::make_shared<std::vector<uint8_t>>(*w2.wq);
        (*changed)[7] ^= 1;
        w2.wq = changed;
        const QnnGraph p2 = full_graph("prefill", 4, w2), d2 = full_graph("decode", 1, w2), f2 = fold_graph(w2);
        QnnAdapter a(fake_options());
        CHECK(a.cache_key({&p2, &d2, &f2}) != a.cache_key(graphs));
        CHECK_THROWS(a.load_context(path, {&p2, &d2, &f2}), EI_ERR_FORMAT, "another device, SoC, QNN build or model");
    }
    const std::vector<uint8_t> good = read_file(path);
    {
        QnnAdapter a(fake_options());
        std::vector<uint8_t> bad = good;
        bad[bad.size() / 2] ^= 0x40;
        write_file(path, bad);
        CHECK_THROWS(a.load_context(path, graphs), EI_ERR_FORMAT, "checksum mismatch");
        bad.assign(good.begin(), good.begin() + static_cast<long>(good.size()) - 5);
        write_file(path, bad);
        CHECK_THROWS(a.load_context(path, graphs), EI_ERR_FORMAT, "");
        write_file(path, std::vector<uint8_t>(100, 0x5a));
        CHECK_THROWS(a.load_context(path, graphs), EI_ERR_FORMAT, "not a context cache file");
        // prepare() rebuilds over a corrupt file and says why.
        std::string why;
        CHECK(!a.prepare(graphs, dir, &why));
        CHECK(why.find("not a context cache file") != std::string::npos);
        CHECK(read_file(path) == good);  // the same graphs give the same file
        CHECK_THROWS(a.load_context(dir + "/absent.bin", graphs), EI_ERR_IO, "cannot open");
        // QNN refusing a well-formed file leaves an empty context the adapter builds in.
        fake.fail("QnnContext_createFromBinary", 5004);
        CHECK_THROWS(a.load_context(path, graphs), EI_ERR_INTERNAL, "QnnContext_createFromBinary failed");
        CHECK(!a.has_graph("prefill"));
        a.build(fold);
        CHECK(a.has_graph("fold"));
    }
    std::remove(path.c_str());
}

TEST(cache_file_codec_refuses_every_damage) {
    ContextCache c;
    c.key = "provider=p;soc=s";
    c.graphs.push_back({"prefill", 0x1234, {{0, 1}, {5, 9}}});
    c.graphs.push_back({"decode", 0x5678, {{2, 3}}});
    c.binary = {1, 2, 3, 4, 5, 6, 7};
    const std::vector<uint8_t> f = encode_context_cache(c);
    const ContextCache d = decode_context_cache(f.data(), f.size());
    CHECK(d.key == c.key && d.binary == c.binary && d.graphs.size() == 2);
    CHECK(d.graphs[0].io_ids == c.graphs[0].io_ids && d.graphs[1].name == "decode" && d.graphs[1].signature == 0x5678);
    // Every truncation and every single flipped bit is refused.
    int refused = 0, total = 0;
    for (size_t n = 0; n < f.size(); ++n, ++total) {
        try {
            decode_context_cache(f.data(), n);
        } catch (const Error& e) {
            refused += e.status() == EI_ERR_FORMAT;
        }
    }
    for (size_t i = 0; i < f.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit, ++total) {
            std::vector<uint8_t> b = f;
            b[i] ^= static_cast<uint8_t>(1u << bit);
            try {
                decode_context_cache(b.data(), b.size());
            } catch (const Error& e) {
                refused += e.status() == EI_ERR_FORMAT;
            }
        }
    }
    CHECK_EQ(refused, total);
}

TEST(load_errors_are_clear) {
    Fake fake;
    QnnAdapter::Options o = fake_options();
    o.library = temp_dir() + "/libQnnHtp-absent.so";
    CHECK_THROWS(QnnAdapter(o), EI_ERR_UNSUPPORTED, "cannot load the HTP backend library");
    o.library = "libm.so.6";  // loads, but is no QNN backend
    CHECK_THROWS(QnnAdapter(o), EI_ERR_UNSUPPORTED, "does not export QnnInterface_getProviders");

    fake.set_htp(99, 2, 20);
    CHECK_THROWS(QnnAdapter(fake_options()), EI_ERR_UNSUPPORTED, "no HTP provider (backend id 6)");
    fake.set_htp(6, 2, 3);
    CHECK_THROWS(QnnAdapter(fake_options()), EI_ERR_UNSUPPORTED, "fake_HTP (backend id 6, core API 2.3.0)");
    fake.set_htp(6, 3, 0);
    CHECK_THROWS(QnnAdapter(fake_options()), EI_ERR_UNSUPPORTED, "core API 3.0.0");
    fake.set_htp(6, 2, qnn::kCoreApiMinMinor);
    { QnnAdapter ok(fake_options()); }

    fake.fail("QnnInterface_getProviders", 1000);
    CHECK_THROWS(QnnAdapter(fake_options()), EI_ERR_INTERNAL, "QnnInterface_getProviders failed");
    fake.fail("QnnBackend_create", 4003);
    CHECK_THROWS(QnnAdapter(fake_options()), EI_ERR_INTERNAL, "QnnBackend_create failed (the HTP backend): error code 4003");
    QnnAdapter::Options plain = fake_options();
    plain.share_weights = false;
    fake.fail("QnnContext_create", 5001);
    CHECK_THROWS(QnnAdapter(plain), EI_ERR_INTERNAL, "QnnContext_create failed (a context): error code 5001");
}

TEST(weight_sharing_is_asked_for_and_optional) {
    Fake fake;
    {
        QnnAdapter a(fake_options());
        CHECK(a.weight_sharing() == "shared");
        CHECK_EQ(fake.count("QnnContext_create weight_sharing=1"), 1u);
    }
    {
        // A backend that refuses the option still gives a context, and the reason is kept.
        fake.reset();
        fake.fail("QnnContext_create", 5003);
        QnnAdapter a(fake_options());
        CHECK(a.weight_sharing().find("not shared (the backend refused: QnnContext_create error code 5003") == 0);
        CHECK_EQ(fake.count("QnnContext_create"), 2u);
        const Weights w;
        a.build(fold_graph(w));
        CHECK(a.has_graph("fold"));
    }
    {
        fake.reset();
        QnnAdapter::Options o = fake_options();
        o.share_weights = false;
        QnnAdapter a(o);
        CHECK(a.weight_sharing() == "not shared (not asked)");
        CHECK_EQ(fake.count("QnnContext_create weight_sharing=1"), 0u);
        CHECK_EQ(fake.count("QnnContext_create"), 1u);
    }
}

TEST(failing_calls_name_the_call_and_the_code) {
    Fake fake;
    const Weights w;
    const QnnGraph g = full_graph("prefill", 4, w);
    QnnAdapter a(fake_options());
    fake.fail("QnnGraph_finalize", 6001);
    CHECK_THROWS(a.build(g), EI_ERR_INTERNAL, "QnnGraph_finalize failed (graph 'prefill'): error code 6001; QNN log: fake QNN: injected");
    QnnAdapter b(fake_options());
    fake.fail("QnnGraph_addNode", 6004);
    CHECK_THROWS(b.build(g), EI_ERR_INTERNAL, "QnnGraph_addNode failed (node 'embed' (Gather) of graph 'prefill'): error code 6004");
    QnnAdapter c(fake_options());
    c.build(g);
    fake.fail("QnnGraph_execute", 6007);
    IoSet s(g);
    CHECK_THROWS(c.execute("prefill", s.io), EI_ERR_INTERNAL, "QnnGraph_execute failed (graph 'prefill'): error code 6007");
    fake.fail("QnnContext_getBinary", 5002);
    CHECK_THROWS(c.save_context(temp_dir() + "/x.bin", {&g}), EI_ERR_INTERNAL, "QnnContext_getBinary failed");
}

TEST(bad_graphs_are_refused_before_qnn_sees_them) {
    Fake fake;
    const Weights w;
    QnnAdapter a(fake_options());
    QnnGraph g = full_graph("prefill", 4, w);
    g.nodes[0].inputs[0] = 999;
    CHECK_THROWS(a.build(g), EI_ERR_INTERNAL, "not in the table");
    CHECK_EQ(fake.count("QnnGraph_create"), 0u);
    QnnGraph h = full_graph("prefill", 4, w);
    h.nodes[7].params[0].values[0] = -1;  // a negative perm entry in a UInt32 tensor param
    CHECK_THROWS(a.build(h), EI_ERR_INVALID_ARGUMENT, "param 'perm' of node 'heads_first': value -1 out of range");
    QnnGraph k = full_graph("other", 4, w);
    k.nodes[3].params[0].kind = Param::Kind::UInt32;
    k.nodes[3].params[0].scalar = 1.5;
    CHECK_THROWS(a.build(k), EI_ERR_INVALID_ARGUMENT, "not a 32-bit unsigned integer");
}
