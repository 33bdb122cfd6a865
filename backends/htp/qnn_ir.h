// The lowered form of a graph for the Hexagon NPU (DESIGN §4, `htp`): a static graph of
// QNN operations over tensors of fixed shape, as QNN itself describes one (a tensor table
// and a list of nodes, each an op type of the "qti.aisw" package with named params). Three
// parties read it and none of them knows the others:
//  - the lowering (lower.h) writes it from a planned Graph (prefill(L), decode(1), fold);
//  - the emulator (emulator.h) executes it on the CPU, in float or with the NPU's integer
//    arithmetic where tensors carry quantized encodings;
//  - the QNN adapter (qnn_adapter.h) hands it to QNN through the C API, one call per tensor,
//    node and param, so this is deliberately a plain mirror of what those calls carry.
// Shapes are row-major, the last dimension fastest, as in QNN.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ei::htp {

// Element types, named after QNN's Qnn_DataType_t members they map to.
enum class DType : uint8_t {
    Float32,    // QNN_DATATYPE_FLOAT_32
    Int32,      // QNN_DATATYPE_INT_32 (indices, shapes)
    UInt32,     // QNN_DATATYPE_UINT_32 (params)
    Bool8,      // QNN_DATATYPE_BOOL_8 (params)
    UFixed16,   // QNN_DATATYPE_UFIXED_POINT_16: activations
    UFixed8,    // QNN_DATATYPE_UFIXED_POINT_8: 8-bit KV cache
    SFixed8,    // QNN_DATATYPE_SFIXED_POINT_8: weights, per output channel
    SFixed4,    // QNN_DATATYPE_SFIXED_POINT_4: weights, block-wise; stored one value per byte here
    SFixed32,   // QNN_DATATYPE_SFIXED_POINT_32: biases of quantized FullyConnected
    // Added by the lowering (wt-lower): QNN_DATATYPE_FLOAT_16, the f16 KV cache of a float
    // graph, so the float path rounds K, V, q and the attention weights where the CPU does.
    Float16,
};
const char* dtype_name(DType t);     // "FLOAT_32", "UFIXED_POINT_16", ...
uint32_t dtype_bytes(DType t);       // storage bytes per element in this IR (SFixed4: 1)
bool dtype_quantized(DType t);       // the fixed-point types

// QNN_TENSOR_TYPE_*: what the tensor is to the graph.
enum class TensorKind : uint8_t {
    Static,    // data bound when the graph is built (weights, constants)
    AppWrite,  // a graph input the host writes before each execution
    AppRead,   // a graph output the host reads after it
    Native,    // produced and consumed inside the graph
};
const char* kind_name(TensorKind k);

// How a fixed-point tensor maps to real values: real = scale * (q + offset), QNN's
// convention (offset is the negated zero point).
struct Encoding {
    enum class Kind : uint8_t {
        None,        // float or integer tensors
        PerTensor,   // QNN_QUANTIZATION_ENCODING_SCALE_OFFSET
        PerChannel,  // QNN_QUANTIZATION_ENCODING_AXIS_SCALE_OFFSET: scales[c], offsets[c] along axis
        BlockwiseExpansion,  // QNN_QUANTIZATION_ENCODING_BLOCKWISE_EXPANSION: int4 blocks of block_size
                             // along the input dimension; each output channel c has a float scale
                             // scales[c] and each block b an unsigned integer multiplier
                             // block_scales[c * n_blocks + b] of block_scale_bits bits:
                             // real = scales[c] * block_scales[c][b] * q
    };
    Kind kind = Kind::None;
    float scale = 0;
    int32_t offset = 0;
    int32_t axis = 0;                   // PerChannel / BlockwiseExpansion: the channel axis
    std::vector<float> scales;          // per channel
    std::vector<int32_t> offsets;       // per channel (zero for symmetric weights)
    int32_t block_size = 0;             // BlockwiseExpansion: 32 or 64
    int32_t block_scale_bits = 0;       // BlockwiseExpansion: 4 or 8
    std::vector<uint8_t> block_scales;  // BlockwiseExpansion: [channels][n_blocks]
};

