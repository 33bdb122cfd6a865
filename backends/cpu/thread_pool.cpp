#include "thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define EI_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define EI_PAUSE() __asm__ __volatile__("yield")
#else
#define EI_PAUSE() ((void)0)
#endif

namespace ei::cpu {

// A job is cut into chunks that participants claim from one atomic word holding
// (job number, chunk count, next chunk). The caller claims too, so a worker the OS has not
// scheduled yet (a busy or shared machine) never holds the job up: the caller simply takes
// its chunks. `active_` counts participants between announcing themselves and finishing
// their last chunk; the caller returns, and may overwrite the job fields, only once it is 0.
namespace {
constexpr int kSpinIterations = 20000;  // about 50-100 us before sleeping
constexpr uint64_t kMaxChunks = 0xFFFF;

uint64_t pack(uint64_t job, uint64_t chunks, uint64_t next) { return (job << 32) | (chunks << 16) | next; }
uint64_t chunks_of(uint64_t w) { return (w >> 16) & 0xFFFF; }
uint64_t next_of(uint64_t w) { return w & 0xFFFF; }
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

// Claims and runs chunks of the current job until none is left.
void ThreadPool::chunk(int index) {
    for (;;) {
        uint64_t w = word_.load(std::memory_order_acquire);
        if (next_of(w) >= chunks_of(w)) return;  // the job's fields are published with its word
        if (!word_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel)) continue;
        const int64_t c = static_cast<int64_t>(next_of(w)), chunks = static_cast<int64_t>(chunks_of(w));
        const int64_t b = n_ * c / chunks, e = n_ * (c + 1) / chunks;
        if (b < e) fn_(ctx_, b, e, index);
    }
}

void ThreadPool::dispatch(int64_t n, Trampoline fn, void* ctx) {
    if (n_threads_ == 1 || n <= 1) {
        if (n > 0) fn(ctx, 0, n, 0);
        return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    // Several chunks per thread balance uneven work and late workers.
    const uint64_t chunks = std::min<uint64_t>({static_cast<uint64_t>(n), uint64_t(n_threads_) * 4, kMaxChunks});
    uint64_t job;
    {
        // The lock orders the job fields before the bump for workers that sleep.
        std::lock_guard<std::mutex> lock(mu_);
        job = (generation_.load(std::memory_order_relaxed) + 1) & 0xFFFFFFFF;
        word_.store(pack(job, chunks, 0), std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    chunk(0);
    while (active_.load(std::memory_order_acquire) != 0) EI_PAUSE();
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
            EI_PAUSE();
            ++spins;
        }
        if (generation_.load(std::memory_order_acquire) == seen) {
            std::unique_lock<std::mutex> lock(mu_);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        }
        // Take the generation before looking at stop_: the destructor sets stop_ before its
        // bump, so a worker that takes the destructor's generation always sees stop_. (Checking
        // stop_ first let a worker take that generation unseen and sleep forever in join.)
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load()) return;
        active_.fetch_add(1, std::memory_order_acq_rel);
        chunk(index);
        active_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace ei::cpu
