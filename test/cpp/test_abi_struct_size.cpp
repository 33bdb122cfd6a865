// The C ABI's extensible structs (edgeinfinite.h, "Extensible structs"), driven the way a C
// caller drives them: an old caller's smaller ei_scenario still plans, its missing trailing
// fields defaulted; sizes below the first version or absurdly large are refused with a
// message; a newer caller's larger struct is accepted only with its unknown bytes zero;
// ei_plan_scenario writes nothing past the caller's size. Also the device listing and the
// fallback report through the ABI.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "edgeinfinite/edgeinfinite.h"
#include "error.h"

namespace {

ei_model* load() {
    ei_model* m = nullptr;
    CHECK_EQ(int(ei_model_load(check::testdata("models/tiny-llama-q8_0.gguf").c_str(), &m)), int(EI_OK));
    return m;
}

// A small scenario; fields before device at their default (-1), the rest zero.
void fill(ei_scenario& sc) {
    sc.n_batch = 8;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.memory = -1;
    sc.memory_rule = -1;
    sc.memory_rope = -1;
    sc.n_threads = 1;
}

bool error_has(const char* needle) { return std::string(ei_last_error()).find(needle) != std::string::npos; }

}  // namespace

TEST(abi_version_is_3) { CHECK_EQ(ei_abi_version(), 3); }

// An old caller: the struct of the first version, without cache_dir, in a buffer whose bytes
// past it are garbage the library must not read.
TEST(old_caller_smaller_scenario_plans) {
    ei_model* m = load();
    std::vector<unsigned char> buf(sizeof(ei_scenario) + 64, 0xAB);
    ei_scenario* sc = reinterpret_cast<ei_scenario*>(buf.data());
    std::memset(sc, 0, EI_SCENARIO_SIZE_V1);
    sc->struct_size = static_cast<uint32_t>(EI_SCENARIO_SIZE_V1);
    fill(*sc);
    sc->device = "cpu";
    ei_plan* plan = nullptr;
    CHECK_EQ(int(ei_plan_create(m, sc, &plan)), int(EI_OK));
    if (plan) {
        CHECK(std::string(ei_plan_device(plan)) == "cpu");
        CHECK_EQ(ei_plan_fallback_count(plan), 0);
        // The resolved scenario into an old caller's struct: nothing written past its size.
        std::vector<unsigned char> out(sizeof(ei_scenario) + 16, 0xCD);
        ei_scenario* o = reinterpret_cast<ei_scenario*>(out.data());
        o->struct_size = static_cast<uint32_t>(EI_SCENARIO_SIZE_V1);
        CHECK_EQ(int(ei_plan_scenario(plan, o)), int(EI_OK));
        CHECK_EQ(o->n_batch, 8);
        CHECK_EQ(o->n_window, 16);
        CHECK(std::string(o->device) == "cpu");
        for (size_t i = EI_SCENARIO_SIZE_V1; i < out.size(); ++i) CHECK_EQ(int(out[i]), 0xCD);
        // A current caller gets cache_dir too (NULL).
        ei_scenario full;
        std::memset(&full, 0x7F, sizeof full);
        full.struct_size = sizeof full;
        CHECK_EQ(int(ei_plan_scenario(plan, &full)), int(EI_OK));
        CHECK(full.cache_dir == nullptr);
        CHECK_EQ(full.n_sink, 4);
        ei_plan_free(plan);
    }
    ei_model_free(m);
}

TEST(bad_scenario_sizes_are_refused) {
    ei_model* m = load();
    for (uint32_t size : {0u, 4u, static_cast<uint32_t>(EI_SCENARIO_SIZE_V1 - 4), 4097u, 0xFFFFFFFFu}) {
        std::vector<unsigned char> buf(8192, 0);
        ei_scenario* sc = reinterpret_cast<ei_scenario*>(buf.data());
        fill(*sc);
        sc->struct_size = size;
        ei_plan* plan = nullptr;
        CHECK_EQ(int(ei_plan_create(m, sc, &plan)), int(EI_ERR_INVALID_ARGUMENT));
        CHECK(plan == nullptr);
        CHECK(error_has("ei_scenario.struct_size"));
        ei_plan_free(plan);
    }
    ei_model_free(m);
}

