// The OpenCL kernel variants (fp16, subgroups, Adreno; backends/opencl/kernel_variants.h):
// each is built by the platform's compiler where it allows, and every variant that builds
// runs here through the backend (EI_OPENCL_VARIANT names it) against the CPU backend on
// one-token MatMuls of F16, Q8_0 and Q4_0 weights: nMSE at most 5e-4 (ggml's MatMul bound).
// Each variant says plainly what happened: "ran here", "compiled, untested on this platform"
// or "cannot be compiled here: <why>". Every variant is also compiled by clang for SPIR
// (spir64, OpenCL C 1.2 and 2.0, every Khronos extension on: types, builtins and overloads checked,
// subgroup branches included) where clang is installed; one the platform refuses then says
// "compiled by clang, untested on this platform". Skips, saying why, without an OpenCL device.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "cpu/quants.h"
#include "error.h"
#include "opencl/kernel_variants.h"
#include "opencl/opencl_backend.h"
#include "opencl/opencl_device.h"
#include "opencl_harness.h"
#include "session_harness.h"
#include "weight_cache.h"

using namespace ei;
using opencl::Variant;

namespace {

using check::have_opencl;
using check::Layout;
using check::nmse;
using check::uniform;
using check::Weight;

// Sets EI_OPENCL_VARIANT for a scope, restoring what was there.
struct VariantEnv {
    std::string old;
    bool had = false;
    explicit VariantEnv(const char* v) {
        if (const char* e = std::getenv("EI_OPENCL_VARIANT")) {
            had = true;
            old = e;
        }
        if (v) setenv("EI_OPENCL_VARIANT", v, 1);
        else unsetenv("EI_OPENCL_VARIANT");
    }
    ~VariantEnv() {
        if (had) setenv("EI_OPENCL_VARIANT", old.c_str(), 1);
        else unsetenv("EI_OPENCL_VARIANT");
    }
};


using Buf = check::AlignedBuf;




struct Case {
    GgmlType type;
    int64_t K, N;
    int kind;  // 0 plain, 1 bias + accumulate, 2 output head (last of 5 tokens), 3 prefill (5 tokens)
};

// One MatMul through the OpenCL backend (with whatever EI_OPENCL_VARIANT says) and the CPU
// backend on the same pool; the nMSE of the OpenCL result against the CPU's.
double run_case(const Case& c) {
    Weight w(c.type, c.K, c.N);
    const Weight bias = check::f32_vector(c.N, -0.5f, 0.5f);
    const int32_t T = 5, nt = c.kind >= 2 ? 5 : 1;
    Layout l;
    TensorRef x = l.add(c.K, T), dst = l.add(c.N, T);
    TensorRef aux = l.add((c.K * 4 + 4096) / 4, T);
    // The head's row is a step input (step_inputs.h) that the device reads: the last valid row.
    TensorRef logit_row = l.add(1, 1);
    logit_row.type = GgmlType::I32;
    const uint64_t size = l.size;
    Buf pool(size);
    for (uint64_t i = 0; i < size / 4; ++i) reinterpret_cast<float*>(pool.p)[i] = uniform(-1, 1);
    *reinterpret_cast<int32_t*>(pool.p + logit_row.offset) = nt - 1;
    Op op;
    op.kind = OpKind::MatMul;
    op.dst = dst;
    op.src0 = w.ref;
    op.src1 = x;
    op.aux = aux;
    if (c.kind == 1) {
        op.src2 = bias.ref;
        op.accumulate = true;
    }
    op.output_head = c.kind == 2;
    if (op.output_head) op.logit_row = logit_row;
    Graph g;
    g.name = "one-op";
    g.max_tokens = T;
    g.ops.push_back(op);
    StepParams s;
    s.n_tokens = nt;
    Buf on_cpu(pool), on_cl(pool);
    WeightCache cache_cpu, cache_cl;
    auto cpu_backend = cpu::make_cpu_backend(2);
    auto cl_backend = opencl::make_opencl_backend();
    CHECK(cl_backend->supports(op));
    cpu_backend->prepare(g, cache_cpu);
    cl_backend->prepare(g, cache_cl);
    cpu_backend->compute(g, s, *cpu_backend->wrap_host_pool(on_cpu.p, on_cpu.size));
    auto cl_buffer = cl_backend->wrap_host_pool(on_cl.p, on_cl.size);
    cl_backend->compute(g, s, *cl_buffer);
    cl_buffer->synchronize();
    return c.kind == 2 ? nmse(on_cl.p, on_cpu.p, dst, 1) : nmse(on_cl.p, on_cpu.p, dst, nt);
}

const Case kCases[] = {
    {GgmlType::F16, 77, 37, 0},   {GgmlType::F16, 256, 37, 1},   {GgmlType::F16, 96, 41, 2},
    {GgmlType::Q8_0, 96, 37, 0},  {GgmlType::Q8_0, 544, 37, 1},  {GgmlType::Q8_0, 96, 41, 2},
    {GgmlType::Q4_0, 96, 37, 0},  {GgmlType::Q4_0, 544, 37, 1},  {GgmlType::Q4_0, 2080, 19, 2},
    {GgmlType::F16, 77, 37, 3},   {GgmlType::Q8_0, 96, 37, 3},   {GgmlType::Q4_0, 96, 37, 3},
};

// Compiles a variant's source with clang for SPIR; "" when it compiles, else clang's words.
std::string clang_compile(Variant v, bool* ran) {
    *ran = false;
    const std::string clang = EI_OPENCL_CLANG;
    if (clang.empty() || clang.find("NOTFOUND") != std::string::npos) return "clang is not installed";
    *ran = true;
    const std::string file = std::string(EI_OPENCL_KERNELS_DIR) + "/kernels_" + opencl::variant_name(v) + ".cl";
    const std::string log = "/tmp/ei_variant_clang_" + std::to_string(getpid()) + ".log";
    // OpenCL C 1.2 (cl_intel_subgroups defined) and 2.0 (cl_khr_subgroups): both subgroup paths.
    int rc = 0;
    for (const char* std : {"CL1.2", "CL2.0"}) {
        const std::string cmd = "'" + clang + "' -x cl -cl-std=" + std + " -Xclang -finclude-default-header -target spir64 " +
                                "-Werror -c -emit-llvm -o /dev/null '" + file + "' >> '" + log + "' 2>&1";
        rc |= std::system(cmd.c_str());
    }
    std::string out;
    if (FILE* f = std::fopen(log.c_str(), "r")) {
        char buf[512];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() < 2000) out.append(buf, n);
        std::fclose(f);
    }
    std::remove(log.c_str());
    return rc == 0 ? "" : (out.empty() ? "clang failed" : out);
}

