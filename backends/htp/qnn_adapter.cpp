// The QNN adapter (qnn_adapter.h): run-time loading, provider choice, and the translation of
// lowered graphs into QNN API calls.
#include "htp/qnn_adapter.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>

#include "error.h"
#include "file_io.h"
#include "htp/qnn_context_cache.h"

namespace ei::htp {

namespace {

// QNN reports the reason of a failure through the log callback, before the call returns;
// the last error line is kept per thread and appended to the ei::Error.
thread_local std::string t_last_qnn_error;

void log_callback(const char* fmt, qnn::LogLevel level, uint64_t, va_list args) {
    if (level > qnn::kLogWarn || !fmt) return;
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, args);
    t_last_qnn_error = buf;
    while (!t_last_qnn_error.empty() && (t_last_qnn_error.back() == '\n' || t_last_qnn_error.back() == '\r')) {
        t_last_qnn_error.pop_back();
    }
}

void check(qnn::ErrorHandle e, const char* call, const std::string& what) {
    if (e == qnn::kSuccess) return;
    std::string msg = std::string("QNN: ") + call + " failed (" + what + "): error code " + std::to_string(qnn::error_code(e));
    if (!t_last_qnn_error.empty()) msg += "; QNN log: " + t_last_qnn_error;
    t_last_qnn_error.clear();
    fail(EI_ERR_INTERNAL, msg);
}

std::string version_string(const qnn::Version& v) {
    return std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
}

bool compatible(const qnn::Version& core) {
    return core.major == qnn::kCoreApiMajor && core.minor >= qnn::kCoreApiMinMinor;
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::string first_line(const std::string& path) {
    std::ifstream f(path);
    std::string line;
    if (!f || !std::getline(f, line)) return "";
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    return line;
}

qnn::DataType qnn_dtype(DType t) {
    switch (t) {
        case DType::Float32: return qnn::kFloat32;
        case DType::Int32: return qnn::kInt32;
        case DType::UInt32: return qnn::kUInt32;
        case DType::Bool8: return qnn::kBool8;
        case DType::UFixed16: return qnn::kUFixed16;
        case DType::UFixed8: return qnn::kUFixed8;
        case DType::SFixed8: return qnn::kSFixed8;
        case DType::SFixed4: return qnn::kSFixed4;
        case DType::SFixed32: return qnn::kSFixed32;
        case DType::Float16: return qnn::kFloat16;
    }
    fail(EI_ERR_INTERNAL, "QNN: unknown tensor data type");
}

qnn::TensorType qnn_kind(TensorKind k) {
    switch (k) {
        case TensorKind::Static: return qnn::kTensorStatic;
        case TensorKind::AppWrite: return qnn::kTensorAppWrite;
        case TensorKind::AppRead: return qnn::kTensorAppRead;
        case TensorKind::Native: return qnn::kTensorNative;
    }
    fail(EI_ERR_INTERNAL, "QNN: unknown tensor kind");
}

// A QNN tensor description and everything it points at. Kept at a fixed address (in a
// deque) for as long as the graph lives: QNN reads the pointers during the calls, and the
// io tensors are passed again at every execution.
struct TensorStore {
    uint32_t ir_id = 0;
    std::string name;
    std::vector<uint32_t> dims;
    std::vector<qnn::ScaleOffset> scale_offsets;
    std::vector<uint8_t> block_scales;
    qnn::BlockwiseExpansion blockwise{};
    std::vector<uint8_t> param_data;  // a param tensor's elements
    qnn::Tensor t{};
};

// Fills s.t from an IR tensor (everything but the QNN id).
void describe_tensor(const Tensor& ir, TensorStore& s) {
    s.ir_id = ir.id;
    s.name = ir.name;
    s.dims = ir.dims;
    s.t = {};
    s.t.version = qnn::kTensorVersion1;
    qnn::TensorV1& v = s.t.v1;
    v.name = s.name.c_str();
    v.type = qnn_kind(ir.kind);
    v.data_format = qnn::kDataFormatFlatBuffer;
    v.data_type = qnn_dtype(ir.dtype);
    v.rank = static_cast<uint32_t>(s.dims.size());
    v.dimensions = s.dims.data();
    v.mem_type = qnn::kMemRaw;
    v.client_buf = {nullptr, 0};
    qnn::QuantizeParams& q = v.quantize_params;
    const Encoding& e = ir.enc;
    auto offset_of = [&](size_t c) { return e.offsets.empty() ? 0 : e.offsets[c]; };
    switch (e.kind) {
        case Encoding::Kind::None:
            q.encoding_definition = qnn::kDefinitionUndefined;
            q.quantization_encoding = qnn::kEncodingUndefined;
            break;
        case Encoding::Kind::PerTensor:
            q.encoding_definition = qnn::kDefinitionDefined;
            q.quantization_encoding = qnn::kEncodingScaleOffset;
            q.scale_offset = {e.scale, e.offset};
            break;
        case Encoding::Kind::PerChannel:
            for (size_t c = 0; c < e.scales.size(); ++c) s.scale_offsets.push_back({e.scales[c], offset_of(c)});
            q.encoding_definition = qnn::kDefinitionDefined;
            q.quantization_encoding = qnn::kEncodingAxisScaleOffset;
            q.axis_scale_offset = {e.axis, static_cast<uint32_t>(s.scale_offsets.size()), s.scale_offsets.data()};
            break;
        case Encoding::Kind::BlockwiseExpansion:
            for (size_t c = 0; c < e.scales.size(); ++c) s.scale_offsets.push_back({e.scales[c], offset_of(c)});
            s.block_scales = e.block_scales;
            s.blockwise = {};
            s.blockwise.axis = e.axis;
            s.blockwise.scale_offsets = s.scale_offsets.data();
            s.blockwise.num_blocks_per_axis = ir.dims[1] / static_cast<uint32_t>(e.block_size);
            s.blockwise.block_scale_bitwidth = static_cast<uint32_t>(e.block_scale_bits);
            s.blockwise.block_scale_storage = qnn::kBlockScaleStorage8;
            s.blockwise.block_scales8 = s.block_scales.data();
            q.encoding_definition = qnn::kDefinitionDefined;
            q.quantization_encoding = qnn::kEncodingBlockwiseExpansion;
            q.blockwise_expansion = &s.blockwise;
            break;
    }
    if (ir.kind == TensorKind::Static) {
        if (ir.data->size() > std::numeric_limits<uint32_t>::max()) {
            fail(EI_ERR_UNSUPPORTED, "QNN: static tensor '" + ir.name + "' is over 4 GiB");
        }
        // QNN takes a non-const pointer but only reads static data (it copies it).
        v.client_buf = {const_cast<uint8_t*>(ir.data->data()), static_cast<uint32_t>(ir.data->size())};
    }
}

void hash_bytes(uint64_t& h, const void* p, size_t n) { h = fnv1a64(p, n, h); }
template <class T>
void hash_val(uint64_t& h, T v) { hash_bytes(h, &v, sizeof v); }
void hash_str(uint64_t& h, const std::string& s) {
    hash_val<uint64_t>(h, s.size());
    hash_bytes(h, s.data(), s.size());
}
template <class T>
void hash_vec(uint64_t& h, const std::vector<T>& v) {
    hash_val<uint64_t>(h, v.size());
    if (!v.empty()) hash_bytes(h, v.data(), v.size() * sizeof(T));
}

}  // namespace

std::string qnn_backend_library_path() {
    const std::string lib = env("EI_QNN_HTP_LIB");
    if (!lib.empty()) return lib;
    const std::string dir = env("EI_QNN_LIB_DIR");
    if (!dir.empty()) return dir + "/libQnnHtp.so";
    return "libQnnHtp.so";
}

std::string qnn_soc_id() {
    std::string s = env("EI_QNN_SOC");
    if (s.empty()) s = first_line("/sys/devices/soc0/soc_id");
    if (s.empty()) s = first_line("/sys/devices/soc0/machine");
    return s.empty() ? "unknown" : s;
}

uint64_t qnn_graph_signature(const QnnGraph& g) {
    uint64_t h = 1469598103934665603ull;
    hash_str(h, g.name);
    hash_val<uint64_t>(h, g.tensors.size());
    for (const Tensor& t : g.tensors) {
        hash_str(h, t.name);
        hash_val(h, static_cast<uint8_t>(t.kind));
        hash_val(h, static_cast<uint8_t>(t.dtype));
        hash_vec(h, t.dims);
        hash_val(h, static_cast<uint8_t>(t.io));
        hash_val(h, t.layer);
        hash_val(h, static_cast<uint8_t>(t.enc.kind));
        hash_val(h, t.enc.scale);
        hash_val(h, t.enc.offset);
        hash_val(h, t.enc.axis);
        hash_vec(h, t.enc.scales);
        hash_vec(h, t.enc.offsets);
        hash_val(h, t.enc.block_size);
        hash_val(h, t.enc.block_scale_bits);
        hash_vec(h, t.enc.block_scales);
        if (t.data) {
            hash_vec(h, *t.data);
        } else {
            hash_val<uint64_t>(h, ~0ull);
        }
    }
    hash_val<uint64_t>(h, g.nodes.size());
    for (const Node& n : g.nodes) {
        hash_str(h, n.name);
        hash_val(h, static_cast<uint8_t>(n.type));
        hash_vec(h, n.inputs);
        hash_vec(h, n.outputs);
        hash_val<uint64_t>(h, n.params.size());
        for (const Param& p : n.params) {
            hash_str(h, p.name);
            hash_val(h, static_cast<uint8_t>(p.kind));
            hash_val(h, p.scalar);
            hash_vec(h, p.values);
            hash_vec(h, p.dims);
        }
    }
    return h;
}

struct QnnAdapter::Impl {
    struct Graph {
        std::string name;
        uint64_t signature = 0;
        qnn::GraphHandle handle = nullptr;
        std::vector<uint32_t> inputs;   // IR ids of AppWrite tensors, in table order
        std::vector<uint32_t> outputs;  // IR ids of AppRead tensors
        std::map<uint32_t, TensorStore*> io;  // IR id -> its description (with the QNN id)
        std::deque<TensorStore> store;
        // execute()'s scratch, sized on its first call so later steps allocate nothing:
        // IR id -> index into inputs then outputs, the buffer bound there, QNN's io arrays.
        std::map<uint32_t, size_t> slot;
        std::vector<const QnnIoBuffer*> bound;
        std::vector<qnn::Tensor> ins, outs;
    };

