// The `htp-emulator` device's backend: the Hexagon NPU path run on the CPU. prepare() lowers
// each planned graph once (lower.h); compute() is the host side an NPU backend has: it fills
// the lowered graph's inputs from the pool and the step inputs, executes the graph with the
// emulator (emulator.h), and writes its outputs back where the CPU backend keeps them (the
// new K/V rows into their cache slots, the fold's memory, the logits), so a session's pool
// holds what it would on the CPU.
#pragma once
#include <memory>

#include "backend.h"
#include "htp/node_kernels.h"
#include "scenario.h"

namespace ei::htp {

// float_cache: lower with FLOAT_32 cache tensors whatever the scenario's cache type
// (LowerOptions::float_cache; the host converts the pool's f16 rows).
std::unique_ptr<Backend> make_htp_emulator_backend(const Scenario& scenario, bool float_cache = false);

// Sets the node observer of an htp-emulator backend (tools that measure per-node values);
// false when backend is not one.
bool set_node_observer(Backend& backend, NodeObserver* observer);

class DeviceGraphs;
// The graphs' source of an htp-emulator backend (its mode: float or quantized, set when a
// session binds the model); null when backend is not one.
const DeviceGraphs* device_graphs(const Backend& backend);

}  // namespace ei::htp
