package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.edgeinfinite.GgufWriter;
import io.edgeinfinite.TestData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The importance-matrix reader ({@link Imatrix}) on valid files (ours, and llama-imatrix's
 * where it is built) and on malformed ones: each is refused with a message naming the file
 * and what is wrong. The reader is Java (the GGUF structure itself goes through the fuzzed
 * native reader), hence these tests rather than a libFuzzer target.
 */
class ImatrixReaderTest {
    @TempDir
    Path tmp;

    static byte[] f32(float... v) {
        ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) bb.putFloat(f);
        return bb.array();
    }

    /** Writes an imatrix file as llama-imatrix lays it out: per entry in_sum2 [n] and counts [1]. */
    static void write(Path p, Map<String, float[]> sums, float count) throws IOException {
        write(p, w -> {
            for (Map.Entry<String, float[]> e : new TreeMap<>(sums).entrySet()) {
                float[] s = e.getValue();
                w.addTensor(e.getKey() + ".in_sum2", 0, new long[] {s.length}, 4L * s.length, o -> o.write(f32(s)));
                w.addTensor(e.getKey() + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(count)));
            }
        }, "imatrix");
    }

    static void write(Path p, Consumer<GgufWriter> tensors, String type) throws IOException {
        GgufWriter w = new GgufWriter();
        if (type != null) w.putString("general.type", type);
        w.putStringArray("imatrix.datasets", List.of("calib.txt")).putUInt32("imatrix.chunk_count", 4)
                .putUInt32("imatrix.chunk_size", 512);
        tensors.accept(w);
        w.write(p);
    }

    String refused(Consumer<GgufWriter> tensors, String type) throws IOException {
        Path p = tmp.resolve("bad-" + System.nanoTime() + ".gguf");
        write(p, tensors, type);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Imatrix.read(p));
        assertTrue(e.getMessage().startsWith("imatrix " + p + ": "), e.getMessage());
        return e.getMessage();
    }

    @Test
    void readsImportanceAsMeanSquares() throws IOException {
        Path p = tmp.resolve("ok.gguf");
        write(p, Map.of("blk.0.attn_q.weight", new float[] {4, 8, 0, 2}, "blk.0.ffn_down.weight", new float[] {1, 1}), 4f);
        Map<String, float[]> m = Imatrix.read(p);
        assertEquals(2, m.size());
        assertArrayEquals(new float[] {1, 2, 0, 0.5f}, m.get("blk.0.attn_q.weight"));
        assertArrayEquals(new float[] {0.25f, 0.25f}, m.get("blk.0.ffn_down.weight"));
    }

    @Test
    void readsLlamaImatrixFiles() throws Exception {
        Path tool = QuantizeTest.llamaBin("llama-imatrix");
        assumeTrue(Files.isExecutable(tool), "llama.cpp's llama-imatrix is not built here (" + tool + ")");
        Path out = tmp.resolve("eval.imatrix.gguf");
        Path text = tmp.resolve("calib.txt");
        Files.writeString(text, Files.readString(TestData.root().resolve("eval/dev.txt")).substring(0, 20000));
        QuantizeTest.runTool(tmp, tool.toString(), "-m", TestData.root().resolve("eval/evalmodel-f32.gguf").toString(),
                "-f", text.toString(), "-o", out.toString(), "-c", "128", "--chunks", "2", "-t", "2");
        Map<String, float[]> m = Imatrix.read(out);
        // 4 layers x 7 matrices (q, k, v, output, gate, up, down) and the output matrix.
        assertTrue(m.size() >= 28, "entries: " + m.keySet());
        assertEquals(256, m.get("blk.0.attn_q.weight").length);
        assertEquals(768, m.get("blk.3.ffn_down.weight").length);
        assertTrue(m.get("blk.0.attn_q.weight")[0] > 0);
    }

    @Test
    void refusesMalformedFiles() throws IOException {
        Path junk = tmp.resolve("junk.gguf");
        Files.writeString(junk, "GGUF but not really");
        assertThrows(IllegalArgumentException.class, () -> Imatrix.read(junk));
        Path missing = tmp.resolve("missing.gguf");
        assertThrows(RuntimeException.class, () -> Imatrix.read(missing));

        String ok = "blk.0.attn_q.weight";
        Consumer<GgufWriter> good = w -> {
            w.addTensor(ok + ".in_sum2", 0, new long[] {4}, 16, o -> o.write(f32(1, 2, 3, 4)));
            w.addTensor(ok + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(2)));
        };
        assertTrue(refused(good, null).contains("general.type is missing"));
        assertTrue(refused(good, "model").contains("general.type is 'model'"));
        assertTrue(refused(w -> {}, "imatrix").contains("no .in_sum2 tensors"));
        assertTrue(refused(w -> w.addTensor(ok + ".in_sum2", 0, new long[] {4}, 16, o -> o.write(f32(1, 2, 3, 4))), "imatrix")
                .contains("has no " + ok + ".counts"));
        assertTrue(refused(w -> w.addTensor(ok + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(2))), "imatrix")
                .contains("has no " + ok + ".in_sum2"));
        for (float c : new float[] {0, -1, Float.NaN, Float.POSITIVE_INFINITY}) {
            String msg = refused(w -> {
                w.addTensor(ok + ".in_sum2", 0, new long[] {4}, 16, o -> o.write(f32(1, 2, 3, 4)));
                w.addTensor(ok + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(c)));
            }, "imatrix");
            assertTrue(msg.contains("must be a positive finite count"), msg);
        }
        for (float v : new float[] {-1, Float.NaN, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY}) {
            String msg = refused(w -> {
                w.addTensor(ok + ".in_sum2", 0, new long[] {4}, 16, o -> o.write(f32(1, v, 3, 4)));
                w.addTensor(ok + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(2)));
            }, "imatrix");
            assertTrue(msg.contains("column 1 holds") && msg.contains("finite sum of squares"), msg);
        }
        String f16 = refused(w -> {
            w.addTensor(ok + ".in_sum2", 1, new long[] {4}, 8, o -> o.write(new byte[8]));
            w.addTensor(ok + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(2)));
        }, "imatrix");
        assertTrue(f16.contains("must be f32"), f16);
        String moe = refused(w -> {
            w.addTensor(ok + ".in_sum2", 0, new long[] {2, 2}, 16, o -> o.write(f32(1, 2, 3, 4)));
            w.addTensor(ok + ".counts", 0, new long[] {2}, 8, o -> o.write(f32(2, 2)));
        }, "imatrix");
        assertTrue(moe.contains("mixture-of-experts"), moe);
        String shape = refused(w -> {
            w.addTensor(ok + ".in_sum2", 0, new long[] {2, 2}, 16, o -> o.write(f32(1, 2, 3, 4)));
            w.addTensor(ok + ".counts", 0, new long[] {1}, 4, o -> o.write(f32(2)));
        }, "imatrix");
        assertTrue(shape.contains("expected [n_cols]"), shape);
        // A file cut inside its tensor data: the GGUF reader refuses it, named as the imatrix.
        Path whole = tmp.resolve("whole.gguf");
        write(whole, Map.of(ok, new float[64]), 1f);
        byte[] b = Files.readAllBytes(whole);
        Path cut = tmp.resolve("cut.gguf");
        Files.write(cut, Arrays.copyOf(b, b.length - 40));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Imatrix.read(cut));
        assertTrue(e.getMessage().startsWith("imatrix " + cut), e.getMessage());
    }
}