std::string case_name(const Case& c) {
    return std::string(type_traits(c.type).name) + " K=" + std::to_string(c.K) + " N=" + std::to_string(c.N) +
           (c.kind == 1 ? " bias+accumulate" : c.kind == 2 ? " output head" : c.kind == 3 ? " prefill (portable)" : "");
}

}  // namespace

TEST(variant_selection_and_override) {
    opencl::DeviceInfo d;
    d.name = "made up";
    {
        VariantEnv env(nullptr);
        CHECK(opencl::choose_variant(d) == Variant::Portable);  // reports nothing: the portable kernels
        d.subgroups = true;
        d.extensions = "cl_khr_subgroups";
        CHECK(opencl::choose_variant(d) == Variant::Subgroups);
        d.fp16 = true;
        d.extensions += " cl_khr_fp16";
        CHECK(opencl::choose_variant(d) == Variant::Fp16);  // fp16 over subgroups
        d.qcom = true;  // Qualcomm extensions but no device to ask about images: not Adreno
        CHECK(opencl::choose_variant(d) == Variant::Fp16);
        CHECK(opencl::variant_missing(Variant::Adreno, d) == "no image1d_buffer support");
    }
    {
        VariantEnv env("portable");
        CHECK(opencl::choose_variant(d) == Variant::Portable);
    }
    {
        VariantEnv env("adreno");
        CHECK(opencl::choose_variant(d) == Variant::Adreno);
    }
    {
        VariantEnv env("gpu-magic");
        bool threw = false;
        try {
            opencl::choose_variant(d);
        } catch (const Error& e) {
            threw = e.status() == EI_ERR_INVALID_ARGUMENT && std::string(e.what()).find("gpu-magic") != std::string::npos;
        }
        CHECK(threw);
        CHECK(opencl::choose_variant_or_portable(d) == Variant::Portable);
    }
}

TEST(portable_default_here_keeps_the_cpu_bits) {
    if (!have_opencl("portable_default_here_keeps_the_cpu_bits")) return;
    VariantEnv env(nullptr);
    auto rt = opencl::Runtime::get();
    const Variant v = opencl::choose_variant(rt->device);
    std::printf("  %s: kernels %s\n", rt->device.name.c_str(), opencl::variant_description(rt->device).c_str());
    if (v != Variant::Portable) {
        std::printf("  this device picks a variant: the bit-identity check is for devices without one\n");
        return;
    }
    for (const Case& c : kCases) {
        const double e = run_case(c);
        std::printf("  portable %-40s nmse %.3g (bound 0)\n", case_name(c).c_str(), e);
        CHECK(e == 0.0);
    }
}

