package io.edgeinfinite;

/**
 * Every shape fixed before the first token (DESIGN §2). From a model and a scenario the
 * runtime plans one buffer pool and two graphs (prefill of L tokens, decode of 1); nothing
 * about them depends on the prompt. Build one with {@link #builder()}; the runtime
 * validates it when a session is created and names any bad setting.
 */
public final class Scenario {
    /** Precision of cached keys and values. */
    public enum KvType { F16, F32 }

    private final int contextSize;
    private final int segmentLength;
    private final int threads;
    private final KvType kvType;
    private final String backend;

    private Scenario(Builder b) {
        contextSize = b.contextSize;
        segmentLength = b.segmentLength;
        threads = b.threads;
        kvType = b.kvType;
        backend = b.backend;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Defaults: 2048-token context, L = 128, one thread per core, f16 KV, CPU. */
    public static Scenario defaults() {
        return builder().build();
    }

    public int contextSize() {
        return contextSize;
    }

    public int segmentLength() {
        return segmentLength;
    }

    /** Worker threads; 0 means one per core. */
    public int threads() {
        return threads;
    }

    public KvType kvType() {
        return kvType;
    }

    public String backend() {
        return backend;
    }

    public Builder toBuilder() {
        return new Builder().contextSize(contextSize).segmentLength(segmentLength).threads(threads).kvType(kvType)
                .backend(backend);
    }

    @Override
    public String toString() {
        return "Scenario[ctx=" + contextSize + ", L=" + segmentLength + ", threads=" + threads + ", kv=" + kvType
                + ", backend=" + backend + "]";
    }

    public static final class Builder {
        private int contextSize = 2048;
        private int segmentLength = 128;
        private int threads = 0;
        private KvType kvType = KvType.F16;
        private String backend = "cpu";

        /** Tokens the full-attention KV cache holds. */
        public Builder contextSize(int n) {
            contextSize = n;
            return this;
        }

        /** L: tokens per prefill graph run. */
        public Builder segmentLength(int n) {
            segmentLength = n;
            return this;
        }

        public Builder threads(int n) {
            threads = n;
            return this;
        }

        public Builder kvType(KvType t) {
            kvType = t;
            return this;
        }

        public Builder backend(String name) {
            backend = name;
            return this;
        }

        public Scenario build() {
            return new Scenario(this);
        }
    }
}
