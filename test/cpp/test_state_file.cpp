// Session state files are untrusted input: crafted files (one header field changed, the
// checksum recomputed as anyone can) must be refused with EI_ERR_FORMAT naming the field,
// and a refused load must leave the session exactly as it was. Real states, saved at every
// position, must load and continue bit-identically.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "session_harness.h"
#include "error.h"
#include "model.h"
#include "plan.h"
#include "session.h"

using namespace ei;
namespace fs = std::filesystem;

namespace {

// The version 1 header, as the file lays it out (written here independently of session.cpp).
struct FileHeader {
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
static_assert(sizeof(FileHeader) == 72, "version 1 header is 72 bytes");

// FNV-1a 64 over everything before the last 8 bytes, stored there little-endian.
void fix_checksum(std::vector<uint8_t>& b) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i + 8 < b.size(); ++i) h = (h ^ b[i]) * 1099511628211ull;
    std::memcpy(b.data() + b.size() - 8, &h, 8);
}

FileHeader header_of(const std::vector<uint8_t>& b) {
    FileHeader h;
    std::memcpy(&h, b.data(), sizeof(h));
    return h;
}

// A copy of a real state with its header edited and the checksum made right again.
std::vector<uint8_t> craft(std::vector<uint8_t> b, const std::function<void(FileHeader&)>& edit) {
    FileHeader h = header_of(b);
    edit(h);
    std::memcpy(b.data(), &h, sizeof(h));
    fix_checksum(b);
    return b;
}

using check::Harness;

std::string tiny() { return check::testdata("models/tiny-llama-q8_0.gguf"); }

constexpr int32_t S = 4, W = 32, L = 16;

Scenario small(bool memory) {
    Scenario sc;
    sc.n_sink = S;
    sc.n_window = W;
    sc.n_batch = L;
    sc.n_threads = 2;
    sc.memory = memory;
    return sc;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = 3 + int32_t(rng() % 1000);
    return t;
}

struct TempDir {
    fs::path dir;
    TempDir() : dir(fs::temp_directory_path() / ("ei_test_state_file_" + std::to_string(::getpid()))) {
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string write(const std::string& name, const std::vector<uint8_t>& b) const {
        const std::string p = (dir / name).string();
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
        return p;
    }
};

bool same_logits(const float* a, const float* b, int32_t n) { return std::memcmp(a, b, sizeof(float) * n) == 0; }

// Two sessions fed the same tokens: `a` is offered crafted states, `b` never is; after
// every refusal both take one more token and must agree bit for bit.
struct Twins {
    Harness a, b;
    uint32_t next_token = 7;
    Twins(const Scenario& sc, size_t n_tokens) : a(tiny(), sc), b(tiny(), sc) {
        auto t = tokens(n_tokens, 11);
        a.session->eval(t.data(), int32_t(t.size()));
        b.session->eval(t.data(), int32_t(t.size()));
    }

    // Offers the bytes as a file and from memory; both must be refused naming `needle`.
    void expect_refused(const TempDir& tmp, const std::vector<uint8_t>& bytes, const std::string& needle,
                        ei_status want = EI_ERR_FORMAT) {
        Session& s = *a.session;
        const std::vector<uint8_t> before = s.state_bytes();
        const int64_t n_past = s.n_past();
        const Route route = s.route();
        const float* logits = s.last_logits();
        const std::vector<float> logits_copy(logits, logits + s.n_vocab());
        const std::string path = tmp.write("crafted.state", bytes);
        for (int via_file = 0; via_file < 2; ++via_file) {
            bool thrown = false;
            try {
                if (via_file) s.load_state(path);
                else s.load_state_bytes(bytes.data(), bytes.size(), "crafted");
            } catch (const Error& e) {
                thrown = true;
                if (e.status() != want || std::string(e.what()).find(needle) == std::string::npos) {
                    std::fprintf(stderr, "refusal naming '%s': got status %d '%s'\n", needle.c_str(), int(e.status()),
                                 e.what());
                    ++check::failures;
                }
            }
            if (!thrown) {
                std::fprintf(stderr, "crafted state (%s) was accepted, wanted a refusal naming '%s'\n",
                             via_file ? "file" : "bytes", needle.c_str());
                ++check::failures;
                return;
            }
        }
        CHECK_EQ(s.n_past(), n_past);
        CHECK(s.route() == route);
        CHECK(s.last_logits() == logits);
        CHECK(same_logits(s.last_logits(), logits_copy.data(), s.n_vocab()));
        CHECK(s.state_bytes() == before);
        // One more token on both: the refused load changed nothing the next eval sees.
        const int32_t tok = int32_t(3 + next_token++ % 1000);
        const float* la = s.eval(&tok, 1);
        const float* lb = b.session->eval(&tok, 1);
        CHECK(same_logits(la, lb, s.n_vocab()));
    }
};

}  // namespace

