// Activation ranges for calibration (ei calibrate): an OpObserver that records, for every
// op output the NPU needs a scale for, the exact signed min and max over the valid rows
// and a histogram of |x| on a log scale (32 bins per octave, 2^-40 .. 2^40, plus a bin for
// zero) from which percentiles of |x| are read to within one bin (2.2% relative).
// Sites are named after the model: "token_embd", "blk.N.attn_norm", "blk.N.attn_q" (the
// matmul's output), "blk.N.q_rope", "blk.N.attn" (attention output), "blk.N.attn_output"
// and "blk.N.ffn_down" (the residual stream after adding that matmul's output),
// "blk.N.ffn_norm", "blk.N.ffn_gate", "blk.N.ffn_up", "blk.N.ffn_swiglu" (the FFN's
// down-projection input), "output_norm". The output head's logits are not watched.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph.h"
#include "plan.h"

namespace ei {

class RangeCollector : public OpObserver {
public:
    static constexpr int kBinsPerOctave = 32, kMinExp = -40, kMaxExp = 40;
    static constexpr int kBins = (kMaxExp - kMinExp) * kBinsPerOctave + 1;  // bin 0: |x| below 2^-40 (zero)

    struct Site {
        std::string name;
        double min = 0, max = 0;      // exact, over every value seen
        uint64_t count = 0;           // values seen
        std::vector<uint64_t> hist;   // [kBins] of |x|
        // The smallest bin upper edge below which at least fraction q of |x| lies.
        double abs_quantile(double q) const;
    };

    explicit RangeCollector(const Plan& plan);
    void after(const Graph& graph, const Op& op, const StepParams& step, const uint8_t* pool) override;
    const std::vector<Site>& sites() const { return sites_; }

    // The histogram bin of |x| and a bin's upper edge (shared with tests).
    static int bin_of(float ax);
    static double bin_upper(int bin);

private:
    Site& site(const std::string& name);
    std::vector<Site> sites_;
    std::unordered_map<std::string, size_t> by_name_;
    std::unordered_map<const void*, std::string> weight_names_;  // weight data -> name less ".weight"
    uint64_t q_rope_offset_ = 0, k_rope_offset_ = 0;
};

}  // namespace ei
