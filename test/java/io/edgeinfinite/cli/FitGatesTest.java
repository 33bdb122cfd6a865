package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.ChatMessage;
import io.edgeinfinite.GateFit;
import io.edgeinfinite.GgufFile;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import io.edgeinfinite.TensorInfo;
import io.edgeinfinite.TestData;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ei fit-gates}: the written model, chat weighting, and bad calibration input. */
class FitGatesTest {
    static final Path TINY = TestData.model("tiny-llama-f32.gguf");
    static final String[] ROUTE = {"--sink", "4", "--window", "32", "-L", "16", "-t", "2"};

    @TempDir
    Path tmp;

    record Run(int status, String out, String err) {}

    static Run ei(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int st = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(st, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static String words(int n, long seed) {
        Random r = new Random(seed);
        String[] w = {"the", "hello", "world", "and", "an", "other", "thing", "lo", "wor", "he", "in", "er"};
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) b.append(w[r.nextInt(w.length)]).append(i % 9 == 8 ? ".\n" : " ");
        return b.toString();
    }

    String[] args(String... extra) {
        List<String> a = new ArrayList<>(List.of(extra));
        a.addAll(List.of(ROUTE));
        return a.toArray(String[]::new);
    }

    @Test
    void writesAGatedModelThatRunsTheRoute() throws Exception {
        Path text = tmp.resolve("calib.txt");
        Files.writeString(text, words(400, 1));
        for (String kind : List.of("scalar", "adaptive")) {
            Path out = tmp.resolve(kind + ".gguf");
            Run r = ei(args("fit-gates", "-m", TINY.toString(), "-f", text.toString(), "--length", "100", "--windows",
                    "3", "--gate", kind, "--steps", "1", "-o", out.toString()));
            assertEquals(0, r.status(), r.err());
            for (int l = 0; l < 4; l++) assertTrue(r.out().contains(String.format("layer %2d: ", l)), r.out());
            assertTrue(r.out().contains("300 calibration tokens in 3 sequences"), r.out());
            assertTrue(r.out().contains(kind.equals("scalar") ? "1 teacher run" : "3 teacher runs"), r.out());
            GgufFile f = GgufFile.read(out);
            assertEquals(4L, f.integer("edgeinfinite.sink").orElseThrow());
            assertEquals(32L, f.integer("edgeinfinite.window").orElseThrow());
            assertEquals(16L, f.integer("edgeinfinite.segment_length").orElseThrow());
            assertEquals(kind, f.string("edgeinfinite.gate").orElseThrow());
            TensorInfo w = f.tensors().stream().filter(t -> t.name().equals("blk.3.ei_gate.weight")).findFirst()
                    .orElseThrow();
            assertArrayEquals(kind.equals("scalar") ? new long[] {8} : new long[] {64, 8}, w.shape());
            assertEquals(kind.equals("adaptive"),
                    f.tensors().stream().anyMatch(t -> t.name().equals("blk.0.ei_gate.bias")));
            // The fitted model loads and runs the memory route (its scenario from its keys),
            // and its gates change what the route computes.
            int[] toks;
            try (Model plain = Model.load(TINY); Model m = Model.load(out)) {
                toks = Arrays.copyOf(m.tokenize(words(200, 9), true, false), 150);
                try (Session s = m.newSession(Scenario.defaults());
                        Session p = plain.newSession(Scenario.builder().sink(4).window(32).segmentLength(16).build())) {
                    float[] a = s.logits(toks), b = p.logits(toks);
                    assertEquals(Session.Route.MEMORY, s.route());
                    for (float x : a) assertTrue(Float.isFinite(x));
                    assertFalse(Arrays.equals(a, b), "fitted gates must change the memory route's output");
                }
            }
        }
    }

    @Test
    void chatAnswersAreWeightedAndPullTheFit() throws Exception {
        try (Model m = Model.load(TINY)) {
            List<List<ChatMessage>> convs = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                convs.add(List.of(ChatMessage.user(words(60, 10 + i)), ChatMessage.assistant(words(20, 20 + i)),
                        ChatMessage.user(words(30, 30 + i)), ChatMessage.assistant(words(25, 40 + i))));
            }
            FitGates.Calibration cal = FitGates.chat(m, convs, "chatml", 1f, 0f, 36, 100);
            assertEquals(3, cal.sequences().size());
            for (int c = 0; c < 3; c++) {
                int[] seq = cal.sequences().get(c);
                float[] w = cal.weights().get(c);
                // Weighted positions predict exactly the answer turns' tokens: two runs, and the
                // text those tokens spell is the answers (each with its end marker).
                List<Integer> answerTokens = new ArrayList<>();
                int runs = 0;
                for (int p = 0; p + 1 < seq.length; p++) {
                    if (w[p] == 1f && (p == 0 || w[p - 1] == 0f)) runs++;
                    if (w[p] == 1f) answerTokens.add(seq[p + 1]);
                    else assertEquals(0f, w[p]);
                }
                assertEquals(2, runs);
                // Compared without spaces: a piece's leading space depends on where it was cut.
                String a = m.detokenize(answerTokens.stream().mapToInt(Integer::intValue).toArray()).replace(" ", "");
                assertTrue(a.contains(convs.get(c).get(1).content().replace(" ", "")), a);
                assertTrue(a.contains(convs.get(c).get(3).content().replace(" ", "")), a);
                assertFalse(a.contains(convs.get(c).get(0).content().replace(" ", "")), a);
            }
            // The expected direction: answers only -> the answers' optimum; answers weighing 5x
            // the rest -> between that and the unweighted fit.
            Scenario sc = Scenario.builder().sink(4).window(32).segmentLength(16).threads(2).build();
            List<float[]> mixed = new ArrayList<>();
            for (float[] w : cal.weights()) {
                float[] x = w.clone();
                for (int i = 0; i < x.length; i++) x[i] = x[i] > 0 ? 5f : 1f;
                mixed.add(x);
            }
            GateFit.Result uni = GateFit.fit(m, sc, GateFit.Kind.SCALAR, 0, 0, cal.sequences(), null);
            GateFit.Result ans = GateFit.fit(m, sc, GateFit.Kind.SCALAR, 0, 0, cal.sequences(), cal.weights());
            GateFit.Result mix = GateFit.fit(m, sc, GateFit.Kind.SCALAR, 0, 0, cal.sequences(), mixed);
            int moved = 0;
            for (int l = 0; l < uni.layers(); l++) {
                for (int h = 0; h < uni.heads(); h++) {
                    double gu = uni.gate(l, h), ga = ans.gate(l, h), gm = mix.gate(l, h);
                    assertTrue(gm >= Math.min(gu, ga) - 1e-6 && gm <= Math.max(gu, ga) + 1e-6, l + "/" + h);
                    assertTrue(ans.scoredWeight(l, h) < uni.scoredWeight(l, h));
                    if (Math.abs(ga - gu) > 1e-3) moved++;
                }
            }
            assertTrue(moved > 0, "answer weights must change the fit");
            assertNotEquals(0, moved);
        }
    }

