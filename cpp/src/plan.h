// The planner: from a model and a scenario, the one buffer pool (named regions at fixed
// offsets) and the two fixed-shape graphs over it. Planning happens once per session;
// running never allocates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graph.h"
#include "model.h"
#include "scenario.h"

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
    Scenario scenario;
    PoolPlan pool;
    Graph prefill;  // up to scenario.n_batch tokens
    Graph decode;   // 1 token
    Graph fold;     // folds the oldest L window tokens of every layer into memory
};

Plan make_plan(const Model& model, const Scenario& scenario);

}  // namespace ei
