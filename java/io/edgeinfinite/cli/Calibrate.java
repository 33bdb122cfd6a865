package io.edgeinfinite.cli;

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
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code ei calibrate}: what a quantized backend (the NPU) needs to choose scales and weight
 * formats, written as JSON (format "edgeinfinite-calibration", version 1; fields in the
 * README section "Calibration file").
 * <ul>
 *   <li>Activation ranges: the model runs over the calibration chunks (chunked as perplexity
 *       chunks, full attention) with the session's range collector, which records for each
 *       op output exact min and max and |x| quantiles from a log-scale histogram.</li>
 *   <li>Per-layer sensitivity: for each layer and each NPU weight format, a copy of the model
 *       with only that layer's seven matrices fake-quantized is written to a temporary file,
 *       loaded, and run over the first scored positions; its logits are compared with the
 *       float model's (KL divergence, relative logit MSE, same top token). A file copy keeps
 *       the runtime untouched (no weight-patching hook) and costs one model's size on disk.</li>
 * </ul>
 */
final class Calibrate {
    static final double[] QUANTILES = {0.5, 0.9, 0.99, 0.999, 0.9999};
    static final String[] MATRICES = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

    private Calibrate() {}

    /** An NPU weight format, applied in place to a row-major [rows x cols] matrix. */
    enum WeightFormat {
        /** int8, one scale per output channel (row): s = max|w| / 127, q = round(w / s) in [-127, 127]. */
        INT8_PER_CHANNEL("int8_per_channel", 127, Integer.MAX_VALUE),
        /** int4, one scale per block of 32 inputs of each row: s = max|w| / 7, q = round(w / s) in [-7, 7]. */
        INT4_BLOCK32("int4_block32", 7, 32);

        final String key;
        final int qmax, block;

        WeightFormat(String key, int qmax, int block) {
            this.key = key;
            this.qmax = qmax;
            this.block = block;
        }

        /** Symmetric fake quantization: each group's values snap to s * q, rounding half away from zero. */
        void apply(float[] w, int rows, int cols) {
            int b = Math.min(block, cols);
            for (int r = 0; r < rows; r++) {
                for (int c0 = 0; c0 < cols; c0 += b) {
                    int off = r * cols + c0, n = Math.min(b, cols - c0);
                    float amax = 0;
                    for (int j = 0; j < n; j++) amax = Math.max(amax, Math.abs(w[off + j]));
                    if (amax == 0) continue;
                    float s = amax / qmax;
                    for (int j = 0; j < n; j++) {
                        float x = w[off + j] / s;
                        float q = Math.min(qmax, (float) Math.floor(Math.abs(x) + 0.5f));
                        w[off + j] = Math.copySign(q, x) * s;
                    }
                }
            }
        }
    }

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        Path modelPath = Path.of(a.required("-m")), dest = Path.of(a.required("-o"));
        String textPath = a.required("-f");
        int ctx = a.intOpt("--ctx", 512), maxChunks = a.intOpt("--chunks", 16), maxPositions = a.intOpt("--sensitivity-tokens", 4096);
        if (maxPositions < 1) throw new Main.UsageException("--sensitivity-tokens must be at least 1");
        String text = Perplexity.asRead(Files.readString(Path.of(textPath), StandardCharsets.UTF_8));
        Scenario sc = Scenario.builder().sink(0).window(Math.max(ctx, 2)).segmentLength(Math.max(1, Math.min(ctx, 128)))
                .memory(false).threads(a.intOpt("-t", 0)).build();
        GgufFile f = GgufFile.read(modelPath);
        int layers = checkFloatMatrices(f);
        long t0 = System.nanoTime();

        Perplexity.Chunking ch;
        List<Session.ActivationRange> ranges;
        int vocab;
        float[][] base;  // base logits of the sensitivity positions, per chunk used: [chunk][pos x vocab]
        int sensChunks, perChunk;
        try (Model m = Model.load(modelPath); Session s = m.newSession(sc)) {
            vocab = m.vocabSize();
            ch = Perplexity.Chunking.of(Perplexity.tokens(m, text), ctx, maxChunks, m.addsBos() ? m.bosToken() : -1);
            perChunk = ch.scoredPerChunk();
            sensChunks = Math.min(ch.chunks(), (maxPositions + perChunk - 1) / perChunk);
            base = new float[sensChunks][];
            s.startActivationRanges();
            Perplexity.Progress p = Main.chunkProgress(err, "chunks (ranges)");
            for (int c = 0; c < ch.chunks(); c++) {
                s.reset();
                float[] l = s.logits(ch.input(c));
                if (c < sensChunks) base[c] = java.util.Arrays.copyOfRange(l, ch.first() * vocab, (ctx - 1) * vocab);
                p.update(c + 1, ch.chunks());
            }
            ranges = s.activationRanges(QUANTILES);
            s.stopActivationRanges();
        }
        int positions = Math.min(maxPositions, sensChunks * perChunk);

