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
 * characters. {@link #cancel()} (from any thread) or {@link #close()} stops it after the
 * current step; {@link #result()} tells what was produced and why it ended.
 */
public final class Generation implements Iterator<String>, AutoCloseable {
    private final Session session;
    private final int promptTokens;
    private final long prefillNanos;
    private final StringBuilder text = new StringBuilder();
    private volatile boolean cancelled;
    private StopReason reason = StopReason.NONE;
    private int generated;
    private long decodeNanos;
    private String pending;

    Generation(Session session, int promptTokens, long prefillNanos) {
        this.session = session;
        this.promptTokens = promptTokens;
        this.prefillNanos = prefillNanos;
    }

    @Override
    public boolean hasNext() {
        while (pending == null && reason == StopReason.NONE) {
            if (cancelled) {
                reason = StopReason.CANCELLED;
                break;
            }
            long t0 = System.nanoTime();
            NativeBinding.Step s = session.step();
            decodeNanos += System.nanoTime() - t0;
            if (s.token() >= 0) generated++;
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

    /** The pieces as a sequential stream. */
    public Stream<String> pieces() {
        return StreamSupport.stream(Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED), false);
    }

    /** Stops the generation at the next step; safe from any thread. */
    public void cancel() {
        cancelled = true;
    }

    /** Why the generation ended, or NONE while it goes on. */
    public StopReason stopReason() {
        return reason;
    }

    public GenerationResult result() {
        return new GenerationResult(text.toString(), promptTokens, generated, reason, prefillNanos, decodeNanos);
    }

    @Override
    public void close() {
        if (reason == StopReason.NONE) {
            cancelled = true;
            hasNext();
        }
    }
}
