// A fake QNN backend library of the project's own, for CI (no QNN SDK or NPU there): it
// exports QnnInterface_getProviders with a CPU provider and an HTP provider (backend id 6)
// whose function table implements the calls the adapter (backends/htp/qnn_adapter.h) makes,
// through the project's own declarations (qnn_api.h).
//
// It records every call and rebuilds, from the calls alone, the lowered graph (qnn_ir.h)
// they describe: tensors with their types, encodings and static data, nodes with their
// package, op type, params and tensors, in order. A test compares that with the graph it gave
// the adapter, so what the adapter transmits is checked, not assumed. It checks what a real
// backend would refuse (unknown tensor ids, duplicate names, data of the wrong size, ops of
// another package, io buffers that do not match their tensors) and fails the call with a
// QNN-style error code and an error log line.
//
// Execution records each input buffer's bytes under its tensor's name, then either fills each
// output with a pattern derived from that output's name (the default: a test proves every
// buffer was bound to its own tensor) or, after ei_fake_qnn_set_compute(1), computes the graph
// it rebuilt with the project's emulator (backends/htp/emulator.h), so a session on the htp
// device over this library gives real logits (the end-to-end test).
// Context binaries are the fake's own serialization of whole graphs (tensors with their
// encodings and static data, nodes with their params), as a real binary holds the compiled
// graph and its weights: one loaded back executes, and computes, from the binary alone, which
// proves the adapter's cached io ids and that nothing of the building process is needed.
//
// Test hooks (extern "C"): ei_fake_qnn_reset, ei_fake_qnn_set_htp_provider, ei_fake_qnn_fail,
// ei_fake_qnn_calls, ei_fake_qnn_graph, ei_fake_qnn_input (see fake_qnn.h).
#include "fake_qnn.h"

#include <cstdarg>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "htp/emulator.h"
#include "htp/qnn_api.h"
#include "htp/qnn_ir.h"

using namespace ei;
namespace q = ei::qnn;

