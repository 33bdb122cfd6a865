package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.Model;
import io.edgeinfinite.ModelFormatException;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import io.edgeinfinite.TestData;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/** {@code ei eval}: its figures against {@code ei perplexity}, the g = 0 switch, the charts, the passkey prompts. */
class EvalTest {
    @TempDir
    static Path tmp;

    static final Path EVAL_MODEL = TestData.root().resolve("eval").resolve("evalmodel-f32.gguf");
    static final Path DEV = TestData.root().resolve("eval").resolve("dev.txt");
    static final Path TINY = TestData.model("tiny-llama-f32.gguf");
    static Path gatedTiny, gatedEval, text;

    static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
    }

    @BeforeAll
    static void writeModels() throws Exception {
        gatedTiny = tmp.resolve("tiny-gated.gguf");
        assertEquals(0, Main.run(new String[] {"gate-init", "-m", TINY.toString(), "--value", "1.5", "-o",
            gatedTiny.toString()}, quiet(), System.err));
        gatedEval = tmp.resolve("eval-gated.gguf");
        assertEquals(0, Main.run(new String[] {"gate-init", "-m", EVAL_MODEL.toString(), "--value", "-1", "-o",
            gatedEval.toString()}, quiet(), System.err));
        // ~2,500 tokens of held-out text: enough for the windows below.
        String dev = Files.readString(DEV, StandardCharsets.UTF_8);
        text = tmp.resolve("text.txt");
        Files.writeString(text, dev.substring(0, 11000), StandardCharsets.UTF_8);
    }

    static final Scenario ROUTE = Scenario.builder().sink(16).window(112).segmentLength(32).threads(2).build();

    /**
     * Where the configurations overlap (full attention, scored from n/2), eval's figure is
     * {@code ei perplexity}'s to the last bits: same windows, same BOS, same logits.
     */
    @Test
    void fullAttentionEqualsPerplexityCommand() throws Exception {
        String t = Files.readString(text, StandardCharsets.UTF_8);
        int n = 512;
        Eval.Config full = new Eval.Config("full", EVAL_MODEL, Eval.Config.Kind.FULL);
        EvalPerplexity.Report r = EvalPerplexity.measure(List.of(full), ROUTE, t, "text", List.of(n), 100, n / 2, 128,
                -1, 0, (c, w) -> {});
        TokenScores.Nll ref;
        int chunks;
        try (Model m = Model.load(EVAL_MODEL); Session s = m.newSession(Main.scenario(new Main.Args(new String[] {
            "--ctx", Integer.toString(n), "-t", "2"})))) {
            Perplexity.Chunking ch = Perplexity.Chunking.of(Perplexity.tokens(m, t), n, 0, m.addsBos() ? m.bosToken() : -1);
            chunks = ch.chunks();
            ref = Perplexity.compute(s, ch, (d, x) -> {});
        }
        TokenScores.Nll got = r.series().get(0).byLength().get(n);
        assertEquals(chunks, r.windows().get(n));
        assertEquals(ref.count(), got.count());
        assertEquals(ref.perplexity(), got.perplexity(), ref.perplexity() * 1e-12, "eval full vs ei perplexity");
    }

    /**
     * The route's late positions: g = 0 on a model without gates is that model's route; a
     * constant-gate copy differs; full attention differs from both; each scores n - 1 - (S + W)
     * tokens per window.
     */
    @Test
    void configurationsScoreTheLatePositions() throws Exception {
        String t = Files.readString(text, StandardCharsets.UTF_8);
        Map<String, Path> models = new LinkedHashMap<>();
        models.put("base", EVAL_MODEL);
        models.put("const", gatedEval);
        List<Eval.Config> cfgs = Eval.configs(new Main.Args(new String[0]), models);
        assertEquals(List.of("full", "g0", "const"), cfgs.stream().map(Eval.Config::name).toList(),
                "a model without gates has no gated series: it would be g0");
        EvalPerplexity.Report r = EvalPerplexity.measure(cfgs, ROUTE, t, "text", List.of(256, 384), 2, null, 32, 200, 2,
                (c, w) -> {});
        assertEquals(128, r.scoreFrom(), "S + W");
        for (EvalPerplexity.Series s : r.series()) {
            assertEquals(2 * (256 - 1 - 128), s.byLength().get(256).count());
            assertEquals(2 * (384 - 1 - 128), s.byLength().get(384).count());
            assertEquals(2 * 31, s.repeat().count());
            assertTrue(Double.isFinite(s.repeat().perplexity()) && s.repeat().perplexity() > 1);
        }
        double full = r.series().get(0).byLength().get(384).perplexity();
        double g0 = r.series().get(1).byLength().get(384).perplexity();
        double gated = r.series().get(2).byLength().get(384).perplexity();
        assertNotEquals(full, g0);
        assertNotEquals(g0, gated);
        // g0 is the base model's own memory route.
        EvalPerplexity.Report base = EvalPerplexity.measure(
                List.of(new Eval.Config("route", EVAL_MODEL, Eval.Config.Kind.GATED)), ROUTE, t, "text", List.of(384), 2,
                null, 32, 200, 0, (c, w) -> {});
        assertEquals(g0, base.series().get(0).byLength().get(384).perplexity());
    }

    /** The repeat is the span again, distance tokens after it began. */
    @Test
    void repeatedSpanSequence() {
        int[] all = new Random(3).ints(1000, 5, 900).toArray();
        int[] seq = EvalPerplexity.repeated(all, 100, 20, 300, 50, 1);
        assertEquals(370, seq.length);
        assertEquals(1, seq[0]);
        for (int i = 1; i < 320; i++) assertEquals(all[100 + i], seq[i]);
        for (int i = 0; i < 50; i++) assertEquals(seq[20 + i], seq[320 + i]);
    }

    /**
     * gates(false) is g = 0 exactly: a gated copy run with it gives the ungated model's logits
     * bit for bit on a run that folds many times, while its own gates change them; a state
     * saved with the gates off is refused by a session with them on.
     */
    @Test
    void gatesOffIsTheUngatedRoute() {
        Scenario sc = Scenario.builder().sink(4).window(64).segmentLength(16).threads(2).build();
        int[] toks = new Random(7).ints(400, 3, 1000).toArray();
        float[] plain, off, on;
        try (Model m = Model.load(TINY); Session s = m.newSession(sc)) {
            plain = s.logits(toks);
        }
        try (Model m = Model.load(gatedTiny); Session s = m.newSession(sc.toBuilder().gates(false).build());
                Session g = m.newSession(sc)) {
            off = s.logits(toks);
            assertEquals(Session.Route.MEMORY, s.route());
            assertFalse(s.scenario().gates());
            assertTrue(g.scenario().gates());
            on = g.logits(toks);
            Path state = tmp.resolve("gates-off.state");
            s.saveState(state);
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> m.restoreSession(state, sc).close());
            assertTrue(e.getMessage().contains("scenario"), e.getMessage());
            m.restoreSession(state, sc.toBuilder().gates(false).build()).close();
        }
        assertArrayEquals(plain, off);
        int firstFoldRow = 4 + 64 + 16;  // the first segment that reads a non-empty memory
        boolean differs = false;
        for (int i = firstFoldRow * 1024; i < on.length; i++) differs |= on[i] != off[i];
        assertTrue(differs, "constant gates g = sigmoid(1.5) change the logits once the memory holds tokens");
        for (int i = 0; i < 64 * 1024; i++) assertEquals(on[i], off[i], "before any fold the gates change nothing");
    }

    static Document parseXml(Path p) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return f.newDocumentBuilder().parse(p.toFile());
    }

    static Map<String, Element> series(Document d) {
        Map<String, Element> out = new LinkedHashMap<>();
        NodeList gs = d.getElementsByTagName("g");
        for (int i = 0; i < gs.getLength(); i++) {
            Element g = (Element) gs.item(i);
            if (g.getAttribute("class").equals("series")) out.put(g.getAttribute("data-name"), g);
        }
        return out;
    }

    /** The command end to end: table, JSON and a well-formed SVG line chart with one line per configuration. */
    @Test
    void perplexityCommandWritesJsonAndSvg() throws Exception {
        Path json = tmp.resolve("ppl.json"), svg = tmp.resolve("ppl.svg");
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int st = Main.run(new String[] {"eval", "perplexity", "--models", "base=" + EVAL_MODEL + ",const=" + gatedEval,
            "-f", text.toString(), "--lengths", "256,384,512", "--windows", "1", "--sink", "16", "--window", "112", "-L",
            "32", "-t", "2", "--repeats", "1", "--span", "32", "--json", json.toString(), "--svg", svg.toString()},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, st, err.toString(StandardCharsets.UTF_8));
        String table = out.toString(StandardCharsets.UTF_8);
        assertTrue(table.contains("full") && table.contains("g0") && table.contains("const"), table);
        String j = Files.readString(json);
        assertTrue(j.contains("\"score_from\": 128"), j);
        assertTrue(j.contains("\"distance\": 600"), j);
        @SuppressWarnings("unchecked")
        Map<String, Object> parsed = (Map<String, Object>) io.edgeinfinite.Json.parse(j);
        List<?> ser = (List<?>) parsed.get("series");
        assertEquals(3, ser.size());
        Map<String, Element> lines = series(parseXml(svg));
        assertEquals(List.of("full", "g0", "const"), new ArrayList<>(lines.keySet()));
        for (Element g : lines.values()) {
            assertEquals(3, g.getElementsByTagName("circle").getLength(), "one point per length");
            String pts = ((Element) g.getElementsByTagName("polyline").item(0)).getAttribute("points");
            assertEquals(3, pts.trim().split("\\s+").length, pts);
        }
    }

    @Test
    void badOptionsAreRefusedClearly() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8);
        assertEquals(2, Main.run(new String[] {"eval", "perplexity", "-m", TINY.toString(), "-f", text.toString(),
            "--lengths", "512,x"}, quiet(), e));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--lengths"), err.toString(StandardCharsets.UTF_8));
        assertEquals(2, Main.run(new String[] {"eval", "perplexity", "--models", "nameonly", "-f", text.toString()},
                quiet(), e));
        assertEquals(2, Main.run(new String[] {"eval", "perplexity", "-m", TINY.toString(), "-f", text.toString(),
            "--ctx", "512"}, quiet(), e));
        assertEquals(2, Main.run(new String[] {"eval", "passkey", "-m", TINY.toString(), "--depths", "1.5"}, quiet(), e));
        assertEquals(2, Main.run(new String[] {"eval", "recall", "-m", TINY.toString()}, quiet(), e));
        // A length with no late position: S + W = 128 of 100 tokens.
        assertEquals(1, Main.run(new String[] {"eval", "perplexity", "-m", TINY.toString(), "-f", text.toString(),
            "--lengths", "100", "--sink", "16", "--window", "112", "-L", "32"}, quiet(), e));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("no late positions"), err.toString(StandardCharsets.UTF_8));
    }

    /**
     * Passkey prompts: llama.cpp's instruction and question around the filler; the key at
     * depth 0 follows the instruction, at depth 1 precedes the question, at 0.5 sits mid-way;
     * the length is the one asked for, within a sentence.
     */
    @Test
    void passkeyPromptsPutTheKeyAtItsDepth() {
        List<String> sents = EvalPasskey.sentences(EvalPasskey.BUILT_IN_FILLER);
        assertEquals(20, sents.size());
        try (Model m = Model.load(EVAL_MODEL)) {
            int[] st = sents.stream().mapToInt(s -> m.tokenize(s, false, false).length).toArray();
            int maxSentence = java.util.Arrays.stream(st).max().orElseThrow();
            for (int len : new int[] {300, 1000}) {
                String p0 = EvalPasskey.prompt(m, sents, st, 3, len, 0.0, 4242);
                assertTrue(p0.startsWith(EvalPasskey.INSTRUCTION + EvalPasskey.keySentence(4242)), p0);
                assertTrue(p0.endsWith(EvalPasskey.QUESTION));
                String p1 = EvalPasskey.prompt(m, sents, st, 3, len, 1.0, 4242);
                assertTrue(p1.endsWith(EvalPasskey.keySentence(4242) + EvalPasskey.QUESTION), p1);
                String half = EvalPasskey.prompt(m, sents, st, 3, len, 0.5, 4242);
                int at = half.indexOf(EvalPasskey.keySentence(4242));
                double rel = (double) at / half.length();
                assertTrue(rel > 0.4 && rel < 0.6, "depth 0.5 at " + rel);
                int n = m.tokenize(half, true, false).length;
                assertTrue(n >= len - 4 && n <= len + maxSentence + 4, "length " + n + " for " + len);
            }
        }
        assertEquals(12345, EvalPasskey.firstNumber(" 12345. Remember"));
        assertEquals(7, EvalPasskey.firstNumber(" is 7 and 8"));
        assertEquals(-1, EvalPasskey.firstNumber(" none"));
    }

    /** The demo's quality figure says why it is missing when the evaluation model is not there. */
    @Test
    void demoQualityIsSkippedWithoutTheEvaluationModel() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Demo.quality(tmp.resolve("nowhere"), 2, new PrintStream(out, true, StandardCharsets.UTF_8), quiet());
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("quality: skipped"), out.toString(StandardCharsets.UTF_8));
    }

    /** The passkey command end to end on a small model: JSON cells and an SVG grid per configuration. */
    @Test
    void passkeyCommandWritesJsonAndSvg() throws Exception {
        Path json = tmp.resolve("pk.json"), svg = tmp.resolve("pk.svg");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int st = Main.run(new String[] {"eval", "passkey", "--models", "base=" + TINY + ",const=" + gatedTiny,
            "--lengths", "160,240", "--depths", "0,1", "--trials", "1", "--sink", "8", "--window", "64", "-L", "32", "-t",
            "2", "--json", json.toString(), "--svg", svg.toString()}, quiet(),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, st, err.toString(StandardCharsets.UTF_8));
        @SuppressWarnings("unchecked")
        Map<String, Object> parsed = (Map<String, Object>) io.edgeinfinite.Json.parse(Files.readString(json));
        List<?> ser = (List<?>) parsed.get("series");
        assertEquals(3, ser.size());
        for (Object o : ser) assertEquals(4, ((List<?>) ((Map<?, ?>) o).get("cells")).size());
        Map<String, Element> grids = series(parseXml(svg));
        assertEquals(List.of("full", "g0", "const"), new ArrayList<>(grids.keySet()));
        for (Element g : grids.values()) assertEquals(4, g.getElementsByTagName("rect").getLength());
    }
}
