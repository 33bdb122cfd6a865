// Placement and scheduling of a plan's graphs over devices (DESIGN §4). At planning, every
// op goes to the scenario's device when it can run it and to the CPU when it cannot; the
// split is recorded with the reason (Placement), never silent. At run time the Scheduler
// runs each graph as maximal runs of consecutive ops on one backend. A backend's compute()
// returns with a host-visible pool back on the host (the OpenCL backend maps it back), so a
// CPU run can follow a device run directly; a split on a device-resident pool is refused
// when the session is made. A graph wholly on one backend is one plain compute().
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "graph.h"

namespace ei {

struct Plan;
class WeightCache;

// An op of a graph its device cannot run, placed on the CPU.
struct Fallback {
    std::string graph;      // "prefill", "decode", "fold"
    int32_t op_index = 0;   // position in the graph
    OpKind kind = OpKind::GetRows;
    int32_t layer = -1;
    std::string reason;     // the device's own words
};

struct Placement {
    std::string device;     // the device's registry name ("cpu", "opencl:0")
    // Per graph, per op: 1 when the op runs on the CPU by fallback.
    std::vector<uint8_t> prefill_on_cpu, decode_on_cpu, fold_on_cpu;
    std::vector<Fallback> fallbacks;

    const std::vector<uint8_t>* on_cpu(const std::string& graph) const;  // nullptr: no such graph
    // One line for people: "3 of 125 ops on the CPU: mat_mul (layer -1, decode #40): ...".
    std::string summary(const Plan& plan) const;
};

// Places the plan's graphs on its scenario's device. Throws EI_ERR_UNSUPPORTED when the
// device is not present (naming those that are) or an op runs on neither it nor the CPU.
Placement place_graphs(const Plan& plan);

class Scheduler {
public:
    // Creates the backends the plan's placement needs (the device's; the CPU's too when ops
    // fall back) and splits the graphs into their runs.
    explicit Scheduler(const Plan& plan);
    // The same with the device's backend made by the caller (Session's test door).
    Scheduler(const Plan& plan, std::unique_ptr<Backend> device);
    ~Scheduler();
    // The largest pool alignment of the backends in use.
    uint64_t pool_alignment() const;
    // Each backend prepares the weights of the ops it runs (once per model and device: the
    // forms live in the model's cache).
    void prepare(WeightCache& weights);
    // The pool buffer the session does its I/O through: the device backend's over the host
    // allocation (a CPU run of a split graph computes on its host memory).
    std::unique_ptr<PoolBuffer> wrap_host_pool(uint8_t* host, uint64_t size);
    // Whether the device backend reads the step-input tensors (step_inputs.h).
    bool reads_step_inputs() const;
    // Runs graph (one of the plan's) for one step. Never allocates.
    void compute(const Graph& graph, const StepParams& step, PoolBuffer& pool);

private:
    struct Run {
        Backend* backend;
        Graph ops;  // the run's consecutive ops (name and max_tokens as the whole graph's)
    };
    struct Schedule {
        const Graph* graph = nullptr;
        Backend* whole = nullptr;  // every op on this backend: one plain compute
        std::vector<Run> runs;     // else these in order
    };
    void schedule(Schedule& s, const std::vector<uint8_t>& on_cpu);  // fills s.whole or s.runs

    std::unique_ptr<Backend> device_, cpu_;  // cpu_ only when some op falls back
    Schedule schedules_[3];
};

}  // namespace ei
