package io.edgeinfinite.cli;

import io.edgeinfinite.Session;
import java.util.Arrays;

/**
 * Perplexity the way llama.cpp's perplexity tool measures it: the text is cut into chunks
 * of ctx tokens, each evaluated from an empty context (first token replaced by BOS when
 * the model uses one), and only the second half of each chunk is scored, so every scored
 * token has at least ctx/2 tokens of context.
 */
final class Perplexity {
    record Result(double perplexity, int tokens, int chunks) {}

    interface Progress {
        void update(int done, int total);
    }

    private Perplexity() {}

    static Result compute(Session s, int[] tokens, int ctx, int bos, Progress progress) {
        int chunks = tokens.length / ctx;
        if (chunks == 0) {
            throw new IllegalArgumentException("text has " + tokens.length + " tokens, fewer than one chunk of " + ctx);
        }
        int vocab = s.model().vocabSize();
        double nll = 0;
        int scored = 0;
        for (int c = 0; c < chunks; c++) {
            int[] chunk = Arrays.copyOfRange(tokens, c * ctx, (c + 1) * ctx);
            if (bos >= 0) chunk[0] = bos;
            s.reset();
            float[] logits = s.logits(chunk);
            for (int i = ctx / 2; i < ctx - 1; i++) {
                nll -= logSoftmax(logits, i * vocab, vocab, tokens[c * ctx + i + 1]);
                scored++;
            }
            progress.update(c + 1, chunks);
        }
        return new Result(Math.exp(nll / scored), scored, chunks);
    }

    private static double logSoftmax(float[] l, int off, int n, int target) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, l[off + i]);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.exp(l[off + i] - max);
        return l[off + target] - max - Math.log(sum);
    }
}