    std::string library;
    std::string soc;
    bool share_weights = true;
    std::string weight_sharing;
    void* dl = nullptr;
    const qnn::Interface* provider = nullptr;
    std::string provider_name;
    std::string build_id;
    qnn::LogHandle log = nullptr;
    qnn::BackendHandle backend = nullptr;
    qnn::DeviceHandle device = nullptr;
    qnn::ContextHandle context = nullptr;
    std::map<std::string, Graph> graphs;

    const qnn::InterfaceTable& api() const { return provider->table; }

    template <class Fn>
    Fn need(Fn fn, const char* call) const {
        if (!fn) fail(EI_ERR_UNSUPPORTED, std::string("QNN: provider '") + provider_name + "' does not implement " + call);
        return fn;
    }

    void open() {
        dl = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            const char* why = dlerror();
            fail(EI_ERR_UNSUPPORTED, "QNN: cannot load the HTP backend library " + library + " (" + (why ? why : "?") +
                                         "); set EI_QNN_HTP_LIB or EI_QNN_LIB_DIR to its location");
        }
        auto get = reinterpret_cast<qnn::GetProvidersFn>(dlsym(dl, qnn::kGetProvidersSymbol));
        if (!get) fail(EI_ERR_UNSUPPORTED, "QNN: " + library + " does not export " + qnn::kGetProvidersSymbol);
        const qnn::Interface** list = nullptr;
        uint32_t n = 0;
        check(get(&list, &n), qnn::kGetProvidersSymbol, "listing the providers of " + library);
        if (!list || n == 0) fail(EI_ERR_UNSUPPORTED, "QNN: " + library + " lists no providers");
        std::string seen;
        for (uint32_t i = 0; i < n; ++i) {
            const qnn::Interface* p = list[i];
            if (!p) continue;
            const std::string name = p->provider_name ? p->provider_name : "?";
            seen += (seen.empty() ? "" : ", ") + name + " (backend id " + std::to_string(p->backend_id) + ", core API " +
                    version_string(p->api_version.core) + ")";
            if (p->backend_id == qnn::kBackendIdHtp && compatible(p->api_version.core)) {
                provider = p;
                provider_name = name;
                return;
            }
        }
        fail(EI_ERR_UNSUPPORTED, "QNN: " + library + " has no HTP provider (backend id " + std::to_string(qnn::kBackendIdHtp) +
                                     ") with a compatible core API (" + std::to_string(qnn::kCoreApiMajor) + "." +
                                     std::to_string(qnn::kCoreApiMinMinor) + " or a later " +
                                     std::to_string(qnn::kCoreApiMajor) + ".x); it has: " + seen);
    }

