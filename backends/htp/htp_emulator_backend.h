// The `htp-emulator` device's backend: the Hexagon NPU path run on the CPU. It is the
// lowered backend (lowered_backend.h: the host side every lowered-graph device shares) with
// the emulator as its executor (emulator.h), so everything but the QNN calls runs here.
#pragma once
#include <memory>

#include "backend.h"
#include "htp/lowered_backend.h"
#include "scenario.h"

namespace ei::htp {

// float_cache: lower with FLOAT_32 cache tensors whatever the scenario's cache type
// (LowerOptions::float_cache; the host converts the pool's f16 rows).
std::unique_ptr<Backend> make_htp_emulator_backend(const Scenario& scenario, bool float_cache = false);

}  // namespace ei::htp
