// Load-time semantic checks: every model the loader accepts plans and runs; every limit of
// the CPU backend and every impossible hyper-parameter is refused when the model loads,
// with a message naming the GGUF key or tensor; pool planning refuses sizes it cannot
// represent instead of wrapping them.
#include <sys/mman.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <limits>

#include "backend.h"
#include "check.h"
#include "error.h"
#include "gguf.h"
#include "model.h"
#include "plan.h"
#include "session.h"
#include "tiny_model.h"
#include "tokenizer.h"

namespace {

using ei_test::GgufBuilder;
using ei_test::ModelSpec;
using ei_test::tiny_model;

// A model and the bytes it points into (declared first, so destroyed last).
struct Loaded {
    std::vector<uint8_t> bytes;
    std::shared_ptr<const ei::Model> model;
};

Loaded load(const GgufBuilder& g) {
    Loaded l;
    l.bytes = g.bytes();
    l.model = ei::Model::from_memory(l.bytes.data(), l.bytes.size(), "mem");
    return l;
}

ei::Scenario small_scenario() {
    ei::Scenario sc;
    sc.n_batch = 8;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_threads = 1;
    return sc;
}

struct AlignedPool {
    explicit AlignedPool(uint64_t size) : size(size), p(static_cast<uint8_t*>(std::aligned_alloc(64, (size + 63) / 64 * 64))) {}
    ~AlignedPool() { std::free(p); }
    uint64_t size;
    uint8_t* p;
};

// Plans, creates a session and evaluates n tokens of text; returns whether every logit is finite.
bool runs(const std::shared_ptr<const ei::Model>& m, int n) {
    ei::Plan plan = ei::make_plan(m, small_scenario());
    AlignedPool pool(plan.pool.size);
    ei::Session s(plan, pool.p, pool.size);
    std::vector<int32_t> ids = m->tokenizer().encode("hello world, and the", true, false);
    for (int i = 0; ids.size() < static_cast<size_t>(n); ++i) ids.push_back(i % m->hparams().n_vocab);
    ids.resize(n);
    const float* logits = s.eval(ids.data(), n);
    for (int32_t i = 0; i < m->hparams().n_vocab; ++i)
        if (!std::isfinite(logits[i])) return false;
    return true;
}

// Expects the model to be refused at load with status st and a message containing needle.
void refused(const GgufBuilder& g, ei_status st, const char* needle) { CHECK_THROWS(load(g), st, needle); }

ModelSpec spec() { return ModelSpec(); }

}  // namespace

// ------------------------------------------------------------------------ accepted models

TEST(shared_tiny_models_still_load_and_plan) {
    std::string dir = check::testdata("models");
    int n = 0;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            if (name.size() < 5 || name.substr(name.size() - 5) != ".gguf") continue;
            auto m = ei::Model::load(dir + "/" + name);
            ei::Plan plan = ei::make_plan(m, small_scenario());
            CHECK(plan.pool.size > 0);
            ++n;
        }
        closedir(d);
    }
    CHECK(n >= 8);
}

TEST(built_models_load_plan_and_run) {
    std::vector<ModelSpec> specs;
    specs.push_back(spec());  // llama, SPM, f32, GQA
    ModelSpec q = spec();
    q.arch = "qwen2";
    q.bpe = true;
    q.n_head_kv = 4;
    q.weight_type = 1;  // f16, QKV biases
    q.gate = 2;
    specs.push_back(q);
    ModelSpec q8 = spec();
    q8.weight_type = 8;
    q8.tied = true;
    q8.n_layer = 2;
    q8.gate = 1;
    specs.push_back(q8);
    ModelSpec q4 = spec();
    q4.weight_type = 2;
    q4.bpe = true;
    specs.push_back(q4);
    ModelSpec k = spec();
    k.n_embd = 256;
    k.n_ff = 256;
    k.n_head = 8;
    k.weight_type = 12;  // q4_K
    k.output_type = 14;  // q6_K
    specs.push_back(k);
    ModelSpec b = spec();
    b.weight_type = 30;  // bf16
    b.head_dim = 16;     // q/k/v wider than n_embd / n_head
    b.n_rot = 8;         // partial rotation
    specs.push_back(b);
    for (const ModelSpec& s : specs) {
        Loaded l = load(tiny_model(s));
        CHECK_EQ(l.model->hparams().n_layer, static_cast<int32_t>(s.n_layer));
        CHECK(runs(l.model, 3));
    }
}

