// A loaded model: hyper-parameters from GGUF metadata and the per-layer weight tensors,
// which stay in the mmapped file. Architecture specifics (RoPE mode, biases, tied
// output) are decided here once, so the graph code reads plain fields.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gguf.h"
#include "weight_cache.h"

namespace ei {

class Tokenizer;

enum class Arch { Llama, Qwen2 };
enum class RopeMode { Adjacent, Halves };  // llama: (x0,x1),(x2,x3)...; qwen2 (NEOX): (x_i, x_{i+d/2})

struct HParams {
    Arch arch = Arch::Llama;
    std::string arch_name;
    int32_t n_vocab = 0;
    int32_t n_embd = 0;
    int32_t n_layer = 0;
    int32_t n_head = 0;
    int32_t n_head_kv = 0;
    int32_t n_ff = 0;
    int32_t head_dim = 0;
    int32_t n_rot = 0;  // rotated dims per head (<= head_dim)
    int32_t n_ctx_train = 0;
    float rms_eps = 1e-5f;
    float rope_base = 10000.0f;
    RopeMode rope_mode = RopeMode::Adjacent;

    int32_t n_embd_kv() const { return n_head_kv * head_dim; }
};

struct LayerWeights {
    const TensorInfo* attn_norm = nullptr;
    const TensorInfo* wq = nullptr;
    const TensorInfo* wk = nullptr;
    const TensorInfo* wv = nullptr;
    const TensorInfo* wo = nullptr;
    const TensorInfo* bq = nullptr;  // qwen2 only
    const TensorInfo* bk = nullptr;
    const TensorInfo* bv = nullptr;
    const TensorInfo* ffn_norm = nullptr;
    const TensorInfo* ffn_gate = nullptr;
    const TensorInfo* ffn_up = nullptr;
    const TensorInfo* ffn_down = nullptr;
    // EdgeInfinite memory gate (optional; absent means g = 0). Layout, per layer:
    //   scalar:   ei_gate.weight [n_head]            g_h = sigmoid(w_h (+ b_h))
    //   adaptive: ei_gate.weight [2*head_dim, n_head] g_h,t = sigmoid(w_h . [A_mem ; A_local] + b_h)
    //             (w_h's first head_dim entries weigh A_mem), ei_gate.bias [n_head] optional.
    // All f32.
    const TensorInfo* gate_w = nullptr;
    const TensorInfo* gate_b = nullptr;
    enum class Gate { None, Scalar, Adaptive } gate = Gate::None;
};

class Model {
public:
    // Opens, validates and maps a model; throws ei::Error naming what is wrong.
    static std::shared_ptr<const Model> load(const std::string& path);
    // A model from GGUF bytes in memory (label names it in messages). The model, and every
    // plan and session made from it, points into data: the caller keeps the bytes alive
    // and unchanged until the last of them is gone. A tensor whose data is not aligned as
    // its type needs is refused: with data aligned to 4 bytes (as malloc'd and mmapped
    // memory is), every file whose general.alignment is at least 4 is fine.
    static std::shared_ptr<const Model> from_memory(const uint8_t* data, uint64_t size, std::string label);
    // Validates a parsed file and takes it over; load() and from_memory() both end here, so
    // every model passes the same checks: metadata, tensor shapes and types, the limits of
    // the CPU backend (cpu_limits.h), the tokenizer. Throws EI_ERR_FORMAT for a malformed
    // model, EI_ERR_UNSUPPORTED for one past a limit, each message naming the GGUF key or
    // tensor.
    static std::shared_ptr<const Model> from_gguf(std::unique_ptr<GgufFile> file);
    // Tokenizer only (vocabulary files); weights(), layers() are empty and planning fails.
    static std::shared_ptr<const Model> load_vocab(const std::string& path);
    static std::shared_ptr<const Model> vocab_from_gguf(std::unique_ptr<GgufFile> file);
    bool vocab_only() const { return vocab_only_; }
    // Tells models apart: shapes, every tensor's name, type and first bytes (session state
    // and prepared device data are keyed by it).
    uint64_t fingerprint() const;
    ~Model();

    const GgufFile& gguf() const { return *file_; }
    const HParams& hparams() const { return hp_; }
    const Tokenizer& tokenizer() const { return *tokenizer_; }
    const TensorInfo* tok_embd() const { return tok_embd_; }
    const TensorInfo* output_norm() const { return output_norm_; }
    const TensorInfo* output() const { return output_; }  // == tok_embd when tied
    bool tied_output() const { return output_ == tok_embd_; }
    const std::vector<LayerWeights>& layers() const { return layers_; }

    // Largest input width of any matmul (sizes the quantized-activation scratch).
    int64_t max_matmul_k() const;

    // Backends' prepared copies of the weights, shared by all sessions (thread-safe).
    WeightCache& weight_cache() const { return weight_cache_; }

private:
    Model() = default;
    std::unique_ptr<GgufFile> file_;
    HParams hp_;
    std::unique_ptr<Tokenizer> tokenizer_;
    const TensorInfo* tok_embd_ = nullptr;
    const TensorInfo* output_norm_ = nullptr;
    const TensorInfo* output_ = nullptr;
    std::vector<LayerWeights> layers_;
    bool vocab_only_ = false;
    mutable WeightCache weight_cache_;
};

// Reads and validates the hyper-parameters of a GGUF (no weights needed): ranges, the
// relations between them, and the CPU backend's limits.
HParams read_hparams(const GgufFile& f);

}  // namespace ei
