// The OpenCL backend against the CPU backend, op by op: one-op graphs over the same pool
// and weights run through both, outputs compared by normalized MSE (sum (a-b)^2 / sum b^2):
// at most 5e-4 for MatMul and attention, 1e-6 for every other op (ggml's test-backend-ops
// bounds). Data are random (never all zeros or ones), sizes odd, the last segment padded,
// the ring wrapped, memory empty and not, both gates, both fold rules. Also: the program
// cache (a second build loads the cached binary; a corrupt entry is rebuilt, not trusted).
// Skips, saying why, where no OpenCL device exists.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "cpu/ops.h"
#include "cpu/quants.h"
#include "error.h"
#include "opencl/opencl_backend.h"
#include "opencl/opencl_device.h"
#include "opencl_harness.h"
#include "opencl/program_cache.h"
#include "opencl/signal_guard.h"
#include "step_inputs.h"
#include "weight_cache.h"

using namespace ei;

namespace {

using check::have_opencl;
using check::Layout;
using check::nmse;
using check::rng;
using check::uniform;
using check::Weight;
using check::f32_vector;

using Pool = check::AlignedBuf;


// The step inputs a device reads (step_inputs.h), laid out beside an op's tensors and
// filled by the session's writer: OpenCL takes the per-step facts from them, the CPU from
// StepParams, so every case below also checks that the two agree.
struct StepTensors {
    StepInputLayout layout;
    TensorRef pos, slots, rope, sink_rope, visible, logit_row, fold_slots, fold_rope;
    StepTensors(Layout& l, int32_t T, int32_t n_rot, float base, int32_t S, int32_t ring, bool sinks_follow = false) {
        const int64_t rc = std::max(1, n_rot);
        pos = l.add(2, T, GgmlType::I32);
        pos.type = GgmlType::I64;
        pos.cols = 1;
        slots = l.add(1, T, GgmlType::I32);
        rope = l.add(rc, T);
        sink_rope = l.add(rc, T);
        visible = l.add(kVisibleInts, 1, GgmlType::I32);
        logit_row = l.add(1, 1, GgmlType::I32);
        fold_slots = l.add(1, T, GgmlType::I32);
        fold_rope = l.add(rc, T);
        layout.max_tokens = T;
        layout.n_rot = n_rot;
        layout.rope_base = base;
        layout.n_sink = S;
        layout.ring = ring;
        layout.sinks_follow = sinks_follow;
        layout.pos = pos.offset;
        layout.kv_slot = slots.offset;
        layout.rope = rope.offset;
        layout.sink_rope = sink_rope.offset;
        layout.visible = visible.offset;
        layout.logit_row = logit_row.offset;
        layout.fold_slot = fold_slots.offset;
        layout.fold_rope = fold_rope.offset;
    }
    void fill(const Pool& p, const StepParams& s, bool fold) const {
        HostPoolBuffer b(p.p, p.size);
        StepInputWriter w(layout);
        w.write(s, fold, b);
    }
};


void fill_f32(uint8_t* pool, const TensorRef& r, float lo = -1.0f, float hi = 1.0f) {
    for (int64_t t = 0; t < r.rows; ++t) {
        float* x = reinterpret_cast<float*>(pool + r.offset + uint64_t(t) * r.row_bytes);
        for (int64_t i = 0; i < r.cols; ++i) x[i] = uniform(lo, hi);
    }
}

void fill_cache(uint8_t* pool, const TensorRef& r) {
    for (int64_t s = 0; s < r.rows; ++s) {
        uint8_t* row = pool + r.offset + uint64_t(s) * r.row_bytes;
        for (int64_t i = 0; i < r.cols; ++i) {
            const float v = uniform(-1.5f, 1.5f);
            if (r.type == GgmlType::F16) reinterpret_cast<uint16_t*>(row)[i] = cpu::fp32_to_fp16(v);
            else reinterpret_cast<float*>(row)[i] = v;
        }
    }
}




// Runs graph g over a copy of pool on each backend; returns (cpu pool, opencl pool).
struct Both {
    std::unique_ptr<Pool> cpu, cl;
};
Both run_both(const Graph& g, const StepParams& s, const Pool& pool) {
    Both out{std::make_unique<Pool>(pool), std::make_unique<Pool>(pool)};
    WeightCache cache_cpu, cache_cl;
    auto cpu_backend = cpu::make_cpu_backend(2);
    auto cl_backend = opencl::make_opencl_backend();
    for (const Op& op : g.ops) {
        CHECK(cpu_backend->supports(op));
        CHECK(cl_backend->supports(op));
    }
    cpu_backend->prepare(g, cache_cpu);
    cl_backend->prepare(g, cache_cl);
    // Each backend computes on its own buffer over the host memory, as a session does.
    cpu_backend->compute(g, s, *cpu_backend->wrap_host_pool(out.cpu->p, out.cpu->size));
    auto cl_buffer = cl_backend->wrap_host_pool(out.cl->p, out.cl->size);
    cl_backend->compute(g, s, *cl_buffer);
    cl_buffer->synchronize();
    return out;
}

void expect(const char* what, double e, double bound) {
    std::printf("  %-52s nmse %.3g (bound %.0e)\n", what, e, bound);
    CHECK(e <= bound);
}

Graph one(const Op& op, int32_t max_tokens) {
    Graph g;
    g.name = "one-op";
    g.max_tokens = max_tokens;
    g.ops.push_back(op);
    return g;
}

constexpr GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                               GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K};
// Row lengths: odd for float types (no block), a few blocks otherwise.
int64_t cols_for(GgmlType t) {
    switch (t) {
        case GgmlType::F32:
        case GgmlType::F16:
        case GgmlType::BF16: return 77;
        case GgmlType::Q4_K:
        case GgmlType::Q6_K: return 512;
        default: return 96;
    }
}

}  // namespace

