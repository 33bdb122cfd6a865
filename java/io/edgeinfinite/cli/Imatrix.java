package io.edgeinfinite.cli;

import io.edgeinfinite.EdgeInfiniteException;
import io.edgeinfinite.GgufFile;
import io.edgeinfinite.TensorInfo;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads an importance-matrix file (the GGUF layout llama-imatrix writes; contract in the
 * README, "Quantizing"): {@code general.type = "imatrix"}, and per weight matrix W an F32
 * tensor {@code W.in_sum2} [n_cols] (sum over activation rows of x_j^2) with an F32
 * {@code W.counts} [1] (rows summed). The importance of column j is in_sum2[j] / counts.
 *
 * <p>The file is untrusted. Its GGUF structure goes through the native reader (fuzzed with
 * the model files); the semantic checks here - types, shapes, pairs, finite non-negative
 * sums, positive counts - are Java, where the command that reads it runs, and are covered
 * by malformed-file JUnit tests (ImatrixTest) rather than a fuzz target. Entries other than
 * {@code .in_sum2} / {@code .counts} tensors are ignored (newer writers may add some).
 */
final class Imatrix {
    private Imatrix() {}

    /** The importance of each column of each matrix named in the file. */
    static Map<String, float[]> read(Path path) throws IOException {
        GgufFile f;
        try {
            f = GgufFile.read(path);
        } catch (EdgeInfiniteException e) {
            throw new IllegalArgumentException("imatrix " + path + ": " + e.getMessage(), e);
        }
        String type = f.string("general.type").orElse(null);
        if (!"imatrix".equals(type)) {
            throw new IllegalArgumentException("imatrix " + path + ": general.type is "
                    + (type == null ? "missing" : "'" + type + "'") + ", not 'imatrix' (not an importance-matrix file)");
        }
        Map<String, TensorInfo> sums = new TreeMap<>(), counts = new TreeMap<>();
        for (TensorInfo t : f.tensors()) {
            if (t.name().endsWith(".in_sum2")) sums.put(t.name().substring(0, t.name().length() - 8), t);
            else if (t.name().endsWith(".counts")) counts.put(t.name().substring(0, t.name().length() - 7), t);
        }
        for (String n : counts.keySet()) {
            if (!sums.containsKey(n)) throw bad(path, "tensor " + n + ".counts has no " + n + ".in_sum2");
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            for (Map.Entry<String, TensorInfo> e : sums.entrySet()) {
                String n = e.getKey();
                TensorInfo s = e.getValue(), c = counts.get(n);
                if (c == null) throw bad(path, "tensor " + s.name() + " has no " + n + ".counts");
                long[] ss = s.shape(), cs = c.shape();
                if (s.type() != 0 || c.type() != 0) {
                    throw bad(path, "tensors of " + n + " must be f32, not " + s.typeName() + " / " + c.typeName());
                }
                if (c.elements() != 1) {
                    throw bad(path, "tensor " + c.name() + " has shape " + Arrays.toString(cs)
                            + " (expected [1]; several counts mean a mixture-of-experts matrix, not supported)");
                }
                if (ss.length == 0 || ss[0] < 1 || s.elements() != ss[0] || ss[0] > Integer.MAX_VALUE / 4) {
                    throw bad(path, "tensor " + s.name() + " has shape " + Arrays.toString(ss) + " (expected [n_cols])");
                }
                float count = floats(ch, f, c, 1)[0];
                if (!(count > 0) || Float.isInfinite(count)) {
                    throw bad(path, "tensor " + c.name() + " holds " + count + " (must be a positive finite count)");
                }
                float[] sum = floats(ch, f, s, (int) ss[0]);
                for (int j = 0; j < sum.length; j++) {
                    if (!(sum[j] >= 0) || Float.isInfinite(sum[j])) {
                        throw bad(path, "tensor " + s.name() + " column " + j + " holds " + sum[j]
                                + " (must be a finite sum of squares)");
                    }
                    sum[j] /= count;
                }
                out.put(n, sum);
            }
        }
        if (out.isEmpty()) throw bad(path, "no .in_sum2 tensors (an empty importance matrix)");
        return out;
    }

    private static IllegalArgumentException bad(Path path, String what) {
        return new IllegalArgumentException("imatrix " + path + ": " + what);
    }

    private static float[] floats(FileChannel ch, GgufFile f, TensorInfo t, int n) throws IOException {
        if (t.bytes() != 4L * n) throw bad(f.path(), "tensor " + t.name() + " holds " + t.bytes() + " bytes, not " + 4L * n);
        ByteBuffer bb = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
        long pos = f.dataOffset() + t.offset();
        while (bb.hasRemaining()) {
            int r = ch.read(bb, pos + bb.position());
            if (r < 0) throw bad(f.path(), "tensor " + t.name() + " runs past the end of the file");
        }
        bb.flip();
        float[] out = new float[n];
        bb.asFloatBuffer().get(out);
        return out;
    }
}