TEST(crafted_header_fields_are_refused_and_change_nothing) {
    TempDir tmp;
    Harness src(tiny(), small(true));
    auto t = tokens(200, 1);
    src.session->eval(t.data(), 10);
    const std::vector<uint8_t> early = src.session->state_bytes();
    src.session->eval(t.data() + 10, 90);
    const std::vector<uint8_t> folded = src.session->state_bytes();
    const FileHeader e = header_of(early), f = header_of(folded);
    CHECK_EQ(e.folded, int64_t{0});
    CHECK_EQ(e.route, 0);
    CHECK(f.folded > 0 && f.route == 1);

    Twins tw(small(true), 60);
    // The crafted files are untouched copies of real states but for the named edit.
    auto refuse = [&](const std::vector<uint8_t>& base, const std::function<void(FileHeader&)>& edit,
                      const std::string& needle) { tw.expect_refused(tmp, craft(base, edit), needle); };

    refuse(folded, [](FileHeader& h) { h.magic[0] = 'X'; }, "magic");
    refuse(folded, [](FileHeader& h) { h.version = 2; }, "version 2");
    refuse(folded, [](FileHeader& h) { h.header_size = 80; }, "header_size 80");
    refuse(folded, [](FileHeader& h) { h.model_fp ^= 1; }, "another model");
    refuse(folded, [](FileHeader& h) { h.scenario_fp ^= 1; }, "another scenario");
    refuse(folded, [](FileHeader& h) { h.payload_size += 1; }, "payload_size " + std::to_string(f.payload_size + 1));
    refuse(folded, [](FileHeader& h) { h.route = 2; }, "route 2");
    refuse(folded, [](FileHeader& h) { h.route = -1; }, "route -1");
    refuse(folded, [](FileHeader& h) { h.n_past = -1; }, "n_past -1 is negative");
    // Consistent in every other way, but a position eval's arithmetic must never meet.
    refuse(folded, [](FileHeader& h) {
        h.folded = int64_t{1} << 60;
        h.ring_start = S + h.folded;
        h.n_past = h.ring_start + W + 1;
    }, "exceeds the largest position");
    refuse(folded, [](FileHeader& h) {
        h.ring_start = S - 1;
        h.folded = -1;
    }, "ring_start 3 is below the sink size S = 4");
    refuse(folded, [](FileHeader& h) { h.folded += L; }, "folded " + std::to_string(f.folded + L) + " differs");
    refuse(folded, [](FileHeader& h) {
        h.folded += 8;
        h.ring_start += 8;
        h.n_past += 8;
    }, "not a multiple of the segment length L = 16");
    refuse(folded, [](FileHeader& h) { h.route = 0; }, "route 0 (full) but folded");
    refuse(folded, [](FileHeader& h) { h.n_past = h.ring_start - 1; }, "is before ring_start");
    refuse(folded, [](FileHeader& h) { h.n_past = h.ring_start + W + L + 1; },
           "leaves 49 tokens in the window ring, which holds at most 48 (W + L)");
    refuse(folded, [](FileHeader& h) { h.n_past = h.ring_start + W; }, "more than W = 32 remain");
    refuse(early, [](FileHeader& h) { h.n_past = S + W + 1; }, "route 0 (full) but n_past 37 exceeds S + W = 36");
    refuse(early, [](FileHeader& h) {
        h.route = 1;
        h.n_past = S + W + L + 1;
    }, "leaves 49 tokens in the window ring");
    // A fresh state claiming folded tokens that were never folded.
    refuse(early, [](FileHeader& h) {
        h.route = 1;
        h.folded = L;
        h.ring_start = S + L;
    }, "is before ring_start");
    // The unchecked checksum is not what protects the session.
    std::vector<uint8_t> corrupt = folded;
    corrupt[corrupt.size() / 2] ^= 0x40;
    tw.expect_refused(tmp, corrupt, "checksum mismatch");
}