    @Test
    void badCalibrationGetsClearErrors() throws Exception {
        Path text = tmp.resolve("short.txt");
        Files.writeString(text, words(30, 2));
        Path out = tmp.resolve("o.gguf");
        Run r = ei(args("fit-gates", "-m", TINY.toString(), "-f", text.toString(), "--length", "100", "-o", out.toString()));
        assertEquals(1, r.status());
        assertTrue(r.err().contains("fewer than one window of 100"), r.err());
        r = ei(args("fit-gates", "-m", TINY.toString(), "-f", text.toString(), "--length", "36", "-o", out.toString()));
        assertEquals(1, r.status());
        assertTrue(r.err().contains("must be longer than S + W = 36"), r.err());

        Path bad = tmp.resolve("bad.jsonl");
        Files.writeString(bad, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                + "\"content\": \"yo\"}]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi}]}\n");
        r = ei(args("fit-gates", "-m", TINY.toString(), "-f", bad.toString(), "--chat-format", "chatml", "-o",
                out.toString()));
        assertEquals(1, r.status());
        assertTrue(r.err().contains("bad.jsonl line 2: bad JSON at column"), r.err());
        for (String line : List.of("[1, 2]", "{\"messages\": [{\"role\": \"user\"}]}",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer\"}]}", "{\"messages\": []} x")) {
            Files.writeString(bad, line + "\n");
            r = ei(args("fit-gates", "-m", TINY.toString(), "-f", bad.toString(), "--chat-format", "chatml", "-o",
                    out.toString()));
            assertEquals(1, r.status(), line);
            assertTrue(r.err().contains("bad.jsonl line 1: "), r.err());
        }
        Files.writeString(bad, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                + "\"content\": \"yo\"}]}\n");
        r = ei("fit-gates", "-m", TINY.toString(), "-f", bad.toString(), "--chat-format", "chatml", "-o",
                out.toString(), "--sink", "4", "--window", "400", "-L", "16");
        assertEquals(1, r.status());
        assertTrue(r.err().contains("no conversation is longer than S + W = 404 tokens (1 skipped)"), r.err());
        assertFalse(Files.exists(out));
    }
}
