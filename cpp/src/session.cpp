#include "session.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "error.h"
#include "file_io.h"
#include "tokenizer.h"

namespace ei {

Session::Session(const Plan& plan, uint8_t* pool, uint64_t pool_size) : Session(plan, pool, pool_size, nullptr) {}

Session::Session(const Plan& plan, uint8_t* pool, uint64_t pool_size, std::unique_ptr<Backend> device)
    : plan_(plan) {
    if (!plan_.model) fail(EI_ERR_INVALID_ARGUMENT, "the plan has no model");
    if (!pool) fail(EI_ERR_POOL, "pool is null");
    if (pool_size < plan_.pool.size) {
        fail(EI_ERR_POOL, "pool of " + std::to_string(pool_size) + " bytes is too small: the plan needs " +
                              std::to_string(plan_.pool.size));
    }
    // The plan placed every op (the device's, or the CPU's by fallback); the scheduler makes
    // those backends (or takes the caller's device backend), which prepare their weights once
    // per (model, device).
    scheduler_ = device ? std::make_unique<Scheduler>(plan_, std::move(device)) : std::make_unique<Scheduler>(plan_);
    const uint64_t align = std::max(plan_.pool.alignment, scheduler_->pool_alignment());
    if (reinterpret_cast<uintptr_t>(pool) % align != 0) {
        fail(EI_ERR_POOL, "pool address is not aligned to " + std::to_string(align) + " bytes");
    }
    scheduler_->prepare(model().weight_cache());
    pool_ = scheduler_->wrap_host_pool(pool, plan_.pool.size);
    if (!pool_->host()) logits_.resize(static_cast<size_t>(n_vocab()));
    step_inputs_on_ = scheduler_->reads_step_inputs();
    if (step_inputs_on_) step_inputs_ = StepInputWriter(plan_.step_inputs);
    reset();
}

void Session::reset() {
    n_past_ = 0;
    ring_start_ = plan_.scenario.n_sink;
    folded_ = 0;
    route_ = Route::Full;
    last_logits_ = nullptr;
    finished_ = true;
    // The memory starts empty; the KV slots need no clearing (positions say what is valid).
    pool_->synchronize();
    for (const char* name : {"mem.M", "mem.z"}) {
        const Region& r = plan_.pool.region(name);
        pool_->zero(r.offset, r.size);
    }
}

Session::Placement Session::placement() const {
    Placement p;
    p.sink = std::min<int64_t>(n_past_, plan_.scenario.n_sink);
    p.memory = folded_;
    p.window = n_past_ - p.sink - p.memory;
    return p;
}

void Session::plan_route(int64_t upcoming) {
    if (plan_.scenario.memory && n_past_ + upcoming > plan_.scenario.full_capacity()) route_ = Route::Memory;
}

void Session::check_tokens(const int32_t* tokens, int32_t n) const {
    if (n < 0 || (n > 0 && !tokens)) fail(EI_ERR_INVALID_ARGUMENT, "bad token buffer");
    const int32_t n_vocab = model().hparams().n_vocab;
    for (int32_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            fail(EI_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                              " is out of range [0, " + std::to_string(n_vocab) + ")");
        }
    }
}

StepParams Session::step_params(int32_t n) const {
    StepParams s;
    s.n_tokens = n;
    s.pos0 = n_past_;
    s.ring_start = ring_start_;
    s.mem_tokens = folded_;
    s.observer = observer_;
    return s;
}

void Session::fold_if_needed(int32_t incoming) {
    const Scenario& sc = plan_.scenario;
    if (!sc.memory) return;
    const int64_t ring_after = n_past_ + incoming - ring_start_;
    if (ring_after <= int64_t{sc.n_window} + sc.n_batch) return;
    // The oldest L ring tokens leave the window: one fixed-shape fold. Incoming <= L and
    // the ring held at most W + L, so one fold always makes room.
    StepParams s = step_params(sc.n_batch);
    s.fold_start = ring_start_;
    if (step_inputs_on_) {
        pool_->synchronize();
        step_inputs_.write(s, true, *pool_);
    }
    scheduler_->compute(plan_.fold, s, *pool_);
    ring_start_ += sc.n_batch;
    folded_ += sc.n_batch;
    route_ = Route::Memory;
}

