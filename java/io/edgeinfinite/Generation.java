package io.edgeinfinite;

import io.edgeinfinite.internal.NativeBinding;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * A generation in progress: an iterator of text pieces, each made of whole UTF-8
 * characters. The prompt is read on the first {@link #hasNext()}. {@link #cancel()} (from
 * any thread) stops it: during the prompt's prefill before the next segment of L tokens,
 * during generation after the current token. {@link #close()} stops it too;
 * {@link #result()} tells what was produced and why it ended. The iterator itself is used
 * by one thread at a time.
 */
public final class Generation implements Iterator<String>, AutoCloseable {
    private final Session session;
    private final int[] prompt;
    private final GenerateOptions options;
    private final String[] stops;
    private final Session.ProgressListener progress;
    private final StringBuilder text = new StringBuilder();
    private volatile boolean cancelled;
    private boolean started;
    private long prefillNanos;
    private StopReason reason = StopReason.NONE;
    private int generated;
    private long decodeNanos;
    private String pending;
    private int[] tokens = new int[16];
    private int nTokens;
    private boolean failed, ended;
    // Called once when the generation is over (ended, cancelled or failed), on the thread
    // that saw it end: a Conversation settles its turn there.
    private final java.util.function.Consumer<Generation> onEnd;

    Generation(Session session, int[] prompt, GenerateOptions options, String[] stops,
            Session.ProgressListener progress) {
        this(session, prompt, options, stops, progress, null);
    }

    Generation(Session session, int[] prompt, GenerateOptions options, String[] stops,
            Session.ProgressListener progress, java.util.function.Consumer<Generation> onEnd) {
        this.session = session;
        this.prompt = prompt;
        this.options = options;
        this.stops = stops;
        this.progress = progress;
        this.onEnd = onEnd;
    }

    @Override
    public boolean hasNext() {
        if (failed) return false;
        try {
            return advance();
        } catch (RuntimeException e) {
            // The error reaches the caller once; the generation is over after it.
            failed = true;
            end();
            throw e;
        }
    }

    private boolean advance() {
        boolean more = produce();
        if (reason != StopReason.NONE) end();
        return more;
    }

    private void end() {
        if (ended) return;
        ended = true;
        if (onEnd != null) onEnd.accept(this);
    }

    private boolean produce() {
        while (pending == null && reason == StopReason.NONE) {
            if (cancelled) {
                reason = StopReason.CANCELLED;
                break;
            }
            if (!started) {
                start();
                continue;
            }
            long t0 = System.nanoTime();
            NativeBinding.Step s;
            try {
                s = session.step();
            } catch (CancelledException e) {
                reason = StopReason.CANCELLED;
                break;
            } finally {
                decodeNanos += System.nanoTime() - t0;
            }
            if (s.token() >= 0) {
                generated++;
                if (nTokens == tokens.length) tokens = java.util.Arrays.copyOf(tokens, nTokens * 2);
                tokens[nTokens++] = s.token();
            }
            if (s.done() != 0) reason = StopReason.fromCode(s.done());
            if (!s.text().isEmpty()) pending = s.text();
        }
        return pending != null;
    }

    @Override
    public String next() {
        if (!hasNext()) throw new NoSuchElementException();
        String p = pending;
        pending = null;
        text.append(p);
        return p;
    }

    /** Reads the prompt (once): the prefill, which a cancel may stop before its next segment. */
    void start() {
        if (started) return;
        started = true;
        long t0 = System.nanoTime();
        try {
            if (!session.prefill(this, prompt, options, stops, progress)) reason = StopReason.CANCELLED;
        } catch (CancelledException e) {
            reason = StopReason.CANCELLED;
        } finally {
            prefillNanos = System.nanoTime() - t0;
        }
    }

    /** The pieces as a sequential stream. */
    public Stream<String> pieces() {
        return StreamSupport.stream(Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED), false);
    }

    /**
     * Stops the generation: a prefill in progress before its next segment, a generation after
     * the current token. Safe from any thread, any time.
     */
    public void cancel() {
        cancelled = true; // first: Session.prefill checks it after withdrawing older cancels
        // Unconditional: this thread cannot know whether a prefill is running; a request that
        // finds nothing running is withdrawn by the session's next evaluation.
        session.cancel();
    }

    boolean isCancelled() {
        return cancelled;
    }

    /**
     * The token ids sampled so far, in order, including an end-of-generation token that
     * ended it (whose text is not part of the output).
     */
    public int[] tokens() {
        return java.util.Arrays.copyOf(tokens, nTokens);
    }

    /** The prompt's token ids, as fed to the session. */
    int[] promptTokens() {
        return prompt;
    }

    /** Whether it ended by an exception (which {@link #hasNext()} threw once). */
    boolean failed() {
        return failed;
    }

    /** Why the generation ended, or NONE while it goes on. */
    public StopReason stopReason() {
        return reason;
    }

    public GenerationResult result() {
        return new GenerationResult(text.toString(), prompt.length, generated, reason, prefillNanos, decodeNanos);
    }

    @Override
    public void close() {
        if (reason == StopReason.NONE && !failed) {
            cancelled = true;
            hasNext();
        }
    }
}
