package io.edgeinfinite.cli;

import io.edgeinfinite.EdgeInfiniteException;
import io.edgeinfinite.GgufFile;
import io.edgeinfinite.GgufWriter;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import io.edgeinfinite.TensorInfo;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code ei imatrix}: the importance matrix of a model over calibration text, as
 * llama-imatrix computes it. The text is chunked as perplexity chunks it (BOS in front,
 * ctx-token chunks, each from an empty context with its first token replaced by BOS), every
 * chunk runs with full attention, and for every weight matrix of the blocks the runtime's
 * collector sums x_j^2 of the activations it multiplies over all ctx rows of every chunk.
 * The file is the GGUF that llama-imatrix writes (imatrix_format.md): general.type
 * "imatrix", imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size, and per matrix W the
 * F32 tensors {@code W.in_sum2 [n_cols]} and {@code W.counts [1]}, sorted by name.
 *
 * <p>{@link #read} reads such a file for {@code ei quantize --imatrix}. The file is untrusted:
 * its GGUF structure goes through the native reader (fuzzed with the model files); the
 * semantic checks here (types, shapes, pairs, finite non-negative sums, positive counts) are
 * covered by malformed-file JUnit tests (ImatrixReaderTest). Entries other than
 * {@code .in_sum2} / {@code .counts} tensors are ignored (newer writers may add some).
 */
final class Imatrix {
    private Imatrix() {}

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        String textPath = a.required("-f");
        Path dest = Path.of(a.required("-o"));
        int ctx = a.intOpt("--ctx", 512);
        boolean withOutput = a.flag("--process-output");
        String text = Perplexity.asRead(Files.readString(Path.of(textPath), StandardCharsets.UTF_8));
        Scenario sc = Scenario.builder().sink(0).window(Math.max(ctx, 2)).segmentLength(Math.max(1, Math.min(ctx, 128)))
                .memory(false).threads(a.intOpt("-t", 0)).build();
        long t0 = System.nanoTime();
        try (Model m = Model.load(Path.of(a.required("-m"))); Session s = m.newSession(sc)) {
            Perplexity.Chunking ch = Perplexity.Chunking.of(Perplexity.tokens(m, text), ctx, a.intOpt("--chunks", 0),
                    m.addsBos() ? m.bosToken() : -1);
            s.startImportanceMatrix(withOutput);
            Perplexity.Progress progress = Main.chunkProgress(err, "chunks");
            for (int c = 0; c < ch.chunks(); c++) {
                s.reset();
                // The output head multiplies every row only when every row's logits are asked for.
                if (withOutput) s.logits(ch.input(c));
                else s.eval(ch.input(c));
                progress.update(c + 1, ch.chunks());
            }
            List<Session.ImatrixEntry> entries = s.importanceMatrix();
            s.stopImportanceMatrix();
            write(dest, entries, List.of(textPath), ch.chunks(), ctx);
            out.printf(java.util.Locale.ROOT, "wrote the importance matrix of %d matrices over %d chunks of %d (%d rows each) to %s (%.1f s)%n",
                    entries.size(), ch.chunks(), ctx, entries.isEmpty() ? 0 : entries.get(0).rows(), dest,
                    (System.nanoTime() - t0) / 1e9);
        }
    }

    /** Writes entries in llama-imatrix's GGUF layout. */
    static void write(Path dest, List<Session.ImatrixEntry> entries, List<String> datasets, int chunks, int chunkSize)
            throws IOException {
        GgufWriter w = new GgufWriter().putString("general.type", "imatrix").putStringArray("imatrix.datasets", datasets)
                .putUInt32("imatrix.chunk_count", chunks).putUInt32("imatrix.chunk_size", chunkSize);
        for (Session.ImatrixEntry e : entries.stream().sorted(Comparator.comparing(Session.ImatrixEntry::name)).toList()) {
            float[] sums = e.sumOfSquares();
            w.addTensor(e.name() + ".in_sum2", 0, new long[] {sums.length}, 4L * sums.length, o -> floats(o, sums));
            w.addTensor(e.name() + ".counts", 0, new long[] {1}, 4, o -> floats(o, new float[] {e.rows()}));
        }
        w.write(dest);
    }

    private static void floats(java.io.OutputStream o, float[] v) throws IOException {
        byte[] b = new byte[4 * v.length];
        java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(v);
        o.write(b);
    }

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
