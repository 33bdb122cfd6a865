package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.IntConsumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The EdgeInfinite route through the public API: routing, placement, gates, presets, state. */
class MemoryRouteTest {
    @TempDir
    static Path tmp;

    static final Path TINY = TestData.model("tiny-llama-q8_0.gguf");
    static Path gated;

    static final Scenario SMALL = Scenario.builder().sink(4).window(64).segmentLength(16).threads(2).build();

    @BeforeAll
    static void writeGatedModel() {
        gated = tmp.resolve("gated.gguf");
        int st = Main.run(new String[] {"gate-init", "-m", TINY.toString(), "--value", "0.5", "-o", gated.toString(),
            "--sink", "4", "--window", "64", "-L", "16"}, new PrintStream(new ByteArrayOutputStream()), System.err);
        assertEquals(0, st);
    }

    static int[] tokens(int n, long seed) {
        return new Random(seed).ints(n, 3, 1000).toArray();
    }

    /**
     * Work that fits in S + W is plain full attention, bit for bit: with the memory on, the
     * logits of a manifest case on the F32 model are llama.cpp's (exactly, where the bits
     * can match: see {@link ReferenceLogitsTest#bitIdenticalPlatform()}), and other sinks,
     * windows and segment lengths, memory on or off, give the very same bits.
     */
    @Test
    void shortWorkIsFullAttentionBitForBit() throws IOException {
        Map<String, Object> c = ReferenceLogitsTest.caseById("tiny-llama-f32.B");
        int[] t = ReferenceLogitsTest.ints(c.get("tokens"));
        float[] ref = ReferenceLogitsTest.readF32(ReferenceLogitsTest.dir().resolve((String) c.get("logits")));
        try (Model m = Model.load(ReferenceLogitsTest.dir().resolve((String) c.get("model")));
                Session mem = m.newSession(Scenario.builder().sink(4).window(t.length - 4).segmentLength(16).build());
                Session other = m.newSession(Scenario.builder().sink(0).window(512).segmentLength(64).build());
                Session full = m.newSession(Scenario.fullAttention(t.length).toBuilder().segmentLength(7).build())) {
            float[] got = mem.logits(t);
            assertEquals(Session.Route.FULL, mem.route());
            double maxAbs = 0;
            for (int i = 0; i < got.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - ref[i]));
            if (ReferenceLogitsTest.bitIdenticalPlatform()) {
                assertArrayEquals(ref, got, "memory on, S + W = the prompt: llama.cpp's logits bit for bit");
            } else {
                assertTrue(maxAbs <= 0.002, "max_abs " + maxAbs + " against llama.cpp");
            }
            assertArrayEquals(got, other.logits(t), "S 0, W 512, L 64");
            assertArrayEquals(got, full.logits(t), "memory off, L 7");
        }
    }

    /**
     * Tokens leave the window for the memory L at a time, exactly when the rule says: the
     * placement is checked against a simulation of the rule written here (segments of at most
     * L; before one would push the window past W + L tokens, its oldest L fold), prompt and
     * decode steps alike.
     */
    @Test
    void longWorkTakesTheMemoryRouteAndFoldsByTheRule() {
        int sink = 4, window = 64, segment = 16;
        try (Model m = Model.load(TINY); Session s = m.newSession(SMALL)) {
            long[] sim = {0, sink};  // n_past, oldest window position
            IntConsumer feed = n -> {
                for (int done = 0; done < n;) {
                    int piece = Math.min(segment, n - done);
                    if (sim[0] + piece - sim[1] > window + segment) sim[1] += segment;
                    sim[0] += piece;
                    done += piece;
                }
            };
            int[] t = tokens(500, 2);
            List<long[]> progress = new ArrayList<>();
            s.eval(t, (done, total) -> progress.add(new long[] {done, total}));
            feed.accept(500);
            assertEquals(Session.Route.MEMORY, s.route());
            assertEquals(new Session.Placement(sink, sim[0] - sim[1], sim[1] - sink), s.placement());
            assertFalse(progress.isEmpty());
            assertEquals(500, progress.get(progress.size() - 1)[0]);
            long before = s.placement().memory();
            for (int i = 0; i < 40; i++) {  // decode steps, one token each
                s.eval(new int[] {t[i]});
                feed.accept(1);
                assertEquals(sim[1] - sink, s.placement().memory(), "after decode step " + i);
            }
            assertTrue(s.placement().memory() > before, "decode steps fold too");
            assertEquals(540, s.position());
            assertEquals(new Session.Placement(sink, sim[0] - sim[1], sim[1] - sink), s.placement());
        }
    }

    @Test
    void generationPlansItsRouteUpFront() {
        try (Model m = Model.load(TestData.model("tiny-llama-spm-f16.gguf")); Session s = m.newSession(
                Scenario.builder().sink(4).window(32).segmentLength(16).build())) {
            GenerationResult r = s.generate("Once upon a time", GenerateOptions.builder().greedy().maxTokens(40).build(),
                    p -> {});
            assertEquals(40, r.generatedTokens());
            assertEquals(Session.Route.MEMORY, s.route(), "5 prompt + 40 new tokens exceed S + W = 36");
        }
    }

    @Test
    void gatesBlendMemoryOnlyOnceTokensHaveFolded() {
        int[] shortT = tokens(50, 3), longT = tokens(400, 4);
        try (Model plain = Model.load(TINY); Model g = Model.load(gated)) {
            float[] a, b;
            try (Session s1 = plain.newSession(SMALL); Session s2 = g.newSession(SMALL)) {
                assertArrayEquals(s1.logits(shortT), s2.logits(shortT), "empty memory: the gate changes nothing");
            }
            try (Session s1 = plain.newSession(SMALL); Session s2 = g.newSession(SMALL)) {
                a = s1.eval(longT);
                b = s2.eval(longT);
            }
            double diff = 0;
            for (int i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
            assertTrue(diff > 1e-3, "g = sigmoid(0.5) must mix the memory in, max diff " + diff);
        }
    }

    @Test
    void modelSettingsAreDefaultsAndScenarioOverrides() {
        try (Model g = Model.load(gated)) {
            try (Session s = g.newSession(Scenario.defaults())) {
                assertEquals(4, s.scenario().sink());
                assertEquals(64, s.scenario().window());
                assertEquals(16, s.scenario().segmentLength());
            }
            try (Session s = g.newSession(Scenario.builder().window(128).build())) {
                assertEquals(128, s.scenario().window());
                assertEquals(4, s.scenario().sink());
            }
        }
        try (Model m = Model.load(TINY); Session s = m.newSession(Scenario.qa())) {
            assertEquals(2048, s.scenario().window());
            assertEquals(Scenario.MemoryRule.LINEAR, s.scenario().memoryRule());
        }
    }

    @Test
    void badScenariosAreNamed() {
        try (Model m = Model.load(TINY)) {
            InvalidArgumentException zero = assertThrows(InvalidArgumentException.class,
                    () -> m.newSession(Scenario.builder().segmentLength(0).build()));
            assertTrue(zero.getMessage().contains("segment length L"), zero.getMessage());
            InvalidArgumentException small = assertThrows(InvalidArgumentException.class,
                    () -> m.newSession(Scenario.builder().window(64).segmentLength(128).build()));
            assertTrue(small.getMessage().contains("smaller than a segment"), small.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Scenario.builder().sink(-2));
            assertThrows(IllegalArgumentException.class, () -> Scenario.preset("novel"));
        }
    }

    @Test
    void restoredSessionContinuesBitIdentically() throws IOException {
        Path state = tmp.resolve("s.state");
        int[] doc = tokens(300, 6), question = tokens(20, 7);
        try (Model m = Model.load(gated)) {
            float[] expected;
            long size;
            try (Session s = m.newSession(SMALL)) {
                s.eval(doc);
                s.saveState(state);
                size = s.stateSize();
                expected = s.logits(question);
            }
            assertEquals(size, Files.size(state));
            try (Session r = m.restoreSession(state, SMALL)) {
                assertEquals(300, r.position());
                assertEquals(Session.Route.MEMORY, r.route());
                assertArrayEquals(expected, r.logits(question));
            }
            Path early = tmp.resolve("early.state");
            try (Session s = m.newSession(SMALL)) {
                s.eval(tokens(10, 8));
                s.saveState(early);
            }
            assertEquals(Files.size(state), Files.size(early), "10 tokens or 300: the state has one size");
            // At least K and V of S + W + L tokens (f16) and M, z (f32), per layer and KV head.
            GgufFile f = GgufFile.read(TINY);
            long layers = f.integer("llama.block_count").orElseThrow();
            long kvHeads = f.integer("llama.attention.head_count_kv").orElseThrow();
            long d = f.integer("llama.embedding_length").orElseThrow() / f.integer("llama.attention.head_count").orElseThrow();
            long payload = layers * kvHeads * (2 * (4 + 64 + 16) * d * 2 + (d * d + d) * 4);
            assertTrue(size >= payload && size <= payload + 4096, "state of " + size + " bytes for " + payload);
        }
    }

    @Test
    void foreignOrCorruptedStatesAreRefused() throws IOException {
        Path state = tmp.resolve("t.state");
        try (Model m = Model.load(gated); Session s = m.newSession(SMALL)) {
            s.eval(tokens(200, 9));
            s.saveState(state);
        }
        try (Model other = Model.load(TINY)) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> other.restoreSession(state, SMALL));
            assertTrue(e.getMessage().contains("another model"), e.getMessage());
        }
        try (Model m = Model.load(gated)) {
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> m.restoreSession(state, SMALL.toBuilder().window(96).build()));
            assertTrue(e.getMessage().contains("size") || e.getMessage().contains("scenario"), e.getMessage());
            ModelFormatException rule = assertThrows(ModelFormatException.class,
                    () -> m.restoreSession(state, SMALL.toBuilder().memoryRule(Scenario.MemoryRule.DELTA).build()));
            assertTrue(rule.getMessage().contains("another scenario"), rule.getMessage());
            byte[] bytes = Files.readAllBytes(state);
            bytes[bytes.length / 2] ^= 0x40;
            Path bad = tmp.resolve("bad.state");
            Files.write(bad, bytes);
            ModelFormatException c = assertThrows(ModelFormatException.class, () -> m.restoreSession(bad, SMALL));
            assertTrue(c.getMessage().contains("checksum"), c.getMessage());
            Files.write(bad, java.util.Arrays.copyOf(bytes, 100));
            assertThrows(ModelFormatException.class, () -> m.restoreSession(bad, SMALL));
            EdgeInfiniteException missing = assertThrows(EdgeInfiniteException.class,
                    () -> m.restoreSession(tmp.resolve("none.state"), SMALL));
            assertEquals(EdgeInfiniteException.Status.IO, missing.status());
        }
    }

    /** FNV-1a 64 over all but the last 8 bytes, stored there little-endian: what anyone can recompute. */
    static void fixChecksum(byte[] b) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < b.length - 8; i++) h = (h ^ (b[i] & 0xff)) * 0x100000001b3L;
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(b.length - 8, h);
    }

    @Test
    void craftedStateWithARightChecksumIsRefusedAndTheJvmSurvives() throws IOException {
        Path state = tmp.resolve("c.state");
        int[] doc = tokens(100, 10), next = tokens(5, 11);
        try (Model m = Model.load(TINY)) {
            float[] expected;
            try (Session s = m.newSession(SMALL)) {
                s.eval(doc);
                s.saveState(state);
                expected = s.logits(next);
            }
            byte[] bytes = Files.readAllBytes(state);
            // Header: magic 8, version 4, header_size 4, two fingerprints 16, then n_past (int64 LE).
            ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(32, 99_999_999L);
            fixChecksum(bytes);
            Path crafted = tmp.resolve("crafted.state");
            Files.write(crafted, bytes);
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> m.restoreSession(crafted, SMALL));
            assertTrue(e.getMessage().contains("n_past 99999999") && e.getMessage().contains("window ring"),
                    e.getMessage());
            // The same session survives a refused load unchanged, and the real state still loads.
            try (Session s = m.restoreSession(state, SMALL)) {
                assertThrows(ModelFormatException.class, () -> s.loadState(crafted));
                assertEquals(100, s.position());
                assertArrayEquals(expected, s.logits(next));
            }
        }
    }
}