// Runs first, before anything in this process creates an OpenCL context: PoCL's LLVM
// replaces the host's handlers for SIGSEGV, SIGINT and more at context creation, which kills
// a JVM (its own SIGSEGVs then meet LLVM's one-shot handler). The runtime must put them back.
void host_handler(int, siginfo_t*, void*) {}
TEST(driver_setup_keeps_the_host_signal_handlers) {
    const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGINT, SIGTERM, SIGQUIT, SIGUSR2};
    for (int s : sigs) {
        struct sigaction sa {};
        sa.sa_sigaction = host_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(s, &sa, nullptr) == 0);
    }
    // PoCL installs LLVM's handlers as soon as its devices are listed: the first call counts.
    if (!have_opencl("driver_setup_keeps_the_host_signal_handlers")) return;
    const int at_listing = opencl::SignalHandlersGuard::last_restored_count();
    auto backend = opencl::make_opencl_backend();  // the runtime: context, program, queue, kernels
    std::printf("  the driver replaced %d signal handlers when listing devices, %d when making the backend; all put back\n",
                at_listing, opencl::SignalHandlersGuard::last_restored_count());
    for (int s : sigs) {
        struct sigaction now {};
        CHECK(sigaction(s, nullptr, &now) == 0);
        if (reinterpret_cast<void*>(now.sa_sigaction) != reinterpret_cast<void*>(host_handler)) {
            std::fprintf(stderr, "  signal %d: the host's handler was replaced by the OpenCL driver\n", s);
            CHECK(false);
        }
    }
    for (int s : sigs) signal(s, SIG_DFL);
}

