#include "htp/emulator.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <string>

#include "error.h"

namespace ei::htp {

namespace {

// The kernel a node runs with: the float table where no tensor it touches is fixed point,
// else the fixed-point table (quant_kernels.cpp: the NPU's integer arithmetic, Converts at
// the float boundaries included). A node neither implements is refused, naming it.
NodeKernel pick_kernel(const QnnGraph& g, const Node& n) {
    bool plain = true;
    for (uint32_t id : n.inputs) plain &= !dtype_quantized(g.tensors[id].dtype);
    for (uint32_t id : n.outputs) plain &= !dtype_quantized(g.tensors[id].dtype);
    NodeKernel k = plain ? float_kernel(n.type) : quant_kernel(n.type);
    if (!k) {
        fail(EI_ERR_UNSUPPORTED, std::string("htp emulator: no ") + (plain ? "float" : "fixed-point") + " kernel for " +
                                     op_type_name(n.type) + " node '" + n.name + "' of graph '" + g.name + "'");
    }
    return k;
}

}  // namespace

Emulator::Emulator(QnnGraph graph) : graph_(std::move(graph)) {
    graph_.validate();
    // One arena, planned once: graph inputs and outputs get their own bytes; a Native tensor
    // holds its bytes from the node that makes it to the last node that reads it, then they
    // go back to a first-fit free list (a lowered prefill's per-layer score tensors would
    // otherwise take gigabytes at real model sizes). A node's outputs never share bytes with
    // its inputs, and the observer sees each node's outputs right after it ran.
    const size_t nt = graph_.tensors.size();
    auto size_of = [&](const Tensor& t) { return (t.bytes() + 63) / 64 * 64; };
    std::vector<int64_t> last_use(nt, -1);
    for (size_t i = 0; i < graph_.nodes.size(); ++i) {
        for (uint32_t id : graph_.nodes[i].inputs) last_use[id] = int64_t(i);
    }
    uint64_t total = 0;
    std::vector<uint64_t> offset(nt, 0);
    for (const Tensor& t : graph_.tensors) {
        if (t.kind == TensorKind::AppWrite || t.kind == TensorKind::AppRead) {
            offset[t.id] = total;
            total += size_of(t);
        }
    }
    std::vector<std::pair<uint64_t, uint64_t>> free_list;  // (offset, size), sorted by offset
    auto take = [&](uint64_t size) {
        for (size_t i = 0; i < free_list.size(); ++i) {
            if (free_list[i].second < size) continue;
            const uint64_t off = free_list[i].first;
            free_list[i].first += size;
            free_list[i].second -= size;
            if (free_list[i].second == 0) free_list.erase(free_list.begin() + long(i));
            return off;
        }
        const uint64_t off = total;
        total += size;
        return off;
    };
    auto give = [&](uint64_t off, uint64_t size) {
        auto it = std::lower_bound(free_list.begin(), free_list.end(), std::make_pair(off, uint64_t{0}));
        it = free_list.insert(it, {off, size});
        // Merge with the neighbours.
        if (it + 1 != free_list.end() && it->first + it->second == (it + 1)->first) {
            it->second += (it + 1)->second;
            free_list.erase(it + 1);
        }
        if (it != free_list.begin() && (it - 1)->first + (it - 1)->second == it->first) {
            (it - 1)->second += it->second;
            free_list.erase(it);
        }
    };
    for (size_t i = 0; i < graph_.nodes.size(); ++i) {
        const Node& n = graph_.nodes[i];
        for (uint32_t id : n.outputs) {
            const Tensor& t = graph_.tensors[id];
            if (t.kind == TensorKind::Native) offset[id] = take(size_of(t));
        }
        for (uint32_t id : n.outputs) {  // produced and never read: free at once
            const Tensor& t = graph_.tensors[id];
            if (t.kind == TensorKind::Native && last_use[id] < int64_t(i)) give(offset[id], size_of(t));
        }
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            const uint32_t id = n.inputs[k];
            const Tensor& t = graph_.tensors[id];
            bool first = true;  // a tensor read twice by one node is freed once
            for (size_t j = 0; j < k; ++j) first &= n.inputs[j] != id;
            if (first && t.kind == TensorKind::Native && last_use[id] == int64_t(i)) give(offset[id], size_of(t));
        }
    }
    storage_.assign(total, 0);
    buffers_.graph = &graph_;
    buffers_.ptr.resize(graph_.tensors.size());
    for (const Tensor& t : graph_.tensors) {
        buffers_.ptr[t.id] = t.kind == TensorKind::Static ? const_cast<uint8_t*>(t.data->data()) : storage_.data() + offset[t.id];
    }
    for (const Node& n : graph_.nodes) kernels_.push_back(pick_kernel(graph_, n));
}

int64_t Emulator::find(IoRole role, int32_t layer) const {
    for (const Tensor& t : graph_.tensors) {
        if (t.io == role && t.layer == layer) return t.id;
    }
    return -1;
}

void Emulator::run(NodeObserver* observer) {
    for (size_t i = 0; i < graph_.nodes.size(); ++i) {
        kernels_[i](graph_.nodes[i], buffers_);
        if (observer) observer->after(graph_.nodes[i], buffers_);
    }
}

}  // namespace ei::htp