TEST(load_and_from_memory_agree) {
    std::vector<uint8_t> bytes = tiny_model(spec()).bytes();
    const std::string path = "test_model_checks.tmp.gguf";
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    auto a = ei::Model::load(path);
    auto b = ei::Model::from_memory(bytes.data(), bytes.size(), "mem");
    std::remove(path.c_str());
    CHECK_EQ(a->hparams().n_vocab, b->hparams().n_vocab);
    CHECK_EQ(a->hparams().head_dim, b->hparams().head_dim);
    CHECK_EQ(a->tokenizer().encode("hello world", true, false).size(), b->tokenizer().encode("hello world", true, false).size());
    CHECK_THROWS(ei::Model::from_gguf(nullptr), EI_ERR_INVALID_ARGUMENT, "null");
}

// The largest head the kernels take loads and runs (not just plans).
TEST(head_size_at_the_limit_runs) {
    ModelSpec s = spec();
    s.n_head = 1;
    s.n_head_kv = 1;
    s.head_dim = 1024;
    Loaded l = load(tiny_model(s));
    CHECK_EQ(l.model->hparams().head_dim, 1024);
    CHECK(runs(l.model, 2));
}

// ------------------------------------------------------------------------ backend limits

TEST(head_size_over_the_limit_is_refused_at_load) {
    ModelSpec s = spec();
    s.n_head = 1;
    s.n_head_kv = 1;
    s.head_dim = 2048;
    refused(tiny_model(s), EI_ERR_UNSUPPORTED,
            "'llama.attention.key_length' = 2048 exceeds the CPU backend's limit of 1024 (head size)");
    // The same head size from embedding_length / head_count.
    ModelSpec d = spec();
    d.n_embd = 2048;
    d.n_head = 1;
    d.n_head_kv = 1;
    refused(tiny_model(d), EI_ERR_UNSUPPORTED, "'llama.embedding_length' / 'llama.attention.head_count' = 2048 exceeds");
}

TEST(value_head_size_must_match) {
    GgufBuilder g = tiny_model(spec());
    g.u32("llama.attention.value_length", 16);
    refused(g, EI_ERR_UNSUPPORTED, "'llama.attention.value_length' = 16 differs");
}

TEST(norm_weights_and_biases_must_be_f32) {
    GgufBuilder g = tiny_model(spec());
    g.tensor("blk.0.ffn_norm.weight", 1, {32});
    refused(g, EI_ERR_UNSUPPORTED, "tensor 'blk.0.ffn_norm.weight' has type f16; the CPU backend reads norm weights");
    ModelSpec q = spec();
    q.arch = "qwen2";
    GgufBuilder b = tiny_model(q);
    b.tensor("blk.0.attn_k.bias", 1, {16});
    refused(b, EI_ERR_UNSUPPORTED, "tensor 'blk.0.attn_k.bias' has type f16");
    GgufBuilder o = tiny_model(spec());
    o.tensor("output_norm.weight", 30, {32});
    refused(o, EI_ERR_UNSUPPORTED, "tensor 'output_norm.weight' has type bf16");
}

TEST(weight_types_without_kernels_are_refused) {
    GgufBuilder g = tiny_model(spec());
    g.tensor("blk.0.ffn_up.weight", 3, {32, 64});  // q4_1
    refused(g, EI_ERR_UNSUPPORTED, "tensor 'blk.0.ffn_up.weight' has type q4_1");
    GgufBuilder e = tiny_model(spec());
    e.find_tensor("token_embd.weight")->type = 26;  // i32
    refused(e, EI_ERR_UNSUPPORTED, "tensor 'token_embd.weight' has type i32");
    GgufBuilder gate = tiny_model(spec());
    gate.tensor("blk.0.ei_gate.weight", 1, {4});
    refused(gate, EI_ERR_UNSUPPORTED, "tensor 'blk.0.ei_gate.weight' must be f32");
}

// Rows of a quantized tensor are whole blocks (the GGUF reader's rule, so before the loader).
TEST(quantized_rows_must_be_whole_blocks) {
    ModelSpec s = spec();
    s.n_embd = 48;
    s.n_head = 4;
    s.weight_type = 8;  // q8_0: 32 per block
    refused(tiny_model(s), EI_ERR_FORMAT, "row of 48 elements is not a multiple of the q8_0 block size 32");
}

// ------------------------------------------------------------------------ hyper-parameters

