// A session: one conversation's state (KV cache, positions) in a pool the caller owns,
// and the backend that runs the plan's graphs over it. Prompts of any length run the
// fixed prefill graph ceil(n/L) times; generation runs the decode graph once per token.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend.h"
#include "model.h"
#include "plan.h"
#include "sampler.h"
#include "text_stream.h"

namespace ei {

enum class StopReason : int32_t { None = 0, Eos = 1, StopString = 2, MaxTokens = 3, ContextFull = 4 };

class Session {
public:
    // Checks the pool against the plan (size, alignment) and the backend against the graphs.
    Session(const Model& model, const Plan& plan, uint8_t* pool, uint64_t pool_size);

    const Plan& plan() const { return plan_; }
    int32_t n_past() const { return n_past_; }
    int32_t n_vocab() const { return model_.hparams().n_vocab; }
    const float* last_logits() const { return last_logits_; }
    void reset();

    // Runs tokens at the current position. Returns the last token's logits (valid until
    // the next call). With all_logits, writes n x n_vocab logits there as well.
    const float* eval(const int32_t* tokens, int32_t n, float* all_logits = nullptr);

    // Generation, one piece at a time: begin() feeds the prompt; next() returns the next
    // whole-UTF-8 text piece (possibly empty) and sets done when generation ends.
    struct GenerateOptions {
        SamplingParams sampling;
        int32_t max_tokens = 256;
        std::vector<std::string> stop_strings;
    };
    void begin(const int32_t* prompt, int32_t n, const GenerateOptions& options);
    struct Piece {
        std::string text;
        int32_t token = -1;
        StopReason done = StopReason::None;
    };
    const Piece& next();

private:
    void check_tokens(const int32_t* tokens, int32_t n) const;

    const Model& model_;
    Plan plan_;
    uint8_t* pool_;
    std::unique_ptr<Backend> backend_;
    int32_t n_past_ = 0;
    const float* last_logits_ = nullptr;

    // generation state
    std::optional<Sampler> sampler_;
    std::optional<StopMatcher> stops_;
    Utf8Assembler utf8_;
    int32_t max_tokens_ = 0, generated_ = 0;
    int32_t piece_token_ = -1;  // last sampled token, fed to the model on the next step
    bool finished_ = true;
    Piece piece_;
};

}  // namespace ei
