// Whole models on the OpenCL backend against the CPU backend through ei::Session: the
// memory route (small sink and window, so the ring wraps and the fold runs many times) gives
// the CPU's greedy continuation on the shared models, and on models with f32 and f16 weights
// the CPU's logits bit for bit (the kernels follow the CPU's arithmetic; on a device without
// cl_khr_fp64 two sums are f32, so there only the tolerance and the tokens are asserted).
// The manifest's llama.cpp cases run on OpenCL in the JUnit suite (ReferenceLogitsTest with
// -Dedgeinfinite.test.backend=opencl, see .ci/run). Skips, saying why, without a device.
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "opencl/kernel_variants.h"
#include "opencl/opencl_device.h"
#include "opencl_harness.h"
#include "session_harness.h"

using namespace ei;

namespace {

using check::have_opencl;

struct Run : check::GreedyRun {
    std::vector<float> memory;   // every layer's M then z at the end
};

Run run(const std::string& model, const std::string& backend, const std::vector<int32_t>& prompt, int n_gen,
        bool memory_rule_delta) {
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 32;
    sc.n_batch = 8;
    sc.n_threads = 2;
    sc.rule = memory_rule_delta ? MemoryRule::Delta : MemoryRule::Linear;
    sc.device = backend;
    check::Harness h(model, sc);
    Run r;
    static_cast<check::GreedyRun&>(r) = check::greedy_run(h, prompt, n_gen);
    for (const char* name : {"mem.M", "mem.z"}) {
        const std::vector<float> m = h.read_region<float>(name);
        r.memory.insert(r.memory.end(), m.begin(), m.end());
    }
    return r;
}

}  // namespace

TEST(memory_route_greedy_equals_cpu) {
    if (!have_opencl("memory_route_greedy_equals_cpu")) return;
    const bool fp64 = opencl::Runtime::get()->device.has_extension("cl_khr_fp64");
    const bool portable = opencl::choose_variant(opencl::Runtime::get()->device) == opencl::Variant::Portable;
    std::mt19937 rng(7);
    std::vector<int32_t> prompt(100);
    for (auto& t : prompt) t = 3 + int32_t(rng() % 1000);
    struct M {
        const char* file;
        bool exact;  // f32 / f16 weights: the CPU's bits
    };
    const M models[] = {{"models/tiny-llama-f32.gguf", true},  {"models/tiny-qwen2-f32.gguf", true},
                        {"models/tiny-llama-f16.gguf", true},  {"models/tiny-llama-q8_0.gguf", false},
                        {"models/tiny-llama-q4_k_m.gguf", false}, {"eval/evalmodel-f32.gguf", true}};
    for (const M& m : models) {
        for (int delta = 0; delta < 2; ++delta) {
            const std::string path = check::testdata(m.file);
            const Run cpu = run(path, "cpu", prompt, 16, delta);
            const Run cl = run(path, "opencl", prompt, 16, delta);
            // The other pool buffer type: device-resident (discrete GPUs), the session's I/O as
            // transfers. Same kernels, so the same bits as the zero-copy pool.
            setenv("EI_OPENCL_POOL", "device", 1);
            const Run dev = run(path, "opencl", prompt, 16, delta);
            unsetenv("EI_OPENCL_POOL");
            CHECK(dev.logits == cl.logits && dev.greedy == cl.greedy && dev.memory == cl.memory);
            double max_abs = 0, sq = 0;
            for (size_t i = 0; i < cpu.logits.size(); ++i) {
                const double d = std::fabs(double(cpu.logits[i]) - cl.logits[i]);
                max_abs = std::max(max_abs, d);
                sq += d * d;
            }
            const double rmse = std::sqrt(sq / double(cpu.logits.size()));
            double num = 0, den = 0;
            for (size_t i = 0; i < cpu.memory.size(); ++i) {
                num += (double(cpu.memory[i]) - cl.memory[i]) * (double(cpu.memory[i]) - cl.memory[i]);
                den += double(cpu.memory[i]) * cpu.memory[i];
            }
            const double mem_nmse = den > 0 ? num / den : num;
            int same = 0;
            for (size_t i = 0; i < cpu.greedy.size(); ++i) same += cpu.greedy[i] == cl.greedy[i];
            std::printf("  %-28s %-6s rule: %lld tokens folded, logits max_abs %.3g rmse %.3g, memory nmse %.2g, greedy %d/16 equal\n",
                        m.file, delta ? "delta" : "linear", (long long)cl.folded, max_abs, rmse, mem_nmse, same);
            CHECK(cl.folded > 0);
            CHECK(cl.greedy == cpu.greedy);
            // The CPU's bits need the portable kernels (a device's fp16 / subgroup / Adreno variant
            // is within the MatMul bound only): PoCL keeps them.
            if (m.exact && fp64 && portable) CHECK(max_abs == 0.0);
            // Quantized weights: the CPU dots 8-bit activations, OpenCL f32 ones (the manifest's
            // bounds against llama.cpp on these files are 0.19 to 2.2).
            CHECK(rmse < 0.2);
            CHECK(den > 0 && (m.exact ? mem_nmse <= 1e-6 : mem_nmse <= 1e-3));
        }
    }
}

namespace {
// Counts the ops it sees and checks that each op's inputs are readable on the host.
struct Counting : OpObserver {
    int before_calls = 0, after_calls = 0;
    double sum = 0;
    void before(const Graph&, const Op&, const StepParams&, const uint8_t*) override { ++before_calls; }
    void after(const Graph&, const Op& op, const StepParams& s, const uint8_t* pool) override {
        ++after_calls;
        if (op.kind == OpKind::RmsNorm) sum += reinterpret_cast<const float*>(pool + op.dst.offset)[0] * s.n_tokens;
    }
};
}  // namespace

// An observer (the tools' hook) sees every op on OpenCL too, with the pool on the host
// between ops, and changes no result.
TEST(observer_sees_every_op_and_changes_nothing) {
    if (!have_opencl("observer_sees_every_op_and_changes_nothing")) return;
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_batch = 8;
    sc.device = "opencl";
    const std::string path = check::testdata("models/tiny-llama-q8_0.gguf");
    std::vector<int32_t> prompt(40);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t(3 + (i * 31) % 1000);
    std::vector<float> plain, watched, watched_device;
    Counting c;
    int64_t ops = 0;
    // Last pass: the device-resident pool, which an observer sees through its staging copy.
    for (int watch = 0; watch < 3; ++watch) {
        if (watch == 2) setenv("EI_OPENCL_POOL", "device", 1);
        check::Harness h(path, sc);
        if (watch) h.session->set_observer(&c);
        h.session->plan_route(int64_t(prompt.size()));
        const float* l = h.session->eval(prompt.data(), int32_t(prompt.size()));
        (watch == 2 ? watched_device : watch ? watched : plain).assign(l, l + h.session->n_vocab());
        unsetenv("EI_OPENCL_POOL");
        if (watch == 2) continue;
        // 5 prefill runs of 8 and the folds of 16 tokens (2 folds of L = 8).
        ops = 5 * int64_t(h.plan.prefill.ops.size()) + 2 * int64_t(h.plan.fold.ops.size());
    }
    // Both watched passes (zero-copy and device-resident pools) saw every op.
    CHECK_EQ(int64_t(c.before_calls), 2 * ops);
    CHECK_EQ(int64_t(c.after_calls), 2 * ops);
    CHECK(c.sum != 0);
    CHECK(plain == watched);
    CHECK(plain == watched_device);
}