    void create() {
        check(need(api().log_create, "QnnLog_create")(log_callback, qnn::kLogWarn, &log), "QnnLog_create", "the logger");
        check(need(api().backend_create, "QnnBackend_create")(log, nullptr, &backend), "QnnBackend_create", "the HTP backend");
        if (api().backend_get_build_id) {
            const char* id = nullptr;
            check(api().backend_get_build_id(&id), "QnnBackend_getBuildId", "the backend's build id");
            build_id = id ? id : "";
        }
        // A backend without devices (none of QNN's NPU ones) would leave this null.
        if (api().device_create) check(api().device_create(log, nullptr, &device), "QnnDevice_create", "the HTP device");
        new_context();
    }

    void new_context() {
        auto create = need(api().context_create, "QnnContext_create");
        if (share_weights) {
            qnn::HtpContextCustomConfig htp{};
            htp.option = qnn::kHtpContextWeightSharing;
            htp.weight_sharing_enabled = true;
            qnn::ContextConfig cfg{};
            cfg.option = qnn::kContextConfigCustom;
            cfg.custom_config = &htp;
            const void* list[] = {&cfg, nullptr};
            const qnn::ErrorHandle e = create(backend, device, list, &context);
            if (e == qnn::kSuccess) {
                weight_sharing = "shared";
                return;
            }
            // Weight sharing is an optimization: a backend that refuses it (QNN documents it
            // for offline preparation) still gets a context, and the reason is kept.
            weight_sharing = "not shared (the backend refused: QnnContext_create error code " + std::to_string(qnn::error_code(e)) +
                             (t_last_qnn_error.empty() ? "" : "; QNN log: " + t_last_qnn_error) + ")";
            t_last_qnn_error.clear();
            context = nullptr;
        } else {
            weight_sharing = "not shared (not asked)";
        }
        check(create(backend, device, nullptr, &context), "QnnContext_create", "a context");
    }

