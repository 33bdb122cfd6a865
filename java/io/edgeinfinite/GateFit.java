package io.edgeinfinite;

import io.edgeinfinite.internal.NativeBinding;
import java.util.List;

/**
 * Fits a model's memory gates for a scenario by layer-wise distillation (DESIGN §6): the
 * model with full attention over calibration sequences longer than S + W is the teacher; at
 * every layer, query head and position whose early context the route would have folded,
 * the gate is fitted so that {@code g A_mem + (1 - g) A_local} (computed by the runtime
 * exactly as the route would, with its segments and folds) matches the teacher's output.
 * The result is the gate tensors; {@code ei fit-gates} writes them into a model copy.
 */
public final class GateFit {
    /** Which gate: {@code scalar} (one g per head) or {@code adaptive} (g per head and token). */
    public enum Kind { SCALAR, ADAPTIVE }

    /**
     * A fit: gate tensors as the runtime reads {@code blk.N.ei_gate.*} and, per layer and head,
     * the weighted squared blend errors before (g = 0) and after, the weighted energy of the
     * teacher's output (for relative errors) and the scored weight.
     *
     * @param weight  scalar: beta [layer][head] (g = sigmoid(beta)); adaptive: [layer][head][2 * headDim]
     * @param bias    adaptive: [layer][head]; scalar: zeros
     * @param report  [layer][head][4]: error before, error after, energy, weight
     * @param scenario the route the gates were fitted for
     */
    public record Result(Kind kind, int layers, int heads, int headDim, float[] weight, float[] bias, double[] report,
            Session.Resolved scenario, int passes) {
        public double errorBefore(int layer, int head) {
            return report[4 * (layer * heads + head)];
        }

        public double errorAfter(int layer, int head) {
            return report[4 * (layer * heads + head) + 1];
        }

        public double energy(int layer, int head) {
            return report[4 * (layer * heads + head) + 2];
        }

        public double scoredWeight(int layer, int head) {
            return report[4 * (layer * heads + head) + 3];
        }

        /** The scalar gate's g of a head (NaN for the adaptive gate, which has one per token). */
        public double gate(int layer, int head) {
            return kind == Kind.SCALAR ? 1 / (1 + Math.exp(-weight[layer * heads + head])) : Double.NaN;
        }
    }

    private GateFit() {}

    /**
     * Fits the gates.
     *
     * @param sequences calibration token sequences, each longer than the scenario's S + W
     * @param weights   null, or per sequence one weight per token, at least 0: how much the blend at
     *                  that position counts (e.g. answer positions of chat data)
     * @param steps     adaptive only: Gauss-Newton steps (one teacher run each)
     * @param ridge     adaptive only: penalty, at least 0, on the per-token part of the gate's logit
     * @throws InvalidArgumentException for a sequence too short, bad weights, or memory off
     */
    public static Result fit(Model model, Scenario scenario, Kind kind, int steps, double ridge, List<int[]> sequences,
            List<float[]> weights) {
        if (weights != null && weights.size() != sequences.size()) {
            throw new IllegalArgumentException("weights: " + weights.size() + " lists for " + sequences.size() + " sequences");
        }
        int total = 0;
        long[] lengths = new long[sequences.size()];
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] = sequences.get(i).length;
            if (weights != null && weights.get(i).length != lengths[i]) {
                throw new IllegalArgumentException("weights of sequence " + i + ": " + weights.get(i).length
                        + " for " + lengths[i] + " tokens");
            }
            total = Math.addExact(total, sequences.get(i).length);
        }
        int[] tokens = new int[total];
        float[] w = weights == null ? null : new float[total];
        int at = 0;
        for (int i = 0; i < lengths.length; i++) {
            System.arraycopy(sequences.get(i), 0, tokens, at, (int) lengths[i]);
            if (w != null) System.arraycopy(weights.get(i), 0, w, at, (int) lengths[i]);
            at += (int) lengths[i];
        }
        NativeBinding nb = model.binding();
        int layers = (int) model.param("n_layer"), heads = (int) model.param("n_head"),
                headDim = (int) model.param("head_dim");
        float[] gw = new float[kind == Kind.SCALAR ? layers * heads : layers * heads * 2 * headDim];
        float[] gb = new float[layers * heads];
        double[] report = new double[4 * layers * heads];
        Session.Resolved resolved = model.withHandle(h -> {
            long plan = Session.createPlan(nb, h, scenario);
            try {
                int[] r = nb.planScenario(plan);
                nb.fitGates(plan, kind == Kind.SCALAR ? 1 : 2, kind == Kind.SCALAR ? 0 : steps, ridge, tokens, w, lengths, gw,
                        gb, report);
                return Session.Resolved.of(r);
            } finally {
                nb.planFree(plan);
            }
        });
        int passes = kind == Kind.SCALAR ? 1 : steps + 2;
        return new Result(kind, layers, heads, headDim, gw, gb, report, resolved, passes);
    }
}