TEST(get_rows_every_type) {
    if (!have_opencl("get_rows_every_type")) return;
    for (GgmlType t : kTypes) {
        const int64_t K = cols_for(t), rows = 13;
        const int32_t T = 6, nt = 5;
        Weight w(t, K, rows);
        Layout l;
        TensorRef ids = l.add(1, T, GgmlType::I32), dst = l.add(K, T);
        Pool pool(l.size);
        int32_t* id = reinterpret_cast<int32_t*>(pool.p + ids.offset);
        for (int i = 0; i < T; ++i) id[i] = int32_t((i * 7 + 3) % rows);
        Op op;
        op.kind = OpKind::GetRows;
        op.dst = dst;
        op.src0 = w.ref;
        op.src1 = ids;
        StepParams s;
        s.n_tokens = nt;
        Both r = run_both(one(op, T), s, pool);
        expect((std::string("get_rows ") + type_traits(t).name).c_str(), nmse(r.cl->p, r.cpu->p, dst, nt), 1e-6);
    }
}

TEST(mat_mul_every_type) {
    if (!have_opencl("mat_mul_every_type")) return;
    for (GgmlType t : kTypes) {
        for (int variant = 0; variant < 3; ++variant) {  // plain; bias + accumulate; output head (last row)
            const int64_t K = cols_for(t), N = 37;
            const int32_t T = 12, nt = 11;
            Weight w(t, K, N);
            Weight bias = f32_vector(N, -0.5f, 0.5f);
            Layout l;
            TensorRef x = l.add(K, T), dst = l.add(N, T);
            TensorRef aux = l.scratch(uint64_t(T) * (uint64_t(K) * 4 + 4096));
            StepTensors st(l, T, 0, 10000.0f, 0, 1);
            Pool pool(l.size);
            fill_f32(pool.p, x);
            fill_f32(pool.p, dst);
            Op op;
            op.kind = OpKind::MatMul;
            op.dst = dst;
            op.src0 = w.ref;
            op.src1 = x;
            op.aux = aux;
            if (variant == 1) {
                op.src2 = bias.ref;
                op.accumulate = true;
            }
            op.output_head = variant == 2;
            if (op.output_head) op.logit_row = st.logit_row;  // the last valid row, from the step inputs
            StepParams s;
            s.n_tokens = nt;
            st.fill(pool, s, false);
            Both r = run_both(one(op, T), s, pool);
            const std::string what = std::string("mat_mul ") + type_traits(t).name +
                                     (variant == 1 ? " bias+accumulate" : variant == 2 ? " output head" : "");
            expect(what.c_str(), nmse(r.cl->p, r.cpu->p, dst, variant == 2 ? 1 : nt), 5e-4);
        }
    }
}

TEST(mat_mul_all_logits) {
    if (!have_opencl("mat_mul_all_logits")) return;
    const int64_t K = 96, N = 53;
    const int32_t T = 9, nt = 7;
    Weight w(GgmlType::Q8_0, K, N);
    Layout l;
    TensorRef x = l.add(K, T), dst = l.add(N, 1);
    TensorRef aux = l.scratch(uint64_t(T) * (uint64_t(K) * 4 + 4096));
    Pool pool(l.size);
    fill_f32(pool.p, x);
    Op op;
    op.kind = OpKind::MatMul;
    op.dst = dst;
    op.src0 = w.ref;
    op.src1 = x;
    op.aux = aux;
    op.output_head = true;
    std::vector<float> a(size_t(nt) * N, 7.0f), b(size_t(nt) * N, -7.0f);
    Pool p1(pool), p2(pool);
    WeightCache c1, c2;
    auto cpu_backend = cpu::make_cpu_backend(2);
    auto cl_backend = opencl::make_opencl_backend();
    Graph g = one(op, T);
    cpu_backend->prepare(g, c1);
    cl_backend->prepare(g, c2);
    StepParams s;
    s.n_tokens = nt;
    s.all_logits = true;
    s.logits_out = a.data();
    cpu_backend->compute(g, s, *cpu_backend->wrap_host_pool(p1.p, p1.size));
    s.logits_out = b.data();
    auto cl_buffer = cl_backend->wrap_host_pool(p2.p, p2.size);
    cl_backend->compute(g, s, *cl_buffer);
    cl_buffer->synchronize();
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += double(a[i] - b[i]) * (a[i] - b[i]);
        den += double(a[i]) * a[i];
    }
    expect("mat_mul output head, every row's logits", num / den, 5e-4);
}