TEST(out_of_range_hyperparameters_name_their_key) {
    for (uint32_t v : {0u, (1u << 30) + 1, 0xFFFFFFFFu}) {
        GgufBuilder g = tiny_model(spec());
        g.u32("llama.feed_forward_length", v);
        refused(g, EI_ERR_FORMAT, "'llama.feed_forward_length' = ");
    }
    GgufBuilder neg = tiny_model(spec());
    neg.i32("llama.attention.head_count", -4);
    refused(neg, EI_ERR_FORMAT, "'llama.attention.head_count' = -4 is out of range");
    GgufBuilder big = tiny_model(spec());
    big.i64("llama.embedding_length", int64_t{1} << 40);
    refused(big, EI_ERR_FORMAT, "'llama.embedding_length' = 1099511627776 is out of range");
    GgufBuilder missing = tiny_model(spec());
    missing.erase("llama.block_count");
    refused(missing, EI_ERR_FORMAT, "'llama.block_count' is missing");
}

TEST(head_counts_must_divide) {
    GgufBuilder g = tiny_model(spec());
    g.u32("llama.attention.head_count", 5);
    refused(g, EI_ERR_FORMAT, "'llama.embedding_length' = 32 is not a multiple of 'llama.attention.head_count' = 5");
    GgufBuilder kv = tiny_model(spec());
    kv.u32("llama.attention.head_count_kv", 3);
    refused(kv, EI_ERR_FORMAT, "'llama.attention.head_count' = 4 is not a multiple of 'llama.attention.head_count_kv' = 3");
    GgufBuilder more = tiny_model(spec());
    more.u32("llama.attention.head_count_kv", 8);
    refused(more, EI_ERR_FORMAT, "'llama.attention.head_count_kv' = 8");
}

TEST(rope_dimensions_must_be_even_and_fit) {
    for (uint32_t v : {7u, 10u}) {  // odd; more than the head size 8
        GgufBuilder g = tiny_model(spec());
        g.u32("llama.rope.dimension_count", v);
        refused(g, EI_ERR_FORMAT, "'llama.rope.dimension_count' = ");
    }
}

// n_head x head size bounds every query row (and the int32 KV width behind it).
TEST(query_width_is_bounded) {
    GgufBuilder g = tiny_model(spec());
    g.u32("llama.embedding_length", 1u << 21).u32("llama.attention.head_count", 1u << 21);
    g.u32("llama.attention.head_count_kv", 1u << 21).u32("llama.attention.key_length", 1024);
    refused(g, EI_ERR_FORMAT, "make query rows of more than 2^30 values");
}

TEST(float_hyperparameters_must_be_positive_and_finite) {
    const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
    for (const char* key : {"llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base"}) {
        for (double v : {0.0, -1.0, inf, nan, 1e300, 1e-50}) {
            GgufBuilder g = tiny_model(spec());
            g.f64(key, v);
            refused(g, EI_ERR_FORMAT, "must be a positive, finite single-precision number");
        }
    }
}

// A block count the file has no tensors for fails fast, before a table of that size exists.
TEST(absurd_block_count_is_refused_before_allocating) {
    GgufBuilder g = tiny_model(spec());
    g.u32("llama.block_count", 1u << 30);
    refused(g, EI_ERR_FORMAT, "'llama.block_count' = 1073741824 needs at least 9 tensors per block");
    GgufBuilder two = tiny_model(spec());
    two.u32("llama.block_count", 2);  // 9-tensor rule passes with the extra tensors, blk.1 is missing
    two.tensor("x1", 0, {32}).tensor("x2", 0, {32}).tensor("x3", 0, {32}).tensor("x4", 0, {32}).tensor("x5", 0, {32});
    two.tensor("x6", 0, {32}).tensor("x7", 0, {32}).tensor("x8", 0, {32}).tensor("x9", 0, {32});
    refused(two, EI_ERR_FORMAT, "tensor 'blk.1.attn_norm.weight' is missing");
}

// ------------------------------------------------------------------------ tokenizer

TEST(vocab_must_match_token_embd) {
    GgufBuilder g = tiny_model(spec());
    const int64_t n = g.find_tensor("token_embd.weight")->ne[1];
    g.tensor("token_embd.weight", 0, {32, n + 1}).tensor("output.weight", 0, {32, n + 1});
    const std::string msg = "tokenizer has " + std::to_string(n) + " tokens but token_embd has " + std::to_string(n + 1) + " rows";
    refused(g, EI_ERR_FORMAT, msg.c_str());
}

