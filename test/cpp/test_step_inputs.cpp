// The per-step input tensors (cpp/src/step_inputs.h): the compact visibility each query
// gets (sink rows, up to two ring spans, then its own segment's rows causally) is exactly
// the set of cache slots full segment attention lets it see, for steps all around the ring;
// slots, positions, RoPE rows and the logit row are what they say; the writer never writes
// past the L rows it was planned for.
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "check.h"
#include "error.h"
#include "step_inputs.h"

using namespace ei;

namespace {

struct Pool {
    std::vector<uint8_t> mem;
    HostPoolBuffer buf;
    explicit Pool(uint64_t n) : mem(n, 0xEE), buf(mem.data(), n) {}
    template <typename T>
    T at(uint64_t off, int64_t i) const {
        T v;
        std::memcpy(&v, mem.data() + off + uint64_t(i) * sizeof(T), sizeof(T));
        return v;
    }
};

// Step inputs of L rows, one region after another, then a guard band.
StepInputLayout layout(int32_t L, int32_t S, int32_t W, int32_t n_rot, uint64_t& size) {
    StepInputLayout l;
    l.max_tokens = L;
    l.n_rot = n_rot;
    l.rope_base = 10000.0f;
    l.n_sink = S;
    l.ring = W + L;
    l.sinks_follow = true;
    uint64_t at = 0;
    auto next = [&](uint64_t bytes) {
        const uint64_t off = at;
        at += bytes;
        return off;
    };
    l.pos = next(8u * L);
    l.kv_slot = next(4u * L);
    l.rope = next(4u * L * n_rot);
    l.sink_rope = next(4u * L * n_rot);
    l.visible = next(4u * kVisibleInts);
    l.logit_row = next(4);
    l.fold_slot = next(4u * L);
    l.fold_rope = next(4u * L * n_rot);
    size = at + 64;  // untouched guard
    return l;
}

// The slots query t may see under segment attention (DESIGN §1): every earlier token still
// held (the sinks, and the ring from ring_start) and itself.
std::multiset<int64_t> brute_force(const StepParams& s, int32_t t, int32_t S, int32_t ring) {
    std::multiset<int64_t> v;
    for (int64_t p = 0; p <= s.pos0 + t; ++p) {
        if (p < S || p >= s.ring_start) v.insert(kv_slot(p, S, ring));
    }
    return v;
}

std::multiset<int64_t> expand(const Pool& p, const StepInputLayout& l, int32_t t) {
    std::multiset<int64_t> v;
    for (int32_t i = 0; i < p.at<int32_t>(l.visible, kVisSinkCount); ++i) v.insert(i);
    for (int span : {0, 1}) {
        const int32_t first = p.at<int32_t>(l.visible, span ? kVisSpanBFirst : kVisSpanAFirst);
        const int32_t count = p.at<int32_t>(l.visible, span ? kVisSpanBCount : kVisSpanACount);
        for (int32_t i = 0; i < count; ++i) v.insert(first + i);
    }
    for (int32_t j = 0; j <= t; ++j) v.insert(p.at<int32_t>(l.kv_slot, j));
    return v;
}

}  // namespace