namespace {

// QNN-style error codes (the adapter only reports them).
constexpr q::ErrorHandle kErrGeneral = 1000;
constexpr q::ErrorHandle kErrInvalidHandle = 1002;
constexpr q::ErrorHandle kErrInvalidArgument = 1003;
constexpr q::ErrorHandle kErrGraphInvalidTensor = 6003;
constexpr q::ErrorHandle kErrGraphInvalidOp = 6004;
constexpr q::ErrorHandle kErrContextBinary = 5004;

struct FakeTensor {
    uint32_t id = 0;
    std::string name;
    q::TensorType type = q::kTensorNative;
    q::DataType dtype = q::kFloat32;
    std::vector<uint32_t> dims;
    htp::Encoding enc;
    std::vector<uint8_t> data;
    bool is_param = false;
};

struct FakeNode {
    std::string name, package, type;
    std::vector<htp::Param> params;
    std::vector<uint32_t> inputs, outputs;  // QNN ids
};

struct FakeGraph {
    std::string name;
    std::vector<FakeTensor> tensors;  // index = QNN id - 1
    std::vector<FakeNode> nodes;
    bool finalized = false;
    // Compute mode: the emulator over the rebuilt graph (made at the first execution) and the
    // IR id of each QNN id.
    std::unique_ptr<htp::Emulator> emu;
    std::map<uint32_t, uint32_t> ir_id;
};

struct FakeContext {
    std::vector<std::unique_ptr<FakeGraph>> graphs;
};

struct State {
    std::string calls;
    q::LogCallback log = nullptr;
    uint32_t htp_backend_id = q::kBackendIdHtp;
    q::Version htp_core{2, 20, 0};
    std::map<std::string, q::ErrorHandle> fail_next;
    std::vector<std::unique_ptr<FakeContext>> contexts;
    std::map<std::string, htp::QnnGraph> rebuilt;  // by graph name, the latest finalized
    std::map<std::string, std::vector<uint8_t>> inputs;  // "graph/tensor" -> bytes of the last execution
    bool compute = false;  // execute with the emulator, not the pattern
    int backend_token = 0, device_token = 0, log_token = 0;
};

State& st() {
    static State s;
    return s;
}

void log_error(const char* fmt, ...) {
    if (!st().log) return;
    va_list args;
    va_start(args, fmt);
    st().log(fmt, q::kLogError, 0, args);
    va_end(args);
}

// Records the call; returns an injected failure for it, else success.
q::ErrorHandle enter(const std::string& call, const std::string& detail = "") {
    st().calls += call + (detail.empty() ? "" : " " + detail) + "\n";
    auto it = st().fail_next.find(call);
    if (it == st().fail_next.end()) return q::kSuccess;
    const q::ErrorHandle e = it->second;
    st().fail_next.erase(it);
    log_error("fake QNN: injected failure of %s", call.c_str());
    return e;
}

uint32_t dtype_size(q::DataType t) {
    switch (t) {
        case q::kFloat32: case q::kInt32: case q::kUInt32: case q::kSFixed32: return 4;
        case q::kUFixed16: case q::kFloat16: return 2;
        case q::kUFixed8: case q::kSFixed8: case q::kSFixed4: case q::kBool8: return 1;
        default: return 0;
    }
}

bool ir_dtype(q::DataType t, htp::DType* out) {
    using D = htp::DType;
    switch (t) {
        case q::kFloat32: *out = D::Float32; return true;
        case q::kInt32: *out = D::Int32; return true;
        case q::kUInt32: *out = D::UInt32; return true;
        case q::kBool8: *out = D::Bool8; return true;
        case q::kUFixed16: *out = D::UFixed16; return true;
        case q::kUFixed8: *out = D::UFixed8; return true;
        case q::kSFixed8: *out = D::SFixed8; return true;
        case q::kSFixed4: *out = D::SFixed4; return true;
        case q::kSFixed32: *out = D::SFixed32; return true;
        case q::kFloat16: *out = D::Float16; return true;
        default: return false;
    }
}

uint64_t elements(const std::vector<uint32_t>& dims) {
    uint64_t n = 1;
    for (uint32_t d : dims) n *= d;
    return n;
}

FakeGraph* as_graph(q::GraphHandle h) {
    for (auto& c : st().contexts) {
        for (auto& g : c->graphs) {
            if (g.get() == h) return g.get();
        }
    }
    return nullptr;
}

FakeContext* as_context(q::ContextHandle h) {
    for (auto& c : st().contexts) {
        if (c.get() == h) return c.get();
    }
    return nullptr;
}

// Reads a tensor description as QNN would, checking what a backend checks.
q::ErrorHandle read_tensor(const q::Tensor* t, FakeTensor& out) {
    if (!t || t->version != q::kTensorVersion1) {
        log_error("fake QNN: tensor of version %u", t ? static_cast<unsigned>(t->version) : 0u);
        return kErrInvalidArgument;
    }
    const q::TensorV1& v = t->v1;
    if (!v.name || !*v.name) return log_error("fake QNN: tensor without a name"), kErrInvalidArgument;
    out.name = v.name;
    out.type = v.type;
    out.dtype = v.data_type;
    if (v.data_format != q::kDataFormatFlatBuffer) return log_error("fake QNN: %s: not a flat buffer", v.name), kErrInvalidArgument;
    if (dtype_size(v.data_type) == 0) return log_error("fake QNN: %s: data type 0x%x", v.name, v.data_type), kErrInvalidArgument;
    if (v.rank == 0 || v.rank > 5 || !v.dimensions) return log_error("fake QNN: %s: rank %u", v.name, v.rank), kErrInvalidArgument;
    out.dims.assign(v.dimensions, v.dimensions + v.rank);
    const q::QuantizeParams& qp = v.quantize_params;
    htp::DType d = htp::DType::Float32;
    if (!ir_dtype(v.data_type, &d)) return log_error("fake QNN: %s: data type 0x%x", v.name, v.data_type), kErrInvalidArgument;
    const bool fixed = htp::dtype_quantized(d);
    using K = htp::Encoding::Kind;
    if (!fixed) {
        if (qp.encoding_definition != q::kDefinitionUndefined || qp.quantization_encoding != q::kEncodingUndefined) {
            return log_error("fake QNN: %s: a float or integer tensor with an encoding", v.name), kErrInvalidArgument;
        }
    } else if (qp.encoding_definition != q::kDefinitionDefined) {
        return log_error("fake QNN: %s: a fixed-point tensor without a defined encoding", v.name), kErrInvalidArgument;
    } else if (qp.quantization_encoding == q::kEncodingScaleOffset) {
        out.enc.kind = K::PerTensor;
        out.enc.scale = qp.scale_offset.scale;
        out.enc.offset = qp.scale_offset.offset;
    } else if (qp.quantization_encoding == q::kEncodingAxisScaleOffset) {
        const q::AxisScaleOffset& a = qp.axis_scale_offset;
        if (a.axis < 0 || static_cast<uint32_t>(a.axis) >= v.rank || a.num_scale_offsets != v.dimensions[a.axis] || !a.scale_offset) {
            return log_error("fake QNN: %s: per-axis encoding does not match its dims", v.name), kErrInvalidArgument;
        }
        out.enc.kind = K::PerChannel;
        out.enc.axis = a.axis;
        for (uint32_t c = 0; c < a.num_scale_offsets; ++c) {
            out.enc.scales.push_back(a.scale_offset[c].scale);
            out.enc.offsets.push_back(a.scale_offset[c].offset);
        }
    } else if (qp.quantization_encoding == q::kEncodingBlockwiseExpansion) {
        const q::BlockwiseExpansion* b = qp.blockwise_expansion;
        if (!b || b->axis < 0 || static_cast<uint32_t>(b->axis) >= v.rank || v.rank != 2 || !b->scale_offsets ||
            b->num_blocks_per_axis == 0 || v.dimensions[1 - b->axis] % b->num_blocks_per_axis != 0 ||
            b->block_scale_storage != q::kBlockScaleStorage8 || !b->block_scales8) {
            return log_error("fake QNN: %s: malformed blockwise expansion", v.name), kErrInvalidArgument;
        }
        const uint32_t channels = v.dimensions[b->axis];
        out.enc.kind = K::BlockwiseExpansion;
        out.enc.axis = b->axis;
        out.enc.block_size = static_cast<int32_t>(v.dimensions[1 - b->axis] / b->num_blocks_per_axis);
        out.enc.block_scale_bits = static_cast<int32_t>(b->block_scale_bitwidth);
        for (uint32_t c = 0; c < channels; ++c) {
            out.enc.scales.push_back(b->scale_offsets[c].scale);
            out.enc.offsets.push_back(b->scale_offsets[c].offset);
        }
        out.enc.block_scales.assign(b->block_scales8, b->block_scales8 + static_cast<size_t>(channels) * b->num_blocks_per_axis);
    } else {
        return log_error("fake QNN: %s: encoding %u not supported", v.name, qp.quantization_encoding), kErrInvalidArgument;
    }
    return q::kSuccess;
}

// ---- The function table --------------------------------------------------------------------

q::ErrorHandle log_create(q::LogCallback cb, q::LogLevel, q::LogHandle* out) {
    st().log = cb;
    if (q::ErrorHandle e = enter("QnnLog_create")) return e;
    *out = &st().log_token;
    return q::kSuccess;
}

q::ErrorHandle log_free(q::LogHandle h) {
    enter("QnnLog_free");
    if (h != &st().log_token) return kErrInvalidHandle;
    st().log = nullptr;
    return q::kSuccess;
}

q::ErrorHandle backend_create(q::LogHandle logger, q::ConfigList, q::BackendHandle* out) {
    if (q::ErrorHandle e = enter("QnnBackend_create")) return e;
    if (logger != &st().log_token) return kErrInvalidHandle;
    *out = &st().backend_token;
    return q::kSuccess;
}

q::ErrorHandle backend_get_build_id(const char** id) {
    if (q::ErrorHandle e = enter("QnnBackend_getBuildId")) return e;
    *id = "fake-qnn-1.0";
    return q::kSuccess;
}

q::ErrorHandle backend_free(q::BackendHandle h) {
    enter("QnnBackend_free");
    return h == &st().backend_token ? q::kSuccess : kErrInvalidHandle;
}

q::ErrorHandle device_create(q::LogHandle, q::ConfigList, q::DeviceHandle* out) {
    if (q::ErrorHandle e = enter("QnnDevice_create")) return e;
    *out = &st().device_token;
    return q::kSuccess;
}

q::ErrorHandle device_free(q::DeviceHandle h) {
    enter("QnnDevice_free");
    return h == &st().device_token ? q::kSuccess : kErrInvalidHandle;
}

q::ErrorHandle context_create(q::BackendHandle b, q::DeviceHandle d, q::ConfigList config, q::ContextHandle* out) {
    // The HTP weight-sharing option is the one context config the adapter may pass.
    bool weight_sharing = false;
    for (q::ConfigList c = config; c && *c; ++c) {
        const auto* cfg = static_cast<const q::ContextConfig*>(*c);
        if (cfg->option != q::kContextConfigCustom || !cfg->custom_config) return kErrInvalidArgument;
        const auto* htp = static_cast<const q::HtpContextCustomConfig*>(cfg->custom_config);
        if (htp->option != q::kHtpContextWeightSharing) return kErrInvalidArgument;
        weight_sharing = htp->weight_sharing_enabled;
    }
    if (q::ErrorHandle e = enter("QnnContext_create", weight_sharing ? "weight_sharing=1" : "")) return e;
    if (b != &st().backend_token || d != &st().device_token) return kErrInvalidHandle;
    st().contexts.push_back(std::make_unique<FakeContext>());
    *out = st().contexts.back().get();
    return q::kSuccess;
}

q::ErrorHandle context_free(q::ContextHandle h, q::ProfileHandle) {
    enter("QnnContext_free");
    for (size_t i = 0; i < st().contexts.size(); ++i) {
        if (st().contexts[i].get() == h) {
            st().contexts.erase(st().contexts.begin() + static_cast<long>(i));
            return q::kSuccess;
        }
    }
    return kErrInvalidHandle;
}

q::ErrorHandle graph_create(q::ContextHandle ch, const char* name, q::ConfigList, q::GraphHandle* out) {
    if (q::ErrorHandle e = enter("QnnGraph_create", name ? name : "")) return e;
    FakeContext* c = as_context(ch);
    if (!c) return kErrInvalidHandle;
    if (!name || !*name) return kErrInvalidArgument;
    for (auto& g : c->graphs) {
        if (g->name == name) return log_error("fake QNN: graph %s exists", name), kErrInvalidArgument;
    }
    c->graphs.push_back(std::make_unique<FakeGraph>());
    c->graphs.back()->name = name;
    *out = c->graphs.back().get();
    return q::kSuccess;
}

q::ErrorHandle tensor_create_graph_tensor(q::GraphHandle gh, q::Tensor* t) {
    if (q::ErrorHandle e = enter("QnnTensor_createGraphTensor", t && t->v1.name ? t->v1.name : "")) return e;
    FakeGraph* g = as_graph(gh);
    if (!g) return kErrInvalidHandle;
    if (g->finalized) return kErrGraphInvalidTensor;
    FakeTensor ft;
    if (q::ErrorHandle e = read_tensor(t, ft)) return e;
    for (const FakeTensor& o : g->tensors) {
        if (o.name == ft.name) return log_error("fake QNN: tensor name %s used twice", ft.name.c_str()), kErrGraphInvalidTensor;
    }
    const q::TensorV1& v = t->v1;
    const uint64_t bytes = elements(ft.dims) * dtype_size(ft.dtype);
    if (ft.type == q::kTensorStatic) {
        if (v.mem_type != q::kMemRaw || !v.client_buf.data || v.client_buf.data_size != bytes) {
            log_error("fake QNN: static %s has %u bytes of data for %llu", ft.name.c_str(), v.client_buf.data_size,
                      static_cast<unsigned long long>(bytes));
            return kErrGraphInvalidTensor;
        }
        const uint8_t* p = static_cast<const uint8_t*>(v.client_buf.data);
        ft.data.assign(p, p + bytes);
    } else if (v.client_buf.data) {
        return log_error("fake QNN: non-static %s has data", ft.name.c_str()), kErrGraphInvalidTensor;
    } else if (ft.type != q::kTensorAppWrite && ft.type != q::kTensorAppRead && ft.type != q::kTensorNative) {
        return log_error("fake QNN: %s has tensor type %u", ft.name.c_str(), ft.type), kErrGraphInvalidTensor;
    }
    ft.id = static_cast<uint32_t>(g->tensors.size()) + 1;  // QNN assigns the id
    t->v1.id = ft.id;
    g->tensors.push_back(std::move(ft));
    return q::kSuccess;
}

// The recorded tensor a node refers to, checked against the description it passed.
const FakeTensor* node_tensor(const FakeGraph& g, const q::Tensor& t) {
    if (t.v1.id == 0 || t.v1.id > g.tensors.size()) return nullptr;
    const FakeTensor& ft = g.tensors[t.v1.id - 1];
    if (!t.v1.name || ft.name != t.v1.name || ft.type != t.v1.type || ft.dtype != t.v1.data_type) return nullptr;
    return &ft;
}

q::ErrorHandle graph_add_node(q::GraphHandle gh, q::OpConfig op) {
    if (q::ErrorHandle e = enter("QnnGraph_addNode", op.v1.name ? op.v1.name : "")) return e;
    FakeGraph* g = as_graph(gh);
    if (!g) return kErrInvalidHandle;
    if (g->finalized || op.version != q::kOpConfigVersion1) return kErrGraphInvalidOp;
    const q::OpConfigV1& v = op.v1;
    if (!v.name || !v.package_name || !v.type_name) return kErrGraphInvalidOp;
    if (std::strcmp(v.package_name, q::kOpPackage) != 0) return log_error("fake QNN: package %s", v.package_name), kErrGraphInvalidOp;
    FakeNode n;
    n.name = v.name;
    n.package = v.package_name;
    n.type = v.type_name;
    for (uint32_t i = 0; i < v.num_of_inputs; ++i) {
        const FakeTensor* t = node_tensor(*g, v.input_tensors[i]);
        if (!t) return log_error("fake QNN: node %s: input %u is not a tensor of the graph", v.name, i), kErrGraphInvalidTensor;
        n.inputs.push_back(t->id);
    }
    for (uint32_t i = 0; i < v.num_of_outputs; ++i) {
        const FakeTensor* t = node_tensor(*g, v.output_tensors[i]);
        if (!t) return log_error("fake QNN: node %s: output %u is not a tensor of the graph", v.name, i), kErrGraphInvalidTensor;
        n.outputs.push_back(t->id);
    }
    for (uint32_t i = 0; i < v.num_of_params; ++i) {
        const q::Param& p = v.params[i];
        htp::Param ip;
        if (!p.name) return kErrGraphInvalidOp;
        ip.name = p.name;
        if (p.param_type == q::kParamScalar) {
            const q::Scalar& s = p.scalar_param;
            switch (s.data_type) {
                case q::kBool8: ip.kind = htp::Param::Kind::Bool; ip.scalar = s.bool8; break;
                case q::kUInt32: ip.kind = htp::Param::Kind::UInt32; ip.scalar = s.u32; break;
                case q::kInt32: ip.kind = htp::Param::Kind::Int32; ip.scalar = s.i32; break;
                case q::kFloat32: ip.kind = htp::Param::Kind::Float; ip.scalar = s.f32; break;
                default: return log_error("fake QNN: param %s: scalar type 0x%x", p.name, s.data_type), kErrGraphInvalidOp;
            }
        } else if (p.param_type == q::kParamTensor) {
            const FakeTensor* t = node_tensor(*g, p.tensor_param);
            if (!t || t->type != q::kTensorStatic || (t->dtype != q::kUInt32 && t->dtype != q::kInt32)) {
                return log_error("fake QNN: param %s: not a static 32-bit integer tensor of the graph", p.name), kErrGraphInvalidOp;
            }
            g->tensors[t->id - 1].is_param = true;
            ip.kind = t->dtype == q::kUInt32 ? htp::Param::Kind::TensorUInt32 : htp::Param::Kind::TensorInt32;
            ip.dims = t->dims;
            for (size_t k = 0; k < t->data.size(); k += 4) {
                uint32_t bits;
                std::memcpy(&bits, &t->data[k], 4);
                ip.values.push_back(t->dtype == q::kUInt32 ? static_cast<int64_t>(bits) : static_cast<int64_t>(static_cast<int32_t>(bits)));
            }
        } else {
            return kErrGraphInvalidOp;
        }
        n.params.push_back(std::move(ip));
    }
    g->nodes.push_back(std::move(n));
    return q::kSuccess;
}

// The lowered graph the calls described: param tensors become params, the rest keep their
// creation order.
htp::QnnGraph rebuild(const FakeGraph& g, std::map<uint32_t, uint32_t>* ids = nullptr) {
    htp::QnnGraph out;
    out.name = g.name;
    std::map<uint32_t, uint32_t> local;
    std::map<uint32_t, uint32_t>& ir_id = ids ? *ids : local;
    for (const FakeTensor& t : g.tensors) {
        if (t.is_param) continue;
        htp::Tensor it;
        it.id = static_cast<uint32_t>(out.tensors.size());
        ir_id[t.id] = it.id;
        it.name = t.name;
        switch (t.type) {
            case q::kTensorStatic: it.kind = htp::TensorKind::Static; break;
            case q::kTensorAppWrite: it.kind = htp::TensorKind::AppWrite; break;
            case q::kTensorAppRead: it.kind = htp::TensorKind::AppRead; break;
            default: it.kind = htp::TensorKind::Native; break;
        }
        ir_dtype(t.dtype, &it.dtype);
        it.dims = t.dims;
        it.enc = t.enc;
        if (it.kind == htp::TensorKind::Static) it.data = std::make_shared<const std::vector<uint8_t>>(t.data);
        out.tensors.push_back(std::move(it));
    }
    for (const FakeNode& n : g.nodes) {
        htp::Node in;
        in.name = n.name;
        bool known = false;
        for (int k = 0; k <= static_cast<int>(htp::OpType::Convert); ++k) {
            if (n.type == htp::op_type_name(static_cast<htp::OpType>(k))) {
                in.type = static_cast<htp::OpType>(k);
                known = true;
            }
        }
        if (!known) in.name += " (unknown op type " + n.type + ")";
        for (uint32_t id : n.inputs) in.inputs.push_back(ir_id.count(id) ? ir_id[id] : ~0u);
        for (uint32_t id : n.outputs) in.outputs.push_back(ir_id.count(id) ? ir_id[id] : ~0u);
        in.params = n.params;
        out.nodes.push_back(std::move(in));
    }
    return out;
}

q::ErrorHandle graph_finalize(q::GraphHandle gh, q::ProfileHandle, q::SignalHandle) {
    FakeGraph* g = as_graph(gh);
    if (q::ErrorHandle e = enter("QnnGraph_finalize", g ? g->name : "")) return e;
    if (!g) return kErrInvalidHandle;
    if (g->finalized || g->nodes.empty()) return kErrGraphInvalidOp;
    g->finalized = true;
    st().rebuilt[g->name] = rebuild(*g);
    return q::kSuccess;
}

q::ErrorHandle graph_retrieve(q::ContextHandle ch, const char* name, q::GraphHandle* out) {
    if (q::ErrorHandle e = enter("QnnGraph_retrieve", name ? name : "")) return e;
    FakeContext* c = as_context(ch);
    if (!c || !name) return kErrInvalidHandle;
    for (auto& g : c->graphs) {
        if (g->name == name) {
            *out = g.get();
            return q::kSuccess;
        }
    }
    return log_error("fake QNN: no graph %s in the context", name), kErrInvalidArgument;
}

// An execution's io tensor: its id, name, type, data type and dims must be the graph's.
const FakeTensor* io_tensor(const FakeGraph& g, const q::Tensor& t, q::TensorType want) {
    if (t.version != q::kTensorVersion1 || t.v1.id == 0 || t.v1.id > g.tensors.size()) return nullptr;
    const FakeTensor& ft = g.tensors[t.v1.id - 1];
    if (ft.type != want || !t.v1.name || ft.name != t.v1.name || ft.dtype != t.v1.data_type || t.v1.rank != ft.dims.size() ||
        !t.v1.dimensions || std::memcmp(t.v1.dimensions, ft.dims.data(), ft.dims.size() * 4) != 0 || t.v1.mem_type != q::kMemRaw ||
        !t.v1.client_buf.data || t.v1.client_buf.data_size != elements(ft.dims) * dtype_size(ft.dtype)) {
        return nullptr;
    }
    return &ft;
}

// Runs the graph rebuilt from the calls (or the binary) with the emulator over the client
// buffers (their tensors were checked by graph_execute).
q::ErrorHandle compute(FakeGraph& g, const q::Tensor* ins, uint32_t n_in, q::Tensor* outs, uint32_t n_out) {
    try {
        if (!g.emu) {
            g.ir_id.clear();
            htp::QnnGraph r = rebuild(g, &g.ir_id);
            // Io roles are the host side's knowledge, which QNN never receives; the IR wants
            // one on every io tensor and the emulator reads none, so each gets a placeholder.
            for (htp::Tensor& t : r.tensors) {
                if (t.kind == htp::TensorKind::AppWrite) t.io = htp::IoRole::TokenIds;
                if (t.kind == htp::TensorKind::AppRead) t.io = htp::IoRole::Logits;
            }
            g.emu = std::make_unique<htp::Emulator>(std::move(r));
        }
        for (uint32_t i = 0; i < n_in; ++i) {
            std::memcpy(g.emu->data(g.ir_id.at(ins[i].v1.id)), ins[i].v1.client_buf.data, ins[i].v1.client_buf.data_size);
        }
        g.emu->run();
        for (uint32_t i = 0; i < n_out; ++i) {
            const FakeTensor* t = io_tensor(g, outs[i], q::kTensorAppRead);
            if (!t) return log_error("fake QNN: %s: output %u does not match an output tensor", g.name.c_str(), i), kErrGraphInvalidTensor;
            std::memcpy(outs[i].v1.client_buf.data, g.emu->data(g.ir_id.at(t->id)), outs[i].v1.client_buf.data_size);
        }
    } catch (const std::exception& e) {
        return log_error("fake QNN: %s: the emulator failed: %s", g.name.c_str(), e.what()), kErrGeneral;
    }
    return q::kSuccess;
}

q::ErrorHandle graph_execute(q::GraphHandle gh, const q::Tensor* ins, uint32_t n_in, q::Tensor* outs, uint32_t n_out,
                             q::ProfileHandle, q::SignalHandle) {
    FakeGraph* g = as_graph(gh);
    if (q::ErrorHandle e = enter("QnnGraph_execute", g ? g->name : "")) return e;
    if (!g) return kErrInvalidHandle;
    if (!g->finalized) return log_error("fake QNN: %s is not finalized", g->name.c_str()), kErrGraphInvalidOp;
    uint32_t want_in = 0, want_out = 0;
    for (const FakeTensor& t : g->tensors) {
        want_in += t.type == q::kTensorAppWrite;
        want_out += t.type == q::kTensorAppRead;
    }
    if (n_in != want_in || n_out != want_out) {
        return log_error("fake QNN: %s takes %u inputs and %u outputs, got %u and %u", g->name.c_str(), want_in, want_out, n_in, n_out),
               kErrInvalidArgument;
    }
    for (uint32_t i = 0; i < n_in; ++i) {
        const FakeTensor* t = io_tensor(*g, ins[i], q::kTensorAppWrite);
        if (!t) return log_error("fake QNN: %s: input %u does not match an input tensor", g->name.c_str(), i), kErrGraphInvalidTensor;
        const uint8_t* p = static_cast<const uint8_t*>(ins[i].v1.client_buf.data);
        st().inputs[g->name + "/" + t->name].assign(p, p + ins[i].v1.client_buf.data_size);
    }
    if (st().compute) return compute(*g, ins, n_in, outs, n_out);
    for (uint32_t i = 0; i < n_out; ++i) {
        const FakeTensor* t = io_tensor(*g, outs[i], q::kTensorAppRead);
        if (!t) return log_error("fake QNN: %s: output %u does not match an output tensor", g->name.c_str(), i), kErrGraphInvalidTensor;
        uint8_t* p = static_cast<uint8_t*>(outs[i].v1.client_buf.data);
        const uint8_t seed = ei_fake_qnn_pattern_seed(t->name.c_str());
        for (uint32_t k = 0; k < outs[i].v1.client_buf.data_size; ++k) p[k] = static_cast<uint8_t>(seed + k);
    }
    return q::kSuccess;
}

// ---- Context binaries: "FAKEQNNB", then per graph its whole description --------------------

void put32(std::vector<uint8_t>& o, uint32_t v) {
    for (int i = 0; i < 4; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put64(std::vector<uint8_t>& o, uint64_t v) {
    put32(o, static_cast<uint32_t>(v));
    put32(o, static_cast<uint32_t>(v >> 32));
}
void put_f32(std::vector<uint8_t>& o, float f) {
    uint32_t v;
    std::memcpy(&v, &f, 4);
    put32(o, v);
}
void put_str(std::vector<uint8_t>& o, const std::string& s) {
    put32(o, static_cast<uint32_t>(s.size()));
    o.insert(o.end(), s.begin(), s.end());
}
void put_ids(std::vector<uint8_t>& o, const std::vector<uint32_t>& v) {
    put32(o, static_cast<uint32_t>(v.size()));
    for (uint32_t x : v) put32(o, x);
}

std::vector<uint8_t> serialize(const FakeContext& c) {
    std::vector<uint8_t> o = {'F', 'A', 'K', 'E', 'Q', 'N', 'N', 'B'};
    put32(o, static_cast<uint32_t>(c.graphs.size()));
    for (const auto& g : c.graphs) {
        put_str(o, g->name);
        put32(o, static_cast<uint32_t>(g->tensors.size()));
        for (const FakeTensor& t : g->tensors) {
            put_str(o, t.name);
            put32(o, t.type);
            put32(o, t.dtype);
            put_ids(o, t.dims);
            put32(o, t.is_param ? 1 : 0);
            const htp::Encoding& e = t.enc;
            put32(o, static_cast<uint32_t>(e.kind));
            put_f32(o, e.scale);
            put32(o, static_cast<uint32_t>(e.offset));
            put32(o, static_cast<uint32_t>(e.axis));
            put32(o, static_cast<uint32_t>(e.scales.size()));
            for (float f : e.scales) put_f32(o, f);
            put32(o, static_cast<uint32_t>(e.offsets.size()));
            for (int32_t x : e.offsets) put32(o, static_cast<uint32_t>(x));
            put32(o, static_cast<uint32_t>(e.block_size));
            put32(o, static_cast<uint32_t>(e.block_scale_bits));
            put64(o, e.block_scales.size());
            o.insert(o.end(), e.block_scales.begin(), e.block_scales.end());
            put64(o, t.data.size());
            o.insert(o.end(), t.data.begin(), t.data.end());
        }
        put32(o, static_cast<uint32_t>(g->nodes.size()));
        for (const FakeNode& n : g->nodes) {
            put_str(o, n.name);
            put_str(o, n.package);
            put_str(o, n.type);
            put32(o, static_cast<uint32_t>(n.params.size()));
            for (const htp::Param& p : n.params) {
                put_str(o, p.name);
                put32(o, static_cast<uint32_t>(p.kind));
                uint64_t bits;
                std::memcpy(&bits, &p.scalar, 8);
                put64(o, bits);
                put32(o, static_cast<uint32_t>(p.values.size()));
                for (int64_t v : p.values) put64(o, static_cast<uint64_t>(v));
                put_ids(o, p.dims);
            }
            put_ids(o, n.inputs);
            put_ids(o, n.outputs);
        }
    }
    return o;
}

// Reads what serialize wrote; every count is checked against the bytes left before use.
struct In {
    const uint8_t* p;
    size_t left;
    bool ok = true;
    uint32_t u32() {
        if (left < 4) return ok = false, 0;
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
        p += 4, left -= 4;
        return v;
    }
    uint64_t u64() {
        const uint64_t lo = u32();
        return lo | static_cast<uint64_t>(u32()) << 32;
    }
    float f32() {
        const uint32_t v = u32();
        float f;
        std::memcpy(&f, &v, 4);
        return f;
    }
    // A count of items of at least `each` bytes that must fit in what is left.
    uint64_t count(uint64_t n, uint64_t each) {
        if (!ok || n > left / each) return ok = false, 0;
        return n;
    }
    std::vector<uint8_t> bytes() {
        const uint64_t n = count(u64(), 1);
        std::vector<uint8_t> v(p, p + n);
        p += n, left -= n;
        return v;
    }
    std::string str() {
        const uint32_t n = static_cast<uint32_t>(count(u32(), 1));
        std::string s(reinterpret_cast<const char*>(p), n);
        p += n, left -= n;
        return s;
    }
    std::vector<uint32_t> ids() {
        std::vector<uint32_t> v(count(u32(), 4));
        for (uint32_t& x : v) x = u32();
        return v;
    }
};

std::unique_ptr<FakeGraph> deserialize_graph(In& in) {
    auto g = std::make_unique<FakeGraph>();
    g->name = in.str();
    g->finalized = true;
    const uint64_t nt = in.count(in.u32(), 4);
    for (uint32_t k = 0; in.ok && k < nt; ++k) {
        FakeTensor t;
        t.id = k + 1;
        t.name = in.str();
        t.type = static_cast<q::TensorType>(in.u32());
        t.dtype = static_cast<q::DataType>(in.u32());
        t.dims = in.ids();
        t.is_param = in.u32() != 0;
        htp::Encoding& e = t.enc;
        const uint32_t kind = in.u32();
        if (kind > static_cast<uint32_t>(htp::Encoding::Kind::BlockwiseExpansion)) in.ok = false;
        e.kind = static_cast<htp::Encoding::Kind>(kind);
        e.scale = in.f32();
        e.offset = static_cast<int32_t>(in.u32());
        e.axis = static_cast<int32_t>(in.u32());
        e.scales.resize(in.count(in.u32(), 4));
        for (float& f : e.scales) f = in.f32();
        e.offsets.resize(in.count(in.u32(), 4));
        for (int32_t& x : e.offsets) x = static_cast<int32_t>(in.u32());
        e.block_size = static_cast<int32_t>(in.u32());
        e.block_scale_bits = static_cast<int32_t>(in.u32());
        e.block_scales = in.bytes();
        t.data = in.bytes();
        if (t.dims.empty() || t.dims.size() > 5) in.ok = false;
        g->tensors.push_back(std::move(t));
    }
    const uint64_t nn = in.count(in.u32(), 4);
    for (uint32_t k = 0; in.ok && k < nn; ++k) {
        FakeNode n;
        n.name = in.str();
        n.package = in.str();
        n.type = in.str();
        const uint64_t np = in.count(in.u32(), 4);
        for (uint32_t i = 0; in.ok && i < np; ++i) {
            htp::Param p;
            p.name = in.str();
            const uint32_t kind = in.u32();
            if (kind > static_cast<uint32_t>(htp::Param::Kind::TensorInt32)) in.ok = false;
            p.kind = static_cast<htp::Param::Kind>(kind);
            const uint64_t bits = in.u64();
            std::memcpy(&p.scalar, &bits, 8);
            p.values.resize(in.count(in.u32(), 8));
            for (int64_t& v : p.values) v = static_cast<int64_t>(in.u64());
            p.dims = in.ids();
            n.params.push_back(std::move(p));
        }
        n.inputs = in.ids();
        n.outputs = in.ids();
        for (uint32_t id : n.inputs) in.ok = in.ok && id >= 1 && id <= g->tensors.size();
        for (uint32_t id : n.outputs) in.ok = in.ok && id >= 1 && id <= g->tensors.size();
        g->nodes.push_back(std::move(n));
    }
    return g;
}

q::ErrorHandle context_get_binary_size(q::ContextHandle ch, q::ContextBinarySize* size) {
    if (q::ErrorHandle e = enter("QnnContext_getBinarySize")) return e;
    FakeContext* c = as_context(ch);
    if (!c) return kErrInvalidHandle;
    *size = serialize(*c).size() + 64;  // an upper bound, as QNN's is
    return q::kSuccess;
}

q::ErrorHandle context_get_binary(q::ContextHandle ch, void* buf, q::ContextBinarySize size, q::ContextBinarySize* written) {
    if (q::ErrorHandle e = enter("QnnContext_getBinary")) return e;
    FakeContext* c = as_context(ch);
    if (!c) return kErrInvalidHandle;
    for (auto& g : c->graphs) {
        if (!g->finalized) return log_error("fake QNN: graph %s is not finalized", g->name.c_str()), kErrGeneral;
    }
    const std::vector<uint8_t> b = serialize(*c);
    if (b.size() > size) return kErrInvalidArgument;
    std::memcpy(buf, b.data(), b.size());
    *written = b.size();
    return q::kSuccess;
}

q::ErrorHandle context_create_from_binary(q::BackendHandle b, q::DeviceHandle d, q::ConfigList, const void* buf,
                                          q::ContextBinarySize size, q::ContextHandle* out, q::ProfileHandle) {
    if (q::ErrorHandle e = enter("QnnContext_createFromBinary")) return e;
    if (b != &st().backend_token || d != &st().device_token) return kErrInvalidHandle;
    In in{static_cast<const uint8_t*>(buf), static_cast<size_t>(size)};
    if (size < 8 || std::memcmp(buf, "FAKEQNNB", 8) != 0) return log_error("fake QNN: not a context binary"), kErrContextBinary;
    in.p += 8, in.left -= 8;
    auto c = std::make_unique<FakeContext>();
    const uint64_t n = in.count(in.u32(), 4);
    for (uint32_t i = 0; in.ok && i < n; ++i) c->graphs.push_back(deserialize_graph(in));
    if (!in.ok || in.left != 0) return log_error("fake QNN: truncated context binary"), kErrContextBinary;
    st().contexts.push_back(std::move(c));
    *out = st().contexts.back().get();
    return q::kSuccess;
}

q::Interface make_provider(uint32_t backend_id, const char* name, q::Version core) {
    q::Interface p{};
    p.backend_id = backend_id;
    p.provider_name = name;
    p.api_version.core = core;
    p.api_version.backend = {5, 20, 0};
    q::InterfaceTable& t = p.table;
    t.backend_create = backend_create;
    t.backend_get_build_id = backend_get_build_id;
    t.backend_free = backend_free;
    t.context_create = context_create;
    t.context_get_binary_size = context_get_binary_size;
    t.context_get_binary = context_get_binary;
    t.context_create_from_binary = context_create_from_binary;
    t.context_free = context_free;
    t.graph_create = graph_create;
    t.graph_add_node = graph_add_node;
    t.graph_finalize = graph_finalize;
    t.graph_retrieve = graph_retrieve;
    t.graph_execute = graph_execute;
    t.tensor_create_graph_tensor = tensor_create_graph_tensor;
    t.log_create = log_create;
    t.log_free = log_free;
    t.device_create = device_create;
    t.device_free = device_free;
    return p;
}

}  // namespace

extern "C" {

EI_FAKE_QNN_EXPORT q::ErrorHandle QnnInterface_getProviders(const q::Interface*** providers, uint32_t* n) {
    static q::Interface list[2];
    static const q::Interface* ptrs[2];
    if (q::ErrorHandle e = enter(q::kGetProvidersSymbol)) return e;
    // A CPU provider first, so the adapter must choose by backend id.
    list[0] = make_provider(3, "fake_CPU", {2, 20, 0});
    list[1] = make_provider(st().htp_backend_id, "fake_HTP", st().htp_core);
    ptrs[0] = &list[0];
    ptrs[1] = &list[1];
    *providers = ptrs;
    *n = 2;
    return q::kSuccess;
}

EI_FAKE_QNN_EXPORT void ei_fake_qnn_set_compute(int on) { st().compute = on != 0; }

EI_FAKE_QNN_EXPORT void ei_fake_qnn_reset(void) {
    State& s = st();
    s.compute = false;
    s.calls.clear();
    s.htp_backend_id = q::kBackendIdHtp;
    s.htp_core = {2, 20, 0};
    s.fail_next.clear();
    s.rebuilt.clear();
    s.inputs.clear();
}

EI_FAKE_QNN_EXPORT void ei_fake_qnn_set_htp_provider(uint32_t backend_id, uint32_t core_major, uint32_t core_minor) {
    st().htp_backend_id = backend_id;
    st().htp_core = {core_major, core_minor, 0};
}

EI_FAKE_QNN_EXPORT void ei_fake_qnn_fail(const char* call, uint64_t code) { st().fail_next[call] = code; }

EI_FAKE_QNN_EXPORT const char* ei_fake_qnn_calls(void) { return st().calls.c_str(); }

EI_FAKE_QNN_EXPORT const void* ei_fake_qnn_graph(const char* name) {
    auto it = st().rebuilt.find(name);
    return it == st().rebuilt.end() ? nullptr : &it->second;
}

EI_FAKE_QNN_EXPORT const uint8_t* ei_fake_qnn_input(const char* graph, const char* tensor, size_t* size) {
    auto it = st().inputs.find(std::string(graph) + "/" + tensor);
    if (it == st().inputs.end()) return nullptr;
    *size = it->second.size();
    return it->second.data();
}

}  // extern "C"
