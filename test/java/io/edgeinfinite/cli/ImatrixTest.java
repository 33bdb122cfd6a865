package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.GgufFile;
import io.edgeinfinite.Model;
import io.edgeinfinite.TensorInfo;
import io.edgeinfinite.TestData;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ei imatrix}: the file's layout (the contract's GGUF), its shapes and counts, layer
 * 0's sums against a computation from the weights and the chunks' tokens, and agreement with
 * llama-imatrix where llama.cpp is built.
 */
class ImatrixTest {
    static final Path TINY = TestData.model("tiny-llama-f32.gguf");

    @TempDir
    Path tmp;

    /** F32 data of a tensor, read raw from the file. */
    static float[] f32(GgufFile f, String name) throws Exception {
        TensorInfo t = f.tensor(name).orElseThrow();
        assertEquals(0, t.type(), name + " is F32");
        try (FileChannel ch = FileChannel.open(f.path())) {
            ByteBuffer b = ByteBuffer.allocate((int) t.bytes()).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, f.dataOffset() + t.offset());
            b.flip();
            float[] out = new float[(int) (t.bytes() / 4)];
            b.asFloatBuffer().get(out);
            return out;
        }
    }

    Path imatrix(Path model, Path text, int ctx, int chunks) {
        Path o = tmp.resolve("im-" + ctx + ".gguf");
        MainTest.Run r = MainTest.ei("imatrix", "-m", model.toString(), "-f", text.toString(), "-o", o.toString(), "--ctx",
                "" + ctx, "--chunks", "" + chunks);
        assertEquals(0, r.status(), r.err());
        return o;
    }

    @Test
    void writesTheContractLayoutWithShapesCountsAndLayer0Sums() throws Exception {
        Path text = tmp.resolve("t.txt");
        String fileText = PerplexityTest.text(3000);
        Files.writeString(text, fileText);
        int ctx = 32, chunks = 3;
        GgufFile im = GgufFile.read(imatrix(TINY, text, ctx, chunks));
        GgufFile model = GgufFile.read(TINY);
        assertEquals("imatrix", im.string("general.type").orElseThrow());
        assertEquals(List.of(text.toString()), im.metadata().get("imatrix.datasets"));
        assertEquals(chunks, im.integer("imatrix.chunk_count").orElseThrow());
        assertEquals(ctx, im.integer("imatrix.chunk_size").orElseThrow());
        List<String> names = new ArrayList<>();
        for (TensorInfo t : im.tensors()) names.add(t.name());
        // As llama-imatrix writes them: matrices sorted by name, each W.in_sum2 then W.counts.
        assertEquals(2 * 4 * 7, names.size());
        List<String> matrices = new ArrayList<>();
        for (int i = 0; i < names.size(); i += 2) {
            String w = names.get(i).replace(".in_sum2", "");
            assertEquals(w + ".in_sum2", names.get(i));
            assertEquals(w + ".counts", names.get(i + 1));
            matrices.add(w);
        }
        List<String> sorted = new ArrayList<>(matrices);
        java.util.Collections.sort(sorted);
        assertEquals(sorted, matrices, "matrices sorted by name");
        for (TensorInfo t : im.tensors()) {
            if (t.name().endsWith(".counts")) {
                assertEquals(1, t.shape().length);
                assertEquals(1, t.shape()[0]);
                assertEquals((float) (ctx * chunks), f32(im, t.name())[0], t.name());
            } else {
                String w = t.name().substring(0, t.name().length() - ".in_sum2".length());
                assertEquals(model.tensor(w).orElseThrow().shape()[0], t.shape()[0], w);
                for (float v : f32(im, t.name())) assertTrue(Float.isFinite(v) && v >= 0, t.name());
            }
        }
        // Layer 0's attention input from the weights: rmsnorm(token_embd[t]) * attn_norm over
        // every token of every chunk, the chunk's first token being BOS.
        float[] emb = f32(model, "token_embd.weight"), norm = f32(model, "blk.0.attn_norm.weight");
        double eps = model.real("llama.attention.layer_norm_rms_epsilon").orElseThrow();
        int d = norm.length;
        int[] tokens;
        try (Model m = Model.load(TINY)) {
            tokens = m.tokenize(fileText.substring(0, fileText.length() - 1), true, false);
            for (int c = 0; c < chunks; c++) tokens[c * ctx] = m.bosToken();
        }
        double[] want = new double[d];
        for (int i = 0; i < ctx * chunks; i++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double) emb[tokens[i] * d + j] * emb[tokens[i] * d + j];
            double scale = 1 / Math.sqrt(ss / d + eps);
            for (int j = 0; j < d; j++) {
                double y = emb[tokens[i] * d + j] * scale * norm[j];
                want[j] += y * y;
            }
        }
        float[] got = f32(im, "blk.0.attn_q.weight.in_sum2");
        for (int j = 0; j < d; j++) assertEquals(want[j], got[j], 1e-5 * want[j], "column " + j);
    }

    static Map<String, float[]> tensors(GgufFile f) throws Exception {
        Map<String, float[]> out = new TreeMap<>();
        for (TensorInfo t : f.tensors()) out.put(t.name(), f32(f, t.name()));
        return out;
    }

    /**
     * Where llama.cpp is built: llama-imatrix on the eval model, same text and chunking, flash
     * attention off (the arithmetic ours matches), gives the same file.
     */
    @Test
    void agreesWithLlamaImatrix() throws Exception {
        Path tool = PerplexityTest.LLAMA_BIN.resolve("llama-imatrix");
        Assumptions.assumeTrue(Files.isExecutable(tool), "llama.cpp is not built at " + PerplexityTest.LLAMA_BIN + " (skipped)");
        Path eval = TestData.root().resolve("eval/evalmodel-f32.gguf");
        Path text = tmp.resolve("t.txt");
        Files.writeString(text, PerplexityTest.text(12000));
        int ctx = 128, chunks = 6;
        Path theirs = tmp.resolve("llama.gguf");
        PerplexityTest.runTool(List.of(tool.toString(), "-m", eval.toString(), "-f", text.toString(), "-o", theirs.toString(),
                "-c", "" + ctx, "--chunks", "" + chunks, "-t", "2", "-fa", "off"));
        GgufFile a = GgufFile.read(theirs), b = GgufFile.read(imatrix(eval, text, ctx, chunks));
        for (String k : List.of("general.type", "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size")) {
            assertEquals(a.metadata().get(k), b.metadata().get(k), k);
        }
        Map<String, float[]> ta = tensors(a), tb = tensors(b);
        assertEquals(ta.keySet(), tb.keySet());
        double worst = 0, worstL1 = 0;
        for (String n : ta.keySet()) {
            float[] x = ta.get(n), y = tb.get(n);
            assertEquals(x.length, y.length, n);
            double diff = 0, norm = 0;
            for (int j = 0; j < x.length; j++) {
                if (n.endsWith(".counts")) assertEquals(x[j], y[j], n);
                worst = Math.max(worst, Math.abs(x[j] - y[j]) / Math.max(Math.abs(x[j]), 1e-30));
                diff += Math.abs(x[j] - y[j]);
                norm += Math.abs(x[j]);
            }
            worstL1 = Math.max(worstL1, diff / norm);
        }
        // Without flash attention (whose F16 arithmetic moves the attention output by ~1e-3)
        // llama.cpp computes the activations as we do; its float sums leave 2.1e-6 at worst
        // in a column, 6e-7 over a matrix (measured). A wrong row, chunk or padding count
        // would be off by percents.
        assertTrue(worst < 2e-5, "largest relative difference of a column " + worst);
        assertTrue(worstL1 < 5e-6, "largest relative L1 difference of a matrix " + worstL1);
    }
}
