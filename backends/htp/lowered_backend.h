// The host side of every device that runs lowered graphs (DESIGN §4, htp): one Backend over
// an executor. prepare() obtains each planned graph as a lowered QnnGraph (lower.h) and,
// once the session's graphs are all there, hands them to the executor; compute() is what an
// NPU host does around an execution: it fills the graph's inputs from the pool and the step
// inputs (the additive mask from step.visible, the RoPE rows, the cache rows in the graph's
// head layout, the memory), executes, and writes the outputs back where the CPU backend
// keeps them (the new K/V rows into their cache slots, the fold's memory, the logits), so a
// session's pool holds what it would on the CPU.
//
// The executor is what differs between devices: the emulator (htp-emulator: the graphs run
// on this CPU) or QNN (htp: the graphs built into a QNN context through the adapter). It
// gives the host one buffer per io tensor, in the tensor's storage type; the host writes the
// inputs there before an execution and reads the outputs after it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "htp/node_kernels.h"
#include "htp/qnn_ir.h"
#include "scenario.h"

namespace ei::htp {

class WeightStore;        // lower.h
struct QuantWeightCache;  // quantize_graph.h

class GraphExecutor {
public:
    virtual ~GraphExecutor() = default;
    // "htp-emulator", "htp": the device, for messages.
    virtual const char* name() const = 0;
    // Every graph the host will execute (distinct names), once, before any execution. The
    // graphs stay alive and unchanged while the executor is used.
    virtual void prepare(const std::vector<const QnnGraph*>& graphs) = 0;
    // The buffer of io tensor `tensor` (an AppWrite or AppRead id) of graph `graph`:
    // tensor.bytes() bytes, valid from prepare() until the executor is destroyed.
    virtual uint8_t* io_buffer(const std::string& graph, uint32_t tensor) = 0;
    // One execution of graph `graph` over its io buffers. observer (may be null) sees each
    // node's outputs where the executor can show them (observes_nodes()).
    virtual void execute(const std::string& graph, NodeObserver* observer) = 0;
    virtual bool observes_nodes() const { return false; }
};

// Runs the graphs with the emulator (emulator.h) on this CPU; observes nodes.
std::unique_ptr<GraphExecutor> make_emulator_executor();

// The lowered backend for a scenario over an executor. float_cache: lower with FLOAT_32
// cache tensors whatever the scenario's cache type (LowerOptions::float_cache; the host
// converts the pool's f16 rows).
std::unique_ptr<Backend> make_lowered_backend(const Scenario& scenario, std::unique_ptr<GraphExecutor> executor,
                                              bool float_cache = false);

// Sets the node observer of a lowered backend whose executor observes nodes (htp-emulator);
// false when backend is not one.
bool set_node_observer(Backend& backend, NodeObserver* observer);

class DeviceGraphs;
// The graphs' source of a lowered backend (its mode: float or quantized, set when a session
// binds the model); null when backend is not one.
const DeviceGraphs* device_graphs(const Backend& backend);

// A model's float weight store and its quantized forms, one of each per model (kept in its
// WeightCache): every lowered backend of the model's sessions binds these, so a second
// session converts and quantizes nothing.
std::shared_ptr<WeightStore> model_weight_store(WeightCache& cache);
std::shared_ptr<QuantWeightCache> model_quant_weights(WeightCache& cache);

}  // namespace ei::htp
