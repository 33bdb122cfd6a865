// Names, checks and the text form of the lowered graph IR (qnn_ir.h).
#include "htp/qnn_ir.h"

#include <sstream>

#include "error.h"

namespace ei::htp {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::Float32: return "FLOAT_32";
        case DType::Int32: return "INT_32";
        case DType::UInt32: return "UINT_32";
        case DType::Bool8: return "BOOL_8";
        case DType::UFixed16: return "UFIXED_POINT_16";
        case DType::UFixed8: return "UFIXED_POINT_8";
        case DType::SFixed8: return "SFIXED_POINT_8";
        case DType::SFixed4: return "SFIXED_POINT_4";
        case DType::SFixed32: return "SFIXED_POINT_32";
        case DType::Float16: return "FLOAT_16";
    }
    return "?";
}

uint32_t dtype_bytes(DType t) {
    switch (t) {
        case DType::Float32: case DType::Int32: case DType::UInt32: case DType::SFixed32: return 4;
        case DType::UFixed16: case DType::Float16: return 2;
        case DType::Bool8: case DType::UFixed8: case DType::SFixed8: case DType::SFixed4: return 1;
    }
    return 0;
}

bool dtype_quantized(DType t) {
    return t == DType::UFixed16 || t == DType::UFixed8 || t == DType::SFixed8 || t == DType::SFixed4 ||
           t == DType::SFixed32;
}

const char* kind_name(TensorKind k) {
    switch (k) {
        case TensorKind::Static: return "STATIC";
        case TensorKind::AppWrite: return "APP_WRITE";
        case TensorKind::AppRead: return "APP_READ";
        case TensorKind::Native: return "NATIVE";
    }
    return "?";
}

const char* io_role_name(IoRole r) {
    switch (r) {
        case IoRole::None: return "none";
        case IoRole::TokenIds: return "token_ids";
        case IoRole::RopeCos: return "rope_cos";
        case IoRole::RopeSin: return "rope_sin";
        case IoRole::SinkRopeCos: return "sink_rope_cos";
        case IoRole::SinkRopeSin: return "sink_rope_sin";
        case IoRole::AttnMask: return "attn_mask";
        case IoRole::MemoryOn: return "memory_on";
        case IoRole::KCache: return "k_cache";
        case IoRole::VCache: return "v_cache";
        case IoRole::KNew: return "k_new";
        case IoRole::VNew: return "v_new";
        case IoRole::MemM: return "mem_m";
        case IoRole::MemZ: return "mem_z";
        case IoRole::MemMOut: return "mem_m_out";
        case IoRole::MemZOut: return "mem_z_out";
        case IoRole::FoldK: return "fold_k";
        case IoRole::FoldV: return "fold_v";
        case IoRole::FoldRopeCos: return "fold_rope_cos";
        case IoRole::FoldRopeSin: return "fold_rope_sin";
        case IoRole::LogitRow: return "logit_row";
        case IoRole::Logits: return "logits";
    }
    return "?";
}

const char* op_type_name(OpType t) {
    switch (t) {
        case OpType::FullyConnected: return "FullyConnected";
        case OpType::MatMul: return "MatMul";
        case OpType::RmsNorm: return "RmsNorm";
        case OpType::Softmax: return "Softmax";
        case OpType::ElementWiseAdd: return "ElementWiseAdd";
        case OpType::ElementWiseSubtract: return "ElementWiseSubtract";
        case OpType::ElementWiseMultiply: return "ElementWiseMultiply";
        case OpType::ElementWiseDivide: return "ElementWiseDivide";
        case OpType::ElementWiseNeg: return "ElementWiseNeg";
        case OpType::Sigmoid: return "Sigmoid";
        case OpType::Elu: return "Elu";
        case OpType::Gather: return "Gather";
        case OpType::Concat: return "Concat";
        case OpType::StridedSlice: return "StridedSlice";
        case OpType::Transpose: return "Transpose";
        case OpType::Reshape: return "Reshape";
        case OpType::ReduceSum: return "ReduceSum";
        case OpType::Convert: return "Convert";
    }
    return "?";
}

