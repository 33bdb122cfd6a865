package io.edgeinfinite.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.Locale;

/**
 * Compares a model's predictions with a base model's, token by token, with the statistics
 * llama.cpp's perplexity tool reports: both perplexities and their ratio (with
 * uncertainties that account for their correlation), the KL divergence KL(base || model)
 * per token (mean with its standard error, median, percentiles), how often the top token
 * is the same, and delta p = p_model(next token) - p_base(next token) (mean, RMS,
 * percentiles). Also the logits' SQNR (signal to quantization noise, dB, the figure NPU
 * toolchains gate on): logits are only defined up to a per-row shift, so both rows are
 * centered over the tokens the base file resolves (within 16 nats of its top; the rest is
 * below its floor) before signal and noise are summed.
 */
final class KlDivergence {
    private final TokenScores.Nll nll = new TokenScores.Nll(), nllBase = new TokenScores.Nll();
    private double sumCross, sumKld, sumKld2, sumDp, sumDp2, sumDp4, sumSignal2, sumNoise2;
    private long sameTop;
    private float[] kld = new float[1024], dp = new float[1024];
    private int n;

    /**
     * Adds one scored position: the model's logits row {@code r} and the base's row, both
     * predicting {@code target}.
     */
    void add(float[] logits, int r, int nVocab, KlBaseFile.Row base, int target) {
        int off = r * nVocab;
        float max = TokenScores.maxOf(logits, off, nVocab);
        double lse = max + TokenScores.logSumExp(logits, off, nVocab, max);
        double kl = 0, sumB = 0, sumD = 0, sumB2 = 0, sumD2 = 0;
        int resolved = 0;
        for (int i = 0; i < nVocab; i++) {
            double lpb = base.logProb[i];
            if (lpb == Double.NEGATIVE_INFINITY) continue;  // below the base's floor: p = 0
            double lpq = logits[off + i] - lse, diff = lpq - lpb;
            kl += Math.exp(lpb) * -diff;
            sumB += lpb;
            sumB2 += lpb * lpb;
            sumD += diff;
            sumD2 += diff * diff;
            resolved++;
        }
        if (resolved > 0) {  // centered sums of squares: sum x^2 - (sum x)^2 / n
            sumSignal2 += Math.max(0, sumB2 - sumB * sumB / resolved);
            sumNoise2 += Math.max(0, sumD2 - sumD * sumD / resolved);
        }
        double q = logits[off + target] - lse, b = base.target;
        nll.add(-q);
        nllBase.add(-b);
        sumCross += q * b;
        sumKld += kl;
        sumKld2 += kl * kl;
        double d = Math.exp(q) - Math.exp(b);
        sumDp += d;
        sumDp2 += d * d;
        sumDp4 += d * d * d * d;
        if (TokenScores.argmax(logits, off, nVocab) == base.top) sameTop++;
        if (n == kld.length) {
            kld = Arrays.copyOf(kld, 2 * n);
            dp = Arrays.copyOf(dp, 2 * n);
        }
        kld[n] = (float) kl;
        dp[n] = (float) d;
        n++;
    }

    long count() {
        return n;
    }

    TokenScores.Nll nll() {
        return nll;
    }

    TokenScores.Nll nllBase() {
        return nllBase;
    }

    double meanKld() {
        return sumKld / n;
    }

    /** The logits' SQNR in dB (see the class comment); infinite when they are identical. */
    double logitsSqnrDb() {
        return sumNoise2 > 0 ? 10 * Math.log10(sumSignal2 / sumNoise2) : Double.POSITIVE_INFINITY;
    }

    double sameTopFraction() {
        return (double) sameTop / n;
    }

    /** Covariance of the two mean -ln p (for the ratio's uncertainty). */
    private double covarianceOfMeans() {
        if (n < 2) return 0;
        double c = sumCross / n - (nll.sum() / n) * (nllBase.sum() / n);
        return c / (n - 1);
    }

    /** The value at fraction f of sorted values, linearly interpolated between neighbours. */
    static double percentile(float[] sorted, int count, double f) {
        if (f <= 0) return sorted[0];
        if (f >= 1) return sorted[count - 1];
        double p = f * (count - 1);
        int i = (int) p;
        double w = p - i;
        return (1 - w) * sorted[i] + w * sorted[Math.min(i + 1, count - 1)];
    }