        List<String> layerJson = new ArrayList<>();
        Path tmp = Files.createTempFile(dest.toAbsolutePath().getParent(), "calibrate-", ".gguf");
        try {
            for (int l = 0; l < layers; l++) {
                StringBuilder lj = new StringBuilder("    {\"layer\": " + l);
                for (WeightFormat wf : WeightFormat.values()) {
                    writeFakeQuantized(f, modelPath, tmp, l, wf);
                    OutputError e = new OutputError();
                    try (Model m = Model.load(tmp); Session s = m.newSession(sc)) {
                        int done = 0;
                        for (int c = 0; c < sensChunks && done < positions; c++) {
                            s.reset();
                            float[] q = s.logits(ch.input(c));
                            for (int i = 0; i < perChunk && done < positions; i++, done++) {
                                e.add(base[c], i * vocab, q, (ch.first() + i) * vocab, vocab);
                            }
                        }
                    }
                    lj.append(", \"").append(wf.key).append("\": ").append(e.json());
                    err.printf(Locale.ROOT, "  layer %d %s: KL %.6f, logit rel. MSE %.3g%n", l, wf.key, e.kl / e.n, e.mse / e.norm);
                }
                layerJson.add(lj.append('}').toString());
            }
        } finally {
            Files.deleteIfExists(tmp);
        }