// A newer header's larger struct: accepted when the fields this library does not know are
// zero, refused (naming the byte) when one is set.
TEST(newer_caller_larger_scenario) {
    ei_model* m = load();
    std::vector<unsigned char> buf(sizeof(ei_scenario) + 32, 0);
    ei_scenario* sc = reinterpret_cast<ei_scenario*>(buf.data());
    fill(*sc);
    sc->struct_size = static_cast<uint32_t>(buf.size());
    ei_plan* plan = nullptr;
    CHECK_EQ(int(ei_plan_create(m, sc, &plan)), int(EI_OK));
    ei_plan_free(plan);
    plan = nullptr;
    buf[sizeof(ei_scenario) + 5] = 1;
    CHECK_EQ(int(ei_plan_create(m, sc, &plan)), int(EI_ERR_INVALID_ARGUMENT));
    CHECK(error_has("does not know"));
    ei_model_free(m);
}

TEST(unknown_device_lists_the_present_ones) {
    ei_model* m = load();
    ei_scenario sc{};
    sc.struct_size = sizeof sc;
    fill(sc);
    sc.device = "tpu:3";
    ei_plan* plan = nullptr;
    CHECK_EQ(int(ei_plan_create(m, &sc, &plan)), int(EI_ERR_UNSUPPORTED));
    CHECK(error_has("device 'tpu:3' is not present (devices: cpu"));
    ei_model_free(m);
}

TEST(sampling_size_is_checked) {
    ei_model* m = load();
    ei_scenario sc{};
    sc.struct_size = sizeof sc;
    fill(sc);
    ei_plan* plan = nullptr;
    CHECK_EQ(int(ei_plan_create(m, &sc, &plan)), int(EI_OK));
    const uint64_t size = ei_plan_pool_size(plan), align = ei_plan_pool_alignment(plan);
    void* pool = std::aligned_alloc(align, (size + align - 1) / align * align);
    ei_session* s = nullptr;
    CHECK_EQ(int(ei_session_create(m, plan, pool, size, &s)), int(EI_OK));
    const int32_t prompt[3] = {5, 6, 7};
    ei_sampling sp{};
    sp.greedy = 1;
    sp.top_p = 1;
    sp.repeat_penalty = 1;
    sp.max_tokens = 2;
    sp.struct_size = 3;  // not a size of ei_sampling
    CHECK_EQ(int(ei_generate_begin(s, prompt, 3, 0, &sp, nullptr, 0)), int(EI_ERR_INVALID_ARGUMENT));
    CHECK(error_has("ei_sampling.struct_size"));
    sp.struct_size = sizeof sp;
    CHECK_EQ(int(ei_generate_begin(s, prompt, 3, 0, &sp, nullptr, 0)), int(EI_OK));
    ei_session_free(s);
    std::free(pool);
    ei_plan_free(plan);
    ei_model_free(m);
}

TEST(device_listing) {
    const int32_t n = ei_device_count();
    CHECK(n >= 1);
    const char *name = nullptr, *kind = nullptr, *features = nullptr;
    uint64_t memory = 0;
    int32_t units = 0;
    CHECK_EQ(int(ei_device_get(0, &name, &kind, nullptr, nullptr, nullptr, &features, &memory, nullptr, &units)),
             int(EI_OK));
    CHECK(name && std::string(name) == "cpu");
    CHECK(kind && std::string(kind) == "cpu");
    CHECK(features && std::string(features) == ei_cpu_features());
    CHECK(memory > 0);
    CHECK(units >= 1);
    for (int32_t i = 1; i < n; ++i) {
        CHECK_EQ(int(ei_device_get(i, &name, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr)),
                 int(EI_OK));
        // OpenCL devices in order, then the NPU emulator.
        CHECK(std::string(name) == (i == n - 1 ? std::string("htp-emulator") : "opencl:" + std::to_string(i - 1)) ||
              std::string(name) == "opencl:" + std::to_string(i - 1));
    }
    CHECK_EQ(int(ei_device_get(n, &name, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr)),
             int(EI_ERR_INVALID_ARGUMENT));
    CHECK(error_has("out of range"));
}

TEST(graph_op_counts) {
    ei_model* m = load();
    ei_scenario sc{};
    sc.struct_size = sizeof sc;
    fill(sc);
    ei_plan* plan = nullptr;
    CHECK_EQ(int(ei_plan_create(m, &sc, &plan)), int(EI_OK));
    int32_t total = 0, on_cpu = -1;
    CHECK_EQ(int(ei_plan_graph_ops(plan, "decode", &total, &on_cpu)), int(EI_OK));
    CHECK(total > 0);
    CHECK_EQ(on_cpu, 0);
    CHECK_EQ(int(ei_plan_graph_ops(plan, "nope", &total, &on_cpu)), int(EI_ERR_INVALID_ARGUMENT));
    CHECK_EQ(int(ei_plan_fallback(plan, 0, nullptr, nullptr, nullptr, nullptr, nullptr)), int(EI_ERR_INVALID_ARGUMENT));
    ei_plan_free(plan);
    ei_model_free(m);
}
