// Keeps the host process's signal handlers as they were across calls into an OpenCL driver.
//
// Why: drivers built on LLVM (PoCL here) install LLVM's crash handlers for SIGSEGV, SIGBUS,
// SIGILL, SIGINT, SIGTERM, SIGUSR2 and more when their devices are first listed, with
// SA_RESETHAND.
// A JVM uses SIGSEGV itself (safepoint polls, implicit null checks): after such a call the
// JVM's faults reach LLVM's handler, and when two threads fault at once the second meets the
// reset default action and the process dies with SIGSEGV (seen in CI as a JUnit fork killed
// with exit code 139 in ConcurrencyTest on PoCL). LLVM registers its handlers once per
// process, so putting the previous handlers back after the driver's setup calls (listing,
// context, program, queue) is enough; test_opencl_ops checks it on PoCL.
#pragma once
#include <csignal>

namespace ei::opencl {

class SignalHandlersGuard {
public:
    SignalHandlersGuard();   // snapshot of every catchable signal's disposition
    ~SignalHandlersGuard();  // puts back each disposition the guarded calls changed
    SignalHandlersGuard(const SignalHandlersGuard&) = delete;
    SignalHandlersGuard& operator=(const SignalHandlersGuard&) = delete;

    // Signals whose handler differed from the snapshot when last restored (for tests).
    static int last_restored_count();

private:
    static constexpr int kSignals = 65;  // 1..64: standard and real-time signals on Linux
    struct sigaction saved_[kSignals];
    bool have_[kSignals];
};

}  // namespace ei::opencl