TEST(the_issue_11_crash_is_a_refused_load) {
    // Save, set n_past huge, recompute the checksum: this used to load and crash the next eval.
    TempDir tmp;
    Twins tw(small(true), 10);
    const std::vector<uint8_t> state = tw.a.session->state_bytes();
    tw.expect_refused(tmp, craft(state, [](FileHeader& h) { h.n_past = 99999999; }),
                      "n_past 99999999 leaves 99999995 tokens in the window ring, which holds at most 48 (W + L)");
    tw.expect_refused(tmp, craft(state, [](FileHeader& h) { h.n_past = INT64_MAX; }), "n_past");
}

TEST(wrong_sizes_are_refused_before_the_payload_is_read) {
    TempDir tmp;
    Twins tw(small(true), 30);
    const std::vector<uint8_t> state = tw.a.session->state_bytes();
    CHECK_EQ(uint64_t(state.size()), tw.a.session->state_size());
    auto prefix = [&](size_t n) { return std::vector<uint8_t>(state.begin(), state.begin() + n); };
    tw.expect_refused(tmp, {}, "truncated: 0 bytes");
    tw.expect_refused(tmp, prefix(7), "truncated: 7 bytes");
    tw.expect_refused(tmp, prefix(8), "truncated: 8 bytes");
    tw.expect_refused(tmp, prefix(79), "truncated: 79 bytes");
    tw.expect_refused(tmp, prefix(100), "size 100 bytes (truncated)");
    tw.expect_refused(tmp, prefix(state.size() - 1), "(truncated)");
    std::vector<uint8_t> longer = state;
    longer.push_back(0);
    tw.expect_refused(tmp, longer, "size " + std::to_string(state.size() + 1) + " bytes (too long)");
    longer.insert(longer.end() - 9, 0);  // one byte too long even with a right checksum
    fix_checksum(longer);
    tw.expect_refused(tmp, longer, "(too long)");

    // A huge file with a good header: refused from its size alone. (Reading it first, as
    // loading once did, would take a gigabyte of memory.)
    const std::string huge = tmp.write("huge.state", state);
    fs::resize_file(huge, uint64_t{1} << 30);
    Session& s = *tw.a.session;
    const int64_t n_past = s.n_past();
    CHECK_THROWS(s.load_state(huge), EI_ERR_FORMAT, "size 1073741824 bytes (too long)");
    CHECK_EQ(s.n_past(), n_past);

    // Not a state at all, a folder, no file.
    CHECK_THROWS(s.load_state(tiny()), EI_ERR_FORMAT, "wrong magic");
    CHECK_THROWS(s.load_state(tmp.dir.string()), EI_ERR_IO, "cannot open session state");
    CHECK_THROWS(s.load_state((tmp.dir / "none.state").string()), EI_ERR_IO, "cannot open session state");
    CHECK_EQ(s.n_past(), n_past);
}

TEST(memory_off_refuses_folded_states) {
    TempDir tmp;
    Harness on(tiny(), small(true));
    auto t = tokens(100, 3);
    on.session->eval(t.data(), int32_t(t.size()));
    const std::vector<uint8_t> folded = on.session->state_bytes();
    CHECK(header_of(folded).folded > 0);

    Twins tw(small(false), 20);
    const std::vector<uint8_t> off = tw.a.session->state_bytes();
    // A real folded state from the memory-on scenario: another scenario.
    tw.expect_refused(tmp, folded, "another scenario");
    // The memory-off scenario's own header claiming folds, the memory route or too many tokens.
    tw.expect_refused(tmp, craft(off, [](FileHeader& h) {
        h.route = 1;
        h.folded = L;
        h.ring_start = S + L;
        h.n_past = h.ring_start + W + 1;
    }), "folded 16 but memory is off");
    tw.expect_refused(tmp, craft(off, [](FileHeader& h) { h.route = 1; }), "route 1 (memory) but memory is off");
    tw.expect_refused(tmp, craft(off, [](FileHeader& h) { h.n_past = S + W + 1; }),
                      "n_past 37 exceeds S + W = 36, all a memory-off scenario holds");
    tw.expect_refused(tmp, craft(off, [](FileHeader& h) { h.n_past = 99999999; }), "n_past 99999999 exceeds");
}

