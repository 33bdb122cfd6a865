package io.edgeinfinite;

import io.edgeinfinite.internal.NativeBinding;
import io.edgeinfinite.internal.NativeMemory;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One conversation's state over a model: a buffer pool that Java allocates and owns,
 * planned by the runtime from the model and the scenario (its size never depends on the
 * prompt), and the position reached so far.
 *
 * <p>Thread safety: a session is meant for one thread at a time; its methods are
 * synchronized, so concurrent calls are serialized, never interleaved. {@link #cancel()}
 * and {@link #close()} may be called from any thread at any time: cancel stops an
 * evaluation in progress before its next segment (it throws {@link CancelledException}),
 * close cancels it and frees the pool once it has returned. Any use after close (or after
 * its model was closed) throws {@link IllegalStateException}.
 */
public final class Session implements AutoCloseable {
    private final Model model;
    private final NativeBinding nb;
    private final Scenario requested;
    private final Resolved scenario;
    private final NativeMemory pool;
    private final List<PoolRegion> regions;
    private final OpPlacement opPlacement;
    private final int vocab;
    // Guards handle against cancel() racing close(): cancel is the one call that does not
    // wait for the session's monitor, so it must not see a handle being freed.
    private final Object cancelLock = new Object();
    private long handle; // written under this and cancelLock

    /** A native plan for the scenario on a live model handle; the caller frees it. */
    static long createPlan(NativeBinding nb, long modelHandle, Scenario scenario) {
        return nb.planCreate(modelHandle, scenario.segmentLength(), scenario.sink(), scenario.window(),
                scenario.memory() == null ? -1 : scenario.memory() ? 1 : 0,
                scenario.memoryRule() == null ? -1 : scenario.memoryRule().ordinal(),
                scenario.memoryKeys() == null ? -1 : scenario.memoryKeys().ordinal(), scenario.threads(),
                scenario.kvType().ordinal(), scenario.device(), scenario.gates() ? 0 : 1,
                scenario.sinkPositions() == null ? 0 : scenario.sinkPositions().ordinal() + 1, scenario.cacheDir());
    }

    /** Called by {@link Model#newSession} under the model's read lock, with its live handle. */
    Session(Model model, long modelHandle, Scenario scenario) {
        this.model = model;
        this.nb = model.binding();
        this.requested = scenario;
        this.vocab = (int) nb.modelParam(modelHandle, "n_vocab");
        long plan = createPlan(nb, modelHandle, scenario);
        NativeMemory mem = null;
        try {
            int[] r = nb.planScenario(plan);
            this.scenario = Resolved.of(r);
            regions = List.of(nb.planRegions(plan));
            opPlacement = opPlacementOf(nb, plan);
            mem = nb.allocate(nb.planPoolSize(plan), nb.planPoolAlignment(plan));
            handle = nb.sessionCreate(modelHandle, plan, mem.address(), mem.size());
            pool = mem;
        } catch (RuntimeException e) {
            if (mem != null) mem.close();
            throw e;
        } finally {
            nb.planFree(plan);
        }
    }

    /** Where a plan's ops run: its device, and the ops placed on the CPU with the reason. */
    static OpPlacement opPlacementOf(NativeBinding nb, long plan) {
        int total = 0;
        for (String g : new String[] {"prefill", "decode", "fold"}) total += nb.planGraphOps(plan, g)[0];
        return new OpPlacement(nb.planDevice(plan), total, List.of(nb.planFallbacks(plan)));
    }

    /**
     * Where this session's graph ops run: on its scenario's device, except those the planner
     * placed on the CPU because the device cannot run them (each with the reason). Fixed when
     * the session is made; readable after close.
     */
    public OpPlacement opPlacement() {
        return opPlacement;
    }

    private long handle() {
        if (handle == 0) throw new IllegalStateException("session is closed");
        return handle;
    }

    /** The handle of a call that evaluates: a cancel requested before it started is withdrawn. */
    private long evalHandle() {
        long h = handle();
        nb.sessionCancel(h, false);
        return h;
    }

    /**
     * Stops the evaluation running on this session (from another thread) before its next
     * segment of L tokens: that call throws {@link CancelledException}, and the segments it
     * already ran stay in the session ({@link #position()} tells how far it got). A cancel
     * that arrives while nothing runs is forgotten when the next evaluation starts. Safe from
     * any thread, any time, also after close.
     */
    public void cancel() {
        synchronized (cancelLock) {
            if (handle != 0) nb.sessionCancel(handle, true);
        }
    }

    public Model model() {
        return model;
    }

    /** The scenario as asked for (unset settings included). */
    public Scenario requestedScenario() {
        return requested;
    }

    /** The scenario in force: model defaults and built-in defaults applied. */
    public Resolved scenario() {
        return scenario;
    }

    /**
     * A scenario with every setting decided.
     *
     * @param segmentLength L
     * @param sink          S
     * @param window        W
     * @param memory        whether older tokens fold into memory
     * @param threads       worker threads in use
     * @param gates         whether the model's memory gates are used (false: g = 0)
     * @param sinkPositions where attention sees the sink keys once tokens have folded
     */
    public record Resolved(int segmentLength, int sink, int window, boolean memory, Scenario.MemoryRule memoryRule,
            Scenario.MemoryKeys memoryKeys, int threads, Scenario.KvType kvType, boolean gates,
            Scenario.SinkPositions sinkPositions) {
        /** From the native plan's scenario (ei_plan_scenario's values, in order). */
        static Resolved of(int[] r) {
            return new Resolved(r[0], r[1], r[2], r[3] != 0, Scenario.MemoryRule.values()[r[4]],
                    Scenario.MemoryKeys.values()[r[5]], r[6], Scenario.KvType.values()[r[7]], r[8] == 0,
                    Scenario.SinkPositions.values()[r[9] - 1]);
        }

        /** Tokens that fit without folding: the full-attention route's limit. */
        public long fullCapacity() {
            return (long) sink + window;
        }
    }

    /** Which attention a session's work took. */
    public enum Route {
        /** Every token attended raw: the base model, bit for bit. */
        FULL,
        /** Sink + window raw, older tokens folded into the compressed memory. */
        MEMORY
    }

    /** Where the past tokens live; sink + window + memory = position(). */
    public record Placement(long sink, long window, long memory) {}

    /** Receives prefill progress: tokens done out of total. */
    @FunctionalInterface
    public interface ProgressListener {
        void onProgress(long done, long total);
    }

    /** FULL until the work no longer fits in S + W tokens (or was planned not to). */
    public synchronized Route route() {
        return nb.sessionRoute(handle()) == 0 ? Route.FULL : Route.MEMORY;
    }

    public synchronized Placement placement() {
        long[] p = nb.sessionPlacement(handle());
        return new Placement(p[0], p[1], p[2]);
    }

    /** Bytes of a saved state: fixed by the model and scenario, whatever the tokens held. */
    public synchronized long stateSize() {
        return nb.sessionStateSize(handle());
    }

    /**
     * Saves the session's state (sink, window, memory, positions) to a fixed-size file with a
     * versioned header and a checksum; {@link Model#restoreSession} reads it back.
     */
    public synchronized void saveState(java.nio.file.Path path) {
        nb.sessionSave(handle(), path.toString());
    }

    /** Replaces this session's state with a saved one; refused unchanged if it does not fit. */
    synchronized void loadState(java.nio.file.Path path) {
        nb.sessionLoad(handle(), path.toString());
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
    public synchronized long position() {
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
        long h = evalHandle();
        float[] out = new float[Math.multiplyExact(tokens.length, vocab)];
        nb.sessionEval(h, tokens, out);
        return out;
    }

    /** One weight matrix's activation statistics: sums over rows of x_j^2 per input column, and the row count. */
    public record ImatrixEntry(String name, long rows, float[] sumOfSquares) {}

    /**
     * Starts (or restarts from zero) collecting, while this session evaluates, the squares of
     * the activations every weight matrix of the transformer blocks multiplies (and the output
     * head's when includeOutput; it sees every row only when all logits are requested), over
     * valid rows only: the importance matrix of {@code ei imatrix}.
     */
    public synchronized void startImportanceMatrix(boolean includeOutput) {
        nb.imatrixStart(handle(), includeOutput);
    }

    /** What was collected since {@link #startImportanceMatrix}: one entry per matrix, in the model's order. */
    public synchronized List<ImatrixEntry> importanceMatrix() {
        long h = handle();
        int n = nb.imatrixCount(h);
        List<ImatrixEntry> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            long[] shape = nb.imatrixShape(h, i);
            float[] sums = new float[Math.toIntExact(shape[0])];
            nb.imatrixSums(h, i, sums);
            out.add(new ImatrixEntry(nb.imatrixName(h, i), shape[1], sums));
        }
        return out;
    }

    /** Stops collecting and drops the statistics. */
    public synchronized void stopImportanceMatrix() {
        nb.imatrixStop(handle());
    }

    /**
     * One op output's recorded range: exact min and max, the values seen, and |x| at each
     * requested quantile (read from a log-scale histogram: at most 2.2% above the exact value).
     */
    public record ActivationRange(String name, double min, double max, long count, double[] absQuantiles) {}

    /**
     * Starts (or restarts) recording, while this session evaluates, the range of every op
     * output a quantized backend needs a scale for (norms, matmul outputs, RoPE, attention,
     * the residual stream, the FFN's inner product). A session watches with one collector at
     * a time: this stops an importance matrix, and starting one stops this.
     */
    public synchronized void startActivationRanges() {
        nb.rangesStart(handle());
    }

    /** The ranges recorded since {@link #startActivationRanges}, with |x| at the given quantiles (each in [0, 1]). */
    public synchronized List<ActivationRange> activationRanges(double... quantiles) {
        long h = handle();
        int n = nb.rangesCount(h);
        List<ActivationRange> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            double[] st = nb.rangesStats(h, i, quantiles);
            out.add(new ActivationRange(nb.rangesName(h, i), st[0], st[1], (long) st[2],
                    java.util.Arrays.copyOfRange(st, 3, st.length)));
        }
        return out;
    }

    public synchronized void stopActivationRanges() {
        nb.rangesStop(handle());
    }

    /** Evaluates tokens and returns the last position's logits. */
    public float[] eval(int[] tokens) {
        return eval(tokens, null);
    }

    /**
     * Evaluates tokens, reporting progress after each group of segments, and returns the last
     * position's logits.
     */
    public synchronized float[] eval(int[] tokens, ProgressListener progress) {
        long h = evalHandle();
        nb.sessionPlanRoute(h, tokens.length);
        feed(h, tokens, tokens.length, progress);
        float[] out = new float[vocab];
        nb.sessionLastLogits(h, out);
        return out;
    }

    // Feeds the first n tokens in steps of a few segments, so progress can be reported.
    private void feed(long h, int[] tokens, int n, ProgressListener progress) {
        if (progress == null) {
            if (n > 0) nb.sessionEval(h, n == tokens.length ? tokens : java.util.Arrays.copyOf(tokens, n), null);
            return;
        }
        int step = scenario.segmentLength() * 8;
        for (int done = 0; done < n;) {
            int len = Math.min(step, n - done);
            nb.sessionEval(h, java.util.Arrays.copyOfRange(tokens, done, done + len), null);
            done += len;
            progress.onProgress(done, n);
        }
    }

    /**
     * Generates text for a prompt, streaming each piece (whole UTF-8 characters) to the
     * consumer as it is decoded.
     */
    public GenerationResult generate(String prompt, GenerateOptions options, Consumer<String> onPiece) {
        return generate(prompt, options, onPiece, null);
    }

    /** As above, reporting the prompt's prefill progress to the listener. */
    public GenerationResult generate(String prompt, GenerateOptions options, Consumer<String> onPiece,
            ProgressListener progress) {
        try (Generation g = stream(prompt, options, progress)) {
            while (g.hasNext()) onPiece.accept(g.next());
            return g.result();
        }
    }

    /**
     * Generates text for a prompt as an iterator of pieces; close or cancel it to stop early.
     * The prompt is read on the first {@link Generation#hasNext()}, so a cancel from another
     * thread also stops a long prefill.
     */
    public Generation stream(String prompt, GenerateOptions options) {
        return stream(prompt, options, null);
    }

    /**
     * As {@link #stream(String, GenerateOptions)}, reporting the prompt's prefill progress;
     * the time to first token is in the result.
     */
    public synchronized Generation stream(String prompt, GenerateOptions options, ProgressListener progress) {
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
        return new Generation(this, tokens, options, stops.toArray(String[]::new), progress);
    }

    /**
     * Generates after feeding prompt tokens as they are (no BOS added, no chat template; the
     * options' stop strings apply): for callers that build token sequences themselves, e.g. to
     * continue after the tokens this session already holds. Read on the first
     * {@link Generation#hasNext()}, like {@link #stream(String, GenerateOptions)}.
     *
     * @param prompt at least one token
     */
    public Generation stream(int[] prompt, GenerateOptions options) {
        return stream(prompt, options, options.stopStrings(), null);
    }

    /** Token prompt with explicit stop strings and an end hook (for {@link Conversation}). */
    synchronized Generation stream(int[] prompt, GenerateOptions options, List<String> stops,
            java.util.function.Consumer<Generation> onEnd) {
        handle();
        if (prompt.length == 0) throw new InvalidArgumentException("the prompt has no tokens");
        return new Generation(this, prompt.clone(), options, stops.toArray(String[]::new), null, onEnd);
    }

    /**
     * Reads a generation's prompt and arms its sampler (called by {@link Generation}).
     * Returns false, having run nothing, when the generation was cancelled before it began.
     */
    synchronized boolean prefill(Generation g, int[] tokens, GenerateOptions options, String[] stops,
            ProgressListener progress) {
        long h = evalHandle();
        // After the withdrawal above: a cancel that came earlier is seen here, a later one
        // reaches the native flag and stops the prefill at its next segment.
        if (g.isCancelled()) return false;
        nb.sessionPlanRoute(h, (long) tokens.length + options.maxTokens());
        // All but the last prompt token go through eval (with progress); begin feeds the last.
        int pre = progress == null ? 0 : Math.max(0, tokens.length - 1);
        feed(h, tokens, pre, progress);
        nb.generateBegin(h, tokens, pre, options.greedy() ? 1 : 0, options.temperature(), options.topK(), options.topP(),
                options.minP(), options.repeatPenalty(), options.repeatLastN(), options.seed(), options.maxTokens(),
                stops);
        return true;
    }

    /** One step of the generation in progress (called by {@link Generation}). */
    synchronized NativeBinding.Step step() {
        return nb.generateNext(evalHandle());
    }

    /** Whether {@link #close()} was called (directly or by closing the model). */
    public boolean isClosed() {
        synchronized (cancelLock) {
            return handle == 0;
        }
    }

    /**
     * Frees the session's native state and its pool. From another thread, an evaluation in
     * progress is cancelled first and the pool freed once it has returned.
     */
    @Override
    public void close() {
        cancel();
        synchronized (this) {
            if (handle == 0) return;
            long h = handle;
            synchronized (cancelLock) {
                handle = 0;
            }
            nb.sessionFree(h);
            pool.close();
            model.forget(this);
        }
    }
}
