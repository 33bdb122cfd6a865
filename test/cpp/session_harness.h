// A model, its plan for a scenario and one session over a pool the test owns: what the
// native tests that drive ei::Session directly (below the C ABI) all need.
#pragma once
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
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

    Harness(const std::string& path, const ei::Scenario& sc) : Harness(ei::Model::load(path), sc) {}
    // A session on a model already loaded (several sessions of one model).
    Harness(std::shared_ptr<const ei::Model> m, const ei::Scenario& sc) : model(std::move(m)) {
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

// The index of the largest of n values (the first on ties).
inline int32_t argmax(const float* x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i) best = x[i] > x[best] ? i : best;
    return best;
}

// What the device tests compare across backends: a prompt evaluated in one call, then
// greedy decoding.
struct GreedyRun {
    std::vector<float> logits;       // every prompt position
    std::vector<float> step_logits;  // each decoded step's
    std::vector<int32_t> greedy;     // the continuation
    int64_t folded = 0;              // tokens in the memory at the end
};

// Runs prompt through h's session (the route planned for prompt + n_gen tokens), then n_gen
// greedy tokens.
inline GreedyRun greedy_run(Harness& h, const std::vector<int32_t>& prompt, int n_gen) {
    GreedyRun r;
    const int32_t V = h.session->n_vocab();
    r.logits.resize(prompt.size() * size_t(V));
    h.session->plan_route(int64_t(prompt.size()) + n_gen);
    const float* last = h.session->eval(prompt.data(), int32_t(prompt.size()), r.logits.data());
    for (int i = 0; i < n_gen; ++i) {
        const int32_t tok = argmax(last, V);
        r.greedy.push_back(tok);
        last = h.session->eval(&tok, 1);
        r.step_logits.insert(r.step_logits.end(), last, last + V);
    }
    r.folded = h.session->placement().memory;
    return r;
}

}  // namespace check
