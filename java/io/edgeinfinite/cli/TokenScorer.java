package io.edgeinfinite.cli;

import io.edgeinfinite.Session;
import java.util.Arrays;

/**
 * Negative log-likelihood of a range of a token sequence under one session: the sequence is
 * read from an empty context, and the logits at positions {@code first .. end - 1} predict
 * the tokens at {@code first + 1 .. end}. The scoring itself is {@code ei perplexity}'s
 * ({@link TokenScores}); what is particular here is the feeding rule.
 *
 * <p>Tokens go in as calls of whole segments (multiples of the scenario's L, counted from
 * position 0), so a session folds at exactly the positions it would if the sequence came in
 * one call. Logits are only asked for where they are scored, a few segments at a time, so a
 * 32K-token sequence never holds more than ~64 MB of logits.
 */
final class TokenScorer {
    private static final long LOGIT_BUDGET = 16L << 20;  // floats per logits() call

    private TokenScorer() {}

    /**
     * Resets the session, reads {@code tokens} and scores the logits at positions
     * {@code [first, end)} against the next token ({@code end <= tokens.length - 1}).
     */
    static void score(Session s, int[] tokens, int first, int end, TokenScores.Nll into) {
        if (first < 0 || end > tokens.length - 1 || first >= end) {
            throw new IllegalArgumentException("scored range [" + first + ", " + end + ") is empty or outside the "
                    + tokens.length + " tokens");
        }
        int L = s.scenario().segmentLength(), vocab = s.model().vocabSize();
        s.reset();
        int prefix = first / L * L;  // unscored, in whole segments: only the last row's logits
        if (prefix > 0) s.eval(Arrays.copyOfRange(tokens, 0, prefix));
        int piece = (int) Math.max(L, LOGIT_BUDGET / vocab / L * L);
        for (int at = prefix; at < end; at += piece) {
            int to = Math.min(end, at + piece);
            float[] logits = s.logits(Arrays.copyOfRange(tokens, at, to));
            for (int p = Math.max(at, first); p < to; p++) into.score(logits, p - at, vocab, tokens[p + 1]);
        }
    }
}
