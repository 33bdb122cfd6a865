#include "imatrix.h"

#include "error.h"

namespace ei {

ImatrixCollector::ImatrixCollector(const Model& model, bool include_output) {
    auto watch = [&](const TensorInfo* t) {
        // A tied output head shares token_embd's data, watched once under its own name.
        if (!t || by_weight_.count(t->data)) return;
        by_weight_[t->data] = entries_.size();
        Entry e;
        e.name = t->name;
        e.cols = t->ne[0];
        e.sum2.assign(static_cast<size_t>(t->ne[0]), 0.0);
        entries_.push_back(std::move(e));
    };
    for (const LayerWeights& l : model.layers()) {
        for (const TensorInfo* t : {l.wq, l.wk, l.wv, l.wo, l.ffn_gate, l.ffn_up, l.ffn_down}) watch(t);
    }
    if (include_output) watch(model.output());
}

void ImatrixCollector::before(const Graph& graph, const Op& op, const StepParams& step, const uint8_t* pool) {
    (void)graph;
    if (op.kind != OpKind::MatMul || op.src0.where != TensorRef::Where::Weight) return;
    auto it = by_weight_.find(op.src0.data);
    if (it == by_weight_.end()) return;
    Entry& e = entries_[it->second];
    const TensorRef& x = op.src1;
    if (x.where != TensorRef::Where::Pool || x.type != GgmlType::F32 || x.cols != e.cols) {
        fail(EI_ERR_INTERNAL, "imatrix: the activations of " + e.name + " are not f32 rows of " + std::to_string(e.cols));
    }
    // Rows past n_tokens are padding. The output head computes only the last valid row
    // unless the step asks for every row's logits; count what it multiplies.
    int64_t first = 0, last = step.n_tokens;
    if (op.output_head && !step.all_logits) first = last - 1;
    for (int64_t r = first; r < last; ++r) {
        const float* row = reinterpret_cast<const float*>(pool + x.offset + static_cast<uint64_t>(r) * x.row_bytes);
        double* acc = e.sum2.data();
        for (int64_t j = 0; j < e.cols; ++j) acc[j] += static_cast<double>(row[j]) * row[j];
    }
    e.rows += last - first;
}

}  // namespace ei
