package io.edgeinfinite;

import io.edgeinfinite.internal.NativeBinding;
import io.edgeinfinite.internal.NativeMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One conversation's state over a model: a buffer pool that Java allocates and owns,
 * planned by the runtime from the model and the scenario (its size never depends on the
 * prompt), and the position reached so far. A session is used by one thread at a time;
 * its methods are synchronized, and {@link #close()} frees the pool after any call in
 * flight has returned. Any use after close throws {@link IllegalStateException}.
 */
public final class Session implements AutoCloseable {
    private final Model model;
    private final NativeBinding nb;
    private final Scenario scenario;
    private final NativeMemory pool;
    private final List<PoolRegion> regions;
    private final int vocab;
    private long handle;

    Session(Model model, Scenario scenario) {
        this.model = model;
        this.nb = model.binding();
        this.scenario = scenario;
        this.vocab = model.vocabSize();
        long plan = nb.planCreate(model.handle(), scenario.contextSize(), scenario.segmentLength(), scenario.threads(),
                scenario.kvType().ordinal(), scenario.backend());
        NativeMemory mem = null;
        try {
            regions = List.of(nb.planRegions(plan));
            mem = nb.allocate(nb.planPoolSize(plan), nb.planPoolAlignment(plan));
            handle = nb.sessionCreate(model.handle(), plan, mem.address(), mem.size());
            pool = mem;
        } catch (RuntimeException e) {
            if (mem != null) mem.close();
            throw e;
        } finally {
            nb.planFree(plan);
        }
    }

    private long handle() {
        if (handle == 0) throw new IllegalStateException("session is closed");
        return handle;
    }

    public Model model() {
        return model;
    }

    public Scenario scenario() {
        return scenario;
    }

    /** Bytes of the session's buffer pool. */
    public synchronized long poolSize() {
        handle();
        return pool.size();
    }

    /** The pool's planned regions, in offset order. */
    public List<PoolRegion> poolRegions() {
        return regions;
    }

    /** Tokens held so far: the position of the next token. */
    public synchronized int position() {
        return nb.sessionNPast(handle());
    }

    /** Forgets every token; the pool is kept. */
    public synchronized void reset() {
        nb.sessionReset(handle());
    }

    public int[] tokenize(String text) {
        return model.tokenize(text, false, true);
    }

    public String detokenize(int[] tokens) {
        return model.detokenize(tokens);
    }

    /**
     * Evaluates tokens after those already held and returns the logits of every position,
     * row-major {@code [tokens.length x vocab]}.
     */
    public synchronized float[] logits(int[] tokens) {
        long h = handle();
        float[] out = new float[Math.multiplyExact(tokens.length, vocab)];
        nb.sessionEval(h, tokens, out);
        return out;
    }

    /** Evaluates tokens and returns the last position's logits. */
    public synchronized float[] eval(int[] tokens) {
        long h = handle();
        nb.sessionEval(h, tokens, null);
        float[] out = new float[vocab];
        nb.sessionLastLogits(h, out);
        return out;
    }

    /**
     * Generates text for a prompt, streaming each piece (whole UTF-8 characters) to the
     * consumer as it is decoded.
     */
    public GenerationResult generate(String prompt, GenerateOptions options, Consumer<String> onPiece) {
        try (Generation g = stream(prompt, options)) {
            while (g.hasNext()) onPiece.accept(g.next());
            return g.result();
        }
    }

    /** Generates text for a prompt as an iterator of pieces; close or cancel it to stop early. */
    public synchronized Generation stream(String prompt, GenerateOptions options) {
        long h = handle();
        String text = prompt;
        List<String> stops = new ArrayList<>(options.stopStrings());
        if (options.chat()) {
            String format = model.chatFormat().orElseThrow(() -> new UnsupportedModelException(
                    "the model's chat template is not one of the built-in formats (chatml, llama3, llama2); use a raw prompt"));
            text = model.formatChat(List.of(ChatMessage.user(prompt)), true, format);
            stops.addAll(model.chatStops(format));
        }
        boolean bos = nb.sessionNPast(h) == 0 && model.addsBos();
        int[] tokens = model.tokenize(text, bos, true);
        long t0 = System.nanoTime();
        nb.generateBegin(h, tokens, options.greedy() ? 1 : 0, options.temperature(), options.topK(), options.topP(),
                options.minP(), options.repeatPenalty(), options.repeatLastN(), options.seed(), options.maxTokens(),
                stops.toArray(String[]::new));
        return new Generation(this, tokens.length, System.nanoTime() - t0);
    }

    /** One step of the generation in progress (called by {@link Generation}). */
    synchronized NativeBinding.Step step() {
        return nb.generateNext(handle());
    }

    @Override
    public synchronized void close() {
        if (handle == 0) return;
        nb.sessionFree(handle);
        handle = 0;
        pool.close();
        model.forget(this);
    }
}
