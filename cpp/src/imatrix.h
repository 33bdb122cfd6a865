// The importance-matrix collector (ei imatrix): an OpObserver that, for every weight matrix
// W of the model, sums the squares of the activations W multiplies, per input column, over
// every valid row the session evaluates: in_sum2[j] = sum over rows of x_j^2, with the row
// count. in_sum2[j] / rows is the mean squared activation of column j, the importance that
// weighted quantization gives W's column j (the llama-imatrix contract, imatrix_format.md).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph.h"
#include "model.h"

namespace ei {

class ImatrixCollector : public OpObserver {
public:
    struct Entry {
        std::string name;          // the weight's GGUF name, e.g. blk.0.attn_q.weight
        int64_t cols = 0;          // its input width (the activations' row length)
        int64_t rows = 0;          // activation rows summed so far
        std::vector<double> sum2;  // [cols]
    };

    // Watches the matrices of every block; the output head too when include_output (it sees
    // every row only when a step computes all logits, else only the last one it computes).
    ImatrixCollector(const Model& model, bool include_output);

    void before(const Graph& graph, const Op& op, const StepParams& step, const uint8_t* pool) override;

    const std::vector<Entry>& entries() const { return entries_; }

private:
    std::vector<Entry> entries_;  // in the model's order: blocks, then the output head
    std::unordered_map<const void*, size_t> by_weight_;
};

}  // namespace ei
