#include "activation_ranges.h"

#include <cmath>
#include <limits>

#include "error.h"
#include "model.h"

namespace ei {

int RangeCollector::bin_of(float ax) {
    if (!(ax >= std::ldexp(1.0f, kMinExp))) return 0;  // zero, tiny (and NaN, which never occurs in finite runs)
    const double b = std::floor((std::log2(static_cast<double>(ax)) - kMinExp) * kBinsPerOctave);
    return static_cast<int>(std::min<double>(kBins - 1, 1 + b));
}

double RangeCollector::bin_upper(int bin) {
    if (bin <= 0) return std::ldexp(1.0, kMinExp);
    return std::exp2(kMinExp + static_cast<double>(bin) / kBinsPerOctave);
}

double RangeCollector::Site::abs_quantile(double q) const {
    if (count == 0) return 0;
    const double want = q * static_cast<double>(count);
    uint64_t seen = 0;
    for (int b = 0; b < kBins; ++b) {
        seen += hist[static_cast<size_t>(b)];
        if (static_cast<double>(seen) >= want) return std::min(bin_upper(b), std::max(std::fabs(min), std::fabs(max)));
    }
    return std::max(std::fabs(min), std::fabs(max));
}

RangeCollector::RangeCollector(const Plan& plan) {
    for (const TensorInfo& t : plan.model->gguf().tensors()) {
        std::string n = t.name;
        const std::string suffix = ".weight";
        if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
            n.resize(n.size() - suffix.size());
        }
        weight_names_.emplace(t.data, n);
    }
    q_rope_offset_ = plan.pool.region("q_rope").offset;
    k_rope_offset_ = plan.pool.region("k_rope").offset;
}

RangeCollector::Site& RangeCollector::site(const std::string& name) {
    auto it = by_name_.find(name);
    if (it != by_name_.end()) return sites_[it->second];
    by_name_.emplace(name, sites_.size());
    Site s;
    s.name = name;
    s.min = std::numeric_limits<double>::infinity();
    s.max = -std::numeric_limits<double>::infinity();
    s.hist.assign(kBins, 0);
    sites_.push_back(std::move(s));
    return sites_.back();
}

void RangeCollector::after(const Graph& graph, const Op& op, const StepParams& step, const uint8_t* pool) {
    (void)graph;
    const std::string blk = op.layer >= 0 ? "blk." + std::to_string(op.layer) + "." : "";
    auto weight = [&](const TensorRef& r) -> std::string {
        auto it = weight_names_.find(r.data);
        return it == weight_names_.end() ? std::string("?") : it->second;
    };
    std::string name;
    switch (op.kind) {
        case OpKind::GetRows: name = "token_embd"; break;
        case OpKind::RmsNorm: name = weight(op.src1); break;
        case OpKind::MatMul:
            if (op.output_head) return;  // logits: not in the pool when all are asked for
            name = weight(op.src0);      // accumulate: the residual stream after the add
            break;
        case OpKind::Rope: name = blk + (op.dst.offset == q_rope_offset_ ? "q_rope" : "k_rope"); break;
        case OpKind::SegmentAttention: name = blk + "attn"; break;
        case OpKind::SwiGlu: name = blk + "ffn_swiglu"; break;
        default: return;  // cache writes and memory folds hold no new activations
    }
    if (op.dst.where != TensorRef::Where::Pool || op.dst.type != GgmlType::F32) return;
    Site& s = site(name);
    for (int64_t r = 0; r < step.n_tokens; ++r) {
        const float* row = reinterpret_cast<const float*>(pool + op.dst.offset + static_cast<uint64_t>(r) * op.dst.row_bytes);
        for (int64_t j = 0; j < op.dst.cols; ++j) {
            const float v = row[j];
            if (v < s.min) s.min = v;
            if (v > s.max) s.max = v;
            ++s.hist[static_cast<size_t>(bin_of(std::fabs(v)))];
        }
    }
    s.count += static_cast<uint64_t>(step.n_tokens) * static_cast<uint64_t>(op.dst.cols);
}

}  // namespace ei
