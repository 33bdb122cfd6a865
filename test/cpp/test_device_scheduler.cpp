// The device registry and the planner's CPU fallback: a test-only device that runs a subset
// of the ops (with the CPU kernels) gets the rest placed on the CPU at planning, reported
// op by op, and its sessions compute exactly what a CPU session does; with OpenCL present,
// the same with a device that runs every OpenCL kernel but attention, against OpenCL alone.
#include <cstring>
#include <random>
#include <set>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "device_registry.h"
#include "error.h"
#include "session_harness.h"
#if defined(EI_BACKEND_OPENCL)
#include "opencl/opencl_backend.h"
#include "opencl/opencl_device.h"
#endif
#if defined(EI_BACKEND_HTP)
#include "htp/htp_backend.h"
#endif

using namespace ei;

namespace {

// A backend that runs only the op kinds its device claims, through another backend; it
// refuses any other op, so a scheduler that hands it one fails the test.
class SubsetBackend final : public Backend {
public:
    SubsetBackend(std::unique_ptr<Backend> inner, std::set<OpKind> kinds, int* ops_run)
        : inner_(std::move(inner)), kinds_(std::move(kinds)), ops_run_(ops_run) {}
    const char* name() const override { return "test-subset"; }
    bool supports(const Op& op) const override { return kinds_.count(op.kind) && inner_->supports(op); }
    uint64_t pool_alignment() const override { return inner_->pool_alignment(); }
    void prepare(const Graph& g, WeightCache& cache) override {
        for (const Op& op : g.ops) {
            if (!supports(op)) fail(EI_ERR_INTERNAL, std::string("subset backend asked to prepare ") + op_name(op.kind));
        }
        inner_->prepare(g, cache);
    }
    // The inner backend's pool buffer and step inputs: it is the one that computes.
    std::unique_ptr<PoolBuffer> wrap_host_pool(uint8_t* host, uint64_t size) override {
        return inner_->wrap_host_pool(host, size);
    }
    bool reads_step_inputs() const override { return inner_->reads_step_inputs(); }
    void compute(const Graph& g, const StepParams& step, PoolBuffer& pool) override {
        for (const Op& op : g.ops) {
            if (!supports(op)) fail(EI_ERR_INTERNAL, std::string("subset backend asked to run ") + op_name(op.kind));
        }
        inner_->compute(g, step, pool);
        *ops_run_ += static_cast<int>(g.ops.size());
    }

private:
    std::unique_ptr<Backend> inner_;
    std::set<OpKind> kinds_;
    int* ops_run_;
};

// A registry device over SubsetBackend: the CPU's kernels (inner "cpu") or OpenCL's.
class SubsetDevice final : public Device {
public:
    SubsetDevice(std::string name, std::string inner, std::set<OpKind> kinds)
        : Device(desc(name)), inner_(std::move(inner)), kinds_(std::move(kinds)) {}
    std::string why_unsupported(const Op& op) const override {
        if (!kinds_.count(op.kind)) return std::string("the test device runs no ") + op_name(op.kind);
        return find_device(inner_)->why_unsupported(op);
    }
    std::unique_ptr<Backend> create(const Scenario& sc) const override {
        return std::make_unique<SubsetBackend>(find_device(inner_)->create(sc), kinds_, &ops_run);
    }
    mutable int ops_run = 0;

private:
    static DeviceDesc desc(const std::string& name) {
        DeviceDesc d;
        d.name = name;
        d.kind = "other";
        d.description = "test subset device";
        return d;
    }
    std::string inner_;
    std::set<OpKind> kinds_;
};

Scenario small(const std::string& device) {
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_batch = 8;
    sc.n_threads = 2;
    sc.device = device;
    return sc;
}

using Run = check::GreedyRun;

// A prompt long enough to fold (the memory route), then greedy decoding.
Run run(check::Harness& h, int n_prompt, int n_gen) {
    std::mt19937 rng(11);
    std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
    for (auto& t : prompt) t = 3 + int32_t(rng() % 1000);
    Run r = check::greedy_run(h, prompt, n_gen);
    // Compared as one sequence: every prompt position, then each generated token's.
    r.logits.insert(r.logits.end(), r.step_logits.begin(), r.step_logits.end());
    return r;
}

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? num / den : num;
}

const std::set<OpKind> kNoMatMul = {OpKind::GetRows, OpKind::RmsNorm, OpKind::Rope, OpKind::KvStore, OpKind::SwiGlu};

}  // namespace

