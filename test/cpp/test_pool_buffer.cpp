// Pool I/O through a buffer (cpp/src/pool_buffer.h): the session reads and writes the pool
// only through its backend's buffer, and only after synchronize(). A test backend keeps
// the pool in memory of its own that is not host-visible (like a discrete GPU's) and
// poisons the host allocation the session was given: a session on it must give the CPU
// session's logits, states and route bit for bit, and leave the host allocation untouched.
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "error.h"
#include "session_harness.h"
#include "step_inputs.h"

using namespace ei;

namespace {

constexpr uint8_t kPoison = 0xA5;

// Device memory the host cannot see: reads and writes are copies, and a read or write
// while a step may still be running (no synchronize() since compute) is a test failure.
class DeviceBuffer final : public PoolBuffer {
public:
    explicit DeviceBuffer(uint64_t bytes) : size_(bytes), mem_(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64))) {
        std::memset(mem_, 0x5A, bytes);  // garbage: the session must initialise what it uses
    }
    ~DeviceBuffer() override { std::free(mem_); }
    uint64_t size() const override { return size_; }
    void write(uint64_t offset, const void* src, uint64_t bytes) override {
        check_range(size(), offset, bytes, "write");
        CHECK(!pending);
        std::memcpy(mem_ + offset, src, bytes);
        ++writes;
    }
    void read(uint64_t offset, void* dst, uint64_t bytes) const override {
        check_range(size(), offset, bytes, "read");
        CHECK(!pending);
        std::memcpy(dst, mem_ + offset, bytes);
    }
    void zero(uint64_t offset, uint64_t bytes) override {
        check_range(size(), offset, bytes, "zero");
        CHECK(!pending);
        std::memset(mem_ + offset, 0, bytes);
    }
    void synchronize() override { pending = false; }
    uint8_t* host() const override { return nullptr; }

    HostPoolBuffer device_view() { return HostPoolBuffer(mem_, size_); }
    bool pending = false;
    int64_t writes = 0;

private:
    uint64_t size_;
    uint8_t* mem_;
};

// The CPU backend computing on DeviceBuffer memory, as a device backend would. It reads
// the step inputs as a device does, and checks each step's against its StepParams.
class DeviceLikeBackend final : public Backend {
public:
    explicit DeviceLikeBackend(const StepInputLayout& l) : cpu_(cpu::make_cpu_backend(2)), l_(l) {}
    bool reads_step_inputs() const override { return true; }
    int64_t steps_checked = 0;
    const char* name() const override { return "device-like"; }
    bool supports(const Op& op) const override { return cpu_->supports(op); }
    uint64_t pool_alignment() const override { return cpu_->pool_alignment(); }
    void prepare(const Graph& g, WeightCache& cache) override { cpu_->prepare(g, cache); }
    std::unique_ptr<PoolBuffer> wrap_host_pool(uint8_t* host, uint64_t size) override {
        std::memset(host, kPoison, size);
        return std::make_unique<DeviceBuffer>(size);
    }
    void compute(const Graph& g, const StepParams& step, PoolBuffer& pool) override {
        auto& d = dynamic_cast<DeviceBuffer&>(pool);
        HostPoolBuffer view = d.device_view();
        check_step_inputs(g, step, view.host());
        cpu_->compute(g, step, view);
        d.pending = true;  // "still running" until the session synchronizes
    }

private:
    template <typename T>
    static T at(const uint8_t* mem, uint64_t off, int64_t i) {
        T v;
        std::memcpy(&v, mem + off + uint64_t(i) * sizeof(T), sizeof(T));
        return v;
    }
    void check_step_inputs(const Graph& g, const StepParams& s, const uint8_t* mem) {
        const int32_t n = s.n_tokens;
        if (g.name == "fold") {
            for (int32_t i = 0; i < n; ++i) CHECK(at<int32_t>(mem, l_.fold_slot, i) == kv_slot(s.fold_start + i, l_.n_sink, l_.ring));
        } else {
            for (int32_t t = 0; t < n; ++t) {
                CHECK(at<int64_t>(mem, l_.pos, t) == s.pos0 + t);
                CHECK(at<int32_t>(mem, l_.kv_slot, t) == kv_slot(s.pos0 + t, l_.n_sink, l_.ring));
            }
            CHECK(at<int32_t>(mem, l_.visible, kVisNValid) == n);
            CHECK(at<int32_t>(mem, l_.logit_row, 0) == (s.all_logits ? -1 : n - 1));
        }
        ++steps_checked;
    }

    std::unique_ptr<Backend> cpu_;
    StepInputLayout l_;
};

struct DeviceSession {
    std::shared_ptr<const Model> model;
    Plan plan;
    uint8_t* host;
    DeviceLikeBackend* backend = nullptr;  // owned by the session
    std::unique_ptr<Session> session;
    DeviceSession(const std::string& path, const Scenario& sc) : model(Model::load(path)) {
        plan = make_plan(model, sc);
        host = static_cast<uint8_t*>(std::aligned_alloc(64, plan.pool.size));
        auto b = std::make_unique<DeviceLikeBackend>(plan.step_inputs);
        backend = b.get();
        session = std::make_unique<Session>(plan, host, plan.pool.size, std::move(b));
    }
    ~DeviceSession() {
        session.reset();
        std::free(host);
    }
    bool host_untouched() const {
        for (uint64_t i = 0; i < plan.pool.size; ++i) {
            if (host[i] != kPoison) return false;
        }
        return true;
    }
};

