// Token sampling for the generation loop: repetition penalty, then greedy or
// top-k -> top-p -> min-p -> temperature -> softmax -> a seeded draw. The order and
// the truncation rules follow llama.cpp's default sampler chain. The PRNG is our own
// (xoshiro256** seeded by splitmix64) so a seed gives the same tokens with every
// standard library; sample() allocates nothing.
#pragma once
#include <cstdint>
#include <vector>

namespace ei {

struct SamplingParams {
    bool greedy = false;
    float temperature = 0.8f;    // 0 means greedy
    int32_t top_k = 40;          // <= 0: off
    float top_p = 0.95f;         // must be in (0, 1]; 1: off
    float min_p = 0.05f;         // <= 0: off; at most 1
    float repeat_penalty = 1.0f; // 1: off; must be > 0
    int32_t repeat_last_n = 64;  // tokens of history the penalty looks at; 0: off
    uint64_t seed = 0;           // every value, 0 included, is a fixed seed
};

// xoshiro256** (Blackman & Vigna), its state filled from the seed by splitmix64 as the
// authors recommend. Exposed so tests can pin it.
class Rng {
public:
    explicit Rng(uint64_t seed = 0) { reseed(seed); }
    void reseed(uint64_t seed);
    uint64_t next();
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    static uint64_t splitmix64(uint64_t& state);

private:
    uint64_t s_[4];
};

class Sampler {
public:
    // Throws ei::Error(EI_ERR_INVALID_ARGUMENT) for parameters out of range.
    Sampler(const SamplingParams& params, int32_t n_vocab);

    // Picks a token from n_vocab logits (not modified). NaN logits count as -inf;
    // throws EI_ERR_INVALID_ARGUMENT when no logit is finite.
    int32_t sample(const float* logits);
    // Records a token in the repetition history (a ring of repeat_last_n entries).
    void accept(int32_t token);
    // Clears the history and restarts the PRNG from the seed.
    void reset();

    const SamplingParams& params() const { return params_; }
    int32_t n_vocab() const { return n_vocab_; }

private:
    struct Cand {
        float logit;
        int32_t id;
    };
    void apply_penalty();

    SamplingParams params_;
    int32_t n_vocab_;
    Rng rng_;
    std::vector<Cand> cand_;       // n_vocab working candidates
    std::vector<double> probs_;    // n_vocab unnormalised probabilities of the survivors
    std::vector<uint32_t> stamp_;  // per-token epoch, to penalise each token once
    uint32_t epoch_ = 0;
    std::vector<int32_t> history_;  // ring buffer of accepted tokens
    int32_t hist_head_ = 0;         // next slot to write
    int32_t hist_count_ = 0;
};

}  // namespace ei
