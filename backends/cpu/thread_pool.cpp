#include "thread_pool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define EI_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define EI_PAUSE() __asm__ __volatile__("yield")
#else
#define EI_PAUSE() ((void)0)
#endif

namespace ei::cpu {

namespace {
constexpr int kSpinIterations = 20000;  // about 50-100 us before sleeping
}

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

void ThreadPool::chunk(int index) {
    int64_t b = n_ * index / n_threads_, e = n_ * (index + 1) / n_threads_;
    if (b < e) fn_(ctx_, b, e, index);
}

void ThreadPool::dispatch(int64_t n, Trampoline fn, void* ctx) {
    if (n_threads_ == 1 || n <= 1) {
        if (n > 0) fn(ctx, 0, n, 0);
        return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    {
        // The lock orders the job fields before the generation bump for sleeping workers.
        std::lock_guard<std::mutex> lock(mu_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    chunk(0);
    while (pending_.load(std::memory_order_acquire) != 0) EI_PAUSE();
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
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load()) return;
        chunk(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace ei::cpu