Scenario scenario() {
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_batch = 8;
    sc.n_threads = 2;
    return sc;
}

std::vector<int32_t> tokens(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = 3 + int32_t(rng() % 200);
    return t;
}

bool same_logits(const float* a, const float* b, int32_t n) { return std::memcmp(a, b, sizeof(float) * size_t(n)) == 0; }

}  // namespace

TEST(host_buffer_refuses_ranges_outside_the_pool) {
    std::vector<uint8_t> mem(128, 0);
    HostPoolBuffer b(mem.data(), mem.size());
    uint8_t x[16] = {1, 2, 3};
    b.write(112, x, 16);
    CHECK(mem[112] == 1 && mem[114] == 3);
    b.zero(112, 16);
    CHECK(mem[112] == 0);
    auto refused = [](auto f) {
        try {
            f();
        } catch (const Error& e) {
            return e.status() == EI_ERR_INTERNAL;
        }
        return false;
    };
    // Through volatiles: constant ranges known to be outside make the compiler warn about
    // the copy the check prevents.
    volatile uint64_t at = 113, huge = std::numeric_limits<uint64_t>::max();
    CHECK(refused([&] { b.write(at, x, 16); }));
    CHECK(refused([&] { b.read(huge, x, 2); }));
    CHECK(refused([&] { b.zero(1, huge); }));
    CHECK(b.host() == mem.data() && b.size() == 128);
}

TEST(session_on_a_device_buffer_equals_the_cpu_session) {
    const std::string path = check::testdata("models/tiny-llama-f32.gguf");
    check::Harness cpu(path, scenario());
    DeviceSession dev(path, scenario());
    const int32_t V = cpu.session->n_vocab();
    // Long enough to fold twice (S + W + L = 28), with every row's logits.
    const std::vector<int32_t> t = tokens(45, 7);
    std::vector<float> all_cpu(t.size() * size_t(V)), all_dev(t.size() * size_t(V));
    const float* a = cpu.session->eval(t.data(), int32_t(t.size()), all_cpu.data());
    const float* b = dev.session->eval(t.data(), int32_t(t.size()), all_dev.data());
    CHECK(same_logits(a, b, V));
    CHECK(all_cpu == all_dev);
    CHECK(dev.session->route() == Route::Memory && dev.session->placement().memory > 0);
    // Decode steps, one token at a time.
    for (int32_t tok : tokens(5, 11)) {
        CHECK(same_logits(cpu.session->eval(&tok, 1), dev.session->eval(&tok, 1), V));
    }
    // State out and back in, through the buffer.
    const std::vector<uint8_t> state = cpu.session->state_bytes();
    CHECK(dev.session->state_bytes() == state);
    dev.session->reset();
    CHECK(dev.session->n_past() == 0);
    dev.session->load_state_bytes(state.data(), state.size(), "cpu");
    const int32_t next = 42;
    CHECK(same_logits(cpu.session->eval(&next, 1), dev.session->eval(&next, 1), V));
    // Reset clears the memory through the buffer: the same prompt gives the same logits again.
    cpu.session->reset();
    dev.session->reset();
    CHECK(same_logits(cpu.session->eval(t.data(), 20), dev.session->eval(t.data(), 20), V));
    CHECK(dev.host_untouched());
    CHECK(dev.backend->steps_checked > 15);  // prefill, decode and fold steps all had their inputs
}

TEST(generation_on_a_device_buffer_equals_the_cpu_session) {
    const std::string path = check::testdata("models/tiny-qwen2-f32.gguf");
    check::Harness cpu(path, scenario());
    DeviceSession dev(path, scenario());
    Session::GenerateOptions o;
    o.sampling.temperature = 0;
    o.max_tokens = 24;
    const std::vector<int32_t> prompt = tokens(13, 3);
    cpu.session->begin(prompt.data(), int32_t(prompt.size()), 0, o);
    dev.session->begin(prompt.data(), int32_t(prompt.size()), 0, o);
    for (int i = 0; i < 24; ++i) {
        const Session::Piece& p = cpu.session->next();
        const int32_t want = p.token;
        const bool done = p.done != StopReason::None;
        const Session::Piece& q = dev.session->next();
        CHECK(q.token == want);
        if (done) break;
    }
    CHECK(dev.host_untouched());
}

TEST(cancel_on_a_device_buffer_keeps_the_last_logits) {
    const std::string path = check::testdata("models/tiny-llama-f32.gguf");
    check::Harness cpu(path, scenario());
    DeviceSession dev(path, scenario());
    const int32_t V = cpu.session->n_vocab();
    const std::vector<int32_t> t = tokens(30, 5);  // four segments of L = 8
    auto cancel_after_two = [](void* user, int64_t done, int64_t) {
        if (done >= 16) static_cast<Session*>(user)->set_cancel(true);
    };
    for (Session* s : {cpu.session.get(), dev.session.get()}) {
        std::vector<float> all(t.size() * size_t(V));
        bool cancelled = false;
        try {
            s->eval(t.data(), int32_t(t.size()), all.data(), cancel_after_two, s);
        } catch (const Error& e) {
            cancelled = e.status() == EI_ERR_CANCELLED;
        }
        CHECK(cancelled);
        CHECK(s->n_past() == 16);
        s->set_cancel(false);
    }
    CHECK(cpu.session->last_logits() && dev.session->last_logits());
    CHECK(same_logits(cpu.session->last_logits(), dev.session->last_logits(), V));
    CHECK(dev.host_untouched());
}
