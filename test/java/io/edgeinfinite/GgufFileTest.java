package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GgufFileTest {
    @TempDir
    Path tmp;

    @Test
    void readsEverySharedFile() {
        List<Path> files = TestData.allGguf();
        assertTrue(files.size() >= 11, "expected the shared models and vocabularies");
        for (Path p : files) {
            GgufFile f = GgufFile.read(p);
            assertEquals(3, f.version(), p.toString());
            assertTrue(f.string("general.architecture").isPresent(), p.toString());
            assertTrue(f.arrayLength("tokenizer.ggml.tokens").orElse(0) > 0, p.toString());
        }
    }

    @Test
    void tinyLlamaQ4KmHeaderIsRight() {
        GgufFile f = GgufFile.read(TestData.model("tiny-llama-q4_k_m.gguf"));
        assertEquals(39, f.tensors().size());
        assertEquals(23, f.metadata().size());
        assertEquals(32, f.alignment());
        assertEquals(256L, f.integer("llama.embedding_length").orElseThrow());
        assertEquals(1e-5, f.real("llama.attention.layer_norm_rms_epsilon").orElseThrow(), 1e-9);
        assertEquals(Boolean.TRUE, f.metadata().get("tokenizer.ggml.add_bos_token"));
        TensorInfo out = f.tensor("output.weight").orElseThrow();
        assertEquals("q6_K", out.typeName());
        assertTrue(Arrays.equals(new long[] {256, 1024}, out.shape()));
        assertEquals(256L * 1024 / 256 * 210, out.bytes());
        List<?> tokens = (List<?>) f.metadata().get("tokenizer.ggml.tokens");
        assertEquals("<s>", tokens.get(1));
    }

    @Test
    void modelInfoSummarisesEveryModel() {
        ModelInfo i = ModelInfo.of(GgufFile.read(TestData.model("tiny-qwen2-q8_0.gguf")));
        assertEquals("qwen2", i.architecture());
        assertEquals(3, i.blockCount());
        assertEquals(1024, i.vocabSize());
        assertEquals(1e6, i.ropeFreqBase(), 0);
        assertTrue(i.tensorTypes().containsKey("q8_0"));
        // Parameters from the hyper-parameters, not from the tensor list: tied embeddings, the
        // output norm, and per layer two norms, Q and O, K and V (kv wide), the QKV biases and
        // three FFN matrices.
        GgufFile f = GgufFile.read(TestData.model("tiny-qwen2-q8_0.gguf"));
        long e = f.integer("qwen2.embedding_length").orElseThrow(), ff = f.integer("qwen2.feed_forward_length").orElseThrow();
        long kv = e * f.integer("qwen2.attention.head_count_kv").orElseThrow()
                / f.integer("qwen2.attention.head_count").orElseThrow();
        long layer = 2 * e + 2 * e * e + 2 * e * kv + (e + 2 * kv) + 3 * e * ff;
        assertEquals(1024 * e + e + 3 * layer, i.parameterCount());
        ModelInfo q = ModelInfo.of(GgufFile.read(TestData.vocab("ggml-vocab-qwen2.gguf")));
        assertTrue(q.chatTemplatePresent());
        assertEquals("chatml", q.chatFormat());
        assertTrue(q.tokenizer().contains("qwen2"));
        assertTrue(q.format().contains("chat template:  present (chatml)"));
    }

    @Test
    void truncatedFilesFailWithFieldAndOffset() throws IOException {
        byte[] bytes = Files.readAllBytes(TestData.model("tiny-llama-q8_0.gguf"));
        Path cut = tmp.resolve("cut.gguf");
        for (int n : new int[] {0, 3, 8, 23, 40, 100, 1000, 30000, bytes.length - 1}) {
            Files.write(cut, Arrays.copyOf(bytes, n));
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> GgufFile.read(cut), "cut at " + n);
            assertTrue(e.getMessage().contains("at byte"), e.getMessage());
            assertThrows(ModelFormatException.class, () -> Model.load(cut));
        }
    }

    @Test
    void mutatedFilesNeverCrashTheJvm() throws IOException {
        byte[] bytes = Files.readAllBytes(TestData.model("tiny-qwen2-q8_0.gguf"));
        Random rnd = new Random(7);
        Path m = tmp.resolve("m.gguf");
        int refused = 0;
        for (int i = 0; i < 300; i++) {
            byte[] b = Arrays.copyOf(bytes, 8192);
            for (int k = 0; k < 3; k++) b[rnd.nextInt(2048)] = (byte) rnd.nextInt();
            Files.write(m, b);
            try {
                GgufFile.read(m);
            } catch (ModelFormatException e) {
                refused++;
            }
        }
        assertTrue(refused > 250, "a cut file must be refused: its tensor data is missing");
    }

    @Test
    void missingFileIsAnIoError() {
        EdgeInfiniteException e = assertThrows(EdgeInfiniteException.class,
                () -> GgufFile.read(tmp.resolve("absent.gguf")));
        assertEquals(EdgeInfiniteException.Status.IO, e.status());
        assertTrue(e.getMessage().contains("absent.gguf"));
    }

    @Test
    void writerRoundTripsThroughTheNativeReader() throws IOException {
        Path p = tmp.resolve("w.gguf");
        new GgufWriter().putString("general.architecture", "llama").putUInt32("a.u32", 7).putFloat32("a.f", 1.5f)
                .putBool("a.b", true).putStringArray("a.s", List.of("x", "yz"))
                .addTensor("t", 0, new long[] {8, 2}, 64, out -> out.write(new byte[64])).write(p);
        GgufFile f = GgufFile.read(p);
        assertEquals(7L, f.integer("a.u32").orElseThrow());
        assertEquals(1.5, f.real("a.f").orElseThrow(), 0);
        assertEquals(List.of("x", "yz"), f.metadata().get("a.s"));
        assertEquals(64, f.tensor("t").orElseThrow().bytes());
    }
}