    void free_context() {
        graphs.clear();  // QNN frees a context's graphs with it
        if (context && api().context_free) api().context_free(context, nullptr);
        context = nullptr;
    }

    ~Impl() {
        if (provider) {
            free_context();
            if (device && api().device_free) api().device_free(device);
            if (backend && api().backend_free) api().backend_free(backend);
            if (log && api().log_free) api().log_free(log);
        }
        if (dl) dlclose(dl);
    }

    Graph& graph(const std::string& name) {
        auto it = graphs.find(name);
        if (it == graphs.end()) fail(EI_ERR_INVALID_ARGUMENT, "QNN: no graph '" + name + "' in the context");
        return it->second;
    }

    // The io descriptions of g's tensors (QNN ids filled in by the caller).
    static void describe_io(const QnnGraph& ir, Graph& g) {
        for (const Tensor& t : ir.tensors) {
            if (t.kind != TensorKind::AppWrite && t.kind != TensorKind::AppRead) continue;
            g.store.emplace_back();
            describe_tensor(t, g.store.back());
            g.io[t.id] = &g.store.back();
            (t.kind == TensorKind::AppWrite ? g.inputs : g.outputs).push_back(t.id);
        }
    }

    void build(const QnnGraph& ir) {
        ir.validate();
        if (graphs.count(ir.name)) fail(EI_ERR_INVALID_ARGUMENT, "QNN: graph '" + ir.name + "' is already in the context");
        Graph g;
        g.name = ir.name;
        g.signature = qnn_graph_signature(ir);
        check(need(api().graph_create, "QnnGraph_create")(context, ir.name.c_str(), nullptr, &g.handle), "QnnGraph_create",
              "graph '" + ir.name + "'");
        auto create_tensor = need(api().tensor_create_graph_tensor, "QnnTensor_createGraphTensor");
        std::vector<TensorStore*> by_id(ir.tensors.size(), nullptr);
        for (const Tensor& t : ir.tensors) {
            g.store.emplace_back();
            TensorStore& s = g.store.back();
            describe_tensor(t, s);
            check(create_tensor(g.handle, &s.t), "QnnTensor_createGraphTensor", "tensor '" + t.name + "' of graph '" + ir.name + "'");
            by_id[t.id] = &s;
            if (t.kind == TensorKind::AppWrite || t.kind == TensorKind::AppRead) {
                g.io[t.id] = &s;
                (t.kind == TensorKind::AppWrite ? g.inputs : g.outputs).push_back(t.id);
            }
        }
        auto add_node = need(api().graph_add_node, "QnnGraph_addNode");
        for (const Node& n : ir.nodes) {
            std::vector<qnn::Param> params(n.params.size());
            for (size_t i = 0; i < n.params.size(); ++i) params[i] = make_param(g, n, n.params[i], create_tensor);
            std::vector<qnn::Tensor> ins, outs;
            for (uint32_t id : n.inputs) ins.push_back(by_id[id]->t);
            for (uint32_t id : n.outputs) outs.push_back(by_id[id]->t);
            const std::string type = op_type_name(n.type);
            qnn::OpConfig op{};
            op.version = qnn::kOpConfigVersion1;
            op.v1.name = n.name.c_str();
            op.v1.package_name = qnn::kOpPackage;
            op.v1.type_name = type.c_str();
            op.v1.num_of_params = static_cast<uint32_t>(params.size());
            op.v1.params = params.empty() ? nullptr : params.data();
            op.v1.num_of_inputs = static_cast<uint32_t>(ins.size());
            op.v1.input_tensors = ins.empty() ? nullptr : ins.data();
            op.v1.num_of_outputs = static_cast<uint32_t>(outs.size());
            op.v1.output_tensors = outs.data();
            check(add_node(g.handle, op), "QnnGraph_addNode", "node '" + n.name + "' (" + type + ") of graph '" + ir.name + "'");
        }
        check(need(api().graph_finalize, "QnnGraph_finalize")(g.handle, nullptr, nullptr), "QnnGraph_finalize",
              "graph '" + ir.name + "'");
        const std::string name = g.name;
        graphs.emplace(name, std::move(g));
    }

