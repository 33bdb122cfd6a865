package io.edgeinfinite.cli;

import io.edgeinfinite.GgufWriter;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;

/**
 * {@code ei imatrix}: the importance matrix of a model over calibration text, as
 * llama-imatrix computes it. The text is chunked as perplexity chunks it (BOS in front,
 * ctx-token chunks, each from an empty context with its first token replaced by BOS), every
 * chunk runs with full attention, and for every weight matrix of the blocks the runtime's
 * collector sums x_j^2 of the activations it multiplies over all ctx rows of every chunk.
 * The file is the GGUF that llama-imatrix writes (imatrix_format.md): general.type
 * "imatrix", imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size, and per matrix W the
 * F32 tensors {@code W.in_sum2 [n_cols]} and {@code W.counts [1]}, sorted by name.
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
}
