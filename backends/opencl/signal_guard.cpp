#include "opencl/signal_guard.h"

#include <atomic>

namespace ei::opencl {

namespace {
std::atomic<int> g_last_restored{0};

bool same(const struct sigaction& a, const struct sigaction& b) {
    return reinterpret_cast<void*>(a.sa_sigaction) == reinterpret_cast<void*>(b.sa_sigaction) &&
           a.sa_flags == b.sa_flags;
}
}  // namespace

SignalHandlersGuard::SignalHandlersGuard() {
    for (int s = 1; s < kSignals; ++s) {
        have_[s] = s != SIGKILL && s != SIGSTOP && sigaction(s, nullptr, &saved_[s]) == 0;
    }
}

SignalHandlersGuard::~SignalHandlersGuard() {
    int restored = 0;
    for (int s = 1; s < kSignals; ++s) {
        if (!have_[s]) continue;
        struct sigaction now;
        if (sigaction(s, nullptr, &now) != 0 || same(now, saved_[s])) continue;
        if (sigaction(s, &saved_[s], nullptr) == 0) ++restored;
    }
    g_last_restored.store(restored);
}

int SignalHandlersGuard::last_restored_count() { return g_last_restored.load(); }

}  // namespace ei::opencl
