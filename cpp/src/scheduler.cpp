#include "scheduler.h"

#include <algorithm>

#include "device_registry.h"
#include "error.h"
#include "plan.h"

namespace ei {

namespace {

std::vector<uint8_t> place(const Graph& g, const Device& device, const Device& cpu, std::vector<Fallback>& fallbacks) {
    std::vector<uint8_t> on_cpu(g.ops.size(), 0);
    for (size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        const std::string why = device.why_unsupported(op);
        if (why.empty()) continue;
        const std::string where = op.layer >= 0 ? " in layer " + std::to_string(op.layer) : "";
        if (&device == &cpu) {
            // The loader and Scenario::validate check every CPU limit first: reaching this is a bug.
            fail(EI_ERR_UNSUPPORTED, "device 'cpu' cannot run op " + std::string(op_name(op.kind)) + where + " of graph '" +
                                         g.name + "': " + why);
        }
        if (const std::string cpu_why = cpu.why_unsupported(op); !cpu_why.empty()) {
            fail(EI_ERR_UNSUPPORTED, "neither device '" + device.name() + "' (" + why + ") nor the CPU (" + cpu_why +
                                         ") can run op " + op_name(op.kind) + where + " of graph '" + g.name + "'");
        }
        on_cpu[i] = 1;
        fallbacks.push_back(Fallback{g.name, static_cast<int32_t>(i), op.kind, op.layer, why});
    }
    return on_cpu;
}

}  // namespace

const std::vector<uint8_t>* Placement::on_cpu(const std::string& graph) const {
    if (graph == "prefill") return &prefill_on_cpu;
    if (graph == "decode") return &decode_on_cpu;
    if (graph == "fold") return &fold_on_cpu;
    return nullptr;
}

std::string Placement::summary(const Plan& plan) const {
    const size_t total = plan.prefill.ops.size() + plan.decode.ops.size() + plan.fold.ops.size();
    if (fallbacks.empty()) return "all " + std::to_string(total) + " ops on " + device;
    std::string s = std::to_string(fallbacks.size()) + " of " + std::to_string(total) + " ops run on the CPU, not " +
                    device + ":";
    // Ops of one kind that fall back for one reason are one line: the reason is per type.
    struct Group {
        OpKind kind;
        std::string reason;
        int count;
    };
    std::vector<Group> groups;
    for (const Fallback& f : fallbacks) {
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const Group& g) { return g.kind == f.kind && g.reason == f.reason; });
        if (it == groups.end()) groups.push_back(Group{f.kind, f.reason, 1});
        else ++it->count;
    }
    for (const Group& g : groups) s += "\n  " + std::to_string(g.count) + " x " + op_name(g.kind) + ": " + g.reason;
    return s;
}

Placement place_graphs(const Plan& plan) {
    const std::shared_ptr<const Device> device = find_device(plan.scenario.device);
    const std::shared_ptr<const Device> cpu = cpu_device();
    Placement p;
    p.device = device->name();
    p.prefill_on_cpu = place(plan.prefill, *device, *cpu, p.fallbacks);
    p.decode_on_cpu = place(plan.decode, *device, *cpu, p.fallbacks);
    p.fold_on_cpu = place(plan.fold, *device, *cpu, p.fallbacks);
    return p;
}

Scheduler::Scheduler(const Plan& plan) : Scheduler(plan, find_device(plan.placement.device)->create(plan.scenario)) {}

Scheduler::Scheduler(const Plan& plan, std::unique_ptr<Backend> device) : device_(std::move(device)) {
    if (!device_) fail(EI_ERR_INVALID_ARGUMENT, "the device backend is null");
    if (plan.model) device_->bind_model(*plan.model);
    const Placement& p = plan.placement;
    if (!p.fallbacks.empty() && p.device != "cpu") cpu_ = cpu_device()->create(plan.scenario);
    const Graph* graphs[3] = {&plan.prefill, &plan.decode, &plan.fold};
    const std::vector<uint8_t>* on_cpu[3] = {&p.prefill_on_cpu, &p.decode_on_cpu, &p.fold_on_cpu};
    for (int i = 0; i < 3; ++i) {
        if (on_cpu[i]->size() != graphs[i]->ops.size()) {
            fail(EI_ERR_INTERNAL, "the plan's placement does not match its graph '" + graphs[i]->name + "'");
        }
        schedules_[i].graph = graphs[i];
        schedule(schedules_[i], *on_cpu[i]);
    }
}

void Scheduler::prepare(WeightCache& weights) {
    for (Schedule& s : schedules_) {
        if (s.whole) {
            s.whole->prepare(*s.graph, weights);
        } else {
            for (Run& r : s.runs) r.backend->prepare(r.ops, weights);
        }
    }
}

Scheduler::~Scheduler() = default;

void Scheduler::schedule(Schedule& s, const std::vector<uint8_t>& on_cpu) {
    const Graph& g = *s.graph;
    const bool any_cpu = std::find(on_cpu.begin(), on_cpu.end(), 1) != on_cpu.end();
    if (!any_cpu || !cpu_) {
        s.whole = device_.get();
        return;
    }
    for (size_t i = 0; i < g.ops.size(); ++i) {
        Backend* b = on_cpu[i] ? cpu_.get() : device_.get();
        if (s.runs.empty() || s.runs.back().backend != b) {
            Run r{b, Graph{}};
            r.ops.name = g.name;
            r.ops.max_tokens = g.max_tokens;
            s.runs.push_back(std::move(r));
        }
        s.runs.back().ops.ops.push_back(g.ops[i]);
    }
}

uint64_t Scheduler::pool_alignment() const {
    return std::max(device_->pool_alignment(), cpu_ ? cpu_->pool_alignment() : uint64_t{1});
}

std::unique_ptr<PoolBuffer> Scheduler::wrap_host_pool(uint8_t* host, uint64_t size) {
    std::unique_ptr<PoolBuffer> buffer = device_->wrap_host_pool(host, size);
    // A CPU run computes on the pool's host memory, so a split needs a host-visible buffer.
    if (cpu_ && !buffer->host()) {
        fail(EI_ERR_UNSUPPORTED, std::string("ops placed on the CPU need a host-visible pool, and device ") +
                                     device_->name() + " keeps its pool in device memory (EI_OPENCL_POOL=zero-copy)");
    }
    return buffer;
}

bool Scheduler::reads_step_inputs() const { return device_->reads_step_inputs(); }

void Scheduler::compute(const Graph& g, const StepParams& step, PoolBuffer& pool) {
    for (Schedule& s : schedules_) {
        if (s.graph != &g) continue;
        if (s.whole) {
            s.whole->compute(g, step, pool);
        } else {
            // compute() returns with the pool on the host, so the next run reads it as is.
            for (Run& r : s.runs) r.backend->compute(r.ops, step, pool);
        }
        return;
    }
    fail(EI_ERR_INTERNAL, "graph '" + g.name + "' is not one of the session's plan");
}

}  // namespace ei
