package io.edgeinfinite;

/**
 * Every shape fixed before the first token (DESIGN §2). From a model and a scenario the
 * runtime plans one buffer pool and the fixed graphs (prefill of L tokens, decode of 1, the
 * memory fold of L); nothing about them depends on the prompt.
 *
 * <p>Each token lives in one place: the first S tokens in the sink, the most recent W (up to
 * W + L) in the window ring, everything older folded into the compressed memory. Work that
 * fits in S + W tokens runs plain full attention; longer work takes the memory route.
 *
 * <p>Settings left unset take the model's {@code edgeinfinite.*} metadata, else the built-in
 * defaults (L 128, S 64, W 2048, memory on, linear rule, keys before RoPE). The runtime
 * validates the result and names any bad setting (L = 0, a window smaller than a segment...).
 */
public final class Scenario {
    /** Precision of cached keys and values. */
    public enum KvType { F16, F32 }

    /** How tokens leaving the window update the memory (DESIGN §1). */
    public enum MemoryRule { LINEAR, DELTA }

    /** Whether memory keys and queries are taken before RoPE (NOPE, the default) or after. */
    public enum MemoryKeys { NOPE, ROPE }

    /**
     * Where attention sees the sink keys once tokens have folded into memory. WINDOW (the
     * default): right behind the window, their RoPE positions moving up with each fold, so a
     * query is never farther from a sink than S + W + L, whatever the length. ABSOLUTE: at
     * their own positions, ever farther away (at 16K tokens, distances a model trained on 1K
     * never saw). Work that fits in S + W never folds and is the same under both.
     */
    public enum SinkPositions { WINDOW, ABSOLUTE }

    private final Integer segmentLength, sink, window;
    private final Boolean memory;
    private final boolean gates;
    private final SinkPositions sinkPositions;
    private final MemoryRule rule;
    private final MemoryKeys keys;
    private final int threads;
    private final KvType kvType;
    private final String device;
    private final String cacheDir;

