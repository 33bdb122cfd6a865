// The C ABI's thread-safety contract (edgeinfinite.h, "Threads"), exercised through the
// ABI itself: models held by reference count, plans tied to their model, one shared model
// used by many threads, cancels racing evaluations. CI runs it under AddressSanitizer, where
// a use-after-free or a race on freed memory is reported instead of passing silently.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu/thread_pool.h"
#include "edgeinfinite/edgeinfinite.h"

namespace {

std::string tiny() { return check::testdata("models/tiny-llama-q8_0.gguf"); }

ei_scenario small_scenario() {
    ei_scenario sc{};
    sc.struct_size = sizeof sc;
    sc.n_batch = 16;
    sc.n_sink = 4;
    sc.n_window = 64;
    sc.memory = 1;
    sc.memory_rule = -1;
    sc.memory_rope = -1;
    sc.n_threads = 1;
    sc.kv_type = 0;
    sc.device = nullptr;
    return sc;
}

// A session with its own pool, freed in the right order (session before pool).
struct OwnedSession {
    ei_session* session = nullptr;
    void* pool = nullptr;
    OwnedSession(ei_model* model, const ei_plan* plan) {
        const uint64_t align = ei_plan_pool_alignment(plan);
        const uint64_t size = (ei_plan_pool_size(plan) + align - 1) / align * align;
        pool = std::aligned_alloc(align, size);
        if (ei_session_create(model, plan, pool, size, &session) != EI_OK) {
            std::fprintf(stderr, "session: %s\n", ei_last_error());
            session = nullptr;
        }
    }
    ~OwnedSession() {
        ei_session_free(session);
        std::free(pool);
    }
};

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = 3 + int32_t(rng() % 1000);
    return t;
}

std::vector<float> last_logits(ei_session* s, int32_t n_vocab) {
    std::vector<float> l(static_cast<size_t>(n_vocab));
    if (ei_session_last_logits(s, l.data(), n_vocab) != EI_OK) l.clear();
    return l;
}

// Uneven chunks: prefill segments, partial segments and decode steps interleave. On the
// memory route the chunking decides when folds happen, so every run uses this one schedule.
bool feed_unevenly(ei_session* s, const std::vector<int32_t>& doc) {
    size_t done = 0;
    for (size_t chunk = 5; done < doc.size(); chunk = chunk * 3 % 97 + 1) {
        const size_t n = std::min(chunk, doc.size() - done);
        if (ei_session_eval(s, doc.data() + done, static_cast<int32_t>(n), nullptr) != EI_OK) return false;
        done += n;
    }
    return true;
}

int32_t vocab_of(const ei_model* m) {
    int64_t v = 0;
    ei_model_param(m, "n_vocab", &v);
    return static_cast<int32_t>(v);
}

}  // namespace

TEST(a_session_keeps_its_model_alive_after_the_model_handle_is_freed) {
    ei_model* model = nullptr;
    CHECK(ei_model_load(tiny().c_str(), &model) == EI_OK);
    const int32_t n_vocab = vocab_of(model);
    ei_scenario sc = small_scenario();
    ei_plan* plan = nullptr;
    CHECK(ei_plan_create(model, &sc, &plan) == EI_OK);
    auto s = std::make_unique<OwnedSession>(model, plan);
    CHECK(s->session != nullptr);
    std::vector<int32_t> t = tokens(150, 1);
    CHECK(ei_session_eval(s->session, t.data(), 100, nullptr) == EI_OK);
    // The handles go first; the session still reads the weights (ASan would flag a freed map).
    ei_model_free(model);
    ei_plan_free(plan);
    CHECK(ei_session_eval(s->session, t.data() + 100, 50, nullptr) == EI_OK);
    CHECK_EQ(ei_session_n_past(s->session), int64_t{150});
    std::vector<float> l = last_logits(s->session, n_vocab);
    CHECK(!l.empty() && std::isfinite(l[0]));
}

TEST(a_plan_is_refused_with_another_model) {
    ei_model *a = nullptr, *b = nullptr;
    CHECK(ei_model_load(tiny().c_str(), &a) == EI_OK);
    CHECK(ei_model_load(tiny().c_str(), &b) == EI_OK);
    ei_scenario sc = small_scenario();
    ei_plan* plan_a = nullptr;
    CHECK(ei_plan_create(a, &sc, &plan_a) == EI_OK);
    std::vector<uint8_t> pool(ei_plan_pool_size(plan_a) + 64);
    void* aligned = pool.data() + (64 - reinterpret_cast<uintptr_t>(pool.data()) % 64) % 64;
    ei_session* s = nullptr;
    CHECK(ei_session_create(b, plan_a, aligned, ei_plan_pool_size(plan_a), &s) == EI_ERR_INVALID_ARGUMENT);
    CHECK(s == nullptr);
    CHECK(std::string(ei_last_error()).find("another model") != std::string::npos);
    ei_plan_free(plan_a);
    ei_model_free(a);
    ei_model_free(b);
}

