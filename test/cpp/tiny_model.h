// Test-only GGUF writer: whole models (metadata, tensor infos, weights) built in memory, so
// tests can make a model with exactly the flaw they check (test_model_checks.cpp), and the
// model fuzzer gets small seeds whose bytes are mostly metadata (test/fuzz/fuzz_model.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "cpu/quants.h"
#include "edgeinfinite/edgeinfinite.h"
#include "ggml_types.h"

namespace ei_test {

class GgufBuilder {
public:
    struct Tensor {
        std::string name;
        int32_t type = 0;
        std::vector<int64_t> ne;  // innermost first
    };

    // Metadata setters replace a key that is already there, keeping its place.
    GgufBuilder& str(const std::string& key, const std::string& v) { return set(key, EI_VALUE_STRING, text(v)); }
    GgufBuilder& u32(const std::string& key, uint32_t v) { return set(key, EI_VALUE_UINT32, pod(v)); }
    GgufBuilder& i32(const std::string& key, int32_t v) { return set(key, EI_VALUE_INT32, pod(v)); }
    GgufBuilder& u64(const std::string& key, uint64_t v) { return set(key, EI_VALUE_UINT64, pod(v)); }
    GgufBuilder& i64(const std::string& key, int64_t v) { return set(key, EI_VALUE_INT64, pod(v)); }
    GgufBuilder& f32(const std::string& key, float v) { return set(key, EI_VALUE_FLOAT32, pod(v)); }
    GgufBuilder& f64(const std::string& key, double v) { return set(key, EI_VALUE_FLOAT64, pod(v)); }
    GgufBuilder& boolean(const std::string& key, bool v) { return set(key, EI_VALUE_BOOL, {uint8_t(v ? 1 : 0)}); }
    GgufBuilder& strs(const std::string& key, const std::vector<std::string>& v) {
        std::vector<uint8_t> p = array_head(EI_VALUE_STRING, v.size());
        for (const std::string& s : v) append(p, text(s));
        return set(key, EI_VALUE_ARRAY, p);
    }
    GgufBuilder& f32s(const std::string& key, const std::vector<float>& v) {
        std::vector<uint8_t> p = array_head(EI_VALUE_FLOAT32, v.size());
        for (float x : v) append(p, pod(x));
        return set(key, EI_VALUE_ARRAY, p);
    }
    GgufBuilder& i32s(const std::string& key, const std::vector<int32_t>& v) {
        std::vector<uint8_t> p = array_head(EI_VALUE_INT32, v.size());
        for (int32_t x : v) append(p, pod(x));
        return set(key, EI_VALUE_ARRAY, p);
    }
    GgufBuilder& erase(const std::string& key) {
        kvs_.erase(std::remove_if(kvs_.begin(), kvs_.end(), [&](const Kv& kv) { return kv.key == key; }), kvs_.end());
        return *this;
    }

    // Adds a tensor, or replaces the type and shape of one already there.
    GgufBuilder& tensor(const std::string& name, int32_t type, std::vector<int64_t> ne) {
        if (Tensor* t = find_tensor(name)) {
            t->type = type;
            t->ne = std::move(ne);
            return *this;
        }
        tensor_index_[name] = tensors_.size();
        tensors_.push_back({name, type, std::move(ne)});
        return *this;
    }
    Tensor* find_tensor(const std::string& name) {
        auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }
    GgufBuilder& erase_tensor(const std::string& name) {
        tensors_.erase(std::remove_if(tensors_.begin(), tensors_.end(), [&](const Tensor& t) { return t.name == name; }),
                       tensors_.end());
        tensor_index_.clear();
        for (size_t i = 0; i < tensors_.size(); ++i) tensor_index_[tensors_[i].name] = i;
        return *this;
    }
    const std::vector<Tensor>& tensors() const { return tensors_; }

    // Every tensor's data at offset 0 (GGUF does not forbid overlap): a model of thousands
    // of blocks stays as small as its largest tensor.
    GgufBuilder& share_data(bool on) {
        share_ = on;
        return *this;
    }

