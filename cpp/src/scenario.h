// A scenario fixes every shape before the first token (DESIGN §2): from it and a model,
// the planner derives the pool and the two graphs. Nothing here depends on a prompt.
#pragma once
#include <cstdint>
#include <string>

#include "edgeinfinite/edgeinfinite.h"

namespace ei {

enum class KvType : int32_t { F16 = 0, F32 = 1 };

struct Scenario {
    int32_t n_ctx = 2048;    // tokens the full-attention KV cache holds
    int32_t n_batch = 128;   // L: query tokens per prefill graph run
    int32_t n_threads = 0;   // 0: one per available core
    KvType kv_type = KvType::F16;
    std::string backend = "cpu";

    // Throws ei::Error(EI_ERR_INVALID_ARGUMENT) naming the bad setting.
    void validate() const;
    // Threads to use after resolving 0.
    int32_t threads() const;
};

// Converts the C ABI struct (NULL: the defaults); validation happens when planning.
Scenario scenario_from_c(const ei_scenario* s);

}  // namespace ei