TEST(cpu_is_always_listed_first) {
    const auto list = devices();
    CHECK(!list.empty());
    if (list.empty()) return;
    const DeviceDesc& d = list.front()->desc();
    CHECK(d.name == "cpu");
    CHECK(d.kind == "cpu");
    CHECK(!d.features.empty());
    CHECK(d.memory > 0);
    CHECK(d.compute_units >= 1);
    CHECK(find_device("") == list.front());  // no name: the CPU
    for (size_t i = 1; i < list.size(); ++i) {
        CHECK(list[i]->name().rfind("opencl:", 0) == 0 || list[i]->name() == "htp-emulator" || list[i]->name() == "htp");
    }
}

TEST(unknown_device_names_the_present_ones) {
    CHECK_THROWS(find_device("npu7"), EI_ERR_UNSUPPORTED, "devices: cpu");
    check::Harness* none = nullptr;
    CHECK_THROWS(none = new check::Harness(check::testdata("models/tiny-llama-q8_0.gguf"), small("gpu0")),
                 EI_ERR_UNSUPPORTED, "device 'gpu0' is not present");
    delete none;
    CHECK(!register_device(std::make_shared<SubsetDevice>("cpu", "cpu", kNoMatMul)));  // "cpu" stays the CPU
}

#if defined(EI_BACKEND_HTP)
// Without a QNN library (CI, any machine without the SDK) there is no htp device, and naming
// it says why: the probe's reason, naming the library and how to point at it.
TEST(absent_htp_device_says_why) {
    if (htp::probe_htp().present) {
        std::printf("  skipped: a QNN HTP library is present (%s)\n", htp::probe_htp().library.c_str());
        return;
    }
    for (const auto& d : devices()) CHECK(d->name() != "htp");
    CHECK_THROWS(find_device("htp"), EI_ERR_UNSUPPORTED, "; htp: QNN: cannot load the HTP backend library");
    CHECK_THROWS(find_device("htp"), EI_ERR_UNSUPPORTED, "EI_QNN_HTP_LIB");
}
#endif

TEST(all_on_cpu_reports_no_fallback) {
    check::Harness h(check::testdata("models/tiny-llama-q8_0.gguf"), small("cpu"));
    CHECK(h.plan.placement.device == "cpu");
    CHECK(h.plan.placement.fallbacks.empty());
    CHECK_EQ(h.plan.placement.decode_on_cpu.size(), h.plan.decode.ops.size());
    CHECK(h.plan.placement.summary(h.plan).find("all ") == 0);
}

// Every MatMul, attention and fold falls back to the CPU; results equal the CPU's bit for bit.
TEST(subset_device_falls_back_to_cpu_bit_for_bit) {
    auto dev = std::make_shared<SubsetDevice>("test:subset", "cpu", kNoMatMul);
    CHECK(register_device(dev));
    for (const char* model : {"models/tiny-llama-q8_0.gguf", "models/tiny-qwen2-f32.gguf"}) {
        check::Harness cpu(check::testdata(model), small("cpu"));
        check::Harness split(check::testdata(model), small("test:subset"));
        const Placement& p = split.plan.placement;
        CHECK(p.device == "test:subset");
        // The report: exactly the ops outside the subset, each with the device's reason.
        size_t expected = 0;
        for (const Graph* g : {&split.plan.prefill, &split.plan.decode, &split.plan.fold}) {
            const std::vector<uint8_t>& on_cpu = *p.on_cpu(g->name);
            for (size_t i = 0; i < g->ops.size(); ++i) {
                const bool outside = !kNoMatMul.count(g->ops[i].kind);
                CHECK_EQ(int(on_cpu[i]), int(outside));
                expected += outside;
            }
        }
        CHECK_EQ(p.fallbacks.size(), expected);
        CHECK(expected > 0);
        for (const Fallback& f : p.fallbacks) {
            CHECK(f.reason == std::string("the test device runs no ") + op_name(f.kind));
            CHECK(!kNoMatMul.count(f.kind));
        }
        const std::string summary = p.summary(split.plan);
        CHECK(summary.find("run on the CPU, not test:subset") != std::string::npos);
        CHECK(summary.find("mat_mul: the test device runs no mat_mul") != std::string::npos);
        dev->ops_run = 0;
        const Run a = run(cpu, 60, 6), b = run(split, 60, 6);
        CHECK(dev->ops_run > 0);
        CHECK(a.folded > 0);  // the fold graph ran (split: MemoryUpdate on the CPU)
        CHECK_EQ(a.folded, b.folded);
        CHECK(a.greedy == b.greedy);
        CHECK_EQ(a.logits.size(), b.logits.size());
        CHECK(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)) == 0);
        const Region& mem = cpu.plan.pool.region("mem.M");
        CHECK(std::memcmp(cpu.pool + mem.offset, split.pool + mem.offset, mem.size) == 0);
    }
    unregister_device("test:subset");
    CHECK_THROWS(find_device("test:subset"), EI_ERR_UNSUPPORTED, "not present");
}

