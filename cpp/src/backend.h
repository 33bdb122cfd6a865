// The backend interface every compute backend implements (CPU, OpenCL; the Hexagon NPU
// plugs in beside them through the device registry). Kept smaller than ggml's: our graphs
// are fixed ahead of time, so a backend answers: can you run this op, what pool alignment
// do you need, what buffer do you compute on for a host pool, and run this graph over that
// buffer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph.h"
#include "pool_buffer.h"

namespace ei {

struct Scenario;
class WeightCache;
class Model;

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    // Whether the backend can execute op as planned (types, shapes).
    virtual bool supports(const Op& op) const = 0;
    // Alignment the backend needs for the pool base and every region.
    virtual uint64_t pool_alignment() const = 0;
    // The model the plan was made for, given before any prepare(): a backend whose prepared
    // form is kept per model outside the runtime (the NPU's quantization parameters in the
    // cache folder, keyed by Model::fingerprint) finds it by this.
    virtual void bind_model(const Model& model) { (void)model; }
    // Makes (or finds in the model's cache) whatever form of the graph's weights the
    // backend computes with; called once per graph when a session is created.
    virtual void prepare(const Graph& graph, WeightCache& cache) {
        (void)graph;
        (void)cache;
    }
    // The buffer this backend computes on over the host allocation a session was given
    // (Java owns that memory; the buffer must not outlive it, nor the backend). Default:
    // the host memory itself.
    virtual std::unique_ptr<PoolBuffer> wrap_host_pool(uint8_t* host, uint64_t size) {
        return std::make_unique<HostPoolBuffer>(host, size);
    }
    // Whether compute reads the step-input tensors (step_inputs.h) the session writes before
    // each step; the CPU lowering derives the same facts from StepParams and skips them.
    virtual bool reads_step_inputs() const { return false; }
    // Runs every op of graph over the pool for one step; pool is a buffer from the device
    // backend's wrap_host_pool (a CPU run of a split graph computes on its host memory).
    // Returns with every op finished and, when the buffer is host-visible, the pool on the
    // host, so the scheduler can run a CPU run right after (a device-resident pool stays on
    // the device: no split is allowed on one); the session still calls pool.synchronize()
    // before it reads results. Never allocates.
    virtual void compute(const Graph& graph, const StepParams& step, PoolBuffer& pool) = 0;
};

// Devices and the backends they make: device_registry.h. Which backend runs which op:
// scheduler.h.

}  // namespace ei
