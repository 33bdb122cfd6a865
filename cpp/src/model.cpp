#include "model.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdio>

#include "cpu/cpu_limits.h"
#include "error.h"
#include "file_io.h"
#include "tokenizer.h"

namespace ei {

namespace {

[[noreturn]] void bad(const GgufFile& f, const std::string& msg) { fail(EI_ERR_FORMAT, f.path() + ": " + msg); }
[[noreturn]] void unsupported(const GgufFile& f, const std::string& msg) {
    fail(EI_ERR_UNSUPPORTED, f.path() + ": " + msg);
}

// Sizes a model can state: every dimension the graphs use stays within int32 with room
// for the products the planner checks (plan.cpp).
constexpr int64_t kMaxDim = int64_t{1} << 30;
// Each block has at least these tensors (2 norms, q, k, v, attention output, gate, up, down).
constexpr int64_t kMinTensorsPerBlock = 9;

std::string key_is(const std::string& key, int64_t v) { return "'" + key + "' = " + std::to_string(v); }

int32_t positive_int(const GgufFile& f, const std::string& key, int64_t def = -1) {
    int64_t v = def < 0 ? f.require_int(key) : f.get_int(key, def);
    if (v <= 0 || v > kMaxDim) bad(f, "metadata " + key_is(key, v) + " is out of range (1 to 2^30)");
    return static_cast<int32_t>(v);
}

// A positive, finite float that stays so in single precision (the kernels compute in it).
float positive_float(const GgufFile& f, const std::string& key, double def) {
    const double v = f.get_float(key, def);
    if (!(v > 0 && v <= FLT_MAX) || !(static_cast<float>(v) > 0)) {
        char text[32];
        std::snprintf(text, sizeof text, "%g", v);
        bad(f, "metadata '" + key + "' = " + text + " must be a positive, finite single-precision number");
    }
    return static_cast<float>(v);
}

// Tensor data where the kernels can read it through typed pointers (cpu_limits.h).
void check_aligned(const GgufFile& f, const TensorInfo& t) {
    if (!cpu::weight_aligned(static_cast<GgmlType>(t.type), t.data)) {
        bad(f, "tensor '" + t.name + "' data (" + type_traits(t.type).name + ", at byte " +
                   std::to_string(f.data_offset() + t.offset) + " of the file, general.alignment " +
                   std::to_string(f.alignment()) + ") is not aligned for its type in memory");
    }
}

void read_gate(const GgufFile& f, const std::string& p, const HParams& hp, LayerWeights& l) {
    const TensorInfo* w = f.tensor(p + "ei_gate.weight");
    const TensorInfo* b = f.tensor(p + "ei_gate.bias");
    if (!w) {
        if (b) bad(f, "tensor '" + p + "ei_gate.bias' has no ei_gate.weight");
        return;
    }
    auto f32 = [&](const TensorInfo* t) {
        if (!cpu::vector_supported(static_cast<GgmlType>(t->type))) {
            unsupported(f, "tensor '" + t->name + "' must be f32");
        }
    };
    f32(w);
    check_aligned(f, *w);
    if (w->n_dims == 1 && w->ne[0] == hp.n_head) {
        l.gate = LayerWeights::Gate::Scalar;
    } else if (w->n_dims == 2 && w->ne[0] == 2 * int64_t{hp.head_dim} && w->ne[1] == hp.n_head) {
        l.gate = LayerWeights::Gate::Adaptive;
    } else {
        bad(f, "tensor '" + w->name + "' has a shape that is neither a scalar gate [n_head] nor an adaptive gate "
                                      "[2*head_dim, n_head]");
    }
    if (b) {
        f32(b);
        check_aligned(f, *b);
        if (b->n_dims != 1 || b->ne[0] != hp.n_head) bad(f, "tensor '" + b->name + "' must have shape [n_head]");
    }
    l.gate_w = w;
    l.gate_b = b;
}

}  // namespace

HParams read_hparams(const GgufFile& f) {
    HParams hp;
    hp.arch_name = f.get_string("general.architecture");
    if (hp.arch_name.empty()) bad(f, "metadata 'general.architecture' is missing");
    if (hp.arch_name == "llama") {
        hp.arch = Arch::Llama;
        hp.rope_mode = RopeMode::Adjacent;
    } else if (hp.arch_name == "qwen2") {
        hp.arch = Arch::Qwen2;
        hp.rope_mode = RopeMode::Halves;
    } else {
        unsupported(f, "unsupported architecture '" + hp.arch_name + "' (supported: llama, qwen2)");
    }
    const std::string a = hp.arch_name + ".";
    const std::string k_embd = a + "embedding_length", k_head = a + "attention.head_count",
                      k_head_kv = a + "attention.head_count_kv", k_key = a + "attention.key_length",
                      k_value = a + "attention.value_length", k_rot = a + "rope.dimension_count";
    hp.n_embd = positive_int(f, k_embd);
    hp.n_layer = positive_int(f, a + "block_count");
    hp.n_head = positive_int(f, k_head);
    hp.n_head_kv = positive_int(f, k_head_kv, hp.n_head);
    hp.n_ff = positive_int(f, a + "feed_forward_length");
    hp.n_ctx_train = positive_int(f, a + "context_length", 2048);
    hp.rms_eps = positive_float(f, a + "attention.layer_norm_rms_epsilon", 1e-5);
    hp.rope_base = positive_float(f, a + "rope.freq_base", 10000.0);
    if (hp.n_embd % hp.n_head != 0) bad(f, key_is(k_embd, hp.n_embd) + " is not a multiple of " + key_is(k_head, hp.n_head));
    // Also refuses head_count_kv > head_count: each KV head serves a whole group of query heads.
    if (hp.n_head % hp.n_head_kv != 0) {
        bad(f, key_is(k_head, hp.n_head) + " is not a multiple of " + key_is(k_head_kv, hp.n_head_kv));
    }
    const bool explicit_head = f.find(k_key) != nullptr;
    hp.head_dim = positive_int(f, k_key, hp.n_embd / hp.n_head);
    const std::string head_src = explicit_head ? key_is(k_key, hp.head_dim)
                                               : "the head size '" + k_embd + "' / '" + k_head + "' = " +
                                                     std::to_string(hp.head_dim);
    if (hp.head_dim > cpu::kMaxHeadDim) {
        unsupported(f, head_src + " exceeds the CPU backend's limit of " + std::to_string(cpu::kMaxHeadDim) +
                           " (head size)");
    }
    const int64_t value_dim = f.get_int(k_value, hp.head_dim);
    if (value_dim != hp.head_dim) {
        unsupported(f, key_is(k_value, value_dim) + " differs from " + head_src +
                           " (key and value head sizes must be equal)");
    }
    if (int64_t{hp.n_head} * hp.head_dim > kMaxDim) {
        bad(f, key_is(k_head, hp.n_head) + " heads of " + head_src + " make query rows of more than 2^30 values");
    }
    hp.n_rot = positive_int(f, k_rot, hp.head_dim);
    if (!cpu::head_supported(hp.head_dim, hp.n_rot)) {
        bad(f, key_is(k_rot, hp.n_rot) + " must be an even number at most the head size (" + head_src + ")");
    }
    if (f.get_string(a + "rope.scaling.type", "none") != "none") {
        unsupported(f, "rope scaling '" + f.get_string(a + "rope.scaling.type") + "' is not supported");
    }
    return hp;
}

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::string& path) { return from_gguf(GgufFile::open(path)); }