    qnn::Param make_param(Graph& g, const Node& n, const Param& p, qnn::TensorCreateGraphTensorFn create_tensor) {
        qnn::Param q{};
        q.name = p.name.c_str();
        auto bad = [&](const std::string& why) -> void {
            fail(EI_ERR_INVALID_ARGUMENT, "QNN: param '" + p.name + "' of node '" + n.name + "': " + why);
        };
        if (p.kind == Param::Kind::TensorUInt32 || p.kind == Param::Kind::TensorInt32) {
            const bool u = p.kind == Param::Kind::TensorUInt32;
            uint64_t count = 1;
            for (uint32_t d : p.dims) count *= d;
            if (p.dims.empty() || count != p.values.size()) bad("dims do not hold its " + std::to_string(p.values.size()) + " values");
            g.store.emplace_back();
            TensorStore& s = g.store.back();
            s.name = n.name + "." + p.name;
            s.dims = p.dims;
            s.param_data.resize(count * 4);
            for (size_t i = 0; i < p.values.size(); ++i) {
                const int64_t v = p.values[i];
                if (u ? (v < 0 || v > int64_t{std::numeric_limits<uint32_t>::max()})
                      : (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())) {
                    bad("value " + std::to_string(v) + " out of range of its type");
                }
                const uint32_t bits = static_cast<uint32_t>(v);
                std::memcpy(&s.param_data[i * 4], &bits, 4);
            }
            s.t.version = qnn::kTensorVersion1;
            qnn::TensorV1& v = s.t.v1;
            v.name = s.name.c_str();
            v.type = qnn::kTensorStatic;
            v.data_format = qnn::kDataFormatFlatBuffer;
            v.data_type = u ? qnn::kUInt32 : qnn::kInt32;
            v.quantize_params.encoding_definition = qnn::kDefinitionUndefined;
            v.quantize_params.quantization_encoding = qnn::kEncodingUndefined;
            v.rank = static_cast<uint32_t>(s.dims.size());
            v.dimensions = s.dims.data();
            v.mem_type = qnn::kMemRaw;
            v.client_buf = {s.param_data.data(), static_cast<uint32_t>(s.param_data.size())};
            check(create_tensor(g.handle, &s.t), "QnnTensor_createGraphTensor", "param tensor '" + s.name + "'");
            q.param_type = qnn::kParamTensor;
            q.tensor_param = s.t;
            return q;
        }
        q.param_type = qnn::kParamScalar;
        qnn::Scalar& sc = q.scalar_param;
        const double x = p.scalar;
        switch (p.kind) {
            case Param::Kind::Bool:
                sc.data_type = qnn::kBool8;
                sc.bool8 = x != 0 ? 1 : 0;
                break;
            case Param::Kind::UInt32:
                if (!(x >= 0 && x <= 4294967295.0) || x != std::floor(x)) bad("not a 32-bit unsigned integer");
                sc.data_type = qnn::kUInt32;
                sc.u32 = static_cast<uint32_t>(x);
                break;
            case Param::Kind::Int32:
                if (!(x >= -2147483648.0 && x <= 2147483647.0) || x != std::floor(x)) bad("not a 32-bit integer");
                sc.data_type = qnn::kInt32;
                sc.i32 = static_cast<int32_t>(x);
                break;
            case Param::Kind::Float:
                sc.data_type = qnn::kFloat32;
                sc.f32 = static_cast<float>(x);
                break;
            default: bad("unknown kind");
        }
        return q;
    }