TEST(one_model_shared_by_threads_each_with_its_own_session) {
    ei_model* model = nullptr;
    CHECK(ei_model_load(tiny().c_str(), &model) == EI_OK);
    const int32_t n_vocab = vocab_of(model);
    ei_scenario sc = small_scenario();
    std::vector<int32_t> doc = tokens(300, 2);
    // The answer every thread must reach, computed alone first.
    std::vector<float> expected;
    {
        ei_plan* plan = nullptr;
        CHECK(ei_plan_create(model, &sc, &plan) == EI_OK);
        OwnedSession s(model, plan);
        CHECK(feed_unevenly(s.session, doc));
        expected = last_logits(s.session, n_vocab);
        ei_plan_free(plan);
    }
    std::atomic<int> mismatches{0}, failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 3; ++round) {
                ei_plan* plan = nullptr;
                if (ei_plan_create(model, &sc, &plan) != EI_OK) {
                    ++failures;
                    return;
                }
                OwnedSession s(model, plan);
                ei_plan_free(plan);  // the session copied what it needs
                int32_t ids[64];
                int32_t n = 0;
                const std::string text = "thread " + std::to_string(t) + " round " + std::to_string(round);
                if (ei_tokenize(model, text.data(), text.size(), 1, 0, ids, 64, &n) != EI_OK || n <= 0) ++failures;
                if (!feed_unevenly(s.session, doc)) ++failures;
                if (last_logits(s.session, n_vocab) != expected) ++mismatches;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK_EQ(failures.load(), 0);
    CHECK_EQ(mismatches.load(), 0);
    ei_model_free(model);
}

TEST(cancel_from_another_thread_stops_before_the_next_segment) {
    ei_model* model = nullptr;
    CHECK(ei_model_load(tiny().c_str(), &model) == EI_OK);
    const int32_t n_vocab = vocab_of(model);
    ei_scenario sc = small_scenario();
    ei_plan* plan = nullptr;
    CHECK(ei_plan_create(model, &sc, &plan) == EI_OK);
    OwnedSession s(model, plan);
    OwnedSession ref(model, plan);
    const char* env = std::getenv("EI_LONG_TOKENS");
    const int32_t n = env ? std::max(2048, std::atoi(env)) : 32768;
    std::vector<int32_t> doc = tokens(static_cast<size_t>(n), 3);

    std::atomic<bool> started{false};
    std::thread canceller([&] {
        while (!started.load()) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ei_session_cancel(s.session, 1);
    });
    started.store(true);
    const ei_status st = ei_session_eval(s.session, doc.data(), n, nullptr);
    canceller.join();
    CHECK(st == EI_ERR_CANCELLED);
    CHECK(std::string(ei_last_error()).find("cancelled after") != std::string::npos);
    const int64_t at = ei_session_n_past(s.session);
    CHECK(at < n);
    CHECK_EQ(at % sc.n_batch, int64_t{0});
    std::printf("cancelled at %lld of %d tokens\n", static_cast<long long>(at), n);

    // The request stays until withdrawn, then the session continues exactly.
    CHECK(ei_session_eval(s.session, doc.data() + at, 1, nullptr) == EI_ERR_CANCELLED);
    CHECK_EQ(ei_session_n_past(s.session), at);
    CHECK(ei_session_cancel(s.session, 0) == EI_OK);
    const int32_t rest = std::min<int32_t>(n - static_cast<int32_t>(at), 400);
    CHECK(ei_session_eval(s.session, doc.data() + at, rest, nullptr) == EI_OK);
    CHECK(ei_session_eval(ref.session, doc.data(), static_cast<int32_t>(at) + rest, nullptr) == EI_OK);
    CHECK(last_logits(s.session, n_vocab) == last_logits(ref.session, n_vocab));

    // Racing cancels against short evaluations: every call either completes or stops cleanly.
    std::atomic<bool> stop{false};
    std::thread racer([&] {
        for (int i = 0; !stop.load(); ++i) ei_session_cancel(s.session, i % 2);
    });
    for (int i = 0; i < 200; ++i) {
        const int64_t before = ei_session_n_past(s.session);
        const ei_status r = ei_session_eval(s.session, doc.data(), 1 + i % 40, nullptr);
        CHECK(r == EI_OK || r == EI_ERR_CANCELLED);
        const int64_t after = ei_session_n_past(s.session);
        CHECK(r != EI_OK || after == before + 1 + i % 40);
        CHECK(after >= before);
    }
    stop.store(true);
    racer.join();
    ei_plan_free(plan);
    ei_model_free(model);
}

// A pool made, used and destroyed at once, many times (as sessions are in the soak): a
// worker woken late must still see the stop. A lost wakeup would hang in the destructor's
// join; the watchdog turns that into a failure with a message instead of a CTest timeout.
TEST(thread_pools_made_and_destroyed_at_once_never_hang) {
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
        for (int i = 0; i < 1200 && !done.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!done.load()) {
            std::fprintf(stderr, "thread pool lifecycle hung (a worker missed the stop)\n");
            std::abort();
        }
    });
    // Fewer under qemu and sanitizers (EI_REFERENCE_QUICK), where every thread is costly.
    const int kRounds = std::getenv("EI_REFERENCE_QUICK") ? 1000 : 20000;
    int64_t sum = 0;
    for (int round = 0; round < kRounds; ++round) {
        ei::cpu::ThreadPool pool(4 + round % 5);  // more threads than cores: late workers
        std::atomic<int64_t> s{0};
        for (int job = 0; job < round % 3; ++job) {
            pool.run(8, [&](int64_t b, int64_t e, int) { s.fetch_add(e - b); });
        }
        sum += s.load();
    }
    done.store(true);
    watchdog.join();
    int64_t want = 0;
    for (int round = 0; round < kRounds; ++round) want += 8 * (round % 3);
    CHECK_EQ(sum, want);
}