const float* Session::eval(const int32_t* tokens, int32_t n, float* all_logits, Progress progress, void* user) {
    check_tokens(tokens, n);
    if (n == 0) fail(EI_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    const Scenario& sc = plan_.scenario;
    if (!sc.memory && n_past_ + n > sc.full_capacity()) {
        fail(EI_ERR_STATE, "context full: " + std::to_string(n_past_) + " tokens held + " + std::to_string(n) +
                               " new exceed the scenario's " + std::to_string(sc.full_capacity()) +
                               " (memory is off)");
    }
    plan_route(n);
    const int32_t L = sc.n_batch, n_vocab = model().hparams().n_vocab;
    const Region& tok_region = plan_.pool.region("tokens");
    const uint64_t logits_at = plan_.pool.region("logits").offset, logits_bytes = sizeof(float) * uint64_t(n_vocab);
    for (int32_t done = 0; done < n;) {
        if (cancel_.load(std::memory_order_relaxed)) {
            // Leave the session consistent: its last logits are those of the last token run.
            pool_->synchronize();
            if (done > 0 && all_logits) pool_->write(logits_at, all_logits + int64_t{done - 1} * n_vocab, logits_bytes);
            if (done > 0) last_logits_ = read_logits();
            fail(EI_ERR_CANCELLED, "cancelled after " + std::to_string(done) + " of " + std::to_string(n) +
                                       " tokens (they stay in the session)");
        }
        const int32_t chunk = std::min(L, n - done);
        fold_if_needed(chunk);
        pool_->synchronize();
        pool_->write(tok_region.offset, tokens + done, sizeof(int32_t) * chunk);
        StepParams step = step_params(chunk);
        step.all_logits = all_logits != nullptr;
        step.logits_out = all_logits ? all_logits + int64_t{done} * n_vocab : nullptr;
        if (step_inputs_on_) step_inputs_.write(step, false, *pool_);
        scheduler_->compute(chunk == 1 ? plan_.decode : plan_.prefill, step, *pool_);
        n_past_ += chunk;
        done += chunk;
        if (progress) progress(user, done, n);
    }
    pool_->synchronize();
    if (all_logits) pool_->write(logits_at, all_logits + int64_t{n - 1} * n_vocab, logits_bytes);
    last_logits_ = read_logits();
    return last_logits_;
}

const float* Session::read_logits() {
    pool_->synchronize();
    const uint64_t at = plan_.pool.region("logits").offset;
    if (uint8_t* host = pool_->host()) return reinterpret_cast<const float*>(host + at);
    pool_->read(at, logits_.data(), sizeof(float) * logits_.size());
    return logits_.data();
}

void Session::begin(const int32_t* prompt, int32_t n, int32_t n_evaluated, const GenerateOptions& o) {
    if (o.max_tokens < 0) fail(EI_ERR_INVALID_ARGUMENT, "max_tokens must be >= 0");
    if (n_evaluated < 0 || n_evaluated > n) fail(EI_ERR_INVALID_ARGUMENT, "n_evaluated must be in [0, n]");
    Sampler sampler(o.sampling, model().hparams().n_vocab);  // validates before any work
    check_tokens(prompt, n);
    plan_route(int64_t{n - n_evaluated} + o.max_tokens);
    if (n > n_evaluated) {
        eval(prompt + n_evaluated, n - n_evaluated);
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
        if (!plan_.scenario.memory && n_past_ >= plan_.scenario.full_capacity()) {
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
    const Tokenizer& tk = model().tokenizer();
    if (tk.is_eog(tok)) {
        finish(StopReason::Eos);
        return piece_;
    }
    piece_.text = stops_->push(utf8_.push(tk.token_to_piece(tok)));
    if (stops_->stopped()) finish(StopReason::StopString);
    return piece_;
}

// ------------------------------------------------------------------------ session state

namespace {

constexpr char kStateMagic[8] = {'E', 'I', 'S', 'T', 'A', 'T', 'E', '\0'};
constexpr uint32_t kStateVersion = 1;
const char* const kStateRegions[] = {"kv.k", "kv.v", "mem.M", "mem.z"};
// 2^53: no conversation comes near it, and positions stay exact as doubles and far from
// overflowing int64 in eval's arithmetic.
constexpr int64_t kMaxStatePosition = int64_t{1} << 53;

struct StateHeader {
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t model_fp;
    uint64_t scenario_fp;
    int64_t n_past;
    int64_t ring_start;
    int64_t folded;
    int32_t route;
    int32_t reserved;
    uint64_t payload_size;
};

}  // namespace

uint64_t Session::fingerprint() const { return model().fingerprint(); }

namespace {
std::string hex(uint64_t v) {
    char buf[19];
    std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
    return buf;
}

uint64_t scenario_fingerprint(const Scenario& sc) {
    Fnv f;
    f.add(sc.n_batch);
    f.add(sc.n_sink);
    f.add(sc.n_window);
    f.add(sc.memory);
    f.add(sc.rule);
    f.add(sc.memory_rope);
    f.add(sc.kv_type);
    // Only when set, so states saved before the setting existed keep their fingerprint.
    if (sc.gates_off) f.add(sc.gates_off);
    if (sc.sinks_follow != Scenario::kSinksFollowByDefault) f.add(int32_t{0x51A4} + sc.sinks_follow);
    return f.h;
}
}  // namespace

uint64_t Session::state_size() const {
    uint64_t payload = 0;
    for (const char* r : kStateRegions) payload += plan_.pool.region(r).size;
    return sizeof(StateHeader) + payload + sizeof(uint64_t);
}

void Session::write_state(const std::function<void(const void*, uint64_t)>& out) const {
    StateHeader h{};
    std::memcpy(h.magic, kStateMagic, 8);
    h.version = kStateVersion;
    h.header_size = sizeof(StateHeader);
    h.model_fp = fingerprint();
    h.scenario_fp = scenario_fingerprint(plan_.scenario);
    h.n_past = n_past_;
    h.ring_start = ring_start_;
    h.folded = folded_;
    h.route = static_cast<int32_t>(route_);
    h.payload_size = state_size() - sizeof(StateHeader) - sizeof(uint64_t);
    Fnv sum;
    sum.add(&h, sizeof(h));
    out(&h, sizeof(h));
    pool_->synchronize();
    std::vector<uint8_t> chunk;  // the pool is read through its buffer, a chunk at a time
    for (const char* name : kStateRegions) {
        const Region& r = plan_.pool.region(name);
        for (uint64_t at = 0; at < r.size;) {
            const uint64_t n = std::min<uint64_t>(r.size - at, uint64_t{1} << 20);
            chunk.resize(n);
            pool_->read(r.offset + at, chunk.data(), n);
            sum.add(chunk.data(), n);
            out(chunk.data(), n);
            at += n;
        }
    }
    out(&sum.h, sizeof(sum.h));
}

std::vector<uint8_t> Session::state_bytes() const {
    std::vector<uint8_t> bytes;
    bytes.reserve(state_size());
    write_state([&](const void* p, uint64_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        bytes.insert(bytes.end(), b, b + n);
    });
    return bytes;
}

void Session::save_state(const std::string& path) const {
    // Write beside, then rename: a crash never leaves a half-written state under the name.
    const std::string tmp = path + ".tmp";
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(EI_ERR_IO, "cannot write session state to '" + tmp + "'");
    write_state([&](const void* p, uint64_t n) {
        out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    });
    out.close();
    if (!out || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail(EI_ERR_IO, "cannot write session state to '" + path + "'");
    }
}

// The header is untrusted: a checksum anyone can recompute proves nothing, so every field
// is checked against this scenario, and the positions against the invariants eval keeps
// (the kernels index the KV ring by them without further checks).
void Session::check_state_header(const uint8_t* head, uint64_t head_bytes, uint64_t total,
                                 const std::string& label) const {
    auto bad = [&](const std::string& why) { fail(EI_ERR_FORMAT, "session state '" + label + "': " + why); };
    auto str = [](auto v) { return std::to_string(v); };
    constexpr uint64_t kFrame = sizeof(StateHeader) + sizeof(uint64_t);
    if (head_bytes >= 8 && std::memcmp(head, kStateMagic, 8) != 0) bad("not a session state file (wrong magic)");
    if (total < kFrame || head_bytes < sizeof(StateHeader)) {
        bad("truncated: " + str(total) + " bytes, less than a header and checksum (" + str(kFrame) + ")");
    }
    StateHeader h;
    std::memcpy(&h, head, sizeof(h));
    if (h.version != kStateVersion) {
        bad("version " + str(h.version) + ", this runtime reads version " + str(kStateVersion));
    }
    if (h.header_size != sizeof(StateHeader)) {
        bad("header_size " + str(h.header_size) + ", version " + str(kStateVersion) + " headers have " +
            str(sizeof(StateHeader)) + " bytes");
    }
    if (h.model_fp != fingerprint()) {
        bad("it was saved from another model (model fingerprint " + hex(h.model_fp) + ", this model's " +
            hex(fingerprint()) + ")");
    }
    const uint64_t scenario_fp = scenario_fingerprint(plan_.scenario);
    if (h.scenario_fp != scenario_fp) {
        bad("it was saved with another scenario (segment, sink, window, memory, gate, sink position or KV settings differ: scenario "
            "fingerprint " + hex(h.scenario_fp) + ", this scenario's " + hex(scenario_fp) + ")");
    }
    const uint64_t payload = state_size() - kFrame;
    if (h.payload_size != payload) {
        bad("payload_size " + str(h.payload_size) + ", this scenario's state has " + str(payload));
    }
    if (total != state_size()) {
        bad("size " + str(total) + " bytes (" + (total < state_size() ? "truncated" : "too long") +
            "), this scenario's state has " + str(state_size()) + " (header " + str(sizeof(StateHeader)) +
            " + payload " + str(payload) + " + checksum 8)");
    }

    const Scenario& sc = plan_.scenario;
    const int64_t S = sc.n_sink, W = sc.n_window, L = sc.n_batch;
    if (h.route != static_cast<int32_t>(Route::Full) && h.route != static_cast<int32_t>(Route::Memory)) {
        bad("route " + str(h.route) + " is neither 0 (full) nor 1 (memory)");
    }
    if (h.n_past < 0) bad("n_past " + str(h.n_past) + " is negative");
    if (h.n_past > kMaxStatePosition) {
        bad("n_past " + str(h.n_past) + " exceeds the largest position a state may hold (" + str(kMaxStatePosition) +
            ")");
    }
    if (h.ring_start < S) bad("ring_start " + str(h.ring_start) + " is below the sink size S = " + str(S));
    // Folds move ring_start by whole segments of L, one token into memory for each.
    if (h.folded != h.ring_start - S) {
        bad("folded " + str(h.folded) + " differs from ring_start - S = " + str(h.ring_start - S));
    }
    if (h.folded % L != 0) bad("folded " + str(h.folded) + " is not a multiple of the segment length L = " + str(L));
    if (!sc.memory) {
        if (h.folded != 0) bad("folded " + str(h.folded) + " but memory is off in this scenario (must be 0)");
        if (h.route != static_cast<int32_t>(Route::Full)) {
            bad("route " + str(h.route) + " (memory) but memory is off in this scenario");
        }
        if (h.n_past > S + W) {
            bad("n_past " + str(h.n_past) + " exceeds S + W = " + str(S + W) + ", all a memory-off scenario holds");
        }
    }
    if (h.route == static_cast<int32_t>(Route::Full) && h.folded != 0) {
        bad("route 0 (full) but folded " + str(h.folded) + " (a fold switches to the memory route)");
    }
    // Positions before the ring exist only while the sink fills: nothing folded, ring_start S.
    if (h.n_past < h.ring_start && h.folded != 0) {
        bad("n_past " + str(h.n_past) + " is before ring_start " + str(h.ring_start) + " with " + str(h.folded) +
            " tokens folded");
    }
    // The ring has W + L slots: attention reads n_past - ring_start of them, and eval's next
    // fold (L tokens) makes room for a segment of up to L only if no more than W + L are held.
    const int64_t ring = h.n_past - h.ring_start;
    if (ring > W + L) {
        bad("n_past " + str(h.n_past) + " leaves " + str(ring) + " tokens in the window ring, which holds at most " +
            str(W + L) + " (W + L)");
    }
    // A fold happens only when the ring would overflow and leaves more than W tokens in it.
    if (h.folded > 0 && ring <= W) {
        bad("n_past " + str(h.n_past) + " leaves " + str(ring) + " tokens in the window ring after " + str(h.folded) +
            " were folded, where more than W = " + str(W) + " remain");
    }
    // eval switches to the memory route before work that does not fit in S + W.
    if (h.route == static_cast<int32_t>(Route::Full) && h.n_past > S + W) {
        bad("route 0 (full) but n_past " + str(h.n_past) + " exceeds S + W = " + str(S + W));
    }
}

void Session::load_state_bytes(const uint8_t* data, uint64_t size, const std::string& label) {
    if (!data && size > 0) fail(EI_ERR_INVALID_ARGUMENT, "session state '" + label + "': no data");
    check_state_header(data, std::min<uint64_t>(size, sizeof(StateHeader)), size, label);
    Fnv sum;
    sum.add(data, size - sizeof(uint64_t));
    uint64_t stored;
    std::memcpy(&stored, data + size - sizeof(uint64_t), sizeof(stored));
    if (stored != sum.h) {
        fail(EI_ERR_FORMAT, "session state '" + label + "': checksum mismatch (the file is corrupted): stored " +
                                hex(stored) + ", the bytes hash to " + hex(sum.h));
    }
    // Everything checked: only now does the session change.
    StateHeader h;
    std::memcpy(&h, data, sizeof(h));
    const uint8_t* p = data + sizeof(StateHeader);
    pool_->synchronize();
    for (const char* name : kStateRegions) {
        const Region& r = plan_.pool.region(name);
        pool_->write(r.offset, p, r.size);
        p += r.size;
    }
    n_past_ = h.n_past;
    ring_start_ = h.ring_start;
    folded_ = h.folded;
    route_ = static_cast<Route>(h.route);
    last_logits_ = nullptr;
    finished_ = true;
}

void Session::load_state(const std::string& path) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    if (ec) fail(EI_ERR_IO, "cannot open session state '" + path + "': " + ec.message());
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(EI_ERR_IO, "cannot open session state '" + path + "'");
    // Only the header is read before the checks, so a wrong file costs a few bytes however
    // large it is; the payload is read only once the size is this scenario's.
    uint8_t head[sizeof(StateHeader)];
    const uint64_t head_bytes = std::min<uint64_t>(size, sizeof(head));
    in.read(reinterpret_cast<char*>(head), static_cast<std::streamsize>(head_bytes));
    if (static_cast<uint64_t>(in.gcount()) != head_bytes) fail(EI_ERR_IO, "cannot read session state '" + path + "'");
    check_state_header(head, head_bytes, size, path);
    // One path for files and bytes: the whole state goes through load_state_bytes, which
    // checks the header again (the file may have changed meanwhile) and the checksum.
    std::vector<uint8_t> data(size);
    in.seekg(0);
    in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(size));
    const uint64_t got = static_cast<uint64_t>(in.gcount());
    if (got != size) {
        fail(EI_ERR_FORMAT, "session state '" + path + "': truncated while reading (" + std::to_string(got) + " of " +
                                std::to_string(size) + " bytes)");
    }
    load_state_bytes(data.data(), size, path);
}

}  // namespace ei
