// The planner: from a model and a scenario, the one buffer pool (named regions at fixed
// offsets) and the two fixed-shape graphs over it. Planning happens once per session;
// running never allocates.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph.h"
#include "model.h"
#include "scenario.h"
#include "scheduler.h"
#include "step_inputs.h"

namespace ei {

struct Region {
    std::string name;
    uint64_t offset = 0;
    uint64_t size = 0;
};

struct PoolPlan {
    uint64_t size = 0;
    uint64_t alignment = 64;
    std::vector<Region> regions;

    const Region& region(const std::string& name) const;  // throws EI_ERR_INTERNAL if absent
};

struct Plan {
    // The model the graphs were built for: they point into its weights, so the plan (and
    // every session made from it) keeps the model alive.
    std::shared_ptr<const Model> model;
    Scenario scenario;
    PoolPlan pool;
    Graph prefill;  // up to scenario.n_batch tokens
    Graph decode;   // 1 token
    Graph fold;     // folds the oldest L window tokens of every layer into memory
    Placement placement;  // which device runs each op (scheduler.h)
    StepInputLayout step_inputs;  // where the per-step input tensors live in the pool
};

Plan make_plan(std::shared_ptr<const Model> model, const Scenario& scenario);

}  // namespace ei
