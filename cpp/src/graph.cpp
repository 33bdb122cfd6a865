#include "graph.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "error.h"

namespace ei {

const char* role_name(TensorRole r) {
    switch (r) {
        case TensorRole::Weight: return "weight";
        case TensorRole::StepInput: return "step_input";
        case TensorRole::Activation: return "activation";
        case TensorRole::State: return "state";
        case TensorRole::Output: return "output";
        case TensorRole::Scratch: return "scratch";
    }
    return "?";
}

const Tensor& Graph::tensor(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= tensors.size()) {
        fail(EI_ERR_INTERNAL, "graph '" + name + "' has no tensor #" + std::to_string(id));
    }
    return tensors[static_cast<size_t>(id)];
}

void op_access(const Op& op, std::vector<int32_t>& reads, std::vector<int32_t>& writes, std::vector<int32_t>& updates) {
    reads.clear();
    writes.clear();
    updates.clear();
    auto add = [](std::vector<int32_t>& v, const TensorRef& r) {
        if (r.valid() && r.id >= 0 && std::find(v.begin(), v.end(), r.id) == v.end()) v.push_back(r.id);
    };
    for (const TensorRef* r : {&op.positions, &op.slots, &op.visible, &op.rope_rows, &op.logit_row}) add(reads, *r);
    switch (op.kind) {
        case OpKind::GetRows:
        case OpKind::RmsNorm:
        case OpKind::Rope:
            add(reads, op.src0);
            add(reads, op.src1);
            add(writes, op.dst);
            break;
        case OpKind::MatMul:
            add(reads, op.src0);
            add(reads, op.src1);
            add(reads, op.src2);
            add(writes, op.aux);
            add(op.accumulate ? updates : writes, op.dst);
            break;
        case OpKind::KvStore:  // writes some rows of the caches and keeps the rest
            add(reads, op.src0);
            add(reads, op.src1);
            add(updates, op.dst);
            add(updates, op.src2);
            break;
        case OpKind::SegmentAttention:
            add(reads, op.src0);
            add(reads, op.q_nope);
            add(reads, op.src1);
            add(reads, op.src2);
            add(reads, op.mem_m);
            add(reads, op.mem_z);
            add(reads, op.gate_w);
            add(reads, op.gate_b);
            add(writes, op.aux);
            add(writes, op.dst);
            break;
        case OpKind::MemoryUpdate:
            add(reads, op.src1);
            add(reads, op.src2);
            add(writes, op.aux);
            add(updates, op.dst);
            add(updates, op.mem_m);
            add(updates, op.mem_z);
            break;
        case OpKind::SwiGlu:
            add(reads, op.src0);
            add(updates, op.dst);
            break;
    }
}

namespace {

std::string type_name(GgmlType t) {
    const char* n = type_traits(t).name;
    return n ? n : "type" + std::to_string(static_cast<int32_t>(t));
}

std::string ids(const Graph& g, const std::vector<int32_t>& v) {
    std::string s;
    for (int32_t id : v) {
        if (!s.empty()) s += ", ";
        s += g.tensors[static_cast<size_t>(id)].name + " #" + std::to_string(id);
    }
    return s;
}

}  // namespace

std::string describe_graph(const Graph& g) {
    std::string s = "graph " + g.name + ": up to " + std::to_string(g.max_tokens) + " tokens, " +
                    std::to_string(g.tensors.size()) + " tensors, " + std::to_string(g.ops.size()) + " ops\n";
    char line[512];
    for (const Tensor& t : g.tensors) {
        std::snprintf(line, sizeof line, "  #%-4d %-28s %-10s %-5s [%" PRId64 " x %" PRId64 "]", t.id, t.name.c_str(),
                      role_name(t.role), type_name(t.type).c_str(), t.rows, t.cols);
        s += line;
        if (t.where == TensorRef::Where::Pool) {
            std::snprintf(line, sizeof line, "  pool +%" PRIu64 ", %" PRIu64 " bytes", t.offset, t.bytes());
            s += line;
        }
        if (t.quantized) {
            std::snprintf(line, sizeof line, "  blocks of %" PRId64 " in %" PRIu64 " bytes", t.quant.block_size,
                          t.quant.block_bytes);
            s += line;
        }
        s += "\n";
    }
    for (size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        s += "  op " + std::to_string(i) + " " + op_name(op.kind);
        if (op.layer >= 0) s += " (layer " + std::to_string(op.layer) + ")";
        if (!op.writes.empty()) s += "  writes " + ids(g, op.writes);
        if (!op.updates.empty()) s += "  updates " + ids(g, op.updates);
        if (!op.reads.empty()) s += "  reads " + ids(g, op.reads);
        s += "\n";
    }
    return s;
}

}  // namespace ei
