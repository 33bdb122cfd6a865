// The pass from a float lowered graph (Float32 tensors, as the lowering writes it) to a
// statically quantized one the NPU runs, and the calibration and per-layer choice behind
// it ("fine-grained PTQ"):
//  1. calibration: the float graph runs over calibration samples while a RangeObserver
//     records the range of every Float32 tensor a node reads from the host or writes;
//  2. encodings: every Float32 Native tensor becomes per-tensor UFixed16 from its range
//     (the tensors crossing to and from the KV cache UFixed8); a tensor only Softmax reads
//     has its range cut to [max - softmax_span, max], since anything lower exps to ~0 and
//     an additive mask would otherwise spend the 16 bits on -1e9;
//  3. weights: each FullyConnected's static weight becomes SFixed8 per channel or SFixed4
//     block-wise (weight_quant.h), its bias SFixed32 at the accumulator's scale; every other
//     float constant (norm gammas) UFixed16 per tensor, a gathered table (the embedding)
//     in cfg.tables (UFixed16 or UFixed8) per tensor;
//  4. boundaries: graph inputs and outputs stay Float32 so the host side does not change;
//     a Convert node after each float input and before each float output moves between
//     float and fixed point (where float meets fixed point);
//  5. per-layer choice (16a4w): for each FullyConnected that may go to int4, the graph's
//     output SQNR when only that layer's weight is int4 (all others int8); the most
//     sensitive ones, up to a budget, stay int8. The LM head and pinned layers stay int8.
// The pass needs graphs executed; it takes a GraphRunner so the emulator runs them (the
// tests use a small float/fixed executor of their own until the emulator lands).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "htp/node_kernels.h"
#include "htp/qnn_ir.h"
#include "htp/weight_quant.h"

namespace ei::htp {

// Ranges of Float32 tensors over every run it observed (AppWrite inputs and node outputs).
class RangeObserver : public NodeObserver {
public:
    struct Range {
        float lo = 0, hi = 0;
        bool seen = false;
    };
    void after(const Node& n, const ExecBuffers& b) override;
    // The recorded range of a tensor by name; null if it never ran.
    const Range* range(const std::string& tensor) const;
    size_t size() const { return ranges_.size(); }
    // A range known from elsewhere (NpuParams: ranges calibrated once, kept per model), as
    // if a run had recorded it; replaces what was recorded under that name.
    void set_range(const std::string& tensor, float lo, float hi);
    // Every recorded range, by tensor name (what ei npu-prepare stores).
    const std::map<std::string, Range>& ranges() const { return ranges_; }

private:
    void record(const ExecBuffers& b, uint32_t id);
    std::map<std::string, Range> ranges_;
};

struct QuantConfig {
    DType activations = DType::UFixed16;
    DType kv = DType::UFixed8;              // KCache/VCache inputs, KNew/VNew outputs
    DType tables = DType::UFixed16;         // constants a Gather reads (the embedding table), per tensor
    bool int4 = false;                      // false: 16a8w; true: 16a4w (per-layer choice below)
    int block_size = 32;                    // int4 blocks along the input dimension: 32 or 64
    int block_scale_bits = 4;               // the per-block integer multipliers: 4 or 8 bits
    bool head_8bit = true;                  // keep the LM head int8 (the FullyConnected feeding Logits)
    std::vector<std::string> pin_8bit;      // node-name prefixes kept int8
    double sensitive_fraction = 0.0;        // of the int4 candidates, the most sensitive share kept int8
    float softmax_span = 32.0f;             // Softmax inputs: range cut to [max - span, max]
    // Weight tensor name -> the GGUF type it was dequantized from ("Q4_0"), when the caller
    // knows it: the report then says a weight's SQNR is against that type's values, which
    // already carry their own quantization error, not against the original float weights.
    std::map<std::string, std::string> weight_sources;
    size_t sensitivity_samples = 0;         // samples per sensitivity run (0: all calibration samples);
                                            // each int4 candidate costs one quantized run per sample
};

// Runs graph g on calibration sample `sample` (the runner binds that sample's inputs), calling
// obs->after for each node when obs is non-null, and returns the AppRead outputs as floats
// in tensor-table order (the pass keeps graph outputs Float32).
using GraphRunner = std::function<std::vector<std::vector<float>>(const QnnGraph& g, size_t sample, NodeObserver* obs)>;

// Quantized weights shared between the graphs of one model (prefill, decode and fold bind
// the same weights) and its sessions: keyed by the float data and the form ("int8",
// "int4/<block>/<scale bits>"), which alone decide the quantized values. Thread-safe.
struct QuantWeightCache {
    std::mutex mu;
    std::map<std::pair<const void*, std::string>, std::shared_ptr<const QuantizedWeight>> forms;
};

// What ei npu-prepare prints: per tensor its encoding, SQNR against float and bytes; per
// int4-candidate layer its sensitivity; and the whole graph's figures.
struct TensorReport {
    std::string name;
    std::string dtype;          // dtype_name of the quantized tensor
    std::string encoding;       // "scale=... offset=...", "per-channel", "blockwise(32, 4-bit)"
    bool weight = false;        // a FullyConnected weight (SQNR against the float weight)
    double sqnr_db = 0;         // weights: of the quantized weight; activations: over the measured runs,
                                // within the encoded range (values beyond it count in `clipped`)
    uint64_t bytes = 0;         // on the device (int4 packed two per byte, scales included)
    uint64_t float_bytes = 0;   // the same tensor as Float32
    std::string source;         // weights: the GGUF type the float weights came from, if known
    double clipped = 0;         // activations: the share of float values outside the encoded range
};
struct LayerSensitivity {
    std::string node;
    double output_sqnr_db = 0;  // graph outputs vs float when only this layer is int4
    bool kept_8bit = false;
};
struct QuantReport {
    std::vector<TensorReport> tensors;
    std::vector<LayerSensitivity> layers;  // most sensitive first
    double output_sqnr_db = 0;             // the quantized graph's outputs vs the float graph's
    uint64_t weight_bytes = 0, float_weight_bytes = 0;
    std::string text() const;              // one line per tensor and layer
};

// Steps 2-4 for given ranges; `int4_nodes` are the FullyConnected nodes whose weights go to
// int4 (the rest int8). Fills report->tensors (without activation SQNR) when report is given.
// Throws EI_ERR_INVALID_ARGUMENT naming a Float32 tensor that has no recorded range.
QnnGraph quantize_graph(const QnnGraph& g, const RangeObserver& ranges, const QuantConfig& cfg,
                        const std::set<std::string>& int4_nodes, QuantReport* report = nullptr,
                        QuantWeightCache* cache = nullptr);

// The FullyConnected nodes that may go to int4 under cfg: not the head (when head_8bit),
// not pinned, input dimension a multiple of the block size.
std::vector<std::string> int4_candidates(const QnnGraph& g, const QuantConfig& cfg);

// The whole pass: calibrate on samples [0, n_samples), choose the int4 layers by sensitivity
// (cfg.int4), quantize, and measure every tensor's and the outputs' SQNR against float.
struct PreparedGraph {
    QnnGraph graph;
    QuantReport report;
};
// `calibrated` (may be null): ranges recorded elsewhere (every graph of a session, so the
// prefill, decode and fold graphs share one encoding per tensor name), used instead of the
// ranges of the samples; the samples still drive the per-layer choice and the measurement.
PreparedGraph prepare_quantized(const QnnGraph& g, const QuantConfig& cfg, const GraphRunner& run, size_t n_samples,
                                QuantWeightCache* cache = nullptr, const RangeObserver* calibrated = nullptr);

}  // namespace ei::htp
