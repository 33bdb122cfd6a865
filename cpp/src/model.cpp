#include "model.h"

#include <algorithm>

#include "cpu/quants.h"
#include "error.h"
#include "tokenizer.h"

namespace ei {

namespace {

[[noreturn]] void bad(const GgufFile& f, const std::string& msg) { fail(EI_ERR_FORMAT, f.path() + ": " + msg); }

int32_t positive_int(const GgufFile& f, const std::string& key, int64_t def = -1) {
    int64_t v = def < 0 ? f.require_int(key) : f.get_int(key, def);
    if (v <= 0 || v > (int64_t{1} << 30)) bad(f, "metadata '" + key + "' = " + std::to_string(v) + " is out of range");
    return static_cast<int32_t>(v);
}

void read_gate(const GgufFile& f, const std::string& p, const HParams& hp, LayerWeights& l) {
    const TensorInfo* w = f.tensor(p + "ei_gate.weight");
    const TensorInfo* b = f.tensor(p + "ei_gate.bias");
    if (!w) {
        if (b) bad(f, "tensor '" + p + "ei_gate.bias' has no ei_gate.weight");
        return;
    }
    auto f32 = [&](const TensorInfo* t) {
        if (t->type != 0) fail(EI_ERR_UNSUPPORTED, f.path() + ": tensor '" + t->name + "' must be f32");
    };
    f32(w);
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
        fail(EI_ERR_UNSUPPORTED, f.path() + ": unsupported architecture '" + hp.arch_name + "' (supported: llama, qwen2)");
    }
    const std::string a = hp.arch_name + ".";
    hp.n_embd = positive_int(f, a + "embedding_length");
    hp.n_layer = positive_int(f, a + "block_count");
    hp.n_head = positive_int(f, a + "attention.head_count");
    hp.n_head_kv = positive_int(f, a + "attention.head_count_kv", hp.n_head);
    hp.n_ff = positive_int(f, a + "feed_forward_length");
    hp.n_ctx_train = positive_int(f, a + "context_length", 2048);
    hp.rms_eps = static_cast<float>(f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
    hp.rope_base = static_cast<float>(f.get_float(a + "rope.freq_base", 10000.0));
    if (hp.n_embd % hp.n_head != 0) bad(f, "embedding_length is not a multiple of head_count");
    if (hp.n_head % hp.n_head_kv != 0) bad(f, "head_count is not a multiple of head_count_kv");
    hp.head_dim = positive_int(f, a + "attention.key_length", hp.n_embd / hp.n_head);
    if (f.get_int(a + "attention.value_length", hp.head_dim) != hp.head_dim) {
        fail(EI_ERR_UNSUPPORTED, f.path() + ": key and value head sizes differ");
    }
    hp.n_rot = positive_int(f, a + "rope.dimension_count", hp.head_dim);
    if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0) bad(f, "rope.dimension_count is not an even number <= head size");
    if (!(hp.rms_eps > 0) || !(hp.rope_base > 0)) bad(f, "rms epsilon and rope base must be positive");
    if (f.get_string(a + "rope.scaling.type", "none") != "none") {
        fail(EI_ERR_UNSUPPORTED, f.path() + ": rope scaling '" + f.get_string(a + "rope.scaling.type") + "' is not supported");
    }
    return hp;
}

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::string& path) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = GgufFile::open(path);
    const GgufFile& f = *m->file_;
    m->hp_ = read_hparams(f);
    HParams& hp = m->hp_;

    // Looks a tensor up and checks its shape (innermost first) and that a kernel exists.
    auto get = [&](const std::string& name, std::vector<int64_t> shape, bool required) -> const TensorInfo* {
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
        if (!cpu::kernels_for(static_cast<GgmlType>(t->type))) {
            fail(EI_ERR_UNSUPPORTED, f.path() + ": tensor '" + name + "' has type " + type_traits(t->type).name +
                                         ", which this runtime cannot compute with (supported: f32, f16, bf16, q8_0, "
                                         "q4_0, q4_K, q6_K)");
        }
        return t;
    };

    m->tok_embd_ = get("token_embd.weight", {hp.n_embd, -1}, false);
    if (!m->tok_embd_) bad(f, "tensor 'token_embd.weight' is missing");
    hp.n_vocab = static_cast<int32_t>(m->tok_embd_->ne[1]);
    m->tok_embd_ = get("token_embd.weight", {hp.n_embd, hp.n_vocab}, true);
    m->output_norm_ = get("output_norm.weight", {hp.n_embd}, true);
    m->output_ = get("output.weight", {hp.n_embd, hp.n_vocab}, false);
    if (!m->output_) m->output_ = m->tok_embd_;  // tied embeddings

    const int64_t q_dim = int64_t{hp.n_head} * hp.head_dim, kv_dim = hp.n_embd_kv();
    m->layers_.resize(hp.n_layer);
    for (int32_t i = 0; i < hp.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights& l = m->layers_[i];
        l.attn_norm = get(p + "attn_norm.weight", {hp.n_embd}, true);
        l.wq = get(p + "attn_q.weight", {hp.n_embd, q_dim}, true);
        l.wk = get(p + "attn_k.weight", {hp.n_embd, kv_dim}, true);
        l.wv = get(p + "attn_v.weight", {hp.n_embd, kv_dim}, true);
        l.wo = get(p + "attn_output.weight", {q_dim, hp.n_embd}, true);
        bool biases = hp.arch == Arch::Qwen2;
        l.bq = get(p + "attn_q.bias", {q_dim}, biases);
        l.bk = get(p + "attn_k.bias", {kv_dim}, biases);
        l.bv = get(p + "attn_v.bias", {kv_dim}, biases);
        l.ffn_norm = get(p + "ffn_norm.weight", {hp.n_embd}, true);
        l.ffn_gate = get(p + "ffn_gate.weight", {hp.n_embd, hp.n_ff}, true);
        l.ffn_up = get(p + "ffn_up.weight", {hp.n_embd, hp.n_ff}, true);
        l.ffn_down = get(p + "ffn_down.weight", {hp.n_ff, hp.n_embd}, true);
        read_gate(f, p, hp, l);
    }
    const GgufFile* file = m->file_.get();
    m->weight_cache_.set_release([file](const void* p, size_t n) { file->drop_pages(p, n); });
    m->tokenizer_ = Tokenizer::from_gguf(f);
    if (m->tokenizer_->n_vocab() != hp.n_vocab) {
        bad(f, "tokenizer has " + std::to_string(m->tokenizer_->n_vocab()) + " tokens but token_embd has " +
                   std::to_string(hp.n_vocab) + " rows");
    }
    return m;
}

std::shared_ptr<const Model> Model::load_vocab(const std::string& path) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = GgufFile::open(path);
    m->tokenizer_ = Tokenizer::from_gguf(*m->file_);
    m->hp_.arch_name = m->file_->get_string("general.architecture");
    m->hp_.n_vocab = m->tokenizer_->n_vocab();
    m->vocab_only_ = true;
    return m;
}

int64_t Model::max_matmul_k() const { return std::max<int64_t>({hp_.n_embd, hp_.n_ff, int64_t{hp_.n_head} * hp_.head_dim}); }

}  // namespace ei
