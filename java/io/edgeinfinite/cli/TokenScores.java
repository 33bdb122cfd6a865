package io.edgeinfinite.cli;

/**
 * Per-token scoring shared by every tool that measures how well a model predicts text
 * ({@code ei perplexity}, its KL-divergence mode, and the evaluation commands): the
 * log-softmax of one logits row and running sums of negative log-likelihoods.
 *
 * <p>Sums run in double after subtracting the row's largest logit, so rows of any scale
 * give the same result as an exact computation to ~1e-12 relative.
 */
public final class TokenScores {
    private TokenScores() {}

    /** ln p(target) under the softmax of {@code logits[off .. off+n)}. */
    public static double logProb(float[] logits, int off, int n, int target) {
        if (target < 0 || target >= n) {
            throw new IllegalArgumentException("token " + target + " is outside the vocabulary of " + n);
        }
        float max = maxOf(logits, off, n);
        return logits[off + target] - max - logSumExp(logits, off, n, max);
    }

    /** ln sum_i exp(logits[off+i] - max): the log-softmax of entry i is logits[off+i] - max - this. */
    public static double logSumExp(float[] logits, int off, int n, float max) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.exp((double) logits[off + i] - max);
        return Math.log(sum);
    }

    /** The largest of {@code logits[off .. off+n)}. */
    public static float maxOf(float[] logits, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, logits[off + i]);
        return max;
    }

    /** The index (0..n-1) of the largest entry, the first one on ties. */
    public static int argmax(float[] logits, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[off + i] > logits[off + best]) best = i;
        }
        return best;
    }

    /** Mean and standard error of the mean from a count, a sum and a sum of squares. */
    public record MeanError(double mean, double error) {
        static MeanError of(double sum, double sum2, long count) {
            if (count == 0) return new MeanError(Double.NaN, Double.NaN);
            double mean = sum / count;
            double var = sum2 / count - mean * mean;
            return new MeanError(mean, count > 1 && var > 0 ? Math.sqrt(var / (count - 1)) : 0);
        }
    }

    /**
     * Running sums of negative log-likelihoods (-ln p of each scored token): perplexity is
     * exp(mean), its uncertainty exp(mean) times the standard error of the mean.
     */
    public static final class Nll {
        private double sum, sum2;
        private long count;

        /** Adds one scored token's -ln p. */
        public void add(double nll) {
            sum += nll;
            sum2 += nll * nll;
            count++;
        }

        /** Scores row {@code row} of {@code logits} (n_vocab wide) against {@code target}; returns its -ln p. */
        public double score(float[] logits, int row, int nVocab, int target) {
            double nll = -logProb(logits, row * nVocab, nVocab, target);
            add(nll);
            return nll;
        }

        public long count() {
            return count;
        }

        public double sum() {
            return sum;
        }

        public double sumOfSquares() {
            return sum2;
        }

        /** Mean -ln p and its standard error. */
        public MeanError meanNll() {
            return MeanError.of(sum, sum2, count);
        }

        public double perplexity() {
            return Math.exp(sum / count);
        }

        /** The perplexity's standard error (first order: ppl times the mean's standard error). */
        public double perplexityError() {
            return perplexity() * meanNll().error();
        }
    }
}
