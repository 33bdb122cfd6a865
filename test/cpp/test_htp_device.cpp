// The htp device end to end, over the fake QNN library (test/fake_qnn) in place of
// libQnnHtp.so: the registry finds the device through EI_QNN_HTP_LIB (set below before main,
// so this process's one probe sees it), a session on it runs the whole model through the
// QNN adapter (graphs built into a context, io bound as QnnIoBuffers, executed by the fake
// with the emulator), and its logits, greedy tokens and pool state equal the htp-emulator
// session's bit for bit: both run the same lowered graphs with the same kernels, so any
// difference is the adapter's or the host side's. The first htp session builds the context
// and writes its cache file; the second loads it (no graph built) and gives the same bits.
#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "device_registry.h"
#include "fake_qnn.h"
#include "htp/htp_backend.h"
#include "session_harness.h"

using namespace ei;

namespace {

// Before main: the registry probes QNN once per process, at its first listing.
const bool g_env_set = [] { return setenv("EI_QNN_HTP_LIB", EI_FAKE_QNN_LIB, 1) == 0; }();

struct Fake {
    void* dl = dlopen(EI_FAKE_QNN_LIB, RTLD_NOW | RTLD_LOCAL);  // the library the adapter opened
    std::string calls() const {
        auto f = reinterpret_cast<ei_fake_qnn_calls_fn>(dlsym(dl, "ei_fake_qnn_calls"));
        return f ? f() : "";
    }
    void fail(const char* call, uint64_t code) const {
        auto f = reinterpret_cast<ei_fake_qnn_fail_fn>(dlsym(dl, "ei_fake_qnn_fail"));
        if (!f) std::abort();
        f(call, code);
    }
    void reset(bool compute) const {
        auto r = reinterpret_cast<ei_fake_qnn_reset_fn>(dlsym(dl, "ei_fake_qnn_reset"));
        auto c = reinterpret_cast<ei_fake_qnn_set_compute_fn>(dlsym(dl, "ei_fake_qnn_set_compute"));
        if (!r || !c) std::abort();
        r();
        c(compute ? 1 : 0);
    }
    size_t count(const std::string& call) const {
        const std::string all = calls();
        size_t n = 0;
        for (size_t pos = 0; (pos = all.find(call, pos)) != std::string::npos; ++pos) n += pos == 0 || all[pos - 1] == '\n';
        return n;
    }
    ~Fake() {
        if (dl) dlclose(dl);
    }
};

struct Run : check::GreedyRun {
    std::vector<uint8_t> state;  // the K / V cache and the memory, as bytes
};

Run run(const std::string& model, Scenario sc, const std::string& device, const std::vector<int32_t>& prompt, int n_gen) {
    sc.device = device;
    sc.n_threads = 1;
    check::Harness h(model, sc);
    Run r;
    static_cast<check::GreedyRun&>(r) = check::greedy_run(h, prompt, n_gen);
    // Compared as one sequence: every prompt position, then each decoded step's.
    r.logits.insert(r.logits.end(), r.step_logits.begin(), r.step_logits.end());
    // Every slot the run wrote (the prompt and continuation outrun the ring: all of them).
    for (const char* name : {"kv.k", "kv.v", "mem.M", "mem.z"}) {
        const std::vector<uint8_t> b = h.read_region<uint8_t>(name);
        r.state.insert(r.state.end(), b.begin(), b.end());
    }
    return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
        }
        closedir(d);
    }
    return out;
}

}  // namespace

TEST(absent_library_is_explained_not_listed) {
    const htp::HtpProbe p = htp::probe_htp_library("/nonexistent/libQnnHtp.so");
    CHECK(!p.present);
    CHECK(p.why.rfind("htp: ", 0) == 0);
    CHECK(p.why.find("/nonexistent/libQnnHtp.so") != std::string::npos);
    CHECK(p.why.find("EI_QNN_HTP_LIB") != std::string::npos);  // says how to point at it
}

TEST(registry_finds_htp_through_the_env_var) {
    CHECK(g_env_set);
    const auto d = find_device("htp");
    std::printf("  htp: %s; %s; %s\n", d->desc().description.c_str(), d->desc().driver.c_str(), d->desc().features.c_str());
    CHECK(d->desc().kind == "accelerator");
    CHECK(d->desc().description.find("fake_HTP") != std::string::npos);  // the HTP provider, not the CPU one
    CHECK(d->desc().driver.find("fake-qnn-1.0") != std::string::npos);   // its build id
    CHECK(d->desc().driver.find("core 2.20.0") != std::string::npos);     // its API version
    CHECK(device_names().find("htp-emulator, htp") != std::string::npos);
}

