// libFuzzer target for session state loading. A state file is untrusted input: any bytes
// must either be refused with ei::Error, leaving the session exactly as it was, or be a
// state that eval runs from safely. So every accepted input is evaluated (a decode step,
// then a prefill that folds when the ring is nearly full): ASan and UBSan (the fuzz build
// instruments the whole runtime) turn an accepted-but-inconsistent state into a crash in
// the kernels. Each input is offered to two sessions of the tiny model, memory on
// (S 4, W 32, L 16: the ring and folds matter within a few tokens) and memory off.
//
// Seeds: `fuzz_state -write_seeds=DIR` runs real sessions to several positions and writes
// their states (in each input mode below) to DIR, then exits.
// The model: $EI_FUZZ_MODEL, else the tiny q8_0 model of the shared test data. That model
// has no memory gates, so attention never reads the loaded M and z; CI passes a gated copy
// (`ei gate-init`) so that memory retrieval runs too.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "model.h"
#include "plan.h"
#include "session.h"

namespace {

using ei::Session;

constexpr int32_t kS = 4, kW = 32, kL = 16;
constexpr size_t kHeaderBytes = 72;  // version 1
constexpr size_t kNPastOffset = 32;  // n_past, ring_start, folded (int64), route (int32) follow

// Byte 0 of an input picks how the rest is read. libFuzzer's mutations almost never
// produce a matching 64-bit checksum: raw inputs do reach the header checks (they come
// first), but a mutated state is never accepted, so a header that slipped through them
// would never reach the kernels. Anyone can recompute the checksum, so the fuzzer does too.
enum Mode : uint8_t {
    kRaw = 0,        // the rest is a state file, as is
    kFixSum = 1,     // the rest is a state file whose checksum is recomputed before loading
    kHeaderOnly = 2, // byte 1 picks a real state; the rest overwrites its header (checksum fixed):
                     // small inputs, so every mutation lands in a header field
    kPositions = 3,  // byte 1 picks a real state; then int16 deltas to its n_past, ring_start and
                     // folded, and a route byte (checksum fixed): the neighbourhood of real
                     // positions, where the ring bounds are, in a few bytes
    kModes
};

uint64_t fnv(const uint8_t* p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

void fix_checksum(std::vector<uint8_t>& b) {
    if (b.size() < 8) return;
    const uint64_t h = fnv(b.data(), b.size() - 8);
    std::memcpy(b.data() + b.size() - 8, &h, 8);
}

struct Slot {
    ei::Plan plan;
    uint8_t* pool = nullptr;
    std::unique_ptr<Session> session;
    std::vector<uint8_t> pristine;  // the pool as every input finds it

    Slot(std::shared_ptr<const ei::Model> model, bool memory) {
        ei::Scenario sc;
        sc.n_sink = kS;
        sc.n_window = kW;
        sc.n_batch = kL;
        sc.n_threads = 1;
        sc.memory = memory;
        plan = ei::make_plan(std::move(model), sc);
        pool = static_cast<uint8_t*>(std::aligned_alloc(64, plan.pool.size));
        std::memset(pool, 0, plan.pool.size);
        session = std::make_unique<Session>(plan, pool, plan.pool.size);
        pristine.assign(pool, pool + plan.pool.size);
    }
    ~Slot() {
        session.reset();
        std::free(pool);
    }
    void restore() {
        std::memcpy(pool, pristine.data(), pristine.size());
        session->reset();
    }
};

struct Fixture {
    std::shared_ptr<const ei::Model> model;
    std::unique_ptr<Slot> on, off;
    struct Ref {
        std::string name;
        std::vector<uint8_t> bytes;
    };
    std::vector<Ref> refs;  // real states: the seeds, and the payloads of header-only inputs

    Fixture() {
        const char* env = std::getenv("EI_FUZZ_MODEL");
        model = ei::Model::load(env && *env ? env : EI_FUZZ_MODEL);
        on = std::make_unique<Slot>(model, true);
        off = std::make_unique<Slot>(model, false);
        make_refs();
    }

    // Real sessions stopped at the positions that matter: empty, mid-sink, full route at
    // S + W, the ring full (W + L) before the first fold, just after it, after several folds,
    // the memory route planned with nothing folded; memory off up to its S + W.
    void make_refs() {
        std::vector<int32_t> t(256);
        for (size_t i = 0; i < t.size(); ++i) t[i] = int32_t(3 + (i * 37) % 1000);
        auto run = [&](Slot& s, const char* tag, std::initializer_list<int64_t> stops, int32_t step) {
            s.restore();
            int64_t pos = 0;
            for (int64_t stop : stops) {
                while (pos < stop) {
                    const int32_t n = int32_t(std::min<int64_t>(step, stop - pos));
                    s.session->eval(t.data() + pos, n);
                    pos += n;
                }
                refs.push_back({std::string(tag) + "-" + std::to_string(pos), s.session->state_bytes()});
            }
        };
        run(*on, "on-tokenwise", {0, 2, kS + kW, kS + kW + kL, kS + kW + kL + 1}, 1);
        run(*on, "on-segments", {100, 200}, kL);
        on->restore();
        on->session->plan_route(1000);
        refs.push_back({"on-planned-0", on->session->state_bytes()});
        run(*off, "off", {0, 2, 20, kS + kW}, 7);
        on->restore();
        off->restore();
    }

    void write_seeds(const std::string& dir) const {
        int n = 0;
        for (size_t i = 0; i < refs.size(); ++i) {
            const auto& r = refs[i].bytes;
            std::vector<std::vector<uint8_t>> inputs(kModes);
            inputs[kRaw].push_back(kRaw);
            inputs[kRaw].insert(inputs[kRaw].end(), r.begin(), r.end());
            inputs[kFixSum] = inputs[kRaw];
            inputs[kFixSum][0] = kFixSum;
            inputs[kHeaderOnly] = {kHeaderOnly, uint8_t(i)};
            inputs[kHeaderOnly].insert(inputs[kHeaderOnly].end(), r.begin(), r.begin() + kHeaderBytes);
            inputs[kPositions] = {kPositions, uint8_t(i), 0, 0, 0, 0, 0, 0, 0};
            for (int m = 0; m < kModes; ++m) {
                const std::string path = dir + "/" + refs[i].name + "-mode" + std::to_string(m);
                std::ofstream out(path, std::ios::binary | std::ios::trunc);
                out.write(reinterpret_cast<const char*>(inputs[m].data()), std::streamsize(inputs[m].size()));
                if (!out) {
                    std::fprintf(stderr, "fuzz_state: cannot write %s\n", path.c_str());
                    std::exit(1);
                }
                ++n;
            }
        }
        std::printf("fuzz_state: wrote %d seeds to %s\n", n, dir.c_str());
    }
};

Fixture& fixture() {
    static Fixture* f = [] {
        try {
            return new Fixture();
        } catch (const ei::Error& e) {
            std::fprintf(stderr, "fuzz_state: %s\n", e.what());
            std::exit(1);
        }
    }();
    return *f;
}

[[noreturn]] void finding(const char* what) {
    std::fprintf(stderr, "fuzz_state: %s\n", what);
    std::abort();
}

// EI_FUZZ_VERBOSE=1: print each load's outcome (to see what a corpus reaches).
const bool verbose = std::getenv("EI_FUZZ_VERBOSE") != nullptr;

// Offers one state to one session: refused -> nothing changed; accepted -> it runs.
void offer(Slot& s, const std::vector<uint8_t>& state) {
    s.restore();
    Session& session = *s.session;
    try {
        session.load_state_bytes(state.data(), state.size(), "fuzz");
    } catch (const ei::Error& e) {
        if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
        if (e.status() != EI_ERR_FORMAT) finding("a refused state is not EI_ERR_FORMAT");
        if (session.n_past() != 0 || session.route() != ei::Route::Full || session.last_logits() != nullptr ||
            std::memcmp(s.pool, s.pristine.data(), s.pristine.size()) != 0) {
            finding("a refused load changed the session");
        }
        return;
    }
    if (verbose) std::fprintf(stderr, "accepted: n_past %lld\n", static_cast<long long>(session.n_past()));
    const ei::Scenario& sc = session.plan().scenario;
    auto check_placement = [&] {
        const Session::Placement p = session.placement();
        if (p.sink < 0 || p.window < 0 || p.memory < 0 || p.sink + p.window + p.memory != session.n_past() ||
            p.window > int64_t{sc.n_window} + sc.n_batch) {
            finding("an accepted state breaks the placement invariants");
        }
    };
    check_placement();
    static const std::vector<int32_t> toks = [] {
        std::vector<int32_t> t(kL);
        for (int32_t i = 0; i < kL; ++i) t[size_t(i)] = 5 + i * 61;
        return t;
    }();
    auto run = [&](int64_t n) {
        try {
            session.eval(toks.data(), int32_t(n));
        } catch (const ei::Error& e) {
            std::fprintf(stderr, "eval: %s\n", e.what());
            finding("eval refused a state that load accepted");
        }
        check_placement();
    };
    // As few tokens as reach every kernel (evaluation dominates the time per input): a
    // decode step attends the whole sink and ring; then, with memory on, the segment that
    // makes eval fold when the ring is nearly full, else a short prefill.
    if (!sc.memory && session.n_past() >= sc.full_capacity()) return;
    const int64_t folded = session.placement().memory;
    run(1);
    const int64_t to_fold = int64_t{kW} + kL + 1 - session.placement().window;
    int64_t n = sc.memory && session.placement().memory == folded && to_fold <= kL ? to_fold : 3;
    if (!sc.memory) n = std::min(n, sc.full_capacity() - session.n_past());
    if (n > 0) run(n);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    // Handled before libFuzzer reads its own flags (it would warn about this one).
    const std::string flag = "-write_seeds=";
    for (int i = 1; i < *argc; ++i) {
        const std::string a = (*argv)[i];
        if (a.compare(0, flag.size(), flag) == 0) {
            fixture().write_seeds(a.substr(flag.size()));
            std::exit(0);
        }
    }
    fixture();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    Fixture& f = fixture();
    const uint8_t mode = data[0] % kModes;
    std::vector<uint8_t> state;
    if (mode == kHeaderOnly || mode == kPositions) {
        if (size < 2) return 0;
        state = f.refs[data[1] % f.refs.size()].bytes;
        if (mode == kHeaderOnly) {
            std::memcpy(state.data(), data + 2, std::min(size - 2, kHeaderBytes));
        } else {
            uint8_t d[7] = {};  // missing bytes change nothing
            std::memcpy(d, data + 2, std::min<size_t>(size - 2, sizeof(d)));
            auto add16 = [&](size_t field_offset, int i) {
                int16_t delta;
                std::memcpy(&delta, d + 2 * i, 2);
                int64_t v;
                std::memcpy(&v, state.data() + field_offset, 8);
                v += delta;
                std::memcpy(state.data() + field_offset, &v, 8);
            };
            add16(kNPastOffset, 0);
            add16(kNPastOffset + 8, 1);   // ring_start
            add16(kNPastOffset + 16, 2);  // folded
            if (d[6] != 0) {  // 0 keeps the route; else route = d - 1 (signed)
                const int32_t route = int32_t(int8_t(d[6])) - 1;
                std::memcpy(state.data() + kNPastOffset + 24, &route, 4);
            }
        }
        fix_checksum(state);
    } else {
        state.assign(data + 1, data + size);
        if (mode == kFixSum) fix_checksum(state);
    }
    offer(*f.on, state);
    offer(*f.off, state);
    return 0;
}