    void execute(const std::string& name, const std::vector<QnnIoBuffer>& io) {
        Graph& g = graph(name);
        if (g.bound.empty() && !g.io.empty()) {
            for (uint32_t id : g.inputs) g.slot.emplace(id, g.slot.size());
            for (uint32_t id : g.outputs) g.slot.emplace(id, g.slot.size());
            g.bound.resize(g.slot.size());
            g.ins.resize(g.inputs.size());
            g.outs.resize(g.outputs.size());
        }
        std::fill(g.bound.begin(), g.bound.end(), nullptr);
        for (const QnnIoBuffer& b : io) {
            auto it = g.slot.find(b.tensor);
            if (it == g.slot.end()) {
                fail(EI_ERR_INVALID_ARGUMENT, "QNN: graph '" + name + "' has no input or output with tensor id " + std::to_string(b.tensor));
            }
            const TensorStore& s = *g.io.at(b.tensor);
            if (g.bound[it->second]) fail(EI_ERR_INVALID_ARGUMENT, "QNN: '" + s.name + "' is bound twice");
            g.bound[it->second] = &b;
            uint64_t want = 1;
            for (uint32_t d : s.dims) want *= d;
            want *= ([&] {
                switch (s.t.v1.data_type) {
                    case qnn::kUFixed16: case qnn::kFloat16: return 2u;
                    case qnn::kFloat32: case qnn::kInt32: case qnn::kUInt32: case qnn::kSFixed32: return 4u;
                    default: return 1u;
                }
            })();
            if (b.bytes != want || !b.data) {
                fail(EI_ERR_INVALID_ARGUMENT, "QNN: '" + s.name + "' of graph '" + name + "' needs a buffer of " + std::to_string(want) +
                                                  " bytes, got " + std::to_string(b.bytes));
            }
        }
        auto gather = [&](const std::vector<uint32_t>& ids, size_t first, std::vector<qnn::Tensor>& v) {
            for (size_t i = 0; i < ids.size(); ++i) {
                const QnnIoBuffer* b = g.bound[first + i];
                if (!b) fail(EI_ERR_INVALID_ARGUMENT, "QNN: '" + g.io[ids[i]]->name + "' of graph '" + name + "' is not bound");
                v[i] = g.io[ids[i]]->t;
                v[i].v1.mem_type = qnn::kMemRaw;
                v[i].v1.client_buf = {b->data, static_cast<uint32_t>(b->bytes)};
            }
        };
        gather(g.inputs, 0, g.ins);
        gather(g.outputs, g.inputs.size(), g.outs);
        const qnn::ErrorHandle e = need(api().graph_execute, "QnnGraph_execute")(
            g.handle, g.ins.empty() ? nullptr : g.ins.data(), static_cast<uint32_t>(g.ins.size()), g.outs.data(),
            static_cast<uint32_t>(g.outs.size()), nullptr, nullptr);
        if (e != qnn::kSuccess) check(e, "QnnGraph_execute", "graph '" + name + "'");  // the message only on failure
    }

