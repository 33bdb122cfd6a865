// The emulator's kernel interface: one function per op type that executes a node of a
// lowered graph (qnn_ir.h) over the buffers of one execution. Two tables implement it:
// float_kernel (Float32 / Int32 tensors: the lowering checked against the CPU backend) and
// quant_kernel (fixed-point tensors: the NPU's integer arithmetic). The emulator picks, per
// node, the table its tensors' types call for, so one graph may mix both (a head kept in
// float, a Convert at a boundary).
#pragma once
#include <cstdint>
#include <vector>

#include "htp/qnn_ir.h"

namespace ei::htp {

// The elements of every tensor of one execution, by tensor id, in the tensor's storage
// type (dtype_bytes each, row-major). Static tensors point at the graph's data and are
// never written.
struct ExecBuffers {
    const QnnGraph* graph = nullptr;
    std::vector<uint8_t*> ptr;

    template <class T>
    T* at(uint32_t id) const { return reinterpret_cast<T*>(ptr[id]); }
    const Tensor& tensor(uint32_t id) const { return graph->tensors[id]; }
};

// Executes node n: reads its inputs, writes its outputs. Throws ei::Error
// (EI_ERR_UNSUPPORTED) for a combination of types or params it does not implement.
using NodeKernel = void (*)(const Node& n, const ExecBuffers& b);

NodeKernel float_kernel(OpType t);  // null when the op has no float kernel
NodeKernel quant_kernel(OpType t);  // null when the op has no fixed-point kernel

// Sees each node's outputs right after it ran (calibration ranges, per-layer error).
class NodeObserver {
public:
    virtual ~NodeObserver() = default;
    virtual void after(const Node& n, const ExecBuffers& b) = 0;
};

}  // namespace ei::htp