// Which piece of the session a graph input or output is, so the host side of a backend
// (emulator or QNN) knows what to copy in before an execution and out after it. The
// lowering owns this list; the adapter passes it through untouched.
enum class IoRole : uint8_t {
    None,        // Static and Native tensors
    TokenIds,    // Int32 [L]: the step's token ids (padding rows hold 0)
    RopeCos,     // [L, n_rot/2]: cos of each row's angles (step.rope, first half)
    RopeSin,     // [L, n_rot/2]: sin (step.rope, second half)
    SinkRopeCos, // the same for the sink queries' shifted positions (step.sink_rope)
    SinkRopeSin,
    AttnMask,    // [L, slots + L]: additive mask over the cache then the step's own rows,
                 // expanded on the host from step.visible (0 visible, a large negative not)
    MemoryOn,    // [1]: 1 when the memory holds tokens, else 0 (gates retrieval and blend)
    KCache,      // [slots, kv_dim] of `layer`: the cache as it was before this step
    VCache,
    KNew,        // [L, kv_dim] of `layer`: the step's new rows, which the host writes into
    VNew,        //   the cache at step.kv_slot ("smart mask": the graph never changes shape)
    MemM,        // [n_head_kv, d, d] of `layer`: memory before this step
    MemZ,        // [n_head_kv, d]
    MemMOut,     // fold only: the memory after the fold, which the host writes back
    MemZOut,
    FoldK,       // fold only: [L, kv_dim] the cached rows at step.fold_slot (gathered by the host)
    FoldV,
    FoldRopeCos, // fold only: un-RoPE angles of those rows (step.fold_rope)
    FoldRopeSin,
    LogitRow,    // Int32 [1]: the row whose logits are wanted (step.logit_row)
    Logits,      // [1, n_vocab] (or [L, n_vocab] when the graph computes every row)
};
const char* io_role_name(IoRole r);

struct Tensor {
    uint32_t id = 0;             // index in QnnGraph::tensors
    std::string name;            // unique in the graph; QNN tensor names follow it
    TensorKind kind = TensorKind::Native;
    DType dtype = DType::Float32;
    std::vector<uint32_t> dims;  // rank 1..5
    Encoding enc;                // Kind::None unless dtype_quantized(dtype)
    IoRole io = IoRole::None;    // AppWrite / AppRead only
    int32_t layer = -1;          // for per-layer io roles
    // Static only: the data in dtype's storage, row-major. Shared between the graphs of one
    // model (prefill, decode and fold bind the same weights, as one context binary does).
    std::shared_ptr<const std::vector<uint8_t>> data;

    uint64_t elements() const;
    uint64_t bytes() const { return elements() * dtype_bytes(dtype); }
};

// One node param: a scalar or a small tensor (QNN_PARAMTYPE_SCALAR / _TENSOR).
struct Param {
    enum class Kind : uint8_t { Bool, UInt32, Int32, Float, TensorUInt32, TensorInt32 };
    std::string name;            // QNN's param name: "transpose_in1", "axis", "epsilon", "perm"...
    Kind kind = Kind::UInt32;
    double scalar = 0;           // Bool / UInt32 / Int32 / Float
    std::vector<int64_t> values; // Tensor*: the elements, row-major
    std::vector<uint32_t> dims;  // Tensor*: their shape
};

// The op types the lowering emits: QNN's names in the "qti.aisw" package. Semantics as in
// QNN's operation definitions; where QNN leaves a choice, the choice is written here.
enum class OpType : uint8_t {
    FullyConnected,      // in: x [.., K], w [N, K], optional bias [N]; out [.., N] = x w^T + b
    MatMul,              // in: a [.., M, K] (or [.., K, M] with transpose_in0), b [.., K, N] (or [.., N, K]
                         //   with transpose_in1); leading dims equal (no broadcast); out [.., M, N]
    RmsNorm,             // in: x [.., C], gamma [C], beta [C]; params epsilon, axes = {last}
    Softmax,             // in: x; params axis (last), beta (1.0)
    ElementWiseAdd,      // in: a, b with numpy broadcasting; out a + b
    ElementWiseSubtract,
    ElementWiseMultiply,
    ElementWiseDivide,
    ElementWiseNeg,      // out -a
    Sigmoid,
    Elu,                 // param alpha (1.0): a > 0 ? a : alpha (e^a - 1)
    Gather,              // in: data, indices (Int32); param axis
    Concat,              // params axis; in: 2+ tensors
    StridedSlice,        // param ranges: Int32 tensor [rank, 3] of (begin, end, stride)
    Transpose,           // param perm
    Reshape,             // same elements, new dims
    ReduceSum,           // params axes, keep_dims
    Convert,             // re-encodes (float <-> fixed point, or one encoding to another)
};
const char* op_type_name(OpType t);  // "FullyConnected", "ElementWiseAdd", ...

struct Node {
    std::string name;            // unique in the graph: "blk.3.attn_q", ...
    OpType type = OpType::FullyConnected;
    std::vector<uint32_t> inputs;   // tensor ids, in QNN's input order
    std::vector<uint32_t> outputs;  // tensor ids
    std::vector<Param> params;
    const Param* param(const std::string& name) const;  // null when absent
};

struct QnnGraph {
    std::string name;            // "prefill", "decode", "fold"
    std::vector<Tensor> tensors; // tensors[i].id == i
    std::vector<Node> nodes;     // in execution order (each input produced before use)

    // Checks the invariants every consumer relies on: ids in range, each Native tensor
    // produced once before it is read, AppWrite tensors never produced, AppRead tensors
    // produced, Static tensors with data of bytes() size, encodings sized to their
    // channels. Throws ei::Error (EI_ERR_INTERNAL) naming the first violation.
    void validate() const;
    // The graph as text, one tensor or node per line (ei npu-prepare's report, tests).
    std::string describe() const;
};

}  // namespace ei::htp
