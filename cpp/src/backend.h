// The backend interface every compute backend implements (CPU, OpenCL; the Hexagon NPU
// plugs in beside them through the device registry). Kept smaller than ggml's: our graphs
// are fixed ahead of time, so a backend only answers three questions: can you run this
// op, what pool alignment do you need, and run this graph over this pool.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph.h"

namespace ei {

struct Scenario;
class WeightCache;

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    // Whether the backend can execute op as planned (types, shapes).
    virtual bool supports(const Op& op) const = 0;
    // Alignment the backend needs for the pool base and every region.
    virtual uint64_t pool_alignment() const = 0;
    // Makes (or finds in the model's cache) whatever form of the graph's weights the
    // backend computes with; called once per graph when a session is created.
    virtual void prepare(const Graph& graph, WeightCache& cache) {
        (void)graph;
        (void)cache;
    }
    // Runs every op of graph over the pool for one step. Never allocates. Returns with the
    // pool on the host and every op finished (the scheduler runs a CPU run right after).
    virtual void compute(const Graph& graph, const StepParams& step, uint8_t* pool) = 0;
};

// Devices and the backends they make: device_registry.h. Which backend runs which op:
// scheduler.h.

}  // namespace ei