// A device no op of a graph can run on: the whole graph is one CPU run.
TEST(device_without_ops_runs_all_on_cpu) {
    auto dev = std::make_shared<SubsetDevice>("test:none", "cpu", std::set<OpKind>{});
    register_device(dev);
    check::Harness cpu(check::testdata("models/tiny-llama-q8_0.gguf"), small("cpu"));
    check::Harness none(check::testdata("models/tiny-llama-q8_0.gguf"), small("test:none"));
    const size_t total = none.plan.prefill.ops.size() + none.plan.decode.ops.size() + none.plan.fold.ops.size();
    CHECK_EQ(none.plan.placement.fallbacks.size(), total);
    const Run a = run(cpu, 30, 2), b = run(none, 30, 2);
    CHECK_EQ(dev->ops_run, 0);
    CHECK(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)) == 0);
    unregister_device("test:none");
}

#if defined(EI_BACKEND_OPENCL)
// OpenCL runs everything but attention and the fold, which the CPU runs between OpenCL runs
// over the same host pool: every position within the attention tolerance of OpenCL alone,
// the same greedy tokens. Q4_K/Q6_K weights, whose OpenCL and CPU MatMuls round apart, so the
// comparison tells the three runs apart.
TEST(opencl_split_with_cpu_matches_opencl) {
    std::string why;
    if (opencl::present_devices(&why).empty()) {
        std::printf("  opencl_split_with_cpu_matches_opencl skipped: no OpenCL device (%s)\n", why.c_str());
        return;
    }
    const std::set<OpKind> no_attention = {OpKind::GetRows, OpKind::RmsNorm, OpKind::MatMul,
                                           OpKind::Rope,    OpKind::KvStore, OpKind::SwiGlu};
    auto dev = std::make_shared<SubsetDevice>("test:opencl-split", "opencl", no_attention);
    register_device(dev);
    check::Harness whole(check::testdata("models/tiny-llama-q4_k_m.gguf"), small("opencl"));
    check::Harness split(check::testdata("models/tiny-llama-q4_k_m.gguf"), small("test:opencl-split"));
    CHECK(whole.plan.placement.fallbacks.empty());
    CHECK(whole.plan.placement.device.rfind("opencl:", 0) == 0);
    CHECK(!split.plan.placement.fallbacks.empty());
    const Run a = run(whole, 60, 6), b = run(split, 60, 6);
    CHECK(dev->ops_run > 0);
    CHECK_EQ(a.folded, b.folded);
    const double e = nmse(b.logits, a.logits);
    check::Harness cpu(check::testdata("models/tiny-llama-q4_k_m.gguf"), small("cpu"));
    const Run c = run(cpu, 60, 6);
    std::printf("  OpenCL with attention and fold on the CPU vs OpenCL alone: logits NMSE %.3g (OpenCL vs CPU %.3g, "
                "split vs CPU %.3g)\n", e, nmse(a.logits, c.logits), nmse(b.logits, c.logits));
    CHECK(e <= 5e-4);
    CHECK(nmse(b.logits, c.logits) > 0);  // the MatMuls did run on OpenCL
    CHECK(a.greedy == b.greedy);
    // A split needs the pool on the host between runs: with a device-resident pool it is
    // refused when the session is made, saying why, not run on stale memory.
    setenv("EI_OPENCL_POOL", "device", 1);
    std::string refused;
    try {
        check::Harness device_pool(check::testdata("models/tiny-llama-q4_k_m.gguf"), small("test:opencl-split"));
    } catch (const Error& err) {
        refused = err.what();
        CHECK(err.status() == EI_ERR_UNSUPPORTED);
    }
    unsetenv("EI_OPENCL_POOL");
    std::printf("  split on a device-resident pool: %s\n", refused.c_str());
    CHECK(refused.find("host-visible") != std::string::npos);
    unregister_device("test:opencl-split");
}
#endif
