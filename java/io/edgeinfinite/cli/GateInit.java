package io.edgeinfinite.cli;

import io.edgeinfinite.GgufFile;
import io.edgeinfinite.GgufWriter;
import io.edgeinfinite.TensorInfo;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/**
 * {@code ei gate-init}: writes a copy of a model with constant EdgeInfinite memory gates
 * and the {@code edgeinfinite.*} settings. Every original key and tensor is copied
 * unchanged (tensor data byte for byte); gates already present are replaced.
 *
 * <p>Gate layout (see DESIGN §1): a scalar gate is {@code blk.N.ei_gate.weight} of shape
 * [n_head], g_h = sigmoid(w_h); an adaptive gate is {@code blk.N.ei_gate.weight} of shape
 * [2 * head_dim, n_head] (the first head_dim weights of each head apply to A_mem, the rest to
 * A_local) plus {@code blk.N.ei_gate.bias} [n_head], g = sigmoid(w . [A_mem ; A_local] + b).
 * Here the scalar gate's weights, or the adaptive gate's bias (with zero weights), are all
 * set to the value B, so every head starts at g = sigmoid(B).
 */
final class GateInit {
    private GateInit() {}

    static void run(Main.Args a, PrintStream out) throws IOException {
        Path in = Path.of(a.required("-m")), dest = Path.of(a.required("-o"));
        float value = a.floatOpt("--value", Float.NaN);
        if (Float.isNaN(value)) throw new Main.UsageException("missing option --value B (g = sigmoid(B))");
        boolean adaptive = a.opt("--gate", "scalar").equals("adaptive");
        if (!adaptive && !a.opt("--gate", "scalar").equals("scalar")) {
            throw new Main.UsageException("--gate must be scalar or adaptive");
        }
        Settings settings = new Settings(a.intOpt("--sink", 64), a.intOpt("--window", 2048), a.intOpt("-L", 128),
                a.opt("--rule", "linear"), a.opt("--memory-keys", "nope").equals("rope"));
        int layers = write(in, dest, settings, adaptive, (layer, heads, headDim) -> {
            float[] w = adaptive ? new float[2 * headDim * heads] : filled(heads, value);
            return new float[][] {w, adaptive ? filled(heads, value) : null};
        });
        out.printf("wrote %s: %s gates g = sigmoid(%.3f) = %.4f in %d layers, with edgeinfinite.* settings%n", dest,
                adaptive ? "adaptive" : "scalar", value, 1 / (1 + Math.exp(-value)), layers);
    }

    /** The edgeinfinite.* scenario settings written with the gates. */
    record Settings(int sink, int window, int segmentLength, String rule, boolean memoryRope) {}

    /** A layer's gate tensors: {weight, bias} (bias null for the scalar gate). */
    @FunctionalInterface
    interface LayerGates {
        float[][] of(int layer, int heads, int headDim);
    }

    /**
     * Writes dest: the model in with the settings and the given gates (the one writer of gated
     * model copies: gate-init and fit-gates). Returns the number of layers.
     */
    static int write(Path in, Path dest, Settings s, boolean adaptive, LayerGates gates) throws IOException {
        if (in.toAbsolutePath().equals(dest.toAbsolutePath())) throw new Main.UsageException("-o must differ from -m");
        GgufFile f = GgufFile.read(in);
        String arch = f.string("general.architecture").orElseThrow(() -> new IllegalArgumentException(
                in + " has no general.architecture"));
        int layers = f.integer(arch + ".block_count").orElseThrow().intValue();
        int heads = f.integer(arch + ".attention.head_count").orElseThrow().intValue();
        int headDim = f.integer(arch + ".attention.key_length")
                .orElse(f.integer(arch + ".embedding_length").orElseThrow() / heads).intValue();

        GgufWriter w = new GgufWriter();
        for (Map.Entry<String, Object> e : f.metadata().entrySet()) {
            String k = e.getKey();
            if (k.equals("general.alignment") || k.startsWith("edgeinfinite.")) continue;
            w.putValue(k, f.types().get(k), e.getValue());
        }
        w.putUInt32("edgeinfinite.sink", s.sink()).putUInt32("edgeinfinite.window", s.window())
                .putUInt32("edgeinfinite.segment_length", s.segmentLength())
                .putString("edgeinfinite.memory.rule", s.rule())
                .putBool("edgeinfinite.memory.rope", s.memoryRope())
                .putString("edgeinfinite.gate", adaptive ? "adaptive" : "scalar");

        try (FileChannel src = FileChannel.open(in, StandardOpenOption.READ)) {
            for (TensorInfo t : f.tensors()) {
                if (t.name().contains(".ei_gate.")) continue;
                long from = f.dataOffset() + t.offset();
                w.addTensor(t.name(), t.type(), t.shape(), t.bytes(), o -> {
                    long done = 0;
                    var sink = Channels.newChannel(o);
                    while (done < t.bytes()) done += src.transferTo(from + done, t.bytes() - done, sink);
                });
            }
            for (int l = 0; l < layers; l++) {
                String p = "blk." + l + ".ei_gate.";
                float[][] g = gates.of(l, heads, headDim);
                int want = adaptive ? 2 * headDim * heads : heads;
                if (g[0].length != want || (adaptive && (g[1] == null || g[1].length != heads))) {
                    throw new IllegalArgumentException("gates of layer " + l + " do not fit " + heads + " heads of "
                            + headDim);
                }
                w.addTensor(p + "weight", 0, adaptive ? new long[] {2L * headDim, heads} : new long[] {heads},
                        4L * want, o -> o.write(bytes(g[0])));
                if (adaptive) w.addTensor(p + "bias", 0, new long[] {heads}, 4L * heads, o -> o.write(bytes(g[1])));
            }
            w.write(dest);
        }
        return layers;
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    private static byte[] bytes(float[] v) {
        ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) bb.putFloat(x);
        return bb.array();
    }
}