TEST(visibility_is_what_segment_attention_sees_all_around_the_ring) {
    const int32_t L = 5, S = 3, W = 7, ring = W + L;
    uint64_t size = 0;
    const StepInputLayout l = layout(L, S, W, 8, size);
    StepInputWriter w(l);
    int cases = 0;
    // The session's route: prefill of up to L, folds of L whenever the ring would overflow.
    for (int64_t pos0 = 0; pos0 < 80; ++pos0) {
        for (int32_t n = 1; n <= L; ++n) {
            int64_t ring_start = S;
            while (pos0 + n - ring_start > ring) ring_start += L;  // as fold_if_needed leaves it
            if (pos0 < S && ring_start != S) continue;
            Pool p(size);
            StepParams s;
            s.n_tokens = n;
            s.pos0 = pos0;
            s.ring_start = ring_start;
            w.write(s, false, p.buf);
            CHECK(p.at<int32_t>(l.visible, kVisNValid) == n);
            for (int32_t t = 0; t < n; ++t) {
                CHECK(p.at<int64_t>(l.pos, t) == pos0 + t);
                const std::multiset<int64_t> want = brute_force(s, t, S, ring), got = expand(p, l, t);
                if (want != got) {
                    std::fprintf(stderr, "  pos0 %lld n %d ring_start %lld query %d: %zu visible, expected %zu\n",
                                 (long long)pos0, n, (long long)ring_start, t, got.size(), want.size());
                }
                CHECK(want == got);
                ++cases;
            }
            // Rows past n and the guard band stay as they were.
            for (int64_t i = n; i < L; ++i) CHECK(p.at<int32_t>(l.kv_slot, i) == int32_t(0xEEEEEEEE));
            for (uint64_t i = size - 64; i < size; ++i) CHECK(p.mem[i] == 0xEE);
        }
    }
    std::printf("  %d (step, query) pairs: compact visibility == brute force\n", cases);
    CHECK(cases > 1000);
}

TEST(rope_rows_fold_rows_and_logit_row) {
    const int32_t L = 4, n_rot = 6;
    uint64_t size = 0;
    const StepInputLayout l = layout(L, 2, 9, n_rot, size);
    StepInputWriter w(l);
    Pool p(size);
    StepParams s;
    s.n_tokens = 3;
    s.pos0 = 1000;
    s.ring_start = 2 + 4 * 5;  // 20 folded: sink queries sit 20 positions earlier
    w.write(s, false, p.buf);
    auto angle_ok = [&](uint64_t off, int32_t t, double pos) {
        bool ok = true;
        for (int32_t i = 0; i < n_rot / 2; ++i) {
            const double theta = pos * std::pow(10000.0, -2.0 * i / n_rot);
            ok = ok && std::fabs(p.at<float>(off, int64_t(t) * n_rot + i) - std::cos(theta)) < 2e-3;
            ok = ok && std::fabs(p.at<float>(off, int64_t(t) * n_rot + n_rot / 2 + i) - std::sin(theta)) < 2e-3;
        }
        return ok;
    };
    for (int32_t t = 0; t < 3; ++t) {
        CHECK(angle_ok(l.rope, t, 1000.0 + t));
        CHECK(angle_ok(l.sink_rope, t, 1000.0 + t - 20));
    }
    CHECK(p.at<int32_t>(l.logit_row, 0) == 2);
    CHECK(p.at<int32_t>(l.visible, kVisSinkQuery) == 1 && p.at<int32_t>(l.visible, kVisMemory) == 0);
    s.mem_tokens = 20;
    s.ring_start = 2;  // nothing folded: sink queries are not rotated
    w.write(s, false, p.buf);
    CHECK(p.at<int32_t>(l.visible, kVisSinkQuery) == 0 && p.at<int32_t>(l.visible, kVisMemory) == 1);
    s.all_logits = true;
    w.write(s, false, p.buf);
    CHECK(p.at<int32_t>(l.logit_row, 0) == -1);
    // A fold of L tokens from 30: slots of 30..33 (ring 13 from slot 2: wraps), angles of -pos.
    s.n_tokens = L;
    s.fold_start = 30;
    w.write(s, true, p.buf);
    for (int32_t i = 0; i < L; ++i) {
        CHECK(p.at<int32_t>(l.fold_slot, i) == int32_t(2 + (30 + i - 2) % 13));
        CHECK(angle_ok(l.fold_rope, i, -(30.0 + i)));
    }
    // More rows than planned is a bug the writer refuses.
    s.n_tokens = L + 1;
    bool refused = false;
    try {
        w.write(s, false, p.buf);
    } catch (const Error& e) {
        refused = e.status() == EI_ERR_INTERNAL;
    }
    CHECK(refused);
}
