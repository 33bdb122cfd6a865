// Executes a lowered graph (qnn_ir.h) on the CPU: the reference the NPU path is measured
// with. One arena for every non-static tensor is planned and allocated when the emulator is
// made (inner tensors share bytes once dead) and reused by every execution; Static tensors
// point at the graph's data. Each node runs the
// kernel its tensors' types call for (node_kernels.h).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "htp/node_kernels.h"
#include "htp/qnn_ir.h"

namespace ei::htp {

class Emulator {
public:
    // Validates the graph (throws what QnnGraph::validate throws) and allocates its buffers.
    explicit Emulator(QnnGraph graph);
    Emulator(const Emulator&) = delete;
    Emulator& operator=(const Emulator&) = delete;

    const QnnGraph& graph() const { return graph_; }
    // A tensor's buffer for the host's I/O (AppWrite before run, AppRead after).
    uint8_t* data(uint32_t id) { return buffers_.ptr[id]; }
    template <class T>
    T* data_as(uint32_t id) { return reinterpret_cast<T*>(buffers_.ptr[id]); }
    // The id of the input or output with this role (and layer); -1 when the graph has none.
    int64_t find(IoRole role, int32_t layer = -1) const;

    // One execution, node by node; observer (may be null) sees each node's outputs.
    void run(NodeObserver* observer = nullptr);

    // Bytes of the arena this emulator holds.
    uint64_t buffer_bytes() const { return storage_.size(); }

private:
    QnnGraph graph_;
    std::vector<uint8_t> storage_;  // the arena
    ExecBuffers buffers_;
    std::vector<NodeKernel> kernels_;  // per node, chosen once
};

}  // namespace ei::htp