// The memory route (S = 4, W = 24, L = 8 over 80 prompt tokens and 12 decoded: the ring
// wraps, the fold runs), every graph (prefill with every row's logits, decode, fold) through
// QNN. Each model with an f32 and the default f16 cache (FLOAT_16 cache tensors: 2-byte io).
TEST(htp_session_equals_htp_emulator_bit_for_bit_with_a_cached_context) {
    Fake fake;
    CHECK(fake.dl != nullptr);
    std::mt19937 rng(7);
    std::vector<int32_t> prompt(80);
    for (auto& t : prompt) t = 3 + int32_t(rng() % 1000);
    char tmpl[] = "/tmp/ei-htp-device-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    CHECK(dir != nullptr);
    for (const char* model : {"models/tiny-llama-f32.gguf", "models/tiny-qwen2-f32.gguf"}) {
        for (KvType kv : {KvType::F32, KvType::F16}) {
            Scenario sc;
            sc.n_sink = 4;
            sc.n_window = 24;
            sc.n_batch = 8;
            sc.kv_type = kv;
            sc.cache_dir = dir;
            const std::string path = check::testdata(model);
            const Run emu = run(path, sc, "htp-emulator", prompt, 12);
            for (const std::string& f : files_in(dir)) std::remove(f.c_str());
            fake.reset(true);
            const Run built = run(path, sc, "htp", prompt, 12);
            const size_t finalized = fake.count("QnnGraph_finalize"), saved = fake.count("QnnContext_getBinarySize");
            CHECK_EQ(files_in(dir).size(), size_t(1));  // the context cache file
            fake.reset(true);
            const Run loaded = run(path, sc, "htp", prompt, 12);
            const size_t from_binary = fake.count("QnnContext_createFromBinary"), created = fake.count("QnnGraph_create");
            std::printf("  %-27s %s cache: %lld folded; built: %zu graphs finalized, context saved %zu; second session: "
                        "context loaded %zu, graphs created %zu; logits %s / %s, state %s / %s\n",
                        model, kv == KvType::F32 ? "f32" : "f16", (long long)built.folded, finalized, saved, from_binary, created,
                        same_bits(emu.logits, built.logits) ? "equal" : "DIFFER", same_bits(emu.logits, loaded.logits) ? "equal" : "DIFFER",
                        emu.state == built.state ? "equal" : "DIFFER", emu.state == loaded.state ? "equal" : "DIFFER");
            CHECK(emu.folded > 0);
            CHECK_EQ(built.folded, emu.folded);
            CHECK_EQ(finalized, size_t(4));  // prefill, prefill_all_logits, decode, fold
            CHECK_EQ(saved, size_t(1));
            CHECK_EQ(from_binary, size_t(1));
            CHECK_EQ(created, size_t(0));
            CHECK(same_bits(emu.logits, built.logits));
            CHECK(same_bits(emu.logits, loaded.logits));
            CHECK(emu.greedy == built.greedy && emu.greedy == loaded.greedy);
            CHECK(emu.state == built.state);
            CHECK(emu.state == loaded.state);
        }
    }
    for (const std::string& f : files_in(dir)) std::remove(f.c_str());
    rmdir(dir);
    fake.reset(false);
}

// A node observer needs the emulator: the htp backend refuses it plainly.
TEST(htp_backend_has_no_node_observer) {
    Scenario sc;
    struct None : htp::NodeObserver {
        void after(const htp::Node&, const htp::ExecBuffers&) override {}
    } obs;
    auto be = find_device("htp")->create(sc);
    CHECK(!htp::set_node_observer(*be, &obs));
    CHECK(std::string(be->name()) == "htp");
}

// QNN failing under a session is an error naming the call and the graph; a cache folder that
// cannot be made is refused when the session is.
TEST(qnn_failures_under_a_session_are_clear_errors) {
    Fake fake;
    fake.reset(true);
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 24;
    sc.n_batch = 8;
    sc.device = "htp";
    sc.cache_dir = "off";  // build, write nothing
    const std::string path = check::testdata("models/tiny-qwen2-f32.gguf");
    {
        check::Harness h(path, sc);
        const int32_t tokens[3] = {5, 6, 7};
        fake.fail("QnnGraph_execute", 1000);
        CHECK_THROWS(h.session->eval(tokens, 3), EI_ERR_INTERNAL, "QnnGraph_execute failed (graph 'prefill')");
    }
    CHECK_EQ(fake.count("QnnContext_getBinarySize"), size_t(0));  // "off": no cache file written
    sc.cache_dir = "/proc/ei-no-such-folder/qnn";
    check::Harness* h = nullptr;
    CHECK_THROWS(h = new check::Harness(path, sc), EI_ERR_IO, "cannot create the QNN context cache folder /proc/ei-no-such-folder/qnn");
    delete h;
    fake.reset(false);
}
