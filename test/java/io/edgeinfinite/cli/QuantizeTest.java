package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.edgeinfinite.GgufFile;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import io.edgeinfinite.TensorInfo;
import io.edgeinfinite.TestData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ei quantize}: quantized tiny models reproduce the reference logits of the manifest;
 * the per-tensor types of the Q4_K_M recipe are llama-quantize's; Q8_0 and Q4_0 bytes are
 * llama-quantize's; llama.cpp loads and runs our files; refusals and bad options are clear.
 * The checks that need llama.cpp (built by ../shared/tools/build-llama-cpp.sh; LLAMA_CPP_BIN
 * or ~/.cache/llama.cpp-ref/build/bin) skip with that reason where it is absent.
 */
class QuantizeTest {
    @TempDir
    Path tmp;

    static Path llamaBin(String tool) {
        String dir = System.getenv("LLAMA_CPP_BIN");
        Path d = dir != null ? Path.of(dir) : Path.of(System.getProperty("user.home"), ".cache/llama.cpp-ref/build/bin");
        return d.resolve(tool);
    }

    static void assumeLlama(String tool) {
        assumeTrue(Files.isExecutable(llamaBin(tool)), "llama.cpp's " + tool + " is not built here (" + llamaBin(tool)
                + "): ../shared/tools/build-llama-cpp.sh builds it");
    }