// Special ids are in range whatever the file says: out-of-range ids from the file keep the
// family default (llama.cpp's rule), and defaults past a tiny vocab are "none".
TEST(special_token_ids_are_in_range) {
    GgufBuilder g = tiny_model(spec());
    g.u32("tokenizer.ggml.bos_token_id", 5000).u32("tokenizer.ggml.eos_token_id", 0xFFFFFFFFu);
    g.i32("tokenizer.ggml.unknown_token_id", -7);
    Loaded l = load(g);
    const ei::Tokenizer& t = l.model->tokenizer();
    for (int32_t id : {t.bos(), t.eos(), t.eot(), t.unk()}) CHECK(id >= -1 && id < t.n_vocab());
    CHECK_EQ(t.bos(), 1);

    GgufBuilder tiny;  // two tokens: the default eos (2) does not exist
    tiny.str("general.architecture", "llama").str("tokenizer.ggml.model", "llama").strs("tokenizer.ggml.tokens", {"a", "b"});
    std::vector<uint8_t> bytes = tiny.bytes();
    auto v = ei::Model::vocab_from_gguf(ei::GgufFile::parse(bytes.data(), bytes.size(), "vocab"));
    CHECK_EQ(v->tokenizer().eos(), -1);
    CHECK_EQ(v->tokenizer().bos(), 1);
}

// token ids are int32: a vocabulary past that is refused (data mapped, never touched).
TEST(vocab_beyond_int32_is_refused) {
    GgufBuilder g = tiny_model(spec());
    g.tensor("token_embd.weight", 2, {32, int64_t{1} << 31});  // q4_0: 36 GiB of data
    std::vector<uint8_t> head = g.bytes(false);
    const uint64_t size = g.align(head.size()) + g.data_size();
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "vocab_beyond_int32_is_refused: skipped (cannot reserve %llu bytes)\n",
                     static_cast<unsigned long long>(size));
        return;
    }
    std::memcpy(p, head.data(), head.size());
    CHECK_THROWS(ei::Model::from_memory(static_cast<const uint8_t*>(p), size, "mem"), EI_ERR_FORMAT,
                 "tensor 'token_embd.weight' has 2147483648 rows (the vocabulary size)");
    munmap(p, size);
}

// ------------------------------------------------------------------------ planning

// 2048 blocks (sharing one tensor's data) of 8 KV heads of 1024, over a 16M-slot scenario:
// a KV cache of 2^49 bytes, refused by name instead of planned.
TEST(plan_refuses_sizes_past_its_cap) {
    ModelSpec s = spec();
    s.n_layer = 2048;
    s.n_head = 8;
    s.n_head_kv = 8;
    s.head_dim = 1024;
    s.n_ff = 32;
    s.weight_type = 1;
    GgufBuilder g = tiny_model(s);
    g.share_data(true);
    Loaded l = load(g);
    ei::Scenario sc;
    sc.n_batch = 128;
    sc.n_sink = 0;
    sc.n_window = (1 << 24) - 128;
    sc.n_threads = 1;
    CHECK_THROWS(ei::make_plan(l.model, sc), EI_ERR_OUT_OF_MEMORY,
                 "plan: the region 'kv.k' would need more than 2^48 bytes (256 TiB) for this model and scenario (L = 128");
    // The same model with a small scenario plans (1 GiB of cache).
    ei::Plan plan = ei::make_plan(l.model, small_scenario());
    CHECK(plan.pool.size > (uint64_t{1} << 30));
}

TEST(model_scenario_settings_must_fit_int32) {
    GgufBuilder g = tiny_model(spec());
    g.i64("edgeinfinite.segment_length", (int64_t{1} << 32) + 8);  // would truncate to 8
    Loaded l = load(g);
    CHECK_THROWS(ei::resolve_scenario(nullptr, l.model->gguf()), EI_ERR_FORMAT,
                 "'edgeinfinite.segment_length' = 4294967304 is out of range");
}

// ------------------------------------------------------------------------ fuzz_model finds