    private Scenario(Builder b) {
        segmentLength = b.segmentLength;
        sink = b.sink;
        window = b.window;
        memory = b.memory;
        gates = b.gates;
        sinkPositions = b.sinkPositions;
        rule = b.rule;
        keys = b.keys;
        threads = b.threads;
        kvType = b.kvType;
        device = b.device;
        cacheDir = b.cacheDir;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * The device of a scenario that names none: the system property {@code edgeinfinite.device}
     * (or its older name {@code edgeinfinite.backend}): a name of {@link EdgeInfinite#devices()}
     * ({@code cpu}, {@code opencl:0}) or {@code opencl} for the default OpenCL device; else
     * {@code cpu}. A deployment, or a test run, moves every such scenario onto a device with one
     * setting.
     */
    public static String defaultDevice() {
        String d = System.getProperty("edgeinfinite.device", "");
        if (d.isBlank()) d = System.getProperty("edgeinfinite.backend", "");
        return d.isBlank() ? "cpu" : d;
    }

    /** @deprecated the older name of {@link #defaultDevice()}. */
    @Deprecated
    public static String defaultBackend() {
        return defaultDevice();
    }

    /** The model's settings, else the built-in defaults. */
    public static Scenario defaults() {
        return builder().build();
    }

    /**
     * Long documents read once, then summarised: L = 256 halves the graph runs of L = 128 and
     * reuses each weight row over twice the tokens (the fastest prefill); a 1024-token window
     * is enough because a summary draws on the whole document through the memory.
     */
    public static Scenario summarize() {
        return builder().segmentLength(256).sink(64).window(1024).build();
    }

    /**
     * A long document, then questions about it: L = 128 balances prefill speed against padding
     * waste on the short question; a 2048-token window keeps the question's neighbourhood raw.
     */
    public static Scenario qa() {
        return builder().segmentLength(128).sink(64).window(2048).build();
    }

    /**
     * Dialogue: turns are short, so L = 64 keeps the padded last segment of each turn cheap;
     * recent turns matter most, so the window is large (4096).
     */
    public static Scenario chat() {
        return builder().segmentLength(64).sink(32).window(4096).build();
    }

    /** Plain full attention over at most {@code tokens} tokens, memory off (the baseline). */
    public static Scenario fullAttention(int tokens) {
        return builder().sink(0).window(tokens).memory(false).build();
    }

    /** A preset by name: summarize, qa, chat. */
    public static Scenario preset(String name) {
        return switch (name) {
            case "summarize" -> summarize();
            case "qa" -> qa();
            case "chat" -> chat();
            default -> throw new IllegalArgumentException("unknown scenario preset '" + name
                    + "' (known: summarize, qa, chat)");
        };
    }

    /** L, or -1 when unset (model default). */
    public int segmentLength() {
        return segmentLength == null ? -1 : segmentLength;
    }

    /** S, or -1 when unset. */
    public int sink() {
        return sink == null ? -1 : sink;
    }

    /** W, or -1 when unset. */
    public int window() {
        return window == null ? -1 : window;
    }

    /** Whether older tokens fold into memory; null when unset (on). */
    public Boolean memory() {
        return memory;
    }

    public MemoryRule memoryRule() {
        return rule;
    }

    /** Whether the model's memory gates are used (the default); false runs g = 0. */
    public boolean gates() {
        return gates;
    }

    /** Where the sink keys are seen; null when unset (WINDOW). */
    public SinkPositions sinkPositions() {
        return sinkPositions;
    }

    public MemoryKeys memoryKeys() {
        return keys;
    }

    /** Worker threads; 0 means one per core. */
    public int threads() {
        return threads;
    }

    public KvType kvType() {
        return kvType;
    }

    /** The device that runs the graphs (ops it cannot run are placed on the CPU, see {@link Session#opPlacement()}). */
    public String device() {
        return device;
    }

    /** @deprecated the older name of {@link #device()}. */
    @Deprecated
    public String backend() {
        return device;
    }

    /**
     * The compiled-program cache folder (OpenCL program binaries, the htp device's QNN context binaries), or null:
     * {@code EI_OPENCL_CACHE_DIR} / {@code EI_QNN_CACHE_DIR}, else the user cache folder.
     */
    public String cacheDir() {
        return cacheDir;
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.segmentLength = segmentLength;
        b.sink = sink;
        b.window = window;
        b.memory = memory;
        b.gates = gates;
        b.sinkPositions = sinkPositions;
        b.rule = rule;
        b.keys = keys;
        b.threads = threads;
        b.kvType = kvType;
        b.device = device;
        b.cacheDir = cacheDir;
        return b;
    }

    @Override
    public String toString() {
        return "Scenario[L=" + str(segmentLength) + ", S=" + str(sink) + ", W=" + str(window) + ", memory="
                + (memory == null ? "default" : memory ? (rule == null ? "on" : rule.name().toLowerCase()) : "off")
                + (gates ? "" : ", gates=off") + (sinkPositions == null ? "" : ", sinks=" + sinkPositions.name().toLowerCase())
                + ", threads=" + threads + ", kv=" + kvType + ", device=" + device + (cacheDir == null ? "" : ", cacheDir=" + cacheDir) + "]";
    }

    private static String str(Integer v) {
        return v == null ? "default" : v.toString();
    }

    public static final class Builder {
        private Integer segmentLength, sink, window;
        private Boolean memory;
        private boolean gates = true;
        private SinkPositions sinkPositions;
        private MemoryRule rule;
        private MemoryKeys keys;
        private int threads = 0;
        private KvType kvType = KvType.F16;
        private String device = defaultDevice();
        private String cacheDir;

        /** L: tokens per prefill graph run. */
        public Builder segmentLength(int n) {
            segmentLength = nonNegative(n, "segment length L");
            return this;
        }

        /** S: the first tokens, kept raw for the whole session. */
        public Builder sink(int n) {
            sink = nonNegative(n, "sink S");
            return this;
        }

        /** W: the most recent tokens kept raw (the ring holds W + L). */
        public Builder window(int n) {
            window = nonNegative(n, "window W");
            return this;
        }

        /** Off: full attention only, at most S + W tokens. */
        public Builder memory(boolean on) {
            memory = on;
            return this;
        }

        /**
         * False ignores the model's memory gates: every query runs with g = 0 (sinks + window
         * only, the StreamingLLM baseline), while the memory still folds. For evaluation: it
         * compares a gated model with its own g = 0 route without a second model file.
         */
        public Builder gates(boolean use) {
            gates = use;
            return this;
        }

        /** Where attention sees the sink keys once tokens have folded (see {@link SinkPositions}). */
        public Builder sinkPositions(SinkPositions p) {
            sinkPositions = p;
            return this;
        }

        public Builder memoryRule(MemoryRule r) {
            rule = r;
            return this;
        }

        public Builder memoryKeys(MemoryKeys k) {
            keys = k;
            return this;
        }

        public Builder threads(int n) {
            threads = nonNegative(n, "threads");
            return this;
        }

        public Builder kvType(KvType t) {
            kvType = t;
            return this;
        }

        /**
         * The device that runs the graphs: a name of {@link EdgeInfinite#devices()} ({@code cpu},
         * always; {@code opencl:N} where OpenCL devices load) or {@code opencl}, the default
         * OpenCL device. An unknown name fails when the session is made, listing those present.
         */
        public Builder device(String name) {
            device = name;
            return this;
        }

        /** @deprecated the older name of {@link #device(String)}. */
        @Deprecated
        public Builder backend(String name) {
            return device(name);
        }

        /**
         * Where the OpenCL program binaries are cached (used when a device's program is first
         * built in the process); {@code "off"}: no disk cache; null: {@code EI_OPENCL_CACHE_DIR},
         * else the user cache folder.
         */
        public Builder cacheDir(String dir) {
            cacheDir = dir;
            return this;
        }

        // Negative values mean "unset" to the runtime, so they are refused here.
        private static int nonNegative(int n, String what) {
            if (n < 0) throw new IllegalArgumentException("scenario: " + what + " must be >= 0, got " + n);
            return n;
        }

        public Scenario build() {
            return new Scenario(this);
        }
    }
}
