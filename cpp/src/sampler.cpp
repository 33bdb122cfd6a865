#include "sampler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>

#include "error.h"

namespace ei {

uint64_t Rng::splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void Rng::reseed(uint64_t seed) {
    // splitmix64 never yields four zero words in a row, so the state is never all-zero
    // (the one state xoshiro cannot leave).
    uint64_t sm = seed;
    for (auto& w : s_) w = splitmix64(sm);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

Sampler::Sampler(const SamplingParams& p, int32_t n_vocab) : params_(p), n_vocab_(n_vocab), rng_(p.seed) {
    if (n_vocab <= 0) fail(EI_ERR_INVALID_ARGUMENT, "sampler: n_vocab must be positive, got " + std::to_string(n_vocab));
    if (!std::isfinite(p.temperature) || p.temperature < 0.0f)
        fail(EI_ERR_INVALID_ARGUMENT, "sampler: temperature must be finite and >= 0, got " + std::to_string(p.temperature));
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
        fail(EI_ERR_INVALID_ARGUMENT, "sampler: top_p must be in (0, 1], got " + std::to_string(p.top_p));
    if (std::isnan(p.min_p) || p.min_p > 1.0f)
        fail(EI_ERR_INVALID_ARGUMENT, "sampler: min_p must be <= 1, got " + std::to_string(p.min_p));
    if (!std::isfinite(p.repeat_penalty) || p.repeat_penalty <= 0.0f)
        fail(EI_ERR_INVALID_ARGUMENT,
             "sampler: repeat_penalty must be finite and > 0, got " + std::to_string(p.repeat_penalty));
    if (p.repeat_last_n < 0)
        fail(EI_ERR_INVALID_ARGUMENT, "sampler: repeat_last_n must be >= 0, got " + std::to_string(p.repeat_last_n));

    cand_.resize(static_cast<size_t>(n_vocab));
    probs_.resize(static_cast<size_t>(n_vocab));
    history_.resize(static_cast<size_t>(p.repeat_last_n));
    if (p.repeat_penalty != 1.0f && p.repeat_last_n > 0) stamp_.assign(static_cast<size_t>(n_vocab), 0);
}

void Sampler::accept(int32_t token) {
    if (token < 0 || token >= n_vocab_)
        fail(EI_ERR_INVALID_ARGUMENT, "sampler: accepted token " + std::to_string(token) + " out of range [0, " +
                                          std::to_string(n_vocab_) + ")");
    const int32_t cap = static_cast<int32_t>(history_.size());
    if (cap == 0) return;
    history_[static_cast<size_t>(hist_head_)] = token;
    hist_head_ = (hist_head_ + 1) % cap;
    if (hist_count_ < cap) ++hist_count_;
}

void Sampler::reset() {
    hist_head_ = 0;
    hist_count_ = 0;
    rng_.reseed(params_.seed);
}

void Sampler::apply_penalty() {
    if (stamp_.empty() || hist_count_ == 0) return;
    // A token repeated in the window is penalised once, as llama.cpp does; the epoch
    // stamp makes that check O(1) without clearing an n_vocab array every call.
    if (++epoch_ == 0) {
        std::fill(stamp_.begin(), stamp_.end(), 0u);
        epoch_ = 1;
    }
    const float pen = params_.repeat_penalty;
    for (int32_t i = 0; i < hist_count_; ++i) {
        const int32_t t = history_[static_cast<size_t>(i)];  // order does not matter
        if (stamp_[static_cast<size_t>(t)] == epoch_) continue;
        stamp_[static_cast<size_t>(t)] = epoch_;
        float& l = cand_[static_cast<size_t>(t)].logit;  // cand_ is still indexed by id here
        l = l > 0.0f ? l / pen : l * pen;
    }
}

// Strict total order (logit descending, then id ascending): the sorted result is unique,
// so it does not depend on the standard library's sort algorithm.
static inline bool before(float la, int32_t ia, float lb, int32_t ib) {
    return la > lb || (la == lb && ia < ib);
}

int32_t Sampler::sample(const float* logits) {
    if (logits == nullptr) fail(EI_ERR_INVALID_ARGUMENT, "sampler: null logits");
    const int32_t n = n_vocab_;
    Cand* c = cand_.data();
    for (int32_t i = 0; i < n; ++i) {
        float v = logits[i];
        // NaN never wins; +inf is "certain" but must stay finite so that l - max is not NaN.
        if (std::isnan(v)) v = -std::numeric_limits<float>::infinity();
        else if (v == std::numeric_limits<float>::infinity()) v = FLT_MAX;
        c[i] = {v, i};
    }
    apply_penalty();

    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i)
        if (c[i].logit > c[best].logit) best = i;  // strict: ties keep the lowest id
    const float max_logit = c[best].logit;
    if (max_logit == -std::numeric_limits<float>::infinity())
        fail(EI_ERR_INVALID_ARGUMENT, "sampler: no finite logit to sample from");
    if (params_.greedy || params_.temperature == 0.0f) return best;

    auto cmp = [](const Cand& a, const Cand& b) { return before(a.logit, a.id, b.logit, b.id); };
    int32_t m = n;
    bool sorted = false;

    if (params_.top_k > 0 && params_.top_k < m) {
        std::partial_sort(c, c + params_.top_k, c + m, cmp);
        m = params_.top_k;
        sorted = true;
    }

    if (params_.top_p < 1.0f) {
        // Keep the smallest most-probable prefix whose mass (softmax at temperature 1
        // over the current candidates) reaches top_p, the token crossing it included.
        double z = 0.0;
        for (int32_t i = 0; i < m; ++i) z += std::exp(static_cast<double>(c[i].logit) - max_logit);
        // Without top-k the candidates are unsorted, and a full sort of a 150k vocabulary
        // costs ~12 ms. The nucleus is usually small, so sort lazily: a growing sorted
        // prefix (64, 512, ...), each step a partial_sort of the remainder, and a plain
        // sort once the prefix would be a large share of the candidates. Under
        // the strict total order the prefix already sorted never changes.
        int32_t ready = sorted ? m : 0;  // c[0, ready) is in final order
        double cum = 0.0;
        for (int32_t i = 0; i < m; ++i) {
            if (i == ready) {
                const int32_t want = std::max<int32_t>(64, ready * 8);
                if (want >= m / 8) {
                    std::sort(c + ready, c + m, cmp);  // heap-based partial_sort loses here
                    ready = m;
                } else {
                    std::partial_sort(c + ready, c + want, c + m, cmp);
                    ready = want;
                }
            }
            cum += std::exp(static_cast<double>(c[i].logit) - max_logit) / z;
            if (cum >= params_.top_p) {
                m = i + 1;
                break;
            }
        }
        sorted = true;  // either cut inside the sorted prefix, or everything got sorted
    }

    if (params_.min_p > 0.0f) {
        // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p); the max always stays.
        const double thr = static_cast<double>(max_logit) + std::log(static_cast<double>(params_.min_p));
        if (sorted) {
            int32_t keep = 1;
            while (keep < m && c[keep].logit >= thr) ++keep;
            m = keep;
        } else {
            int32_t j = 0;
            for (int32_t i = 0; i < m; ++i)
                if (c[i].logit >= thr) c[j++] = c[i];  // stable, so the order stays by id
            m = j;
        }
    }

    const double inv_t = 1.0 / static_cast<double>(params_.temperature);
    double* p = probs_.data();
    double sum = 0.0;
    for (int32_t i = 0; i < m; ++i) {
        p[i] = std::exp((static_cast<double>(c[i].logit) - max_logit) * inv_t);
        sum += p[i];
    }
    double r = rng_.uniform() * sum;
    int32_t last = -1;
    for (int32_t i = 0; i < m; ++i) {
        if (p[i] <= 0.0) continue;
        last = i;
        r -= p[i];
        if (r < 0.0) return c[i].id;
    }
    // Rounding can leave r a hair above zero: the draw belongs to the last live token.
    return last >= 0 ? c[last].id : best;
}

}  // namespace ei
