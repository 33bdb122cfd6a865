// A fixed set of worker threads, created once per session. run() splits [0, n) into a
// few contiguous chunks per thread that the caller and the workers claim, and returns when
// all are done. Workers spin briefly between ops (ops are microseconds apart in a graph)
// and then sleep, so an idle session costs no CPU. No allocation per call.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ei::cpu {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // fn(begin, end, thread_index) for each thread's chunk of [0, n).
    template <typename F>
    void run(int64_t n, F&& fn) {
        auto tramp = [](void* ctx, int64_t b, int64_t e, int t) { (*static_cast<F*>(ctx))(b, e, t); };
        dispatch(n, tramp, &fn);
    }

private:
    using Trampoline = void (*)(void*, int64_t, int64_t, int);
    void dispatch(int64_t n, Trampoline fn, void* ctx);
    void worker(int index);
    void chunk(int index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<uint64_t> word_{0};  // (job, chunk count, next chunk): see thread_pool.cpp
    std::atomic<int> active_{0};
    std::atomic<bool> stop_{false};
    Trampoline fn_ = nullptr;
    void* ctx_ = nullptr;
    int64_t n_ = 0;
};

}  // namespace ei::cpu
