// A model, its plan for a scenario and one session over a pool the test owns: what the
// native tests that drive ei::Session directly (below the C ABI) all need.
#pragma once
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "model.h"
#include "plan.h"
#include "session.h"

namespace check {

struct Harness {
    std::shared_ptr<const ei::Model> model;
    ei::Plan plan;
    uint8_t* pool = nullptr;
    std::unique_ptr<ei::Session> session;

    Harness(const std::string& path, const ei::Scenario& sc) : model(ei::Model::load(path)) {
        plan = ei::make_plan(model, sc);
        pool = static_cast<uint8_t*>(std::aligned_alloc(64, plan.pool.size));
        try {
            session = std::make_unique<ei::Session>(plan, pool, plan.pool.size);
        } catch (...) {  // a session refused: the destructor will not run, so free the pool here
            std::free(pool);
            throw;
        }
    }
    ~Harness() {
        session.reset();
        std::free(pool);
    }
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;

    // A pool region seen as an array of T (the host memory: a host-visible pool only).
    template <typename T>
    T* region(const char* name) {
        return reinterpret_cast<T*>(pool + plan.pool.region(name).offset);
    }
    // A copy of a pool region read through the session's buffer (any buffer type).
    template <typename T>
    std::vector<T> read_region(const char* name) {
        const ei::Region& r = plan.pool.region(name);
        std::vector<T> out(r.size / sizeof(T));
        session->pool_buffer().read(r.offset, out.data(), out.size() * sizeof(T));
        return out;
    }
};

}  // namespace check