// Every state a real session passes through loads back byte for byte (so no rule refuses
// a real state), including the ring at exactly W + L and just after each fold.
TEST(every_real_state_loads_back) {
    for (bool memory : {true, false}) {
        for (int32_t step : {1, 7, 16}) {
            Harness src(tiny(), small(memory)), dst(tiny(), small(memory));
            const int64_t limit = memory ? 150 : S + W;
            auto t = tokens(size_t(limit), 5);
            bool saw_full_ring = false, saw_fold = false;
            for (int64_t pos = 0;;) {
                const std::vector<uint8_t> state = src.session->state_bytes();
                dst.session->reset();
                dst.session->load_state_bytes(state.data(), state.size(), "real");
                CHECK_EQ(dst.session->n_past(), pos);
                CHECK(dst.session->state_bytes() == state);
                const FileHeader h = header_of(state);
                saw_full_ring |= h.n_past - h.ring_start == W + L;
                saw_fold |= h.folded > 0;
                if (pos == limit) break;
                const int32_t n = int32_t(std::min<int64_t>(step, limit - pos));
                src.session->eval(t.data() + pos, n);
                pos += n;
            }
            if (memory) CHECK(saw_fold);
            if (memory && step == 1) CHECK(saw_full_ring);
        }
    }
    // The memory route planned up front, before anything is folded (or even evaluated).
    Harness src(tiny(), small(true)), dst(tiny(), small(true));
    src.session->plan_route(1000);
    CHECK(src.session->route() == Route::Memory);
    std::vector<uint8_t> state = src.session->state_bytes();
    dst.session->load_state_bytes(state.data(), state.size(), "planned");
    CHECK(dst.session->route() == Route::Memory);
    auto t = tokens(3, 6);
    src.session->eval(t.data(), 3);
    state = src.session->state_bytes();
    dst.session->load_state_bytes(state.data(), state.size(), "planned");
    CHECK(dst.session->state_bytes() == state);
}

TEST(a_restored_state_continues_bit_identically) {
    TempDir tmp;
    for (int64_t n : {0, 2, 50, 52, 100, 137}) {
        Harness src(tiny(), small(true)), dst(tiny(), small(true));
        auto t = tokens(size_t(n) + 40, 9);
        // 52 = S + W + L one token at a time: the ring full, nothing folded yet.
        if (n == 52) {
            for (int64_t i = 0; i < n; ++i) src.session->eval(t.data() + i, 1);
        } else if (n > 0) {
            src.session->eval(t.data(), int32_t(n));
        }
        const std::string path = (tmp.dir / "s.state").string();
        src.session->save_state(path);
        dst.session->load_state(path);
        CHECK_EQ(dst.session->n_past(), n);
        CHECK(dst.session->route() == src.session->route());
        const int32_t nv = src.session->n_vocab();
        std::vector<float> a(size_t(40) * nv), b(size_t(40) * nv);
        src.session->eval(t.data() + n, 23, a.data());
        dst.session->eval(t.data() + n, 23, b.data());
        for (int64_t i = 23; i < 40; ++i) {  // decode steps after the prefill
            const float* la = src.session->eval(t.data() + n + i, 1);
            std::memcpy(a.data() + i * nv, la, sizeof(float) * nv);
            const float* lb = dst.session->eval(t.data() + n + i, 1);
            std::memcpy(b.data() + i * nv, lb, sizeof(float) * nv);
        }
        CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0);
        CHECK(src.session->state_bytes() == dst.session->state_bytes());
    }
}
