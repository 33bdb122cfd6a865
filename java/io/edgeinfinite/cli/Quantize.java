package io.edgeinfinite.cli;

import io.edgeinfinite.GgufFile;
import io.edgeinfinite.GgufWriter;
import io.edgeinfinite.TensorInfo;
import io.edgeinfinite.internal.Native;
import io.edgeinfinite.internal.NativeBinding;
import java.io.Console;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code ei quantize IN.gguf OUT.gguf TYPE}: writes a copy of a model with its matrices
 * quantized by the recipe of TYPE (see {@link QuantRecipe}). The file is written by
 * {@link GgufWriter} (the project's one GGUF writer), streaming: each tensor is read from the
 * input in slabs of rows (at most {@link #SLAB_BYTES} of source at a time), quantized by the
 * native row quantizers (ei_quantize_rows, multithreaded over rows) and written, so memory
 * stays a few slabs whatever the model's size. Every metadata key is copied;
 * general.file_type is set to llama.cpp's number for the recipe and
 * general.quantization_version to 2; tensor order and alignment are kept.
 */
final class Quantize {
    /** Source bytes quantized per native call. */
    static final int SLAB_BYTES = 8 << 20;

    private Quantize() {}

    static boolean isFloat(int type) {
        return type == QuantRecipe.F32 || type == QuantRecipe.F16 || type == QuantRecipe.BF16;
    }

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        Path in = Path.of(a.positional(0, "IN.gguf")), dest = Path.of(a.positional(1, "OUT.gguf"));
        QuantRecipe.Mix mix = QuantRecipe.Mix.parse(a.positional(2, "TYPE (q8_0, q4_0, q4_k, q6_k, q4_k_m, q4_k_s)"));
        if (in.toAbsolutePath().normalize().equals(dest.toAbsolutePath().normalize())) {
            throw new Main.UsageException("OUT.gguf must differ from IN.gguf");
        }
        List<QuantRecipe.Override> overrides = new ArrayList<>();
        for (String s : a.all("--type-override")) overrides.add(QuantRecipe.Override.parse(s));
        QuantRecipe.Options o = new QuantRecipe.Options(mix, a.flag("--pure"), a.flag("--keep-output"),
                a.flag("--token-embedding-type") ? QuantRecipe.parseType(a.opt("--token-embedding-type", ""), "--token-embedding-type") : -1,
                a.flag("--output-type") ? QuantRecipe.parseType(a.opt("--output-type", ""), "--output-type") : -1, overrides);
        int threads = a.intOpt("--threads", a.intOpt("-t", 0));
        boolean requantize = a.flag("--allow-requantize");
        Map<String, float[]> imatrix = a.flag("--imatrix") ? Imatrix.read(Path.of(a.opt("--imatrix", ""))) : null;
        quantize(in, dest, o, imatrix, threads, requantize, out, err);
    }

    /** Per tensor: the recipe's choice, the output size, and the importances it is quantized with. */
    private record Job(QuantRecipe.Choice c, long rows, long cols, long srcRow, long dstRow, float[] importance) {
        long bytes() {
            return c.quantize() ? rows * dstRow : c.tensor().bytes();
        }
    }

    static void quantize(Path in, Path dest, QuantRecipe.Options o, Map<String, float[]> imatrix, int threads,
            boolean requantize, PrintStream out, PrintStream err) throws IOException {
        long t0 = System.nanoTime();
        NativeBinding nb = Native.binding();
        GgufFile f = GgufFile.read(in);
        String arch = f.string("general.architecture").orElse("");
        int nLayer = f.integer(arch + ".block_count").map(Long::intValue).orElse(0);
        List<QuantRecipe.Choice> plan = QuantRecipe.plan(f.tensors(), nLayer, o);

        // Everything that can refuse the job is checked before the output file exists.
        List<Job> jobs = new ArrayList<>();
        for (QuantRecipe.Choice c : plan) {
            TensorInfo t = c.tensor();
            long cols = t.shape()[0], rows = cols == 0 ? 0 : t.elements() / cols;
            if (!c.quantize()) {
                jobs.add(new Job(c, rows, cols, 0, 0, null));
                continue;
            }
            if (!isFloat(t.type())) {
                if (!requantize) {
                    throw new IllegalArgumentException("tensor " + t.name() + " is already quantized (" + t.typeName()
                            + "); re-quantizing loses precision: pass --allow-requantize to dequantize it and quantize it to "
                            + QuantRecipe.typeName(c.type()) + " anyway");
                }
                err.println("warning: re-quantizing " + t.name() + ": " + t.typeName() + " is dequantized, then quantized to "
                        + QuantRecipe.typeName(c.type()));
            }
            long srcRow = nb.tensorRowSize(t.type(), cols), dstRow = nb.tensorRowSize(c.type(), cols);
            if (srcRow <= 0 || dstRow <= 0 || srcRow > SLAB_BYTES * 16L) {
                throw new IllegalArgumentException("tensor " + t.name() + ": cannot convert rows of " + cols + " " + t.typeName()
                        + " to " + QuantRecipe.typeName(c.type()));
            }
            if (c.note() != null) err.println("note: " + t.name() + ": " + c.note());
            float[] imp = null;
            if (imatrix != null && !isFloat(c.type())) {
                imp = imatrix.get(t.name());
                if (imp == null) {
                    err.println("warning: the importance matrix has no entry for " + t.name() + ": quantized unweighted");
                } else if (imp.length != cols || t.shape().length > 2) {
                    throw new IllegalArgumentException("imatrix entry for " + t.name() + " has " + imp.length
                            + " columns; the tensor has shape " + java.util.Arrays.toString(t.shape()));
                }
            }
            jobs.add(new Job(c, rows, cols, srcRow, dstRow, imp));
        }

        // general.alignment stays where and as it was (absent means 32).
        GgufWriter w = new GgufWriter().alignment((int) f.alignment(), false);
        for (Map.Entry<String, Object> e : f.metadata().entrySet()) {
            w.putValue(e.getKey(), f.types().get(e.getKey()), e.getValue());
        }
        w.putUInt32("general.quantization_version", 2).putUInt32("general.file_type", o.mix().ftype);

        Progress progress = new Progress(err, jobs.size());
        long inBytes = 0, outBytes = 0, elements = 0;
        Path part = dest.resolveSibling(dest.getFileName() + ".part");
        try (FileChannel src = FileChannel.open(in, StandardOpenOption.READ)) {
            byte[][] buf = new byte[2][];
            for (int i = 0; i < jobs.size(); i++) {
                Job j = jobs.get(i);
                TensorInfo t = j.c.tensor();
                inBytes += t.bytes();
                outBytes += j.bytes();
                elements += t.elements();
                long from = f.dataOffset() + t.offset();
                int index = i;
                w.addTensor(t.name(), j.c.type(), t.shape(), j.bytes(), os -> {
                    if (!j.c.quantize()) {
                        long done = 0;
                        var sink = Channels.newChannel(os);
                        while (done < t.bytes()) done += src.transferTo(from + done, t.bytes() - done, sink);
                    } else {
                        long slab = Math.max(1, Math.min(j.rows, SLAB_BYTES / j.srcRow));
                        int srcLen = (int) (slab * j.srcRow), dstLen = (int) (slab * j.dstRow);
                        if (buf[0] == null || buf[0].length < srcLen) buf[0] = new byte[srcLen];
                        if (buf[1] == null || buf[1].length < dstLen) buf[1] = new byte[dstLen];
                        for (long r = 0; r < j.rows; r += slab) {
                            long n = Math.min(slab, j.rows - r);
                            read(src, from + r * j.srcRow, buf[0], (int) (n * j.srcRow));
                            nb.quantizeRows(j.c.type(), t.type(), buf[0], n * j.srcRow, n, j.cols, j.importance, threads,
                                    buf[1], n * j.dstRow);
                            os.write(buf[1], 0, (int) (n * j.dstRow));
                            progress.within(index, r + n, j.rows);
                        }
                    }
                    progress.done(index, j);
                });
            }
            try {
                w.write(part);
                Files.move(part, dest, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(part);
            }
        }
        progress.finish();
        double s = (System.nanoTime() - t0) / 1e9;
        out.printf(Locale.ROOT, "quantized %s -> %s (%s%s)%n", in, dest, o.mix().label, imatrix != null ? ", importance-weighted" : "");
        out.printf(Locale.ROOT, "tensors: %.2f MiB (%.2f bits per weight) -> %.2f MiB (%.2f bits per weight)%n", inBytes / 1048576.0,
                8.0 * inBytes / elements, outBytes / 1048576.0, 8.0 * outBytes / elements);
        out.printf(Locale.ROOT, "file: %,d -> %,d bytes in %.1f s%n", Files.size(in), Files.size(dest), s);
    }

    private static void read(FileChannel ch, long pos, byte[] dst, int len) throws IOException {
        ByteBuffer bb = ByteBuffer.wrap(dst, 0, len);
        while (bb.hasRemaining()) {
            if (ch.read(bb, pos + bb.position()) < 0) throw new IOException("input ends inside tensor data");
        }
    }

    /**
     * Progress: on a terminal, one bar redrawn in place (with the tensor in hand and its rows);
     * otherwise one line per tensor, so logs stay readable.
     */
    private static final class Progress {
        private final PrintStream err;
        private final int total;
        private final boolean bar;
        private long lastDraw;

        Progress(PrintStream err, int total) {
            this.err = err;
            this.total = total;
            this.bar = err == System.err && terminal();
        }

        /** Whether stderr is a terminal: Console.isTerminal on JDK 22+, where System.console() may exist without one. */
        private static boolean terminal() {
            Console c = System.console();
            if (c == null) return false;
            try {
                return (Boolean) Console.class.getMethod("isTerminal").invoke(c);
            } catch (ReflectiveOperationException e) {
                return true;
            }
        }

        void within(int index, long rows, long of) {
            if (!bar) return;
            long now = System.nanoTime();
            if (now - lastDraw < 100_000_000L) return;
            lastDraw = now;
            draw(index + (double) rows / of);
        }

        void done(int index, Job j) {
            TensorInfo t = j.c.tensor();
            if (bar) {
                draw(index + 1);
                return;
            }
            String to = j.c.quantize() ? QuantRecipe.typeName(j.c.type()) : "copied";
            err.printf(Locale.ROOT, "[%4d/%4d] %-32s %-14s %5s -> %-6s %9.3f -> %9.3f MiB%n", index + 1, total, t.name(),
                    java.util.Arrays.toString(t.shape()), t.typeName(), to, t.bytes() / 1048576.0, j.bytes() / 1048576.0);
        }

        private void draw(double done) {
            int width = 40, filled = (int) (width * done / total);
            err.printf(Locale.ROOT, "\r[%s%s] %3d%% %d/%d tensors", "=".repeat(filled), " ".repeat(width - filled),
                    (int) (100 * done / total), (int) done, total);
            err.flush();
        }

        void finish() {
            if (bar) err.print("\r" + " ".repeat(80) + "\r");
        }
    }
}