TEST(each_variant_builds_and_runs_where_it_can) {
    if (!have_opencl("each_variant_builds_and_runs_where_it_can")) return;
    auto rt = opencl::Runtime::get();
    for (Variant v : {Variant::Fp16, Variant::Subgroups, Variant::Adreno}) {
        const std::string missing = opencl::variant_missing(v, rt->device);
        std::unique_ptr<opencl::VariantKernels> kernels;
        try {
            kernels = std::make_unique<opencl::VariantKernels>(rt, v);
        } catch (const Error& e) {
            std::string why = e.what();
            if (why.size() > 300) why = why.substr(0, 300) + "...";
            std::printf("  %s: cannot be compiled here: %s\n", opencl::variant_name(v), why.c_str());
            // A device that reports what the variant needs must build it.
            CHECK(!missing.empty());
            bool ran = false;
            const std::string clang_says = clang_compile(v, &ran);
            if (!ran) {
                std::printf("  %s: not compiled by clang either (%s): untested\n", opencl::variant_name(v), clang_says.c_str());
            } else if (clang_says.empty()) {
                std::printf("  %s: compiled by clang for spir64 (%s), untested on this platform\n", opencl::variant_name(v),
                            EI_OPENCL_CLANG);
            } else {
                std::printf("  %s: clang refuses it too:\n%s\n", opencl::variant_name(v), clang_says.c_str());
                CHECK(false);
            }
            continue;
        }
        // It built: run it through the backend against the CPU on every case it handles.
        VariantEnv env(opencl::variant_name(v));
        int ran = 0;
        for (const Case& c : kCases) {
            if (c.kind == 3) continue;
            Weight probe(c.type, c.K, c.N);
            if (!kernels->handles(probe.ref)) continue;
            const double e = run_case(c);
            std::printf("  %-9s %-40s nmse %.3g (bound 5e-4)\n", opencl::variant_name(v), case_name(c).c_str(), e);
            CHECK(e <= 5e-4);
            ++ran;
        }
        // Prefill stays on the portable kernels, which keep the CPU's bits on PoCL.
        for (const Case& c : kCases) {
            if (c.kind == 3) CHECK(run_case(c) <= 5e-4);
        }
        if (ran == 0) {
            std::printf("  %s: compiled, untested on this platform (no case runs here)\n", opencl::variant_name(v));
        } else {
            std::printf("  %s: compiled and ran here (%d cases)%s\n", opencl::variant_name(v), ran,
                        missing.empty() ? "" : (", although the device reports " + missing).c_str());
        }
        // clang for spir64 has subgroups on: the branches this platform compiled out.
        bool clang_ran = false;
        const std::string clang_says = clang_compile(v, &clang_ran);
        if (clang_ran) {
            std::printf("  %s: %s\n", opencl::variant_name(v),
                        clang_says.empty() ? "also compiled by clang for spir64 (its subgroup branches: untested)"
                                           : ("clang refuses it:\n" + clang_says).c_str());
            CHECK(clang_says.empty());
        }
    }
}

namespace {
struct ModelRun {
    std::vector<float> logits;    // the last prompt position's
    std::vector<int32_t> greedy;  // continuation (one-token steps: the variant's mat-vec)
};
ModelRun run_model(const std::string& path, const std::string& device, const std::vector<int32_t>& prompt, int n_gen) {
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 32;
    sc.n_batch = 8;
    sc.n_threads = 2;
    sc.device = device;
    check::Harness h(path, sc);
    const int32_t V = h.session->n_vocab();
    h.session->plan_route(int64_t(prompt.size()) + n_gen);
    const float* last = h.session->eval(prompt.data(), int32_t(prompt.size()));
    ModelRun r;
    r.logits.assign(last, last + V);
    for (int i = 0; i < n_gen; ++i) {
        int32_t tok = 0;
        for (int32_t v = 1; v < V; ++v) tok = last[v] > last[tok] ? v : tok;
        r.greedy.push_back(tok);
        last = h.session->eval(&tok, 1);
    }
    return r;
}
}  // namespace

// A whole Q4_0 model through the variant that runs here (adreno: split Q4_0 through
// image1d_buffer on every decode step), against the CPU: the memory route's greedy
// continuation is the CPU's.
TEST(adreno_variant_whole_q4_0_model) {
    if (!have_opencl("adreno_variant_whole_q4_0_model")) return;
    try {
        opencl::VariantKernels probe(opencl::Runtime::get(), Variant::Adreno);
    } catch (const Error& e) {
        std::printf("  skipped: the adreno variant cannot be compiled here (%s)\n", e.what());
        return;
    }
    std::mt19937 gen(11);
    std::vector<int32_t> prompt(60);
    for (auto& t : prompt) t = 3 + int32_t(gen() % 1000);
    const std::string path = check::testdata("models/tiny-llama-q4_0.gguf");
    const ModelRun cpu = run_model(path, "cpu", prompt, 16);
    VariantEnv env("adreno");
    const ModelRun cl = run_model(path, "opencl", prompt, 16);
    int same = 0;
    for (size_t i = 0; i < cpu.greedy.size(); ++i) same += cpu.greedy[i] == cl.greedy[i];
    std::printf("  tiny-llama-q4_0, adreno variant: greedy %d/16 equal to the CPU's\n", same);
    CHECK(cl.greedy == cpu.greedy);
}