std::shared_ptr<const Model> Model::from_memory(const uint8_t* data, uint64_t size, std::string label) {
    return from_gguf(GgufFile::parse(data, size, std::move(label)));
}

std::shared_ptr<const Model> Model::from_gguf(std::unique_ptr<GgufFile> file) {
    if (!file) fail(EI_ERR_INVALID_ARGUMENT, "model file is null");
    std::unique_ptr<Model> m(new Model());
    m->file_ = std::move(file);
    const GgufFile& f = *m->file_;
    m->hp_ = read_hparams(f);
    HParams& hp = m->hp_;
    const std::string a = hp.arch_name + ".";

    // Looks a tensor up and checks its shape (innermost first) and its type: a weight the
    // CPU backend can multiply with, or (vector) an f32 norm weight or bias.
    enum class Use { Weight, Vector };
    auto get = [&](const std::string& name, std::vector<int64_t> shape, bool required, Use use) -> const TensorInfo* {
        const TensorInfo* t = f.tensor(name);
        if (!t) {
            if (required) bad(f, "tensor '" + name + "' is missing");
            return nullptr;
        }
        bool ok = true;  // -1 in shape matches any size
        for (size_t d = 0; d < 4; ++d) {
            int64_t want = d < shape.size() ? shape[d] : 1;
            ok = ok && (want < 0 || t->ne[d] == want);
        }
        if (!ok) {
            std::string want, got;
            for (size_t d = 0; d < shape.size(); ++d) want += (d ? " x " : "") + std::to_string(shape[d]);
            for (int d = 0; d < t->n_dims; ++d) got += (d ? " x " : "") + std::to_string(t->ne[d]);
            bad(f, "tensor '" + name + "' has shape [" + got + "], expected [" + want + "]");
        }
        const GgmlType type = static_cast<GgmlType>(t->type);
        if (use == Use::Vector && !cpu::vector_supported(type)) {
            unsupported(f, "tensor '" + name + "' has type " + type_traits(t->type).name +
                               "; the CPU backend reads norm weights and biases as f32 only");
        }
        if (use == Use::Weight && !cpu::weight_supported(type, t->ne[0])) {
            if (!cpu::kernels_for(type)) {
                unsupported(f, "tensor '" + name + "' has type " + type_traits(t->type).name +
                                   ", which this runtime cannot compute with (supported: f32, f16, bf16, q8_0, "
                                   "q4_0, q5_0, q4_K, q6_K)");
            }
            unsupported(f, "tensor '" + name + "' has rows of " + std::to_string(t->ne[0]) + " " +
                               type_traits(t->type).name + " values, which the CPU backend's " +
                               type_traits(t->type).name + " kernels cannot split into whole blocks");
        }
        check_aligned(f, *t);
        return t;
    };

    const TensorInfo* embd = f.tensor("token_embd.weight");
    if (!embd) bad(f, "tensor 'token_embd.weight' is missing");
    // Token ids are int32 everywhere (C ABI, Java, the graphs).
    if (embd->ne[1] > INT32_MAX) {
        bad(f, "tensor 'token_embd.weight' has " + std::to_string(embd->ne[1]) +
                   " rows (the vocabulary size); at most 2^31 - 1 are supported");
    }
    hp.n_vocab = static_cast<int32_t>(embd->ne[1]);
    m->tok_embd_ = get("token_embd.weight", {hp.n_embd, hp.n_vocab}, true, Use::Weight);
    m->output_norm_ = get("output_norm.weight", {hp.n_embd}, true, Use::Vector);
    m->output_ = get("output.weight", {hp.n_embd, hp.n_vocab}, false, Use::Weight);
    if (!m->output_) m->output_ = m->tok_embd_;  // tied embeddings

    // The block count sizes the layer table: one the file cannot hold (no tensors for it)
    // is refused before anything is allocated for it.
    const int64_t n_tensors = static_cast<int64_t>(f.tensors().size());
    if (int64_t{hp.n_layer} * kMinTensorsPerBlock > n_tensors) {
        bad(f, "metadata " + key_is(a + "block_count", hp.n_layer) + " needs at least " +
                   std::to_string(kMinTensorsPerBlock) + " tensors per block, but the file has " +
                   std::to_string(n_tensors) + " tensors");
    }
    const int64_t q_dim = int64_t{hp.n_head} * hp.head_dim, kv_dim = hp.n_embd_kv();
    m->layers_.resize(hp.n_layer);
    for (int32_t i = 0; i < hp.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& l = m->layers_[i];
        l.attn_norm = get(p + "attn_norm.weight", {hp.n_embd}, true, Use::Vector);
        l.wq = get(p + "attn_q.weight", {hp.n_embd, q_dim}, true, Use::Weight);
        l.wk = get(p + "attn_k.weight", {hp.n_embd, kv_dim}, true, Use::Weight);
        l.wv = get(p + "attn_v.weight", {hp.n_embd, kv_dim}, true, Use::Weight);
        l.wo = get(p + "attn_output.weight", {q_dim, hp.n_embd}, true, Use::Weight);
        bool biases = hp.arch == Arch::Qwen2;
        l.bq = get(p + "attn_q.bias", {q_dim}, biases, Use::Vector);
        l.bk = get(p + "attn_k.bias", {kv_dim}, biases, Use::Vector);
        l.bv = get(p + "attn_v.bias", {kv_dim}, biases, Use::Vector);
        l.ffn_norm = get(p + "ffn_norm.weight", {hp.n_embd}, true, Use::Vector);
        l.ffn_gate = get(p + "ffn_gate.weight", {hp.n_embd, hp.n_ff}, true, Use::Weight);
        l.ffn_up = get(p + "ffn_up.weight", {hp.n_embd, hp.n_ff}, true, Use::Weight);
        l.ffn_down = get(p + "ffn_down.weight", {hp.n_ff, hp.n_embd}, true, Use::Weight);
        read_gate(f, p, hp, l);
    }
    const GgufFile* mapped = m->file_.get();
    m->weight_cache_.set_release([mapped](const void* p, size_t n) { mapped->drop_pages(p, n); });
    m->tokenizer_ = Tokenizer::from_gguf(f);
    if (m->tokenizer_->n_vocab() != hp.n_vocab) {
        bad(f, "tokenizer has " + std::to_string(m->tokenizer_->n_vocab()) + " tokens but token_embd has " +
                   std::to_string(hp.n_vocab) + " rows");
    }
    return m;
}