TEST(rms_norm_rope_swiglu_kv_store) {
    if (!have_opencl("rms_norm_rope_swiglu_kv_store")) return;
    const int32_t T = 6, nt = 5;
    {
        Weight w = f32_vector(75, 0.5f, 1.5f);
        Layout l;
        TensorRef x = l.add(75, T), y = l.add(75, T);
        Pool pool(l.size);
        fill_f32(pool.p, x, -2, 3);
        Op op;
        op.kind = OpKind::RmsNorm;
        op.dst = y;
        op.src0 = x;
        op.src1 = w.ref;
        op.eps = 1e-5f;
        StepParams s;
        s.n_tokens = nt;
        Both r = run_both(one(op, T), s, pool);
        expect("rms_norm n=75", nmse(r.cl->p, r.cpu->p, y, nt), 1e-6);
    }
    for (int mode = 0; mode < 2; ++mode) {
        const int32_t H = 3, D = 20, n_rot = 16;
        const float base = mode ? 1e6f : 10000.0f;
        Layout l;
        TensorRef x = l.add(H * D, T), y = l.add(H * D, T);
        StepTensors st(l, T, n_rot, base, 0, 1);
        Pool pool(l.size);
        fill_f32(pool.p, x);
        Op op;
        op.kind = OpKind::Rope;
        op.dst = y;
        op.src0 = x;
        op.n_head = H;
        op.head_dim = D;
        op.n_rot = n_rot;
        op.rope_base = base;
        op.rope_mode = mode;
        op.rope_rows = st.rope;
        StepParams s;
        s.n_tokens = nt;
        s.pos0 = 1237;
        st.fill(pool, s, false);
        Both r = run_both(one(op, T), s, pool);
        expect(mode ? "rope halves, partial rotation, pos 1237" : "rope adjacent pairs, partial rotation, pos 1237",
               nmse(r.cl->p, r.cpu->p, y, nt), 1e-6);
    }
    {
        Layout l;
        TensorRef g = l.add(101, T), u = l.add(101, T);
        Pool pool(l.size);
        fill_f32(pool.p, g, -4, 4);
        fill_f32(pool.p, u, -2, 2);
        Op op;
        op.kind = OpKind::SwiGlu;
        op.dst = g;
        op.src0 = u;
        StepParams s;
        s.n_tokens = nt;
        Both r = run_both(one(op, T), s, pool);
        expect("swiglu n=101", nmse(r.cl->p, r.cpu->p, g, nt), 1e-6);
    }
    for (GgmlType ct : {GgmlType::F16, GgmlType::F32}) {
        const int32_t S = 3, ring = 7, n = 10;
        Layout l;
        TensorRef k = l.add(n, T), v = l.add(n, T), kc = l.add(n, S + ring, ct), vc = l.add(n, S + ring, ct);
        StepTensors st(l, T, 0, 10000.0f, S, ring);
        Pool pool(l.size);
        fill_f32(pool.p, k);
        fill_f32(pool.p, v);
        fill_cache(pool.p, kc);
        fill_cache(pool.p, vc);
        Op op;
        op.kind = OpKind::KvStore;
        op.dst = kc;
        op.src0 = k;
        op.src1 = v;
        op.src2 = vc;
        op.n_sink = S;
        op.ring = ring;
        op.slots = st.slots;
        StepParams s;
        s.n_tokens = nt;
        s.pos0 = 8;  // slots 3 + (5..9) mod 7: the ring wraps inside the step
        st.fill(pool, s, false);
        Both r = run_both(one(op, T), s, pool);
        const bool f16 = ct == GgmlType::F16;
        expect(f16 ? "kv_store f16 cache, wrapped ring" : "kv_store f32 cache, wrapped ring",
               nmse(r.cl->p, r.cpu->p, kc, S + ring) + nmse(r.cl->p, r.cpu->p, vc, S + ring), 1e-6);
    }
}

