#include "htp/emulator.h"

#include <cstring>
#include <string>

#include "error.h"

namespace ei::htp {

namespace {

// The kernel a node runs with: the float table where every tensor it touches is Float32 or
// Int32. Fixed-point nodes are quant_kernel's (the NPU arithmetic, built beside this in its
// own file); until that table is in the build, such a node is refused naming the op, so a
// quantized graph never runs silently in float.
NodeKernel pick_kernel(const QnnGraph& g, const Node& n) {
    bool plain = true;
    for (uint32_t id : n.inputs) plain &= !dtype_quantized(g.tensors[id].dtype);
    for (uint32_t id : n.outputs) plain &= !dtype_quantized(g.tensors[id].dtype);
    NodeKernel k = plain ? float_kernel(n.type) : nullptr;
    if (!k) {
        fail(EI_ERR_UNSUPPORTED, std::string("htp emulator: no ") + (plain ? "float" : "fixed-point") + " kernel for " +
                                     op_type_name(n.type) + " node '" + n.name + "' of graph '" + g.name + "'");
    }
    return k;
}

}  // namespace

Emulator::Emulator(QnnGraph graph) : graph_(std::move(graph)) {
    graph_.validate();
    // Reshape nodes could alias their input; every tensor gets its own buffer instead, which
    // keeps each node's output visible to an observer after later nodes ran.
    uint64_t total = 0;
    std::vector<uint64_t> offset(graph_.tensors.size(), 0);
    for (const Tensor& t : graph_.tensors) {
        if (t.kind == TensorKind::Static) continue;
        offset[t.id] = total;
        total += (t.bytes() + 63) / 64 * 64;
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