// A file can hold NaN or infinite weights, so activations can be NaN or infinite. The
// scalar q8_0 quantizer cast round(x / d) to int8, which is undefined for NaN (UBSan
// stopped fuzz_model run with the scalar kernels) and for infinity (1/d overflows when a
// block's largest value is subnormal: a second fuzz_model find). Such values now give
// -128, what the AVX2 conversion gives (test_quants checks the same from its side).
// The SIMD variants have no undefined behaviour here; with NaN input they need not agree
// with the scalar bytes (their max of a NaN differs), but on finite input they do.
TEST(q8_0_activation_quantizer_takes_nan_inf_and_subnormal) {
    using ei::cpu::KernelVariant;
    std::vector<float> x(96);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * static_cast<float>(i) - 0.3f;
    x[3] = std::numeric_limits<float>::quiet_NaN();
    x[40] = std::numeric_limits<float>::infinity();  // block 1: d = inf, x / d = NaN or 0
    for (size_t i = 64; i < 96; ++i) x[i] = (i % 2 ? 1e-40f : -3e-41f);  // block 2: subnormal, 1/d = inf
    const ei::cpu::TypeKernels* ref = ei::cpu::kernels_for(ei::GgmlType::Q8_0, KernelVariant::Scalar);
    const size_t bytes = ei::cpu::row_size(ei::GgmlType::Q8_0, 96);
    std::vector<uint8_t> want(bytes);
    ref->from_float(x.data(), want.data(), 96);
    const auto* blocks = reinterpret_cast<const ei::cpu::BlockQ8_0*>(want.data());
    CHECK_EQ(int{blocks[0].qs[3]}, -128);
    CHECK_EQ(int{blocks[0].qs[0]}, -127);  // the finite values are untouched: -0.3 is the block's max
    CHECK_EQ(int{blocks[1].qs[40 - 32]}, -128);
    CHECK_EQ(int{blocks[2].d}, 0);  // f16 zero: the block contributes nothing, whatever its qs
    for (int j = 0; j < 32; ++j) CHECK_EQ(int{blocks[2].qs[j]}, -128);
    std::vector<float> finite(x.begin(), x.begin() + 32);
    finite[3] = 0.5f;
    for (KernelVariant v : {KernelVariant::Avx2, KernelVariant::Neon, KernelVariant::NeonDotprod, KernelVariant::NeonI8mm}) {
        const ei::cpu::TypeKernels* k = ei::cpu::kernels_for(ei::GgmlType::Q8_0, v);
        if (!k) continue;
        std::vector<uint8_t> got(bytes), a(34), b(34);
        k->from_float(x.data(), got.data(), 96);  // runs (the sanitizer builds check how)
        k->from_float(finite.data(), a.data(), 32);
        ref->from_float(finite.data(), b.data(), 32);
        CHECK(a == b);
    }
}

// The same from a whole model: NaN embeddings flow through every kernel without a crash.
TEST(nan_weights_run_without_undefined_behaviour) {
    ModelSpec s = spec();
    s.weight_type = 8;  // q8_0 matrices: activations go through the q8_0 quantizer
    std::vector<uint8_t> bytes = tiny_model(s).bytes();
    {
        auto f = ei::GgufFile::parse(bytes.data(), bytes.size(), "mem");
        const ei::TensorInfo* t = f->tensor("blk.0.attn_norm.weight");
        std::memset(bytes.data() + (t->data - bytes.data()), 0xFF, t->n_bytes);  // f32 NaNs
    }
    auto m = ei::Model::from_memory(bytes.data(), bytes.size(), "mem");
    ei::Plan plan = ei::make_plan(m, small_scenario());
    AlignedPool pool(plan.pool.size);
    ei::Session session(plan, pool.p, pool.size);
    std::vector<int32_t> ids(30, 5);
    session.eval(ids.data(), 30);  // past S + W + L: a fold of NaN keys and values as well
    CHECK(session.placement().memory > 0);
}

// general.alignment = 1 places tensor data anywhere, and a caller's buffer may be
// misaligned: the kernels' typed reads of such data are undefined (UBSan stopped fuzz_model
// in to_float_q4_0 on token_embd). Refused at load, naming the tensor.
TEST(misaligned_tensor_data_is_refused) {
    GgufBuilder g = tiny_model(spec());
    g.alignment(1);
    if (g.bytes(false).size() % 2 == 0) g.str("general.name", "tiny-test!");  // data starts at an odd byte
    refused(g, EI_ERR_FORMAT, "tensor 'token_embd.weight' data (f32, at byte ");

    std::vector<uint8_t> bytes = tiny_model(spec()).bytes();
    std::vector<uint8_t> shifted(bytes.size() + 1);
    std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());  // vector data is 16-aligned: +1 is not
    CHECK_THROWS(ei::Model::from_memory(shifted.data() + 1, bytes.size(), "mem"), EI_ERR_FORMAT,
                 "is not aligned for its type in memory");
    // general.alignment 4 keeps every supported type aligned.
    GgufBuilder four = tiny_model(spec());
    four.alignment(4);
    Loaded l = load(four);
    CHECK(runs(l.model, 2));
}
