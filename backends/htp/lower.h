// The lowering (DESIGN §4, htp): a planned Graph (plan.h: prefill(L), decode(1), fold) becomes
// one static QnnGraph (qnn_ir.h) of QNN operations over fixed-shape tensors. The op by op
// choices, and why, are written beside the code that emits them in lower.cpp.
//
// The lowered graph computes what the CPU backend computes (backends/cpu: the reference),
// with two layout facts the host side (htp_emulator_backend.cpp, the QNN adapter) must honour:
//  - every per-step fact is a graph input (io roles): the KV cache before the step, the
//    additive attention mask, the RoPE cos/sin rows, the memory (M, z), the logit row;
//  - for models with adjacent-pair RoPE (llama) the Q and K weight rows are permuted at
//    preparation time so that each head's rotated dims are in the halves layout. The graph's
//    K cache, its new K rows, the fold's keys and the memory's M rows and z are then in that
//    permuted order along each head (kv_permutation()). The host converts at its boundary,
//    so the session's pool (and saved state) holds exactly what the CPU backend holds.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "graph.h"
#include "htp/qnn_ir.h"
#include "scenario.h"

namespace ei::htp {

// The additive mask value of a key a query must not see. exp(-1e4) is 0 in float (it
// underflows past -104), and the value is moderate so a fixed-point encoding of score + mask
// keeps some resolution for the visible scores.
constexpr float kMaskHidden = -1.0e4f;
// The memory's denominator guard, as the CPU's ops::kMemoryEps.
constexpr float kMemoryEps = 1e-6f;

// The float forms of the model's weights the lowered graphs bind, keyed by the GGUF tensor
// and the layout it was converted to. One store per model (the lowered backends take it from
// the model's WeightCache), so the graphs of a session and every session of the model bind
// one copy. Thread-safe: sessions may be made concurrently.
class WeightStore {
public:
    using Data = std::shared_ptr<const std::vector<uint8_t>>;
    Data find(const std::string& key) const;
    // Stores bytes under key, or keeps what a concurrent converter stored first; returns the
    // stored data either way.
    Data put(const std::string& key, std::vector<uint8_t> bytes);
    // Entries and their bytes, and the fewest holders any entry has (the store counts): the
    // tests' view of what the graphs share.
    size_t size() const;
    uint64_t bytes() const;
    long min_holders() const;

private:
    mutable std::mutex mu_;
    std::map<std::string, Data> data_;
};

struct LowerOptions {
    // Prefill with the logits of every row (Logits [L, n_vocab], no LogitRow input): the
    // all_logits mode (perplexity, the reference tests). The normal graphs gather one row.
    bool all_logits = false;
    // The KV cache as FLOAT_32 graph tensors whatever the scenario's cache type (the host
    // converts at its boundary): the form the quantization pass (quantize_graph.h) re-encodes
    // to its 8-bit KV. Default: the scenario's type (FLOAT_16 for an f16 cache, with q and
    // the attention weights rounded to f16 where the CPU rounds them).
    bool float_cache = false;
};

// Lowers one graph of a plan made for scenario sc. Throws ei::Error(EI_ERR_UNSUPPORTED)
// naming why for a graph it cannot lower (a weight type without a float conversion, a
// graph split across devices), EI_ERR_INTERNAL for a graph not made by the planner.
QnnGraph lower_graph(const Graph& graph, const Scenario& sc, WeightStore& weights, const LowerOptions& opt = {});

// The name under which the prefill graph lowered with every row's logits is kept beside
// "prefill" (one planned graph, two lowered ones).
inline constexpr const char* kPrefillAllLogits = "prefill_all_logits";

struct LoweredPlan {
    QnnGraph prefill, prefill_all_logits, decode, fold;
};
// Every graph of a plan (the tests, ei npu-prepare).
LoweredPlan lower_plan(const Graph& prefill, const Graph& decode, const Graph& fold, const Scenario& sc,
                       WeightStore& weights);

// The order of one head's dims in the graph: graph dim i holds the CPU's dim perm[i]. For
// halves RoPE (qwen2) the identity; for adjacent pairs (llama) the even rotated dims, then
// the odd ones, then the dims past n_rot.
std::vector<int32_t> head_permutation(int32_t head_dim, int32_t n_rot, bool halves);

}  // namespace ei::htp