    // The file. Without data it ends after the tensor infos: the fuzzer supplies the data.
    std::vector<uint8_t> bytes(bool with_data = true) const {
        std::vector<uint8_t> b;
        append(b, {'G', 'G', 'U', 'F'});
        append(b, pod(uint32_t{3}));
        append(b, pod(uint64_t{tensors_.size()}));
        append(b, pod(uint64_t{kvs_.size()}));
        for (const Kv& kv : kvs_) {
            append(b, text(kv.key));
            append(b, pod(kv.type));
            append(b, kv.payload);
        }
        uint64_t offset = 0;
        for (const Tensor& t : tensors_) {
            append(b, text(t.name));
            append(b, pod(static_cast<uint32_t>(t.ne.size())));
            for (int64_t n : t.ne) append(b, pod(static_cast<uint64_t>(n)));
            append(b, pod(static_cast<uint32_t>(t.type)));
            const uint64_t at = share_ ? 0 : offset;
            append(b, pod(at));
            offset = align(at + n_bytes(t));
        }
        if (!with_data) return b;
        b.resize(align(b.size()), 0);
        const size_t base = b.size();
        b.resize(base + data_size(), 0);
        if (share_) {  // one tensor's weights, seen by every tensor
            const Tensor* big = nullptr;
            for (const Tensor& t : tensors_)
                if (!big || n_bytes(t) > n_bytes(*big)) big = &t;
            if (big) {
                std::vector<uint8_t> d = weights(*big, 1);
                std::memcpy(b.data() + base, d.data(), d.size());
            }
            return b;
        }
        offset = 0;
        uint64_t seed = 1;
        for (const Tensor& t : tensors_) {
            std::vector<uint8_t> d = weights(t, seed++);
            std::memcpy(b.data() + base + offset, d.data(), d.size());
            offset = align(offset + n_bytes(t));
        }
        return b;
    }

    // Bytes of the data section (what bytes(false) leaves out, after alignment).
    uint64_t data_size() const {
        uint64_t offset = 0, size = 0;
        for (const Tensor& t : tensors_) {
            const uint64_t at = share_ ? 0 : offset;
            size = std::max(size, at + n_bytes(t));
            offset = align(at + n_bytes(t));
        }
        return size;
    }
    uint64_t align(uint64_t n) const { return (n + align_ - 1) / align_ * align_; }

    // general.alignment (default: no key, 32), used for the data section and every offset.
    GgufBuilder& alignment(uint32_t a) {
        align_ = a;
        return u32("general.alignment", a);
    }

    static uint64_t n_bytes(const Tensor& t) {
        const ei::TypeTraits tt = ei::type_traits(t.type);
        if (!tt.name) return 0;
        uint64_t n = 1;
        for (int64_t x : t.ne) n *= static_cast<uint64_t>(x);
        return n / static_cast<uint64_t>(tt.block_size) * static_cast<uint64_t>(tt.type_size);
    }

private:
    struct Kv {
        std::string key;
        uint32_t type;
        std::vector<uint8_t> payload;  // what follows the type
    };

    template <typename T>
    static std::vector<uint8_t> pod(T v) {
        std::vector<uint8_t> out(sizeof(T));
        std::memcpy(out.data(), &v, sizeof(T));
        return out;
    }
    static std::vector<uint8_t> text(const std::string& s) {
        std::vector<uint8_t> out = pod(uint64_t{s.size()});
        out.insert(out.end(), s.begin(), s.end());
        return out;
    }
    static std::vector<uint8_t> array_head(ei_value_type elem, size_t n) {
        std::vector<uint8_t> out = pod(static_cast<uint32_t>(elem));
        append(out, pod(uint64_t{n}));
        return out;
    }
    static void append(std::vector<uint8_t>& b, const std::vector<uint8_t>& more) { b.insert(b.end(), more.begin(), more.end()); }

    GgufBuilder& set(const std::string& key, uint32_t type, std::vector<uint8_t> payload) {
        for (Kv& kv : kvs_) {
            if (kv.key == key) {
                kv.type = type;
                kv.payload = std::move(payload);
                return *this;
            }
        }
        kvs_.push_back({key, type, std::move(payload)});
        return *this;
    }

