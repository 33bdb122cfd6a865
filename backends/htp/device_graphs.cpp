#include "htp/device_graphs.h"

#include <utility>

#include "error.h"

namespace ei::htp {

namespace {

// A FullyConnected node's static float weight, or null (a weight already quantized, an
// activation operand).
const Tensor* fc_weight(const QnnGraph& g, const Node& n) {
    if (n.type != OpType::FullyConnected || n.inputs.size() < 2) return nullptr;
    const Tensor& w = g.tensors[n.inputs[1]];
    if (w.kind != TensorKind::Static || w.dtype != DType::Float32 || w.dims.size() != 2) return nullptr;
    return &w;
}

[[noreturn]] void misfit(const std::string& source, const std::string& graph, const std::string& why) {
    fail(EI_ERR_FORMAT, "NPU quantization parameters " + source + " do not fit graph '" + graph + "': " + why +
                            " (run ei npu-prepare again)");
}

}  // namespace

std::string gguf_weight_name(const std::string& lowered_constant) {
    const size_t hash = lowered_constant.find('#');
    return hash == std::string::npos ? lowered_constant : lowered_constant.substr(0, hash);
}

std::set<std::string> fc_weight_names(const QnnGraph& g) {
    std::set<std::string> out;
    for (const Node& n : g.nodes)
        if (const Tensor* w = fc_weight(g, n)) out.insert(gguf_weight_name(w->name));
    return out;
}

DeviceGraphs::DeviceGraphs(NpuParams params, std::string source) : params_(std::move(params)), source_(std::move(source)) {
    for (const NpuParams::Range& r : params_->ranges) ranges_.set_range(r.name, r.min, r.max);
}

DeviceGraphs DeviceGraphs::for_model(const Scenario& sc, uint64_t model_fp) {
    NpuParams p;
    if (!load_npu_params(sc.cache_dir, model_fp, p)) return DeviceGraphs();
    return DeviceGraphs(std::move(p), npu_params_file(sc.cache_dir, model_fp));
}

QuantConfig DeviceGraphs::config(const NpuParams& p) {
    QuantConfig c;
    for (const NpuParams::WeightBits& w : p.weights) c.int4 = c.int4 || w.bits == 4;
    if (p.block_size) c.block_size = p.block_size;
    return c;
}

std::string DeviceGraphs::mode() const {
    if (!params_) return "float";
    size_t four = 0;
    for (const NpuParams::WeightBits& w : params_->weights) four += w.bits == 4;
    std::string s = "quantized " + params_->scheme;
    if (four) s += " (int4 blocks of " + std::to_string(params_->block_size) + ")";
    s += ", " + std::to_string(four) + " of " + std::to_string(params_->weights.size()) + " weights 4-bit, from " + source_;
    return s;
}

QnnGraph DeviceGraphs::lower(const Graph& g, const Scenario& sc, WeightStore& weights, LowerOptions opt) {
    // A scenario without memory never runs its fold graph (and npu-prepare records no
    // ranges for it then): it stays float, unused.
    if (!params_ || (g.name == "fold" && !sc.memory)) return lower_graph(g, sc, weights, opt);
    opt.float_cache = true;
    const QnnGraph f = lower_graph(g, sc, weights, opt);
    const NpuParams& p = *params_;
    auto bad = [&](const std::string& why) { misfit(source_, g.name, why); };
    std::set<std::string> int4;
    for (const Node& n : f.nodes) {
        const Tensor* w = fc_weight(f, n);
        if (!w) continue;
        const std::string name = gguf_weight_name(w->name);
        const NpuParams::WeightBits* b = p.weight(name);
        if (!b) misfit(source_, g.name, "no weight bits for '" + name + "'");
        if (b->bits != 4) continue;
        if (p.block_size <= 0 || w->dims[1] % uint32_t(p.block_size) != 0) {
            bad("4-bit weight '" + name + "' has " + std::to_string(w->dims[1]) + " inputs, not a multiple of the block " +
                std::to_string(p.block_size));
        }
        int4.insert(n.name);
    }
    try {
        return quantize_graph(f, ranges_, config(p), int4, nullptr, qcache_.get());
    } catch (const Error& e) {
        if (e.status() != EI_ERR_INVALID_ARGUMENT) throw;
        misfit(source_, g.name, e.what());
    }
}

}  // namespace ei::htp
