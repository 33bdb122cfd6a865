#include "step_inputs.h"

#include <algorithm>
#include <cmath>

#include "error.h"

namespace ei {

void rope_rows(int64_t first, int64_t dir, int32_t n, int32_t n_rot, float base, float* out) {
    const int32_t half = n_rot / 2;
    const float theta_scale = std::pow(base, -2.0f / static_cast<float>(n_rot));
    for (int32_t t = 0; t < n; ++t) {
        float* cs = out + static_cast<size_t>(t) * n_rot;
        float theta = static_cast<float>(first + dir * t);
        for (int32_t i = 0; i < half; ++i) {
            cs[i] = std::cos(theta);
            cs[half + i] = std::sin(theta);
            theta *= theta_scale;
        }
    }
}

StepInputWriter::StepInputWriter(const StepInputLayout& layout) : l_(layout) {
    const size_t L = static_cast<size_t>(std::max(layout.max_tokens, 0));
    pos_.resize(L);
    slot_.resize(L);
    rope_.resize(std::max<size_t>(1, L * static_cast<size_t>(std::max(layout.n_rot, 0))));
}

void StepInputWriter::write(const StepParams& s, bool fold, PoolBuffer& pool) {
    const int32_t n = s.n_tokens;
    if (n < 1 || n > l_.max_tokens) {
        fail(EI_ERR_INTERNAL, "step inputs for " + std::to_string(n) + " rows, planned for at most " +
                                  std::to_string(l_.max_tokens));
    }
    const size_t rope_bytes = sizeof(float) * static_cast<size_t>(n) * static_cast<size_t>(l_.n_rot);
    if (fold) {
        // The oldest L ring tokens, from fold_start: their slots, and angles that rotate
        // their cached keys back by -pos.
        for (int32_t i = 0; i < n; ++i) slot_[size_t(i)] = static_cast<int32_t>(ei::kv_slot(s.fold_start + i, l_.n_sink, l_.ring));
        pool.write(l_.fold_slot, slot_.data(), sizeof(int32_t) * size_t(n));
        rope_rows(-s.fold_start, -1, n, l_.n_rot, l_.rope_base, rope_.data());
        pool.write(l_.fold_rope, rope_.data(), rope_bytes);
        return;
    }
    for (int32_t t = 0; t < n; ++t) {
        pos_[size_t(t)] = s.pos0 + t;
        slot_[size_t(t)] = static_cast<int32_t>(ei::kv_slot(s.pos0 + t, l_.n_sink, l_.ring));
    }
    pool.write(l_.pos, pos_.data(), sizeof(int64_t) * size_t(n));
    pool.write(l_.kv_slot, slot_.data(), sizeof(int32_t) * size_t(n));
    rope_rows(s.pos0, 1, n, l_.n_rot, l_.rope_base, rope_.data());
    pool.write(l_.rope, rope_.data(), rope_bytes);
    // Sinks behind the window: once tokens fold, a query scores the sink keys as if it sat
    // shift = ring_start - S positions earlier.
    const int64_t shift = l_.sinks_follow && l_.n_sink > 0 ? s.ring_start - l_.n_sink : 0;
    if (shift > 0) {
        rope_rows(s.pos0 - shift, 1, n, l_.n_rot, l_.rope_base, rope_.data());
        pool.write(l_.sink_rope, rope_.data(), rope_bytes);
    }
    // Older tokens: the sinks written before this step, then the ring from ring_start to
    // pos0 - 1, whose slots run from kv_slot(ring_start) and may wrap to the ring's start.
    const int64_t older = std::max<int64_t>(0, s.pos0 - s.ring_start);
    const int64_t a_first = ei::kv_slot(s.ring_start, l_.n_sink, l_.ring);
    const int64_t a_count = std::min<int64_t>(older, int64_t{l_.n_sink} + l_.ring - a_first);
    std::fill(visible_, visible_ + kVisibleInts, 0);
    visible_[kVisNValid] = n;
    visible_[kVisSinkCount] = static_cast<int32_t>(std::min<int64_t>(l_.n_sink, s.pos0));
    visible_[kVisSpanAFirst] = static_cast<int32_t>(a_first);
    visible_[kVisSpanACount] = static_cast<int32_t>(a_count);
    visible_[kVisSpanBFirst] = l_.n_sink;
    visible_[kVisSpanBCount] = static_cast<int32_t>(older - a_count);
    visible_[kVisMemory] = s.mem_tokens > 0;
    visible_[kVisSinkQuery] = shift > 0;
    pool.write(l_.visible, visible_, sizeof(visible_));
    const int32_t logit_row = s.all_logits ? -1 : n - 1;
    pool.write(l_.logit_row, &logit_row, sizeof(logit_row));
}

}  // namespace ei