    void report(PrintStream out) {
        if (n == 0) throw new IllegalStateException("no tokens were compared");
        TokenScores.MeanError lq = nll.meanNll(), lb = nllBase.meanNll();
        double cov = covarianceOfMeans();
        double ppl = Math.exp(lq.mean()), pplB = Math.exp(lb.mean());
        double ratioLn = lq.mean() - lb.mean();
        double ratioLnErr = Math.sqrt(Math.max(0, lq.error() * lq.error() + lb.error() * lb.error() - 2 * cov));
        double cor = lq.error() > 0 && lb.error() > 0 ? cov / (lq.error() * lb.error()) : Double.NaN;
        TokenScores.MeanError k = TokenScores.MeanError.of(sumKld, sumKld2, n);
        TokenScores.MeanError d = TokenScores.MeanError.of(sumDp, sumDp2, n);
        TokenScores.MeanError d2 = TokenScores.MeanError.of(sumDp2, sumDp4, n);
        double rms = Math.sqrt(d2.mean()), rmsErr = rms > 0 ? 0.5 / rms * d2.error() : 0;
        double top = sameTopFraction(), topErr = n > 1 ? Math.sqrt(top * (1 - top) / (n - 1)) : 0;
        float[] ks = Arrays.copyOf(kld, n), ds = Arrays.copyOf(dp, n);
        Arrays.sort(ks);
        Arrays.sort(ds);

        Locale L = Locale.ROOT;
        out.printf(L, "tokens compared               : %d%n", n);
        out.printf(L, "PPL(Q)                        : %10.6f ± %10.6f%n", ppl, ppl * lq.error());
        out.printf(L, "PPL(base)                     : %10.6f ± %10.6f%n", pplB, pplB * lb.error());
        out.printf(L, "Cor(ln PPL(Q), ln PPL(base))  : %6.2f%%%n", 100 * cor);
        out.printf(L, "ln(PPL(Q)/PPL(base))          : %10.6f ± %10.6f%n", ratioLn, ratioLnErr);
        out.printf(L, "PPL(Q)/PPL(base)              : %10.6f ± %10.6f%n", Math.exp(ratioLn), Math.exp(ratioLn) * ratioLnErr);
        out.printf(L, "PPL(Q)-PPL(base)              : %10.6f ± %10.6f%n", ppl - pplB,
                Math.sqrt(Math.max(0, Math.pow(ppl * lq.error(), 2) + Math.pow(pplB * lb.error(), 2) - 2 * ppl * pplB * cov)));
        out.printf(L, "KLD mean                      : %10.6f ± %10.6f%n", k.mean(), k.error());
        out.printf(L, "KLD max                       : %10.6f%n", ks[n - 1]);
        for (double f : new double[] {0.999, 0.99, 0.95, 0.90}) {
            out.printf(L, "KLD %5.1f%%                    : %10.6f%n", 100 * f, percentile(ks, n, f));
        }
        out.printf(L, "KLD median                    : %10.6f%n", percentile(ks, n, 0.5));
        for (double f : new double[] {0.10, 0.05, 0.01, 0.001}) {
            out.printf(L, "KLD %5.1f%%                    : %10.6f%n", 100 * f, percentile(ks, n, f));
        }
        out.printf(L, "KLD min                       : %10.6f%n", ks[0]);
        out.printf(L, "delta p mean                  : %7.3f ± %5.3f %%%n", 100 * d.mean(), 100 * d.error());
        out.printf(L, "delta p RMS                   : %7.3f ± %5.3f %%%n", 100 * rms, 100 * rmsErr);
        out.printf(L, "delta p max                   : %7.3f %%%n", 100 * ds[n - 1]);
        for (double f : new double[] {0.999, 0.99, 0.95, 0.90, 0.75}) {
            out.printf(L, "delta p %5.1f%%                : %7.3f %%%n", 100 * f, 100 * percentile(ds, n, f));
        }
        out.printf(L, "delta p median                : %7.3f %%%n", 100 * percentile(ds, n, 0.5));
        for (double f : new double[] {0.25, 0.10, 0.05, 0.01, 0.001}) {
            out.printf(L, "delta p %5.1f%%                : %7.3f %%%n", 100 * f, 100 * percentile(ds, n, f));
        }
        out.printf(L, "delta p min                   : %7.3f %%%n", 100 * ds[0]);
        out.printf(L, "same top token                : %7.3f ± %5.3f %%%n", 100 * top, 100 * topErr);
        out.printf(L, "logits SQNR                   : %7.2f dB%n", logitsSqnrDb());
    }
}