    std::string key(const std::vector<const QnnGraph*>& irs) const {
        uint64_t h = 1469598103934665603ull;
        for (const QnnGraph* g : irs) hash_val(h, qnn_graph_signature(*g));
        return make_context_cache_key(provider_name, build_id,
                                      version_string(provider->api_version.core) + "/" + version_string(provider->api_version.backend),
                                      soc, h);
    }

    void save(const std::string& path, const std::vector<const QnnGraph*>& irs) {
        ContextCache c;
        c.key = key(irs);
        for (const QnnGraph* ir : irs) {
            Graph& g = graph(ir->name);
            if (g.signature != qnn_graph_signature(*ir)) fail(EI_ERR_INVALID_ARGUMENT, "QNN: graph '" + ir->name + "' was built from another IR");
            CachedGraph cg;
            cg.name = g.name;
            cg.signature = g.signature;
            for (const auto& [id, s] : g.io) cg.io_ids.emplace_back(id, s->t.v1.id);
            c.graphs.push_back(std::move(cg));
        }
        if (c.graphs.size() != graphs.size()) fail(EI_ERR_INVALID_ARGUMENT, "QNN: the context holds graphs not named to save");
        qnn::ContextBinarySize size = 0;
        check(need(api().context_get_binary_size, "QnnContext_getBinarySize")(context, &size), "QnnContext_getBinarySize", "the context");
        c.binary.resize(size);
        qnn::ContextBinarySize written = 0;
        check(need(api().context_get_binary, "QnnContext_getBinary")(context, c.binary.data(), size, &written),
              "QnnContext_getBinary", "the context");
        if (written == 0 || written > size) {
            fail(EI_ERR_INTERNAL, "QNN: QnnContext_getBinary wrote " + std::to_string(written) + " bytes of a " + std::to_string(size) + " byte buffer");
        }
        c.binary.resize(written);
        write_context_cache_file(path, c);
    }

