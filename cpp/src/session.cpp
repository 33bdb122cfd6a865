#include "session.h"

#include <algorithm>
#include <cstring>

#include "error.h"
#include "tokenizer.h"

namespace ei {

Session::Session(const Model& model, const Plan& plan, uint8_t* pool, uint64_t pool_size)
    : model_(model), plan_(plan), pool_(pool) {
    if (!pool) fail(EI_ERR_POOL, "pool is null");
    if (pool_size < plan_.pool.size) {
        fail(EI_ERR_POOL, "pool of " + std::to_string(pool_size) + " bytes is too small: the plan needs " +
                              std::to_string(plan_.pool.size));
    }
    backend_ = make_backend(plan_.scenario);
    const uint64_t align = std::max(plan_.pool.alignment, backend_->pool_alignment());
    if (reinterpret_cast<uintptr_t>(pool) % align != 0) {
        fail(EI_ERR_POOL, "pool address is not aligned to " + std::to_string(align) + " bytes");
    }
    check_supported(*backend_, plan_.prefill);
    check_supported(*backend_, plan_.decode);
}

void Session::reset() {
    n_past_ = 0;
    last_logits_ = nullptr;
    finished_ = true;
}

void Session::check_tokens(const int32_t* tokens, int32_t n) const {
    if (n < 0 || (n > 0 && !tokens)) fail(EI_ERR_INVALID_ARGUMENT, "bad token buffer");
    const int32_t n_vocab = model_.hparams().n_vocab;
    for (int32_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            fail(EI_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                              " is out of range [0, " + std::to_string(n_vocab) + ")");
        }
    }
}

const float* Session::eval(const int32_t* tokens, int32_t n, float* all_logits) {
    check_tokens(tokens, n);
    if (n == 0) fail(EI_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    const int32_t n_ctx = plan_.scenario.n_ctx;
    if (int64_t{n_past_} + n > n_ctx) {
        fail(EI_ERR_STATE, "context full: " + std::to_string(n_past_) + " tokens held + " + std::to_string(n) +
                               " new exceed the scenario's " + std::to_string(n_ctx));
    }
    const int32_t L = plan_.prefill.max_tokens, n_vocab = model_.hparams().n_vocab;
    const Region& tok_region = plan_.pool.region("tokens");
    float* logits = reinterpret_cast<float*>(pool_ + plan_.pool.region("logits").offset);
    for (int32_t done = 0; done < n;) {
        const int32_t chunk = std::min(L, n - done);
        std::memcpy(pool_ + tok_region.offset, tokens + done, sizeof(int32_t) * chunk);
        StepParams step;
        step.n_tokens = chunk;
        step.pos0 = n_past_;
        step.all_logits = all_logits != nullptr;
        step.logits_out = all_logits ? all_logits + int64_t{done} * n_vocab : nullptr;
        backend_->compute(chunk == 1 ? plan_.decode : plan_.prefill, step, pool_);
        n_past_ += chunk;
        done += chunk;
    }
    if (all_logits) std::memcpy(logits, all_logits + int64_t{n - 1} * n_vocab, sizeof(float) * n_vocab);
    last_logits_ = logits;
    return logits;
}

void Session::begin(const int32_t* prompt, int32_t n, const GenerateOptions& o) {
    if (o.max_tokens < 0) fail(EI_ERR_INVALID_ARGUMENT, "max_tokens must be >= 0");
    Sampler sampler(o.sampling, model_.hparams().n_vocab);  // validates before any work
    if (n > 0) {
        eval(prompt, n);
    } else if (!last_logits_) {
        fail(EI_ERR_INVALID_ARGUMENT, "empty prompt and nothing evaluated before");
    }
    sampler_.emplace(std::move(sampler));
    for (int32_t i = std::max(0, n - o.sampling.repeat_last_n); i < n; ++i) sampler_->accept(prompt[i]);
    stops_.emplace(o.stop_strings);
    utf8_ = Utf8Assembler();
    max_tokens_ = o.max_tokens;
    generated_ = 0;
    finished_ = false;
    piece_ = Piece();
}

const Session::Piece& Session::next() {
    if (finished_) {
        piece_.text.clear();
        piece_.token = -1;
        if (piece_.done == StopReason::None) fail(EI_ERR_STATE, "no generation in progress (call begin first)");
        return piece_;
    }
    auto finish = [&](StopReason why) {
        finished_ = true;
        piece_.done = why;
        if (why != StopReason::StopString) piece_.text += stops_->push(utf8_.flush()) + stops_->flush();
    };
    piece_ = Piece();
    if (generated_ >= max_tokens_) {
        finish(StopReason::MaxTokens);
        return piece_;
    }
    if (generated_ > 0) {  // feed the previous token to get this step's logits
        if (n_past_ >= plan_.scenario.n_ctx) {
            finish(StopReason::ContextFull);
            return piece_;
        }
        eval(&piece_token_, 1);
    }
    const int32_t tok = sampler_->sample(last_logits_);
    sampler_->accept(tok);
    ++generated_;
    piece_token_ = tok;
    piece_.token = tok;
    const Tokenizer& tk = model_.tokenizer();
    if (tk.is_eog(tok)) {
        finish(StopReason::Eos);
        return piece_;
    }
    piece_.text = stops_->push(utf8_.push(tk.token_to_piece(tok)));
    if (stops_->stopped()) finish(StopReason::StopString);
    return piece_;
}

}  // namespace ei