namespace {

// One segment-attention case: geometry, where the step sits, memory and gate.
struct AttnCase {
    const char* name;
    GgmlType cache = GgmlType::F16;
    int32_t T = 5, nt = 5;
    int64_t pos0 = 0, ring_start = 3, mem_tokens = 0;
    int gate = 0;
    bool memory_rope = false;
    int rope_mode = 0;
    bool sinks_follow = false;
};

void attention_case(const AttnCase& c) {
    const int32_t H = 4, Hkv = 2, D = 24, S = 3, W = 10, ring = W + c.T;
    Layout l;
    TensorRef q = l.add(H * D, c.T), qn = l.add(H * D, c.T), out = l.add(H * D, c.T);
    TensorRef kc = l.add(Hkv * D, S + ring, c.cache), vc = l.add(Hkv * D, S + ring, c.cache);
    TensorRef m = l.add(D * D, Hkv), z = l.add(D, Hkv);
    TensorRef aux = l.scratch(uint64_t(2) * cpu::ops::kMaxQueries * (S + ring) * 4, S + ring);
    StepTensors st(l, c.T, D, 10000.0f, S, ring, c.sinks_follow);
    Pool pool(l.size);
    fill_f32(pool.p, q);
    fill_f32(pool.p, qn);
    fill_f32(pool.p, out);
    fill_cache(pool.p, kc);
    fill_cache(pool.p, vc);
    fill_f32(pool.p, m, -0.5f, 0.5f);
    fill_f32(pool.p, z, 0.5f, 2.0f);
    Weight gw = f32_vector(c.gate == 2 ? int64_t(H) * 2 * D : H, -1, 1);
    Weight gb = f32_vector(H, -0.5f, 0.5f);
    Op op;
    op.kind = OpKind::SegmentAttention;
    op.dst = out;
    op.src0 = q;
    op.src1 = kc;
    op.src2 = vc;
    op.q_nope = qn;
    op.aux = aux;
    op.n_head = H;
    op.n_head_kv = Hkv;
    op.head_dim = D;
    op.n_rot = D;
    op.rope_base = 10000.0f;
    op.rope_mode = c.rope_mode;
    op.n_sink = S;
    op.ring = ring;
    op.mem_m = m;
    op.mem_z = z;
    op.gate = c.gate;
    if (c.gate) {
        op.gate_w = gw.ref;
        op.gate_b = gb.ref;
    }
    op.memory_rope = c.memory_rope;
    op.sinks_follow = c.sinks_follow;
    op.positions = st.pos;
    op.slots = st.slots;
    op.visible = st.visible;
    if (c.sinks_follow) op.rope_rows = st.sink_rope;
    StepParams s;
    s.n_tokens = c.nt;
    s.pos0 = c.pos0;
    s.ring_start = c.ring_start;
    s.mem_tokens = c.mem_tokens;
    st.fill(pool, s, false);
    Both r = run_both(one(op, c.T), s, pool);
    expect(c.name, nmse(r.cl->p, r.cpu->p, out, c.nt), 5e-4);
}

}  // namespace