    // Deterministic small weights: every number finite, every scale modest, so a model
    // built here computes without overflow. 1-D f32 tensors (norms) stay near 1.
    static std::vector<uint8_t> weights(const Tensor& t, uint64_t seed) {
        uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
        auto next = [&s]() {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            return static_cast<uint32_t>(s >> 33);
        };
        auto uniform = [&]() { return static_cast<float>(next() % 2001) / 1000.0f - 1.0f; };  // [-1, 1]
        const uint64_t size = n_bytes(t);
        std::vector<uint8_t> out(size);
        const ei::TypeTraits tt = ei::type_traits(t.type);
        if (!tt.name) return out;
        const uint64_t blocks = size / static_cast<uint64_t>(tt.type_size);
        auto put16 = [&](uint64_t at, uint16_t v) { std::memcpy(out.data() + at, &v, 2); };
        const bool vector = t.ne.size() == 1;
        for (uint64_t b = 0; b < blocks; ++b) {
            const uint64_t at = b * static_cast<uint64_t>(tt.type_size);
            for (int64_t i = 0; i < tt.type_size; ++i) out[at + i] = static_cast<uint8_t>(next());
            switch (static_cast<ei::GgmlType>(t.type)) {
                case ei::GgmlType::F32: {
                    float v = vector ? 1.0f + 0.25f * uniform() : 0.2f * uniform();
                    std::memcpy(out.data() + at, &v, 4);
                    break;
                }
                case ei::GgmlType::F16: put16(at, ei::cpu::fp32_to_fp16(0.2f * uniform())); break;
                case ei::GgmlType::BF16: put16(at, ei::cpu::fp32_to_bf16(0.2f * uniform())); break;
                case ei::GgmlType::Q8_0:  // d, then 32 int8
                case ei::GgmlType::Q4_0:  // d, then 16 bytes of nibbles
                    put16(at, ei::cpu::fp32_to_fp16(0.01f));
                    break;
                case ei::GgmlType::Q4_K:  // d, dmin, 12 bytes of 6-bit scales and mins, nibbles
                    put16(at, ei::cpu::fp32_to_fp16(0.001f));
                    put16(at + 2, ei::cpu::fp32_to_fp16(0.001f));
                    break;
                case ei::GgmlType::Q6_K:  // ql, qh, 16 int8 scales, d last
                    put16(at + tt.type_size - 2, ei::cpu::fp32_to_fp16(0.0005f));
                    break;
                default:
                    break;  // types without kernels: any bytes (the loader refuses them)
            }
        }
        return out;
    }

