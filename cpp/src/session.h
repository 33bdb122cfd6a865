// A session: one conversation's state (sink, window ring, memory, positions) in a pool
// the caller owns, and the backend that runs the plan's graphs over it. Prompts of any
// length run the fixed prefill graph ceil(n/L) times; generation runs the decode graph
// once per token; whenever new tokens would overflow the window ring, the fold graph
// first moves its oldest L tokens into memory.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "scheduler.h"
#include "model.h"
#include "plan.h"
#include "sampler.h"
#include "text_stream.h"

namespace ei {

enum class StopReason : int32_t { None = 0, Eos = 1, StopString = 2, MaxTokens = 3, ContextFull = 4 };
// Full: every token so far attended raw (nothing folded, nor planned to be).
enum class Route : int32_t { Full = 0, Memory = 1 };

class Session {
public:
    // Runs the plan's model (which the session keeps alive) in the pool. Checks the pool
    // against the plan (size, alignment) and the backend against the graphs.
    Session(const Plan& plan, uint8_t* pool, uint64_t pool_size);
    // The same with the device's backend made by the caller (tests, tools that wrap a
    // backend); null: the plan's device makes it.
    Session(const Plan& plan, uint8_t* pool, uint64_t pool_size, std::unique_ptr<Backend> device);

    const Plan& plan() const { return plan_; }
    // The pool as the device holds it (tests and tools read regions through it).
    const PoolBuffer& pool_buffer() const { return *pool_; }
    int64_t n_past() const { return n_past_; }
    const Model& model() const { return *plan_.model; }  // kept alive by the plan copy
    int32_t n_vocab() const { return model().hparams().n_vocab; }
    const float* last_logits() const { return last_logits_; }
    Route route() const { return route_; }
    void reset();

    // Where the past tokens live: each is in exactly one place.
    struct Placement {
        int64_t sink = 0, window = 0, memory = 0;
    };
    Placement placement() const;

    // Declares how many tokens the work ahead will add, which picks the route: full
    // attention when everything fits in S + W, the memory route otherwise. With memory
    // off, work that does not fit is refused here, before anything runs.
    void plan_route(int64_t upcoming);

    // Runs tokens at the current position. Returns the last token's logits (valid until
    // the next call). With all_logits, writes n x n_vocab logits there as well. progress,
    // when set, is called after each segment with (tokens done, n).
    // Stops before the next segment with EI_ERR_CANCELLED while a cancel is requested; the
    // segments already run stay in the session (n_past says how far it got).
    using Progress = void (*)(void* user, int64_t done, int64_t total);
    const float* eval(const int32_t* tokens, int32_t n, float* all_logits = nullptr, Progress progress = nullptr,
                      void* user = nullptr);

    // Generation, one piece at a time: begin() feeds the prompt; next() returns the next
    // whole-UTF-8 text piece (possibly empty) and sets done when generation ends.
    struct GenerateOptions {
        SamplingParams sampling;
        int32_t max_tokens = 256;
        std::vector<std::string> stop_strings;
    };
    // The first n_evaluated prompt tokens were already fed by eval(); they seed the
    // sampler's repetition history only.
    void begin(const int32_t* prompt, int32_t n, int32_t n_evaluated, const GenerateOptions& options);
    struct Piece {
        std::string text;
        int32_t token = -1;
        StopReason done = StopReason::None;
    };
    const Piece& next();

    // Tools that measure activations watch every op of every later step (folds included);
    // null stops watching. The observer must outlive its use here.
    void set_observer(OpObserver* observer) { observer_ = observer; }

    // Requests (or withdraws) a cancel of eval; the only member that may be called while
    // another thread is inside a call on this session. The request stays until withdrawn.
    void set_cancel(bool cancel) { cancel_.store(cancel, std::memory_order_relaxed); }

    // Fixed-size state: header, sink + ring KV, memory, positions, checksum.
    void save_state(const std::string& path) const;
    std::vector<uint8_t> state_bytes() const;  // what save_state writes
    // A state is untrusted input: every header field is checked against this scenario and
    // the invariants eval keeps, then the checksum, before anything changes. A refusal
    // (EI_ERR_FORMAT naming the field) leaves the session exactly as it was. The file is
    // read only once its header and size are right; label names it in messages.
    void load_state(const std::string& path);
    void load_state_bytes(const uint8_t* data, uint64_t size, const std::string& label);
    uint64_t state_size() const;

private:
    void check_tokens(const int32_t* tokens, int32_t n) const;
    void fold_if_needed(int32_t incoming);
    StepParams step_params(int32_t n) const;
    uint64_t fingerprint() const;
    void write_state(const std::function<void(const void*, uint64_t)>& out) const;
    // Throws unless head (head_bytes of a state of total bytes) is a header this session can load.
    void check_state_header(const uint8_t* head, uint64_t head_bytes, uint64_t total, const std::string& label) const;

    // The last step's logits: in the pool when it is host-visible, else read into logits_.
    const float* read_logits();

    Plan plan_;
    std::unique_ptr<Scheduler> scheduler_;
    // Every pool access of the session goes through the device backend's buffer over the
    // caller's memory; declared after scheduler_ (which owns the backends), so it goes first.
    std::unique_ptr<PoolBuffer> pool_;
    std::vector<float> logits_;  // the logits, read out of a pool that is not host-visible
    bool step_inputs_on_ = false;  // the device backend reads them
    StepInputWriter step_inputs_;
    int64_t n_past_ = 0;
    int64_t ring_start_ = 0;  // oldest position in the window ring (= S until a fold)
    int64_t folded_ = 0;      // tokens in memory
    Route route_ = Route::Full;
    const float* last_logits_ = nullptr;
    std::atomic<bool> cancel_{false};
    OpObserver* observer_ = nullptr;

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
