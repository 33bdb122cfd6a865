// Fitting the memory gates by layer-wise distillation (DESIGN §6), without a training
// framework.
//
// The teacher is the model itself with full attention over calibration sequences longer
// than S + W. Inputs are teacher-forced: every layer's Q, K and V come from that one full
// run, so each layer's fit is independent of the others and one run serves them all (a
// sequential fit would need a route run per layer, and would fit each gate to the errors of
// the gates below it). From those Q/K/V the collector computes, at every layer, query head
// and position whose early context the route would have folded, exactly what the route
// computes there: A_local (sink + window + causal part of the segment, the route's kernel
// on the route's spans) and A_mem (the route's folds, in segments of L at the route's fold
// points, with the scenario's rule and memory keys, from the same f16-or-f32 cache rows),
// and compares them with the teacher's output A_full.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "plan.h"

namespace ei {

// One scored (layer, query head, position): what the route would blend there, and the
// teacher's output it should match. Pointers are valid during the callback only.
struct GateSample {
    int32_t layer = 0, head = 0;
    int64_t pos = 0;      // position in its sequence
    float weight = 1.0f;  // the caller's weight of that position
    int32_t dim = 0;      // head_dim
    const float* local = nullptr;
    const float* mem = nullptr;
    const float* full = nullptr;
};
using GateSampleFn = std::function<void(const GateSample&)>;

// Calibration input: n_seqs sequences of lengths[i] tokens, back to back in tokens; weights
// is null (every position weighs 1) or one weight per token (>= 0, finite).
struct GateCalibration {
    const int32_t* tokens = nullptr;
    const int64_t* lengths = nullptr;
    int32_t n_seqs = 0;
    const float* weights = nullptr;
};

// Runs the teacher over every sequence once and calls fn for every scored sample of the
// route the plan describes (its model, S, W, L, rule, memory keys, KV type, threads).
// Throws EI_ERR_INVALID_ARGUMENT for a sequence not longer than S + W (it would never
// leave the full-attention route), bad weights, or a plan with memory off.
void collect_gate_samples(const Plan& route, const GateCalibration& cal, const GateSampleFn& fn);

enum class GateKind : int32_t { Scalar = 1, Adaptive = 2 };

// Per (layer, head), weighted sums over the scored samples.
struct GateHeadReport {
    double err_before = 0;  // sum w ||A_local - A_full||^2 (g = 0)
    double err_after = 0;   // sum w ||g A_mem + (1 - g) A_local - A_full||^2 with the fitted gate
    double energy = 0;      // sum w ||A_full||^2, to make the errors relative
    double weight = 0;      // sum w
};

struct GateFitResult {
    GateKind kind = GateKind::Scalar;
    int32_t n_layer = 0, n_head = 0, head_dim = 0;
    // Layout as the runtime reads blk.N.ei_gate.*: scalar: w[layer][head] = beta (g =
    // sigmoid(beta)); adaptive: w[layer][head][2 * head_dim] (A_mem weights, then A_local's)
    // and b[layer][head]. b is all zero for the scalar gate.
    std::vector<float> w, b;
    std::vector<GateHeadReport> report;  // [layer][head]
    int32_t passes = 0;                  // teacher runs over the calibration data
};

// The scalar gate is the closed form g* = <A_mem - A_local, A_full - A_local> /
// ||A_mem - A_local||^2 (the minimiser of the weighted blend error, a quadratic in g),
// clipped to [kGateClip, 1 - kGateClip] before beta = logit(g). The adaptive gate starts
// from it (w = 0, b = beta) and takes `steps` damped Gauss-Newton steps on the same blend
// error plus ridge * sum_t w_t |A_mem - A_local|^2 (w . [A_mem ; A_local])^2 (the per-token
// part of the gate's logit, weighed as the error weighs that token's g), one teacher run
// each, keeping per head only steps that lower that objective.
constexpr double kGateClip = 1e-3;
GateFitResult fit_gates(const Plan& route, const GateCalibration& cal, GateKind kind, int32_t steps,
                        double ridge = 0);

// The fit itself, over any source of samples: each call of pass(fn) must deliver the same
// samples (one teacher run). fit_gates is this over collect_gate_samples; tests feed it
// samples whose optimum they know.
using GateSamplePass = std::function<void(const GateSampleFn&)>;
GateFitResult fit_gates_over(const GateSamplePass& pass, int32_t n_layer, int32_t n_head, int32_t head_dim,
                             GateKind kind, int32_t steps, double ridge = 0);

// g* for weighted sums b = sum w ||d||^2, c = sum w <d, A_full - A_local> (d = A_mem -
// A_local), clipped; kGateClip when b is 0 (nothing to fit: the gate stays shut).
double scalar_gate(double b, double c);

}  // namespace ei