std::shared_ptr<const Model> Model::load_vocab(const std::string& path) { return vocab_from_gguf(GgufFile::open(path)); }

std::shared_ptr<const Model> Model::vocab_from_gguf(std::unique_ptr<GgufFile> file) {
    if (!file) fail(EI_ERR_INVALID_ARGUMENT, "model file is null");
    std::unique_ptr<Model> m(new Model());
    m->file_ = std::move(file);
    m->tokenizer_ = Tokenizer::from_gguf(*m->file_);
    m->hp_.arch_name = m->file_->get_string("general.architecture");
    m->hp_.n_vocab = m->tokenizer_->n_vocab();
    m->vocab_only_ = true;
    return m;
}

int64_t Model::max_matmul_k() const { return std::max<int64_t>({hp_.n_embd, hp_.n_ff, int64_t{hp_.n_head} * hp_.head_dim}); }

uint64_t Model::fingerprint() const {
    Fnv f;
    const HParams& hp = hparams();
    f.add(hp.n_vocab);
    f.add(hp.n_embd);
    f.add(hp.n_layer);
    f.add(hp.n_head);
    f.add(hp.n_head_kv);
    f.add(hp.n_ff);
    for (const TensorInfo& t : gguf().tensors()) {
        f.add(t.name.data(), t.name.size());
        f.add(t.type);
        f.add(t.ne);
        // A few bytes of each tensor's data tell apart models of equal shape.
        f.add(t.data, std::min<uint64_t>(t.n_bytes, 64));
    }
    return f.h;
}

}  // namespace ei