TEST(segment_attention_cases) {
    if (!have_opencl("segment_attention_cases")) return;
    AttnCase c;
    c.name = "attention: first segment, queries in the sink";
    attention_case(c);
    c = AttnCase{};
    c.name = "attention: padded last segment (3 of 5), f32 cache";
    c.cache = GgmlType::F32;
    c.nt = 3;
    c.pos0 = 9;
    attention_case(c);
    // The ring holds positions 40..52; slot of 40 is 3 + 37 mod 15 = 10: it wraps.
    for (int gate = 0; gate <= 2; ++gate) {
        for (int mem = 0; mem < 2; ++mem) {
            static std::string names[6];
            std::string& n = names[gate * 2 + mem];
            n = std::string("attention: wrapped ring, ") + (mem ? "memory" : "empty memory") + ", gate " +
                (gate == 0 ? "none" : gate == 1 ? "scalar" : "adaptive");
            c = AttnCase{};
            c.name = n.c_str();
            c.nt = 3;
            c.pos0 = 50;
            c.ring_start = 40;
            c.mem_tokens = mem ? 37 : 0;
            c.gate = gate;
            c.rope_mode = gate == 2;
            c.memory_rope = gate == 1 && mem;
            attention_case(c);
        }
    }
    // Sinks behind the window: after 37 folded tokens the sink keys are scored with the query
    // rotated for its position minus 37 (both pairings, both caches).
    for (int mode = 0; mode < 2; ++mode) {
        c = AttnCase{};
        c.name = mode ? "attention: sinks behind the window, halves, f32 cache" : "attention: sinks behind the window, pairs";
        c.cache = mode ? GgmlType::F32 : GgmlType::F16;
        c.nt = 4;
        c.pos0 = 49;
        c.ring_start = 40;
        c.mem_tokens = 37;
        c.gate = 1;
        c.rope_mode = mode;
        c.sinks_follow = true;
        attention_case(c);
    }
}

TEST(memory_fold_both_rules) {
    if (!have_opencl("memory_fold_both_rules")) return;
    for (int delta = 0; delta < 2; ++delta) {
        for (int empty = 0; empty < 2; ++empty) {
            for (GgmlType ct : {GgmlType::F16, GgmlType::F32}) {
                const int32_t Hkv = 2, D = 24, S = 3, L = 5, ring = 10 + L;
                Layout l;
                TensorRef kc = l.add(Hkv * D, S + ring, ct), vc = l.add(Hkv * D, S + ring, ct);
                TensorRef m = l.add(D * D, Hkv), z = l.add(D, Hkv);
                TensorRef aux = l.scratch(uint64_t(2) * (2 * L + 1) * D * 4);
                StepTensors st(l, L, D, 10000.0f, S, ring);
                Pool pool(l.size);
                fill_cache(pool.p, kc);
                fill_cache(pool.p, vc);
                if (!empty) {
                    fill_f32(pool.p, m, -0.5f, 0.5f);
                    fill_f32(pool.p, z, 0.5f, 3.0f);
                }
                Op op;
                op.kind = OpKind::MemoryUpdate;
                op.dst = m;
                op.src1 = kc;
                op.src2 = vc;
                op.mem_m = m;
                op.mem_z = z;
                op.aux = aux;
                op.n_head = 4;
                op.n_head_kv = Hkv;
                op.head_dim = D;
                op.n_rot = D;
                op.rope_base = 10000.0f;
                op.rope_mode = delta;
                op.n_sink = S;
                op.ring = ring;
                op.delta_rule = delta;
                op.memory_rope = ct == GgmlType::F32 && !empty;
                op.slots = st.fold_slots;
                if (!op.memory_rope) op.rope_rows = st.fold_rope;
                StepParams s;
                s.n_tokens = L;
                s.fold_start = 28;  // slots 3 + (25..29) mod 15: the fold wraps the ring
                st.fill(pool, s, true);
                Both r = run_both(one(op, L), s, pool);
                const std::string what = std::string("fold ") + (delta ? "delta" : "linear") + ", " +
                                         (empty ? "empty" : "non-empty") + " memory, " + type_traits(ct).name +
                                         " cache" + (op.memory_rope ? ", RoPE keys" : "");
                expect(what.c_str(), nmse(r.cl->p, r.cpu->p, m, Hkv) + nmse(r.cl->p, r.cpu->p, z, Hkv), 1e-6);
            }
        }
    }
}