uint64_t Tensor::elements() const {
    uint64_t n = 1;
    for (uint32_t d : dims) n *= d;
    return n;
}

const Param* Node::param(const std::string& pname) const {
    for (const Param& p : params) {
        if (p.name == pname) return &p;
    }
    return nullptr;
}

namespace {

[[noreturn]] void invalid(const QnnGraph& g, const std::string& what) {
    fail(EI_ERR_INTERNAL, "lowered graph '" + g.name + "': " + what);
}

uint64_t channels(const Tensor& t) {
    if (t.enc.axis < 0 || static_cast<size_t>(t.enc.axis) >= t.dims.size()) return 0;
    return t.dims[static_cast<size_t>(t.enc.axis)];
}

void check_encoding(const QnnGraph& g, const Tensor& t) {
    using K = Encoding::Kind;
    const bool q = dtype_quantized(t.dtype);
    if (!q && t.enc.kind != K::None) invalid(g, "tensor '" + t.name + "' of " + dtype_name(t.dtype) + " has an encoding");
    if (q && t.enc.kind == K::None) invalid(g, "tensor '" + t.name + "' of " + dtype_name(t.dtype) + " has no encoding");
    if (t.enc.kind == K::PerTensor && !(t.enc.scale > 0)) invalid(g, "tensor '" + t.name + "' has a scale that is not positive");
    if (t.enc.kind == K::PerChannel || t.enc.kind == K::BlockwiseExpansion) {
        const uint64_t c = channels(t);
        if (c == 0) invalid(g, "tensor '" + t.name + "' has a channel axis outside its dims");
        if (t.enc.scales.size() != c) invalid(g, "tensor '" + t.name + "' has " + std::to_string(t.enc.scales.size()) +
                                                     " channel scales for " + std::to_string(c) + " channels");
        for (float s : t.enc.scales) {
            if (!(s > 0)) invalid(g, "tensor '" + t.name + "' has a channel scale that is not positive");
        }
        if (!t.enc.offsets.empty() && t.enc.offsets.size() != c) invalid(g, "tensor '" + t.name + "' has offsets not sized to its channels");
    }
    if (t.enc.kind == K::BlockwiseExpansion) {
        if (t.dtype != DType::SFixed4 && t.dtype != DType::SFixed8) invalid(g, "tensor '" + t.name + "' is block-wise but not 4 or 8-bit");
        if (t.dims.size() != 2 || t.enc.axis != 0) invalid(g, "tensor '" + t.name + "' is block-wise but not [channels, inputs] with axis 0");
        if (t.enc.block_size <= 0 || t.dims[1] % static_cast<uint32_t>(t.enc.block_size) != 0) {
            invalid(g, "tensor '" + t.name + "' has blocks that do not divide its input dimension");
        }
        if (t.enc.block_scale_bits != 4 && t.enc.block_scale_bits != 8) invalid(g, "tensor '" + t.name + "' has block scales of neither 4 nor 8 bits");
        const uint64_t want = static_cast<uint64_t>(t.dims[0]) * (t.dims[1] / static_cast<uint32_t>(t.enc.block_size));
        if (t.enc.block_scales.size() != want) invalid(g, "tensor '" + t.name + "' has block scales not sized [channels][blocks]");
    }
}

}  // namespace

