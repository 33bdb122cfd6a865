#include "scenario.h"

#include <thread>

#include "error.h"

namespace ei {

void Scenario::validate() const {
    auto bad = [](const std::string& m) { fail(EI_ERR_INVALID_ARGUMENT, "scenario: " + m); };
    if (n_batch <= 0) bad("segment length L (n_batch) must be positive, got " + std::to_string(n_batch));
    if (n_ctx <= 0) bad("context size must be positive, got " + std::to_string(n_ctx));
    if (n_batch > 4096) bad("segment length L = " + std::to_string(n_batch) + " exceeds 4096");
    if (n_ctx > (1 << 24)) bad("context size " + std::to_string(n_ctx) + " exceeds 16M tokens");
    if (n_threads < 0 || n_threads > 256) bad("threads must be 0 (auto) to 256, got " + std::to_string(n_threads));
    if (kv_type != KvType::F16 && kv_type != KvType::F32) bad("unknown KV type " + std::to_string(int(kv_type)));
    if (backend != "cpu") {
        fail(EI_ERR_UNSUPPORTED, "scenario: backend '" + backend + "' is not available in this build (available: cpu)");
    }
}

int32_t Scenario::threads() const {
    if (n_threads > 0) return n_threads;
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int32_t>(hw);
}

Scenario scenario_from_c(const ei_scenario* s) {
    Scenario sc;
    if (!s) return sc;
    sc.n_ctx = s->n_ctx;
    sc.n_batch = s->n_batch;
    sc.n_threads = s->n_threads;
    sc.kv_type = static_cast<KvType>(s->kv_type);
    if (s->backend && *s->backend) sc.backend = s->backend;
    return sc;
}

}  // namespace ei