// An op the backend cannot run: supports() says no and the reason names the weight type.
TEST(unsupported_weight_type_is_reported) {
    if (!have_opencl("unsupported_weight_type_is_reported")) return;
    Weight w(GgmlType::Q8_0, 64, 4);
    w.ref.type = GgmlType::Q2_K;  // no kernel
    Op op;
    op.kind = OpKind::MatMul;
    op.src0 = w.ref;
    auto b = opencl::make_opencl_backend();
    CHECK(!b->supports(op));
    const std::string why = opencl::why_unsupported(op, opencl::Runtime::get()->device);
    CHECK(why.find("q2_K") != std::string::npos);
}

// The program cache: a second build of the same program loads the binary the first wrote;
// a corrupted entry is refused by its hash and rebuilt from source.
TEST(program_cache_second_build_loads_binary) {
    if (!have_opencl("program_cache_second_build_loads_binary")) return;
    // The shared runtime first: made under the new folder, it would fill the cache before
    // the cold build (when this case runs alone).
    const opencl::DeviceInfo dev = opencl::Runtime::get()->device;
    char tmpl[] = "/tmp/ei-opencl-cache-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    CHECK(dir != nullptr);
    if (!dir) return;
    setenv("EI_OPENCL_CACHE_DIR", dir, 1);
    auto cold = opencl::Runtime::create(dev);
    CHECK(!cold->program_from_cache);
    CHECK(!cold->cache_path.empty());
    // The scenario's cache_dir wins over the environment (here: "off").
    setenv("EI_OPENCL_CACHE_DIR", "off", 1);
    const std::string chosen = dir;
    auto warm = opencl::Runtime::create(dev, "", &chosen);
    CHECK(warm->program_from_cache);
    CHECK(warm->cache_path == cold->cache_path);
    setenv("EI_OPENCL_CACHE_DIR", dir, 1);
    std::printf("  program build on %s: cold %.2f s, from the cache %.3f s\n", dev.name.c_str(), cold->build_seconds,
                warm->build_seconds);
    // Flip one payload byte: the hash no longer matches, so the entry is rebuilt, not loaded.
    {
        std::fstream f(cold->cache_path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(-1, std::ios::end);
        char ch = 0;
        f.get(ch);
        f.seekp(-1, std::ios::end);
        f.put(char(ch ^ 0x5a));
    }
    auto again = opencl::Runtime::create(dev);
    CHECK(!again->program_from_cache);
    auto healed = opencl::Runtime::create(dev);  // the rebuild rewrote a good entry
    CHECK(healed->program_from_cache);
    std::remove(cold->cache_path.c_str());
    rmdir(dir);
    unsetenv("EI_OPENCL_CACHE_DIR");
}

// The cache file format alone (no device needed): round trip, and refusals.
TEST(program_cache_format) {
    const std::vector<uint8_t> payload = {1, 2, 3, 4, 5, 250};
    const std::string key = opencl::make_cache_key("dev", "vendor", "1.0", "OpenCL 3.0", "-O", "kernel source");
    std::vector<uint8_t> f = opencl::encode_cached_binary(key, payload);
    auto back = opencl::decode_cached_binary(f.data(), f.size(), key);
    CHECK(back.has_value() && *back == payload);
    const std::string other = opencl::make_cache_key("dev", "vendor", "1.1", "OpenCL 3.0", "-O", "kernel source");
    CHECK(!opencl::decode_cached_binary(f.data(), f.size(), other));  // another driver version
    for (size_t cut = 0; cut < f.size(); ++cut) CHECK(!opencl::decode_cached_binary(f.data(), cut, key));
    for (size_t i = 0; i < f.size(); ++i) {
        std::vector<uint8_t> g = f;
        g[i] ^= 0x40;
        CHECK(!opencl::decode_cached_binary(g.data(), g.size(), key));
    }
}