void QnnGraph::validate() const {
    std::vector<uint8_t> produced(tensors.size(), 0);
    std::vector<std::string> names;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Tensor& t = tensors[i];
        if (t.id != i) invalid(*this, "tensor '" + t.name + "' has id " + std::to_string(t.id) + " at index " + std::to_string(i));
        if (t.name.empty()) invalid(*this, "tensor " + std::to_string(i) + " has no name");
        if (t.dims.empty() || t.dims.size() > 5) invalid(*this, "tensor '" + t.name + "' has rank " + std::to_string(t.dims.size()));
        for (uint32_t d : t.dims) {
            if (d == 0) invalid(*this, "tensor '" + t.name + "' has a zero dimension");
        }
        const bool io = t.kind == TensorKind::AppWrite || t.kind == TensorKind::AppRead;
        if (io != (t.io != IoRole::None)) invalid(*this, "tensor '" + t.name + "' is " + kind_name(t.kind) + " with io role " + io_role_name(t.io));
        if (t.kind == TensorKind::Static) {
            if (!t.data || t.data->size() != t.bytes()) {
                invalid(*this, "static tensor '" + t.name + "' has " + std::to_string(t.data ? t.data->size() : 0) +
                                   " bytes of data for " + std::to_string(t.bytes()));
            }
        } else if (t.data) {
            invalid(*this, "tensor '" + t.name + "' is " + kind_name(t.kind) + " but has data");
        }
        check_encoding(*this, t);
        if (t.kind == TensorKind::Static || t.kind == TensorKind::AppWrite) produced[i] = 1;
    }
    for (const Node& n : nodes) {
        if (n.outputs.empty()) invalid(*this, "node '" + n.name + "' has no outputs");
        for (uint32_t in : n.inputs) {
            if (in >= tensors.size()) invalid(*this, "node '" + n.name + "' reads tensor id " + std::to_string(in) + ", not in the table");
            if (!produced[in]) invalid(*this, "node '" + n.name + "' reads '" + tensors[in].name + "' before anything produces it");
        }
        for (uint32_t out : n.outputs) {
            if (out >= tensors.size()) invalid(*this, "node '" + n.name + "' writes tensor id " + std::to_string(out) + ", not in the table");
            const Tensor& t = tensors[out];
            if (t.kind == TensorKind::Static || t.kind == TensorKind::AppWrite) {
                invalid(*this, "node '" + n.name + "' writes " + kind_name(t.kind) + " tensor '" + t.name + "'");
            }
            if (produced[out]) invalid(*this, "tensor '" + t.name + "' is produced twice (second by node '" + n.name + "')");
            produced[out] = 1;
        }
    }
    for (const Tensor& t : tensors) {
        if (t.kind == TensorKind::AppRead && !produced[t.id]) invalid(*this, "output '" + t.name + "' is never produced");
    }
}

std::string QnnGraph::describe() const {
    std::ostringstream s;
    s << "graph " << name << ": " << tensors.size() << " tensors, " << nodes.size() << " nodes\n";
    for (const Tensor& t : tensors) {
        s << "  t" << t.id << " " << t.name << " " << kind_name(t.kind) << " " << dtype_name(t.dtype) << " [";
        for (size_t i = 0; i < t.dims.size(); ++i) s << (i ? "," : "") << t.dims[i];
        s << "]";
        if (t.io != IoRole::None) s << " io=" << io_role_name(t.io) << (t.layer >= 0 ? "." + std::to_string(t.layer) : "");
        switch (t.enc.kind) {
            case Encoding::Kind::None: break;
            case Encoding::Kind::PerTensor: s << " scale=" << t.enc.scale << " offset=" << t.enc.offset; break;
            case Encoding::Kind::PerChannel: s << " per-channel(axis " << t.enc.axis << ")"; break;
            case Encoding::Kind::BlockwiseExpansion:
                s << " blockwise(" << t.enc.block_size << ", " << t.enc.block_scale_bits << "-bit block scales)";
                break;
        }
        s << "\n";
    }
    for (const Node& n : nodes) {
        s << "  " << n.name << " = " << op_type_name(n.type) << "(";
        for (size_t i = 0; i < n.inputs.size(); ++i) s << (i ? ", " : "") << "t" << n.inputs[i];
        s << ") -> ";
        for (size_t i = 0; i < n.outputs.size(); ++i) s << (i ? ", " : "") << "t" << n.outputs[i];
        for (const Param& p : n.params) {
            s << " " << p.name << "=";
            if (p.kind == Param::Kind::TensorUInt32 || p.kind == Param::Kind::TensorInt32) {
                s << "{";
                for (size_t i = 0; i < p.values.size(); ++i) s << (i ? "," : "") << p.values[i];
                s << "}";
            } else {
                s << p.scalar;
            }
        }
        s << "\n";
    }
    return s.str();
}

}  // namespace ei::htp
