package io.edgeinfinite;

/**
 * The outcome of a generation.
 *
 * @param text            all generated text
 * @param promptTokens    tokens fed as the prompt
 * @param generatedTokens tokens sampled
 * @param stopReason      why it ended
 * @param prefillNanos    time to evaluate the prompt (time to first token)
 * @param decodeNanos     time spent generating after the prompt
 */
public record GenerationResult(String text, int promptTokens, int generatedTokens, StopReason stopReason,
        long prefillNanos, long decodeNanos) {

    /** Generated tokens per second after the prompt. */
    public double decodeTokensPerSecond() {
        return decodeNanos == 0 ? 0 : generatedTokens * 1e9 / decodeNanos;
    }

    /** Prompt tokens per second. */
    public double prefillTokensPerSecond() {
        return prefillNanos == 0 ? 0 : promptTokens * 1e9 / prefillNanos;
    }
}