        StringBuilder j = new StringBuilder();
        j.append("{\n  \"format\": \"edgeinfinite-calibration\",\n  \"version\": 1,\n");
        j.append("  \"model\": ").append(str(modelPath.toString())).append(",\n");
        j.append("  \"text\": ").append(str(textPath)).append(",\n");
        j.append(String.format(Locale.ROOT, "  \"ctx\": %d,\n  \"chunks\": %d,\n  \"tokens\": %d,\n", ctx, ch.chunks(),
                (long) ch.chunks() * ctx));
        j.append("  \"abs_quantiles\": ").append(nums(QUANTILES)).append(",\n");
        j.append("  \"activations\": {\n");
        for (int i = 0; i < ranges.size(); i++) {
            Session.ActivationRange r = ranges.get(i);
            j.append("    ").append(str(r.name())).append(String.format(Locale.ROOT,
                    ": {\"min\": %s, \"max\": %s, \"count\": %d, \"abs_quantiles\": %s}", num(r.min()), num(r.max()), r.count(),
                    nums(r.absQuantiles())));
            j.append(i + 1 < ranges.size() ? ",\n" : "\n");
        }
        j.append("  },\n  \"sensitivity\": {\n");
        j.append("    \"positions\": ").append(positions).append(",\n");
        j.append("    \"formats\": {\"int8_per_channel\": \"int8, one scale per output row, max|w|/127\", "
                + "\"int4_block32\": \"int4 in [-7, 7], one scale per 32 inputs of each output row, max|w|/7\"},\n");
        j.append("    \"layers\": [\n").append(String.join(",\n", layerJson)).append("\n    ]\n  }\n}\n");
        Files.writeString(dest, j.toString(), StandardCharsets.UTF_8);
        out.printf(Locale.ROOT, "wrote %d activation ranges and %d layers' sensitivity (%d positions) to %s (%.1f s)%n",
                ranges.size(), layers, positions, dest, (System.nanoTime() - t0) / 1e9);
    }

    /** Output error of one fake-quantized copy against the float model, accumulated per position. */
    static final class OutputError {
        double kl, klMax, mse, norm;
        long n, sameTop;

        void add(float[] b, int bo, float[] q, int qo, int v) {
            float mb = TokenScores.maxOf(b, bo, v), mq = TokenScores.maxOf(q, qo, v);
            double lb = mb + TokenScores.logSumExp(b, bo, v, mb), lq = mq + TokenScores.logSumExp(q, qo, v, mq);
            double k = 0, meanB = 0, meanQ = 0;
            for (int i = 0; i < v; i++) {
                double pb = b[bo + i] - lb;
                k += Math.exp(pb) * (pb - (q[qo + i] - lq));
                meanB += b[bo + i];
                meanQ += q[qo + i];
            }
            meanB /= v;
            meanQ /= v;
            for (int i = 0; i < v; i++) {
                double zb = b[bo + i] - meanB, zq = q[qo + i] - meanQ;
                mse += (zq - zb) * (zq - zb);
                norm += zb * zb;
            }
            kl += k;
            klMax = Math.max(klMax, k);
            if (TokenScores.argmax(b, bo, v) == TokenScores.argmax(q, qo, v)) sameTop++;
            n++;
        }

        String json() {
            return String.format(Locale.ROOT, "{\"kl_mean\": %s, \"kl_max\": %s, \"logit_rel_mse\": %s, \"same_top\": %s}",
                    num(kl / n), num(klMax), num(mse / norm), num((double) sameTop / n));
        }
    }

    /** The number of layers, after checking every matrix to fake-quantize holds float weights. */
    static int checkFloatMatrices(GgufFile f) {
        String arch = f.string("general.architecture").orElseThrow(() -> new IllegalArgumentException(
                f.path() + " has no general.architecture"));
        int layers = f.integer(arch + ".block_count").orElseThrow(() -> new IllegalArgumentException(
                f.path() + " has no " + arch + ".block_count")).intValue();
        for (int l = 0; l < layers; l++) {
            for (String mname : MATRICES) {
                String n = "blk." + l + "." + mname + ".weight";
                TensorInfo t = f.tensor(n).orElseThrow(() -> new IllegalArgumentException(f.path() + " has no " + n));
                if (t.type() != 0 && t.type() != 1) {
                    throw new IllegalArgumentException("calibrate measures quantization from float weights: " + n + " is "
                            + t.typeName() + " (give the F32 or F16 model)");
                }
            }
        }
        return layers;
    }

    /** Writes a copy of the model with layer l's matrices fake-quantized (as F32). */
    static void writeFakeQuantized(GgufFile f, Path in, Path out, int layer, WeightFormat wf) throws IOException {
        GgufWriter w = new GgufWriter();
        for (Map.Entry<String, Object> e : f.metadata().entrySet()) {
            if (e.getKey().equals("general.alignment")) continue;
            w.putValue(e.getKey(), f.types().get(e.getKey()), e.getValue());
        }
        try (FileChannel src = FileChannel.open(in, StandardOpenOption.READ)) {
            for (TensorInfo t : f.tensors()) {
                long from = f.dataOffset() + t.offset();
                boolean target = false;
                for (String mname : MATRICES) target |= t.name().equals("blk." + layer + "." + mname + ".weight");
                if (!target) {
                    w.addTensor(t.name(), t.type(), t.shape(), t.bytes(), o -> {
                        long done = 0;
                        var sink = Channels.newChannel(o);
                        while (done < t.bytes()) done += src.transferTo(from + done, t.bytes() - done, sink);
                    });
                    continue;
                }
                int cols = (int) t.shape()[0], rows = (int) (t.elements() / cols);
                float[] v = readFloats(src, from, t);
                wf.apply(v, rows, cols);
                ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
                bb.asFloatBuffer().put(v);
                w.addTensor(t.name(), 0, t.shape(), 4L * v.length, o -> o.write(bb.array()));
            }
            w.write(out);
        }
    }

    static float[] readFloats(FileChannel src, long from, TensorInfo t) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(t.bytes())).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            if (src.read(b, from + b.position()) < 0) throw new IOException("tensor " + t.name() + " is cut short");
        }
        b.flip();
        float[] v = new float[Math.toIntExact(t.elements())];
        if (t.type() == 0) {
            b.asFloatBuffer().get(v);
        } else {
            for (int i = 0; i < v.length; i++) v[i] = halfToFloat(b.getShort());
        }
        return v;
    }

    /** IEEE binary16 to float (java/ targets 17, before Float.float16ToFloat). */
    static float halfToFloat(short h) {
        int s = (h >>> 15) & 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
        float v;
        if (e == 0) v = m * 0x1p-24f;
        else if (e == 31) v = m == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
        else v = Float.intBitsToFloat(((e + 112) << 23) | (m << 13));
        return s == 1 ? -v : v;
    }

    private static String num(double v) {
        if (!Double.isFinite(v)) throw new IllegalStateException("non-finite value in the calibration: " + v);
        return Double.toString(v);
    }

    private static String nums(double[] v) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) b.append(i > 0 ? ", " : "").append(num(v[i]));
        return b.append(']').toString();
    }

    private static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