    static String runTool(Path dir, String... cmd) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        Process p = pb.start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "timeout: " + String.join(" ", cmd));
        String s = new String(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + " failed:\n" + s);
        return s;
    }

    static MainTest.Run quantize(String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "quantize";
        System.arraycopy(args, 0, all, 1, args.length);
        return MainTest.ei(all);
    }

    Path ours(Path in, String type, String... opts) {
        Path out = tmp.resolve(in.getFileName().toString().replace(".gguf", "") + "-" + type + "-" + opts.length + ".gguf");
        List<String> a = new ArrayList<>(List.of(in.toString(), out.toString(), type, "--threads", "2"));
        a.addAll(List.of(opts));
        MainTest.Run r = quantize(a.toArray(String[]::new));
        assertEquals(0, r.status(), r.err());
        return out;
    }

    static Map<String, String> types(Path p) {
        Map<String, String> m = new TreeMap<>();
        for (TensorInfo t : GgufFile.read(p).tensors()) m.put(t.name(), t.typeName());
        return m;
    }

    static byte[] data(Path p, TensorInfo t, long dataOffset) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
            ByteBuffer bb = ByteBuffer.allocate((int) t.bytes());
            while (bb.hasRemaining()) ch.read(bb, dataOffset + t.offset() + bb.position());
            return bb.array();
        }
    }

    // ---- fidelity

    /**
     * The reference cases of the F32 tiny models, run on our Q8_0 (and Q4_0, Q4_K_M) copies,
     * against llama.cpp's logits for llama.cpp's file of that type, within the manifest's
     * tolerance for that file. Q8_0 must pass; the Q4 types print their RMSE and must meet
     * their own cases' tolerances too.
     */
    @Test
    void quantizedTinyModelsMeetTheManifestTolerances() throws Exception {
        for (String[] c : new String[][] {{"tiny-llama", "q8_0"}, {"tiny-qwen2", "q8_0"}, {"tiny-llama", "q4_0"},
                {"tiny-llama", "q4_k_m"}}) {
            Path q = ours(TestData.model(c[0] + "-f32.gguf"), c[1]);
            for (String id : List.of(c[0] + "-" + c[1] + ".A", c[0] + "-" + c[1] + ".B")) {
                Map<String, Object> cs = io.edgeinfinite.ReferenceLogitsTestAccess.caseById(id);
                int[] tokens = io.edgeinfinite.ReferenceLogitsTestAccess.ints(cs.get("tokens"));
                float[] ref = io.edgeinfinite.ReferenceLogitsTestAccess.logits(cs);
                double tol = (Double) ((Map<?, ?>) cs.get("tolerance")).get("rmse");
                Scenario sc = Scenario.fullAttention(tokens.length + 1).toBuilder().segmentLength(16).threads(2).build();
                try (Model m = Model.load(q); Session s = m.newSession(sc)) {
                    float[] l = s.logits(tokens);
                    assertEquals(ref.length, l.length);
                    double sq = 0;
                    for (int i = 0; i < l.length; i++) sq += (l[i] - ref[i]) * (double) (l[i] - ref[i]);
                    double rmse = Math.sqrt(sq / l.length);
                    System.out.printf("ei quantize %-7s %-20s rmse %.5f (tolerance %.5f)%n", c[1], id, rmse, tol);
                    assertTrue(rmse <= tol, id + " on our " + c[1] + ": rmse " + rmse + " > " + tol);
                }
            }
        }
    }

    // ---- recipe against llama-quantize

    /**
     * The recipes without a llama.cpp file in the manifest (q4_k, q4_k_s, q6_k) against the F32
     * model's reference logits: within the manifest's Q4_K_M tolerance (a wrong block layout
     * or scale gives logits far outside it), and q6_k closer than q4_k.
     */
    @Test
    void otherRecipesStayNearTheFloatModel() throws Exception {
        Map<String, Double> rmse = new TreeMap<>();
        Map<String, Object> cs = io.edgeinfinite.ReferenceLogitsTestAccess.caseById("tiny-llama-f32.A");
        int[] tokens = io.edgeinfinite.ReferenceLogitsTestAccess.ints(cs.get("tokens"));
        float[] ref = io.edgeinfinite.ReferenceLogitsTestAccess.logits(cs);
        double tol = (Double) ((Map<?, ?>) io.edgeinfinite.ReferenceLogitsTestAccess.caseById("tiny-llama-q4_k_m.A")
                .get("tolerance")).get("rmse");
        for (String type : List.of("q4_k", "q4_k_s", "q6_k")) {
            Path q = ours(TestData.model("tiny-llama-f32.gguf"), type);
            Scenario sc = Scenario.fullAttention(tokens.length + 1).toBuilder().segmentLength(16).threads(2).build();
            try (Model m = Model.load(q); Session s = m.newSession(sc)) {
                float[] l = s.logits(tokens);
                double sq = 0;
                for (int i = 0; i < l.length; i++) sq += (l[i] - ref[i]) * (double) (l[i] - ref[i]);
                rmse.put(type, Math.sqrt(sq / l.length));
            }
            System.out.printf("ei quantize %-7s tiny-llama-f32.A     rmse %.5f against the F32 logits (bound %.5f)%n", type,
                    rmse.get(type), tol);
            assertTrue(rmse.get(type) <= tol, type + ": rmse " + rmse.get(type));
        }
        assertTrue(rmse.get("q6_k") < rmse.get("q4_k"), rmse.toString());
    }

    /** tiny-llama-q4_k_m.gguf was made by llama-quantize Q4_K_M from tiny-llama-f32.gguf. */
    @Test
    void q4KmTypesAreLlamaQuantizes() {
        Path out = ours(TestData.model("tiny-llama-f32.gguf"), "Q4_K_M");
        assertEquals(types(TestData.model("tiny-llama-q4_k_m.gguf")), types(out));
        GgufFile f = GgufFile.read(out);
        assertEquals(15L, f.integer("general.file_type").orElseThrow());
        assertEquals(2L, f.integer("general.quantization_version").orElseThrow());
        // Every input key is kept, and the tensor order.
        GgufFile in = GgufFile.read(TestData.model("tiny-llama-f32.gguf"));
        for (String k : in.metadata().keySet()) {
            if (!k.equals("general.file_type")) assertEquals(in.metadata().get(k), f.metadata().get(k), k);
        }
        assertEquals(in.tensors().stream().map(TensorInfo::name).toList(), f.tensors().stream().map(TensorInfo::name).toList());
    }

    /**
     * A Qwen2.5-0.5B-shaped model (rows of 896: Q4_K falls back to Q5_0, tied embeddings to
     * Q8_0): the plan (no data needed) against the file llama-quantize made from the same F16
     * model, where those files exist (/work/models or EI_QWEN_DIR).
     */
    @Test
    void q4KmTypesOnAQwenShapedModel() {
        Path dir = Path.of(System.getenv().getOrDefault("EI_QWEN_DIR", "/work/models"));
        Path f16 = dir.resolve("qwen-f16.gguf"), ref = dir.resolve("qwen-q4_k_m.gguf");
        assumeTrue(Files.exists(f16) && Files.exists(ref), "no Qwen-shaped F16 model and llama-quantize Q4_K_M of it in " + dir);
        GgufFile in = GgufFile.read(f16);
        QuantRecipe.Options o = new QuantRecipe.Options(QuantRecipe.Mix.Q4_K_M, false, false, -1, -1, List.of());
        Map<String, String> planned = new TreeMap<>();
        for (QuantRecipe.Choice c : QuantRecipe.plan(in.tensors(), 24, o)) {
            planned.put(c.tensor().name(), c.quantize() ? QuantRecipe.typeName(c.type()) : c.tensor().typeName());
        }
        assertEquals(types(ref), planned);
    }

    /** The eval model (rows of 256), quantized by llama-quantize Q4_K_M here. */
    @Test
    void q4KmTypesOnTheEvalModel() throws Exception {
        assumeLlama("llama-quantize");
        Path eval = TestData.root().resolve("eval/evalmodel-f32.gguf");
        Path ref = tmp.resolve("ref-q4_k_m.gguf");
        runTool(tmp, llamaBin("llama-quantize").toString(), eval.toString(), ref.toString(), "Q4_K_M", "2");
        assertEquals(types(ref), types(ours(eval, "q4_k_m")));
    }

    /** --pure Q8_0, Q4_0 and Q5_0: every tensor's bytes are llama-quantize --pure's. */
    @Test
    void q8AndQ4_0AreByteIdenticalToLlamaQuantize() throws Exception {
        assumeLlama("llama-quantize");
        Path eval = TestData.root().resolve("eval/evalmodel-f32.gguf");
        for (String type : List.of("Q8_0", "Q4_0", "Q5_0")) {
            Path ref = tmp.resolve("ref-" + type + ".gguf");
            runTool(tmp, llamaBin("llama-quantize").toString(), "--pure", eval.toString(), ref.toString(), type, "2");
            // Q5_0 is no TYPE of ours (only a fallback): every matrix overridden to it.
            Path mine = type.equals("Q5_0") ? ours(eval, "q4_0", "--pure", "--type-override", "weight$=q5_0")
                    : ours(eval, type, "--pure");
            GgufFile a = GgufFile.read(mine), b = GgufFile.read(ref);
            int same = 0;
            for (TensorInfo t : a.tensors()) {
                TensorInfo u = b.tensor(t.name()).orElseThrow();
                assertEquals(u.typeName(), t.typeName(), t.name());
                assertArrayEquals(data(ref, u, b.dataOffset()), data(mine, t, a.dataOffset()), type + " " + t.name());
                same++;
            }
            assertEquals(b.tensors().size(), same);
            // Same keys, tensors and alignment: the same file size (llama-quantize orders tensors by layer).
            assertEquals(Files.size(ref), Files.size(mine), type + " file size");
            if (!type.equals("Q5_0")) assertEquals(b.integer("general.file_type"), a.integer("general.file_type"));
        }
    }

    /** llama.cpp loads our Q4_K_M file and runs it: perplexity over the eval text's first 3 chunks of 128. */
    @Test
    void llamaCppRunsOurFile() throws Exception {
        assumeLlama("llama-perplexity");
        Path eval = TestData.root().resolve("eval/evalmodel-f32.gguf");
        Path q = ours(eval, "q4_k_m");
        String out = runTool(tmp, llamaBin("llama-perplexity").toString(), "-m", q.toString(), "-f",
                TestData.root().resolve("eval/dev.txt").toString(), "-c", "128", "-b", "128", "--chunks", "3", "-t", "2");
        // The running perplexity after each chunk, "[1]12.38,[2]14.96,...". llama.cpp's log
        // thread sometimes loses the last lines at exit (its final estimate with them), so the
        // last chunk printed is what is checked; the exit status was checked by runTool.
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\[(\\d+)\\]([0-9.]+),").matcher(out);
        double ppl = Double.NaN;
        while (m.find()) ppl = Double.parseDouble(m.group(2));
        assertTrue(ppl > 1 && ppl < 100, "perplexity " + ppl + " in:\n" + out);
    }

    // ---- options, refusals, errors

    @Test
    void optionsChangeTheRecipe() {
        Path in = TestData.model("tiny-llama-f32.gguf");
        Map<String, String> pure = types(ours(in, "q4_k", "--pure"));
        assertEquals("q4_K", pure.get("output.weight"));
        assertEquals("f32", pure.get("output_norm.weight"));
        Map<String, String> mixed = types(ours(in, "q4_k"));
        assertEquals("q6_K", mixed.get("output.weight"));
        assertEquals("q4_K", mixed.get("blk.0.ffn_down.weight"));
        Map<String, String> keep = types(ours(in, "q8_0", "--keep-output", "--token-embedding-type", "f16"));
        assertEquals("f32", keep.get("output.weight"));
        assertEquals("f16", keep.get("token_embd.weight"));
        Map<String, String> ov = types(ours(in, "q4_0", "--type-override", "attn_(q|k)\\.weight=q8_0",
                "--type-override", "ffn_down=Q6_K", "--output-type", "q8_0"));
        assertEquals("q8_0", ov.get("blk.1.attn_q.weight"));
        assertEquals("q8_0", ov.get("blk.1.attn_k.weight"));
        assertEquals("q4_0", ov.get("blk.1.attn_v.weight"));
        assertEquals("q6_K", ov.get("blk.1.ffn_down.weight"));
        assertEquals("q8_0", ov.get("output.weight"));
    }

    @Test
    void requantizingIsRefusedUnlessAllowed() throws IOException {
        Path in = TestData.model("tiny-llama-q8_0.gguf"), out = tmp.resolve("re.gguf");
        MainTest.Run r = quantize(in.toString(), out.toString(), "q4_0");
        assertEquals(1, r.status());
        assertTrue(r.err().contains("is already quantized (q8_0)") && r.err().contains("--allow-requantize"), r.err());
        assertTrue(r.err().contains("tensor token_embd.weight") || r.err().contains("tensor output.weight"), r.err());
        assertFalse(Files.exists(out), "nothing written when refused");
        MainTest.Run ok = quantize(in.toString(), out.toString(), "q4_0", "--allow-requantize", "--threads", "2");
        assertEquals(0, ok.status(), ok.err());
        assertTrue(ok.err().contains("re-quantizing") && ok.err().contains("q8_0 is dequantized"), ok.err());
        assertEquals("q4_0", types(out).get("blk.0.attn_q.weight"));
        try (Model m = Model.load(out)) {
            assertTrue(m.vocabSize() > 0);
        }
    }

    @Test
    void badArgumentsGiveClearErrors() throws IOException {
        String in = TestData.model("tiny-llama-f32.gguf").toString(), out = tmp.resolve("x.gguf").toString();
        MainTest.Run t = quantize(in, out, "q3_k");
        assertEquals(2, t.status());
        assertTrue(t.err().contains("unknown quantization type 'q3_k'"), t.err());
        MainTest.Run o1 = quantize(in, out, "q4_0", "--type-override", "attn[=q8_0");
        assertEquals(2, o1.status());
        assertTrue(o1.err().contains("bad pattern 'attn['"), o1.err());
        MainTest.Run o2 = quantize(in, out, "q4_0", "--type-override", "attn_q=q9");
        assertEquals(2, o2.status());
        assertTrue(o2.err().contains("unknown tensor type 'q9'"), o2.err());
        MainTest.Run o3 = quantize(in, out, "q4_0", "--type-override", "attn_q");
        assertEquals(2, o3.status());
        assertTrue(o3.err().contains("PATTERN=TYPE"), o3.err());
        assertEquals(2, quantize(in, in, "q4_0").status());
        Path junk = tmp.resolve("junk.imatrix");
        Files.writeString(junk, "not an imatrix");
        MainTest.Run im = quantize(in, out, "q4_0", "--imatrix", junk.toString());
        assertEquals(1, im.status());
        assertTrue(im.err().contains("imatrix " + junk) && im.err().contains("bad magic"), im.err());
        assertFalse(Files.exists(Path.of(out)));
    }

    /**
     * With an importance matrix: entries are used where present (the bytes change), missing
     * ones are named in a warning, and one whose length does not match its tensor is refused.
     */
    @Test
    void importanceMatrixIsUsedAndChecked() throws IOException {
        Path in = TestData.model("tiny-llama-f32.gguf");
        GgufFile f = GgufFile.read(in);
        TensorInfo q = f.tensor("blk.0.attn_q.weight").orElseThrow();
        int cols = (int) q.shape()[0];
        float[] sums = new float[cols];
        for (int j = 0; j < cols; j++) sums[j] = (float) Math.pow(10, (j * 7919 % 97) / 24.0);
        Path im = tmp.resolve("one.imatrix");
        ImatrixReaderTest.write(im, Map.of("blk.0.attn_q.weight", sums), 16f);
        Path weighted = ours(in, "q4_0", "--imatrix", im.toString());
        Path plain = ours(in, "q4_0");
        GgufFile a = GgufFile.read(weighted), b = GgufFile.read(plain);
        TensorInfo ta = a.tensor("blk.0.attn_q.weight").orElseThrow(), tb = b.tensor("blk.0.attn_q.weight").orElseThrow();
        assertFalse(java.util.Arrays.equals(data(weighted, ta, a.dataOffset()), data(plain, tb, b.dataOffset())));
        TensorInfo ka = a.tensor("blk.0.attn_k.weight").orElseThrow(), kb = b.tensor("blk.0.attn_k.weight").orElseThrow();
        assertArrayEquals(data(plain, kb, b.dataOffset()), data(weighted, ka, a.dataOffset()), "no entry: unweighted");
        MainTest.Run r = quantize(in.toString(), tmp.resolve("w2.gguf").toString(), "q4_0", "--imatrix", im.toString());
        assertTrue(r.err().contains("warning: the importance matrix has no entry for blk.0.attn_k.weight"), r.err());
        Path wrong = tmp.resolve("wrong.imatrix");
        ImatrixReaderTest.write(wrong, Map.of("blk.0.attn_q.weight", new float[cols + 32]), 1f);
        MainTest.Run w = quantize(in.toString(), tmp.resolve("w3.gguf").toString(), "q4_0", "--imatrix", wrong.toString());
        assertEquals(1, w.status());
        assertTrue(w.err().contains("imatrix entry for blk.0.attn_q.weight has " + (cols + 32) + " columns"), w.err());
    }
}
