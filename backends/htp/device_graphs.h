// Where an NPU device's backend gets its graphs: the planned graph lowered (lower.h) and
// run in float, or, when `ei npu-prepare` left quantization parameters for the model in the
// scenario's cache_dir (npu_params.h), that lowered graph statically quantized
// (quantize_graph.h) with the calibrated ranges and the weight bits chosen then. One
// mechanism for every graph (prefill, its all-logits form, decode, fold) and every caller
// (the htp-emulator backend; npu-prepare, which writes the graphs it describes through here).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "graph.h"
#include "htp/lower.h"
#include "htp/npu_params.h"
#include "htp/quantize_graph.h"
#include "scenario.h"

namespace ei::htp {

class DeviceGraphs {
public:
    // Float graphs (no parameters).
    DeviceGraphs() = default;
    // Parameters already in memory (ei npu-prepare, before or without storing them).
    explicit DeviceGraphs(NpuParams params, std::string source = "prepared in memory");
    // The parameters ei npu-prepare stored for model_fp in sc.cache_dir, float graphs when
    // there are none. A file that is there but malformed (or prepared for another model)
    // throws EI_ERR_FORMAT naming it: a prepared model never silently runs in float.
    static DeviceGraphs for_model(const Scenario& sc, uint64_t model_fp);

    bool quantized() const { return params_.has_value(); }
    const NpuParams* params() const { return params_ ? &*params_ : nullptr; }
    // What the device runs, for its description: "float" or
    // "quantized 16a4w (int4 blocks of 32; 21 of 28 weights 4-bit) from <file>".
    std::string mode() const;

    // Graph g of a plan made for sc, as the device runs it. Quantized graphs are lowered with
    // FLOAT_32 cache tensors (opt.float_cache forced on: the pass re-encodes them to 8 bits;
    // graph inputs and outputs stay Float32, so the host side is the same in both modes).
    // Throws EI_ERR_FORMAT when the parameters do not fit the graph (a tensor without a
    // range, a weight without bits, a 4-bit weight the block size does not divide).
    QnnGraph lower(const Graph& g, const Scenario& sc, WeightStore& weights, LowerOptions opt);

    // The quantization settings a set of parameters implies (QuantConfig's defaults for
    // everything the file does not record: both sides of the file use the same ones).
    static QuantConfig config(const NpuParams& p);

    // Quantized weights from this cache from now on (the model's, so its sessions share one
    // quantized copy; by default each DeviceGraphs has its own).
    void share_weights(std::shared_ptr<QuantWeightCache> cache) { qcache_ = std::move(cache); }

private:
    std::optional<NpuParams> params_;
    std::string source_;
    RangeObserver ranges_;           // params_'s ranges, as quantize_graph reads them
    std::shared_ptr<QuantWeightCache> qcache_ = std::make_shared<QuantWeightCache>();  // one form per weight
};

// The GGUF weight a lowered constant holds ("blk.0.attn_q.weight#halves" -> "blk.0.attn_q.weight").
std::string gguf_weight_name(const std::string& lowered_constant);

// The FullyConnected weights of a float lowered graph, by GGUF name (what NpuParams lists).
std::set<std::string> fc_weight_names(const QnnGraph& g);

}  // namespace ei::htp