    std::vector<Kv> kvs_;
    std::vector<Tensor> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;  // models of thousands of tensors
    bool share_ = false;
    uint64_t align_ = 32;
};

// A small model, llama.cpp's layout. Defaults: llama, 32 wide, 1 block, 4 query heads over 2
// KV heads (head size 8), FFN 64, a ~70-token SentencePiece-style vocab, f32.
struct ModelSpec {
    std::string arch = "llama";  // or "qwen2" (adds QKV biases, NEOX RoPE)
    int64_t n_embd = 32, n_layer = 1, n_head = 4, n_head_kv = 2, n_ff = 64;
    int64_t head_dim = 0;  // > 0: written as attention.key_length/value_length, q/k/v sized by it
    int64_t n_rot = 0;     // > 0: written as rope.dimension_count
    int32_t weight_type = 0;   // ggml type of the matrices
    int32_t output_type = -1;  // output.weight (-1: weight_type)
    bool tied = false;         // no output.weight: the head reuses token_embd
    bool bpe = false;          // byte-level BPE (gpt2) vocab instead of SentencePiece
    std::string pre = "";      // tokenizer.ggml.pre for BPE ("" = per arch: qwen2 or llama-bpe)
    int gate = 0;              // memory gate: 0 none, 1 scalar, 2 adaptive (with bias)
};

inline std::vector<std::string> spm_vocab(std::vector<int32_t>& types, std::vector<float>& scores) {
    std::vector<std::string> t = {"<unk>", "<s>", "</s>", "<0x0A>", "<0x20>", "<0xC3>", "<0xA9>", "\xE2\x96\x81"};
    types = {2, 3, 3, 6, 6, 6, 6, 1};
    for (char c = 'a'; c <= 'z'; ++c) t.push_back(std::string(1, c));
    for (char c = '0'; c <= '9'; ++c) t.push_back(std::string(1, c));
    for (const char* p : {".", ",", "!", "?", "'"}) t.push_back(p);
    const std::string sp = "\xE2\x96\x81";
    for (const std::string& p : std::vector<std::string>{sp + "t", "he", "th", sp + "th", sp + "the", "ll", "lo", "llo", sp + "h", sp + "he",
                                 sp + "hel", sp + "hello", "or", "ld", sp + "w", sp + "wor", sp + "world", "in", "er",
                                 "an", sp + "a", sp + "an", sp + "and"}) {
        t.push_back(p);
    }
    types.resize(t.size(), 1);
    // Longer pieces score higher, so merges build them.
    scores.assign(t.size(), 0.0f);
    for (size_t i = 8; i < t.size(); ++i) scores[i] = static_cast<float>(t[i].size()) - 0.01f * static_cast<float>(i);
    return t;
}

// GPT-2 byte alphabet: printable ASCII stands for itself, space is U+0120, newline U+010A.
inline std::vector<std::string> bpe_vocab(std::vector<int32_t>& types, std::vector<std::string>& merges) {
    const std::string G = "\xC4\xA0", C = "\xC4\x8A";
    std::vector<std::string> t = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    types = {3, 3, 3};
    for (char c = '!'; c <= '~'; ++c) t.push_back(std::string(1, c));
    t.push_back(G);
    t.push_back(C);
    merges = {G + " t", "h e", G + "t he", "l l", "l o", "ll o", G + " h", G + "h e", G + "he llo", "o r", "l d",
              G + " w", G + "w or", G + "wor ld", "i n", "e r", "a n", G + " a", G + "a n", G + "an d"};
    for (const std::string& m : merges) {
        std::string joined = m;
        joined.erase(joined.find(' '), 1);
        t.push_back(joined);
    }
    types.resize(t.size(), 1);
    return t;
}

inline GgufBuilder tiny_model(const ModelSpec& s) {
    GgufBuilder g;
    const std::string a = s.arch + ".";
    g.str("general.architecture", s.arch).str("general.name", "tiny-test");
    g.u32(a + "context_length", 256)
        .u32(a + "embedding_length", static_cast<uint32_t>(s.n_embd))
        .u32(a + "block_count", static_cast<uint32_t>(s.n_layer))
        .u32(a + "feed_forward_length", static_cast<uint32_t>(s.n_ff))
        .u32(a + "attention.head_count", static_cast<uint32_t>(s.n_head))
        .u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv))
        .f32(a + "attention.layer_norm_rms_epsilon", 1e-5f)
        .f32(a + "rope.freq_base", s.arch == "qwen2" ? 1e6f : 1e4f);
    const int64_t hd = s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head;
    if (s.head_dim > 0) g.u32(a + "attention.key_length", static_cast<uint32_t>(hd)).u32(a + "attention.value_length", static_cast<uint32_t>(hd));
    if (s.n_rot > 0) g.u32(a + "rope.dimension_count", static_cast<uint32_t>(s.n_rot));

    std::vector<int32_t> types;
    std::vector<std::string> tokens;
    if (s.bpe) {
        std::vector<std::string> merges;
        tokens = bpe_vocab(types, merges);
        g.str("tokenizer.ggml.model", "gpt2")
            .str("tokenizer.ggml.pre", !s.pre.empty() ? s.pre : s.arch == "qwen2" ? "qwen2" : "llama-bpe")
            .strs("tokenizer.ggml.tokens", tokens)
            .i32s("tokenizer.ggml.token_type", types)
            .strs("tokenizer.ggml.merges", merges)
            .u32("tokenizer.ggml.bos_token_id", 0)
            .u32("tokenizer.ggml.eos_token_id", 2);
    } else {
        std::vector<float> scores;
        tokens = spm_vocab(types, scores);
        g.str("tokenizer.ggml.model", "llama")
            .strs("tokenizer.ggml.tokens", tokens)
            .f32s("tokenizer.ggml.scores", scores)
            .i32s("tokenizer.ggml.token_type", types)
            .u32("tokenizer.ggml.bos_token_id", 1)
            .u32("tokenizer.ggml.eos_token_id", 2)
            .u32("tokenizer.ggml.unknown_token_id", 0)
            .boolean("tokenizer.ggml.add_bos_token", true);
    }
    const int64_t n_vocab = static_cast<int64_t>(tokens.size());
    const int64_t q = s.n_head * hd, kv = s.n_head_kv * hd;
    const int32_t w = s.weight_type;
    g.tensor("token_embd.weight", w, {s.n_embd, n_vocab});
    g.tensor("output_norm.weight", 0, {s.n_embd});
    if (!s.tied) g.tensor("output.weight", s.output_type >= 0 ? s.output_type : w, {s.n_embd, n_vocab});
    for (int64_t i = 0; i < s.n_layer; ++i) {
        const std::string p = "blk." + std::to_string(i) + ".";
        g.tensor(p + "attn_norm.weight", 0, {s.n_embd});
        g.tensor(p + "attn_q.weight", w, {s.n_embd, q});
        g.tensor(p + "attn_k.weight", w, {s.n_embd, kv});
        g.tensor(p + "attn_v.weight", w, {s.n_embd, kv});
        g.tensor(p + "attn_output.weight", w, {q, s.n_embd});
        if (s.arch == "qwen2") {
            g.tensor(p + "attn_q.bias", 0, {q});
            g.tensor(p + "attn_k.bias", 0, {kv});
            g.tensor(p + "attn_v.bias", 0, {kv});
        }
        g.tensor(p + "ffn_norm.weight", 0, {s.n_embd});
        g.tensor(p + "ffn_gate.weight", w, {s.n_embd, s.n_ff});
        g.tensor(p + "ffn_up.weight", w, {s.n_embd, s.n_ff});
        g.tensor(p + "ffn_down.weight", w, {s.n_ff, s.n_embd});
        if (s.gate == 1) g.tensor(p + "ei_gate.weight", 0, {s.n_head});
        if (s.gate == 2) {
            g.tensor(p + "ei_gate.weight", 0, {2 * hd, s.n_head});
            g.tensor(p + "ei_gate.bias", 0, {s.n_head});
        }
    }
    return g;
}

}  // namespace ei_test
