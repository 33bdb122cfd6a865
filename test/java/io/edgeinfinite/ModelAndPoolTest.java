package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelAndPoolTest {
    @TempDir
    Path tmp;

    private static final Path Q8 = TestData.model("tiny-llama-q8_0.gguf");

    /**
     * The pool is what the scenario says, sized here from the model's hyper-parameters rather
     * than by the planner's code: K and V of S + W + L tokens per layer and KV head (f16, or
     * f32), M (d x d) and z (d) in f32; a wider window adds its KV rows and little else.
     */
    @Test
    void poolIsPlannedFromTheModelShapeAndTheScenario() {
        GgufFile f = GgufFile.read(Q8);
        long layers = f.integer("llama.block_count").orElseThrow();
        long heads = f.integer("llama.attention.head_count").orElseThrow();
        long kvHeads = f.integer("llama.attention.head_count_kv").orElseThrow();
        long d = f.integer("llama.embedding_length").orElseThrow() / heads;
        long kv = layers * (0 + 512 + 32) * kvHeads * d * 2;  // S 0, W 512, L 32, f16
        long memory = layers * kvHeads * (d * d + d) * 4;
        try (Model m = Model.load(Q8)) {
            Scenario sc = Scenario.fullAttention(512).toBuilder().segmentLength(32).threads(1).build();
            long size;
            try (Session s = m.newSession(sc)) {
                assertEquals(kv, region(s, "kv.k").size());
                assertEquals(kv, region(s, "kv.v").size());
                assertEquals(layers * kvHeads * d * d * 4, region(s, "mem.M").size());
                assertEquals(layers * kvHeads * d * 4, region(s, "mem.z").size());
                size = s.poolSize();
                assertTrue(size >= 2 * kv + memory, "pool of " + size + " bytes cannot hold the KV cache and memory");
                s.eval(new int[] {1, 5, 9});
                s.eval(new java.util.Random(1).ints(400, 3, 1000).toArray());
                assertEquals(403, s.position());
            }
            try (Session s = m.newSession(sc.toBuilder().kvType(Scenario.KvType.F32).build())) {
                assertEquals(2 * kv, region(s, "kv.k").size(), "an f32 cache takes 4 bytes an element");
            }
            try (Session s = m.newSession(sc.toBuilder().window(1024).build())) {
                long grown = s.poolSize() - size, kvGrown = 2 * layers * 512 * kvHeads * d * 2;
                assertTrue(grown >= kvGrown && grown <= kvGrown * 5 / 4,  // plus one thread's score scratch
                        "512 more window slots grew the pool by " + grown + " bytes; their K and V take " + kvGrown);
            }
        }
    }

    private static PoolRegion region(Session s, String name) {
        return s.poolRegions().stream().filter(r -> r.name().equals(name)).findFirst().orElseThrow();
    }

    @Test
    void regionsAreAlignedDisjointAndNamed() {
        try (Model m = Model.load(Q8); Session s = m.newSession(Scenario.defaults())) {
            List<PoolRegion> r = s.poolRegions();
            assertTrue(r.stream().anyMatch(x -> x.name().equals("kv.k")));
            long end = 0;
            for (PoolRegion x : r) {
                assertEquals(0, x.offset() % 64, x.name());
                assertTrue(x.offset() >= end, "regions overlap at " + x.name());
                end = x.offset() + x.size();
            }
            assertTrue(end <= s.poolSize());
        }
    }

    @Test
    void closedSessionAndModelThrowAndNeverCrash() {
        Model m = Model.load(Q8);
        Session s = m.newSession(Scenario.defaults());
        s.eval(new int[] {1, 2});
        s.close();
        s.close();  // idempotent
        assertThrows(IllegalStateException.class, () -> s.eval(new int[] {3}));
        assertThrows(IllegalStateException.class, s::poolSize);
        assertThrows(IllegalStateException.class, () -> s.stream("x", GenerateOptions.defaults()));
        Session s2 = m.newSession(Scenario.defaults());
        m.close();
        assertThrows(IllegalStateException.class, () -> s2.eval(new int[] {3}), "closing the model closes its sessions");
        assertThrows(IllegalStateException.class, () -> m.tokenize("x", false, false));
        assertThrows(IllegalStateException.class, () -> m.newSession(Scenario.defaults()));
    }

    @Test
    void badTokensAndSettingsAreRefusedClearly() {
        try (Model m = Model.load(Q8);
                Session s = m.newSession(Scenario.fullAttention(64).toBuilder().segmentLength(16).build())) {
            InvalidArgumentException e = assertThrows(InvalidArgumentException.class, () -> s.eval(new int[] {1, 1024}));
            assertTrue(e.getMessage().contains("token id 1024"), e.getMessage());
            assertThrows(InvalidArgumentException.class, () -> s.eval(new int[] {-1}));
            assertEquals(0, s.position(), "a refused call changes nothing");
            EdgeInfiniteException full = assertThrows(EdgeInfiniteException.class, () -> s.eval(new int[65]));
            assertEquals(EdgeInfiniteException.Status.STATE, full.status());
            assertTrue(full.getMessage().contains("context full"));
            assertThrows(InvalidArgumentException.class, () -> m.detokenize(new int[] {5000}));
            assertThrows(InvalidArgumentException.class,
                    () -> m.newSession(Scenario.builder().segmentLength(0).build()));
            assertThrows(UnsupportedModelException.class,
                    () -> m.newSession(Scenario.builder().device("vulkan").build()));
            assertThrows(InvalidArgumentException.class,
                    () -> s.stream("hi", GenerateOptions.builder().topP(1.5f).build()));
        }
    }

    @Test
    void unknownArchitectureAndTensorTypeAreNamed() throws IOException {
        Path arch = tmp.resolve("arch.gguf");
        new GgufWriter().putString("general.architecture", "gptx").write(arch);
        UnsupportedModelException e = assertThrows(UnsupportedModelException.class, () -> Model.load(arch));
        assertTrue(e.getMessage().contains("'gptx'"), e.getMessage());

        Path type = tmp.resolve("type.gguf");
        new GgufWriter().putString("general.architecture", "llama").putUInt32("llama.embedding_length", 32)
                .putUInt32("llama.block_count", 1).putUInt32("llama.attention.head_count", 1)
                .putUInt32("llama.feed_forward_length", 32)
                .addTensor("token_embd.weight", 3, new long[] {32, 4}, 4 * 20, out -> out.write(new byte[80]))
                .write(type);
        UnsupportedModelException t = assertThrows(UnsupportedModelException.class, () -> Model.load(type));
        assertTrue(t.getMessage().contains("q4_1"), t.getMessage());
    }

    @Test
    void oneModelServesSessionsOnSeveralThreads() throws Exception {
        try (Model m = Model.load(Q8)) {
            int[] tokens = {1, 50, 60, 70, 80, 90};
            float[] expected;
            try (Session s = m.newSession(Scenario.builder().threads(1).build())) {
                expected = s.logits(tokens);
            }
            Thread[] threads = new Thread[3];
            float[][] got = new float[threads.length][];
            for (int i = 0; i < threads.length; i++) {
                int idx = i;
                threads[i] = new Thread(() -> {
                    try (Session s = m.newSession(Scenario.builder().threads(1).build())) {
                        for (int r = 0; r < 3; r++) {
                            s.reset();
                            got[idx] = s.logits(tokens);
                        }
                    }
                });
                threads[i].start();
            }
            for (Thread t : threads) t.join();
            for (float[] g : got) assertArrayEquals(expected, g);
        }
    }

    @Test
    void threadCountDoesNotChangeResults() {
        try (Model m = Model.load(TestData.model("tiny-llama-q4_k_m.gguf"))) {
            int[] tokens = new java.util.Random(3).ints(70, 3, 1000).toArray();
            float[] one, two;
            try (Session s = m.newSession(Scenario.builder().threads(1).segmentLength(16).build())) {
                one = s.logits(tokens);
            }
            try (Session s = m.newSession(Scenario.builder().threads(2).segmentLength(64).build())) {
                two = s.logits(tokens);
            }
            assertArrayEquals(one, two, "threads and segment length must not change a single bit");
        }
    }
}