    void load(const std::string& path, const std::vector<const QnnGraph*>& irs) {
        ContextCache c = read_context_cache_file(path);
        const std::string want = key(irs);
        if (c.key != want) {
            fail(EI_ERR_FORMAT, "QNN context cache " + path + " was written for another device, SoC, QNN build or model (key '" +
                                    c.key + "', this one is '" + want + "')");
        }
        if (c.graphs.size() != irs.size()) fail(EI_ERR_FORMAT, "QNN context cache " + path + " holds " + std::to_string(c.graphs.size()) + " graphs, not " + std::to_string(irs.size()));
        std::map<std::string, Graph> loaded;
        for (const QnnGraph* ir : irs) {
            const CachedGraph* cg = nullptr;
            for (const CachedGraph& x : c.graphs) {
                if (x.name == ir->name) cg = &x;
            }
            if (!cg) fail(EI_ERR_FORMAT, "QNN context cache " + path + " has no graph '" + ir->name + "'");
            if (cg->signature != qnn_graph_signature(*ir)) fail(EI_ERR_FORMAT, "QNN context cache " + path + ": graph '" + ir->name + "' was built from another IR");
            Graph& g = loaded[ir->name];
            g.name = ir->name;
            g.signature = cg->signature;
            describe_io(*ir, g);
            if (cg->io_ids.size() != g.io.size()) fail(EI_ERR_FORMAT, "QNN context cache " + path + ": graph '" + ir->name + "' lists other io tensors");
            for (const auto& [ir_id, qnn_id] : cg->io_ids) {
                auto it = g.io.find(ir_id);
                if (it == g.io.end()) fail(EI_ERR_FORMAT, "QNN context cache " + path + ": graph '" + ir->name + "' lists tensor " + std::to_string(ir_id) + ", not an io tensor");
                it->second->t.v1.id = qnn_id;
            }
        }
        free_context();
        try {
            check(need(api().context_create_from_binary, "QnnContext_createFromBinary")(backend, device, nullptr, c.binary.data(),
                                                                                     c.binary.size(), &context, nullptr),
                  "QnnContext_createFromBinary", path);
            for (auto& [name, g] : loaded) {
                check(need(api().graph_retrieve, "QnnGraph_retrieve")(context, name.c_str(), &g.handle), "QnnGraph_retrieve",
                      "graph '" + name + "' of " + path);
            }
        } catch (const Error&) {
            // QNN refused the binary: the adapter is left with an empty context, as built.
            free_context();
            new_context();
            throw;
        }
        graphs = std::move(loaded);
        weight_sharing = "as cached";
    }
};

QnnAdapter::QnnAdapter(const Options& opt) : impl_(new Impl) {
    impl_->library = opt.library.empty() ? qnn_backend_library_path() : opt.library;
    impl_->soc = opt.soc.empty() ? qnn_soc_id() : opt.soc;
    impl_->share_weights = opt.share_weights;
    impl_->open();
    impl_->create();
}

QnnAdapter::~QnnAdapter() = default;

const std::string& QnnAdapter::library() const { return impl_->library; }
const std::string& QnnAdapter::provider_name() const { return impl_->provider_name; }
const std::string& QnnAdapter::build_id() const { return impl_->build_id; }
const std::string& QnnAdapter::weight_sharing() const { return impl_->weight_sharing; }
qnn::ApiVersion QnnAdapter::api_version() const { return impl_->provider->api_version; }

std::string QnnAdapter::cache_key(const std::vector<const QnnGraph*>& graphs) const { return impl_->key(graphs); }

std::string QnnAdapter::cache_file(const std::string& dir, const std::vector<const QnnGraph*>& graphs) const {
    const std::string k = impl_->key(graphs);
    char name[40];
    std::snprintf(name, sizeof name, "qnn-%016llx.bin", static_cast<unsigned long long>(fnv1a64(k.data(), k.size())));
    return dir + "/" + name;
}

void QnnAdapter::build(const QnnGraph& g) { impl_->build(g); }
bool QnnAdapter::has_graph(const std::string& name) const { return impl_->graphs.count(name) != 0; }

void QnnAdapter::execute(const std::string& name, const std::vector<QnnIoBuffer>& io) { impl_->execute(name, io); }

void QnnAdapter::save_context(const std::string& path, const std::vector<const QnnGraph*>& graphs) { impl_->save(path, graphs); }

void QnnAdapter::load_context(const std::string& path, const std::vector<const QnnGraph*>& graphs) { impl_->load(path, graphs); }

bool QnnAdapter::prepare(const std::vector<const QnnGraph*>& graphs, const std::string& dir, std::string* why) {
    const std::string path = cache_file(dir, graphs);
    std::ifstream probe(path, std::ios::binary);
    if (probe) {
        probe.close();
        try {
            impl_->load(path, graphs);
            if (why) why->clear();
            return true;
        } catch (const Error& e) {
            // Refused (corrupt, foreign) or QNN could not load it: rebuild and overwrite.
            if (why) *why = e.what();
        }
    } else if (why) {
        *why = "no cache file " + path;
    }
    impl_->free_context();
    impl_->new_context();
    for (const QnnGraph* g : graphs) impl_->build(*g);
    impl_->save(path, graphs);
    return false;
}

}  // namespace ei::htp
