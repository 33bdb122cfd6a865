package io.edgeinfinite.cli;

import io.edgeinfinite.Model;
import io.edgeinfinite.Session;
import java.util.Arrays;

/**
 * Perplexity the way llama.cpp's perplexity tool measures it, so the figures agree:
 * <ul>
 *   <li>the text is read whole, less one trailing newline (as llama.cpp's {@code -f} reads a
 *       file), and tokenized once, with the model's BOS in front when it adds one;</li>
 *   <li>that token list is cut into {@code chunks = n / ctx} chunks of ctx tokens (the tail is
 *       dropped); each chunk is evaluated from an empty context with its first token replaced
 *       by BOS (when the model adds one);</li>
 *   <li>in each chunk the positions {@code first = ctx/2 .. ctx-2} are scored, each against the
 *       token that follows it: ctx - 1 - ctx/2 tokens a chunk, each with at least ctx/2
 *       tokens of context.</li>
 * </ul>
 * The BOS in front of the whole list matters: without it every chunk starts one token later,
 * and on the eval model at ctx 1024 the figure moves from 9.6238 to 9.6112.
 */
final class Perplexity {
    /** What one chunk gives a consumer: the chunk index, its logits [ctx x vocab] and the whole token list. */
    interface ChunkConsumer {
        void accept(int chunk, float[] logits) throws java.io.IOException;
    }

    /** Chunk-wise progress. */
    interface Progress {
        void update(int done, int total);
    }

    /** The chunking and scoring rule over a token list (BOS included when the model adds one). */
    record Chunking(int[] tokens, int ctx, int chunks, int bos) {
        Chunking {
            if (ctx < 2) throw new IllegalArgumentException("--ctx must be at least 2, got " + ctx);
            if (chunks < 1) {
                throw new IllegalArgumentException("the text has " + tokens.length + " tokens, fewer than one chunk of " + ctx);
            }
            if ((long) chunks * ctx > tokens.length) {
                throw new IllegalArgumentException(chunks + " chunks of " + ctx + " need more than the text's " + tokens.length + " tokens");
            }
        }

        /** Every whole chunk of the text, or at most maxChunks of them (maxChunks <= 0: all). */
        static Chunking of(int[] tokens, int ctx, int maxChunks, int bos) {
            if (ctx < 2) throw new IllegalArgumentException("--ctx must be at least 2, got " + ctx);
            int chunks = tokens.length / ctx;
            if (maxChunks > 0) chunks = Math.min(chunks, maxChunks);
            return new Chunking(tokens, ctx, chunks, bos);
        }

        /** The first scored position of a chunk. */
        int first() {
            return ctx / 2;
        }

        /** Scored tokens per chunk. */
        int scoredPerChunk() {
            return ctx - 1 - first();
        }

        /** The model's input for chunk c: its ctx tokens, the first one replaced by BOS when there is one. */
        int[] input(int c) {
            int[] in = Arrays.copyOfRange(tokens, c * ctx, (c + 1) * ctx);
            if (bos >= 0) in[0] = bos;
            return in;
        }

        /** The token that position i of chunk c is scored against (the next one in the text). */
        int target(int c, int i) {
            return tokens[c * ctx + i + 1];
        }

        /** The tokens every chunk reads (the first chunks * ctx of the list). */
        int[] chunkedTokens() {
            return Arrays.copyOf(tokens, chunks * ctx);
        }
    }

    private Perplexity() {}

    /** The text as llama.cpp's {@code -f} reads it: the file less one trailing newline. */
    static String asRead(String fileText) {
        return fileText.endsWith("\n") ? fileText.substring(0, fileText.length() - 1) : fileText;
    }

    /** The token list perplexity chunks: the text with the model's BOS in front when it adds one. */
    static int[] tokens(Model m, String text) {
        return m.tokenize(text, m.addsBos(), false);
    }

    /**
     * Runs every chunk and hands its logits to the consumer, in order.
     */
    static void run(Session s, Chunking ch, ChunkConsumer consumer, Progress progress) throws java.io.IOException {
        for (int c = 0; c < ch.chunks(); c++) {
            s.reset();
            consumer.accept(c, s.logits(ch.input(c)));
            progress.update(c + 1, ch.chunks());
        }
    }

    /** Scores every chunk's scored positions into nll. */
    static void score(Chunking ch, int c, float[] logits, int vocab, TokenScores.Nll nll) {
        for (int i = ch.first(); i < ch.ctx() - 1; i++) nll.score(logits, i, vocab, ch.target(c, i));
    }

    /** Perplexity of a session's model over the chunks. */
    static TokenScores.Nll compute(Session s, Chunking ch, Progress progress) {
        int vocab = s.model().vocabSize();
        TokenScores.Nll nll = new TokenScores.Nll();
        try {
            run(s, ch, (c, logits) -> score(ch, c, logits, vocab, nll), progress);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return nll;
    }
}
