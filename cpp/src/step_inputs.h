// Per-step facts as explicit input tensors (DESIGN §4): what kernels used to derive from
// StepParams (positions, KV write slots, which cached rows each query sees, the fold's rows
// and their un-RoPE angles, the row whose logits are wanted) computed by one function,
// StepInputWriter::write, and written into the pool's step-input tensors before a step. A
// static-graph backend (OpenCL now, an NPU next) reads them; the CPU lowering keeps deriving
// them from StepParams (Backend::reads_step_inputs).
#pragma once
#include <cstdint>
#include <vector>

#include "graph.h"
#include "pool_buffer.h"

namespace ei {

// step.visible: what every query of the step sees, compact (an NPU expands it to a mask):
// the cached sink rows [0, sink_count) and the older ring rows in up to two spans of slots
// (the ring wraps), all visible to every query; then, causally, the step's own rows: query t
// sees the slots step.kv_slot[0..t]. Int32 each.
enum StepVisible : int32_t {
    kVisNValid = 0,     // valid rows of the step (the rest is padding)
    kVisSinkCount = 1,  // sink slots [0, sink_count) hold older tokens every query sees
    kVisSpanAFirst = 2, kVisSpanACount = 3,  // older ring tokens: slots [first, first + count)
    kVisSpanBFirst = 4, kVisSpanBCount = 5,  // ... and, where the ring wrapped, these
    kVisMemory = 6,     // 1 when the memory holds tokens (retrieval and gate apply)
    kVisSinkQuery = 7,  // 1 when the sink keys see queries rotated by step.sink_rope
    kVisibleInts = 8,
};

// Where the step-input tensors live (pool byte offsets) and what their values depend on.
struct StepInputLayout {
    int32_t max_tokens = 0;   // L: every tensor is sized by it, never by a prompt
    int32_t n_rot = 0;
    float rope_base = 0;
    int32_t n_sink = 0, ring = 0;
    bool sinks_follow = false;
    uint64_t pos = 0;         // i64 [L]: position of each row
    uint64_t kv_slot = 0;     // i32 [L]: the cache slot each row's K/V is written to
    uint64_t rope = 0;        // f32 [L][n_rot]: cos then sin (n_rot/2 each) of each row's angles
    uint64_t sink_rope = 0;   // f32 [L][n_rot]: the same for pos - shift (sinks behind the window)
    uint64_t visible = 0;     // i32 [kVisibleInts]
    uint64_t logit_row = 0;   // i32 [1]: the row whose logits the head computes; -1: every row
    uint64_t fold_slot = 0;   // i32 [L]: the slots the fold reads (oldest L ring tokens)
    uint64_t fold_rope = 0;   // f32 [L][n_rot]: angles of -pos for them (un-RoPE)
};

// The RoPE table rows of positions first + dir * t, t < n: cos then sin of
// theta_i = pos * base^(-2i/n_rot), computed exactly as the CPU backend's ops::rope computes
// them (float pow, theta built by repeated multiplication, the C library's cosf / sinf), so
// devices rotate with the CPU's bits.
void rope_rows(int64_t first, int64_t dir, int32_t n, int32_t n_rot, float base, float* out);

class StepInputWriter {
public:
    StepInputWriter() = default;
    explicit StepInputWriter(const StepInputLayout& layout);
    // Computes the inputs of one step of the fold graph (fold) or of prefill / decode, and
    // writes them into pool (synchronized). Never allocates.
    void write(const StepParams& step, bool fold, PoolBuffer& pool);

    // The values of the last write, for tests.
    const std::vector<int64_t>& pos() const { return pos_; }
    const std::vector<int32_t>& kv_slot() const { return slot_; }
    const std::vector<float>& rope() const { return rope_; }
    const int32_t* visible() const { return visible_; }

private:
    StepInputLayout l_;
    std::vector<int64_t> pos_;
    std::vector<int32_t> slot_;
    std::vector<float> rope_;
    int32_t visible_[kVisibleInts] = {};
};

}  // namespace ei
