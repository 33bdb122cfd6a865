package io.edgeinfinite.cli;

import io.edgeinfinite.GgufWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * {@code ei synth}: writes a model with real shapes and random weights, for benchmarks and
 * tests that need a model of a given size without downloading one. Its tokenizer is a
 * SentencePiece-style vocabulary of byte tokens plus generated pieces, so text goes in and
 * out; the text itself is nonsense.
 */
public final class Synth {
    /** Shape of a synthetic model. */
    public record Shape(String arch, int embd, int layers, int heads, int headsKv, int ff, int vocab, boolean tied,
            float ropeBase, int ctx) {}

    static final Map<String, Shape> SHAPES = Map.of(
            "qwen2.5-0.5b", new Shape("qwen2", 896, 24, 14, 2, 4864, 151936, true, 1e6f, 32768),
            // Small enough for the demo to read 16K tokens in well under a minute on 2 cores.
            "demo-40m", new Shape("qwen2", 512, 8, 8, 2, 1536, 32000, true, 1e6f, 32768),
            "tiny", new Shape("llama", 128, 2, 4, 2, 256, 512, false, 10000f, 4096));

    private static final Map<String, Integer> TYPES = Map.of("f32", 0, "f16", 1, "q4_0", 2, "q8_0", 8);

    private Synth() {}

    static List<String> shapes() {
        return SHAPES.keySet().stream().sorted().toList();
    }

    static void run(Main.Args a, PrintStream out) throws IOException {
        String shapeName = a.required("--shape");
        Shape s = SHAPES.get(shapeName);
        if (s == null) throw new Main.UsageException("unknown shape '" + shapeName + "' (known: " + shapes() + ")");
        String typeName = a.opt("--type", "q8_0");
        Integer type = TYPES.get(typeName);
        if (type == null) throw new Main.UsageException("unknown type '" + typeName + "' (known: " + TYPES.keySet() + ")");
        Path dest = Path.of(a.required("-o"));
        long t0 = System.nanoTime();
        write(s, type, a.longOpt("--seed", 1), a.flag("--gate") ? a.floatOpt("--gate", 0f) : Float.NaN, dest);
        out.printf("wrote %s (%s, %s) in %.1f s%n", dest, shapeName, typeName, (System.nanoTime() - t0) / 1e9);
    }

    /**
     * Writes a synthetic model of the given shape and weight type; with a finite gate value B,
     * every layer also gets a scalar memory gate g = sigmoid(B) (as {@code ei gate-init}).
     */
    public static void write(Shape s, int type, long seed, float gate, Path dest) throws IOException {
        GgufWriter w = new GgufWriter();
        String p = s.arch + ".";
        w.putString("general.architecture", s.arch).putString("general.name", "synthetic-" + s.arch + "-" + s.embd)
                .putUInt32(p + "context_length", s.ctx).putUInt32(p + "embedding_length", s.embd)
                .putUInt32(p + "block_count", s.layers).putUInt32(p + "feed_forward_length", s.ff)
                .putUInt32(p + "attention.head_count", s.heads).putUInt32(p + "attention.head_count_kv", s.headsKv)
                .putFloat32(p + "attention.layer_norm_rms_epsilon", 1e-6f).putFloat32(p + "rope.freq_base", s.ropeBase);
        vocabulary(w, s.vocab);

        int headDim = s.embd / s.heads, kv = headDim * s.headsKv;
        SplittableRandom rnd = new SplittableRandom(seed);
        matrix(w, "token_embd.weight", type, s.embd, s.vocab, rnd.split());
        vector(w, "output_norm.weight", s.embd, 1.0f, 0f, rnd.split());
        if (!s.tied) matrix(w, "output.weight", type, s.embd, s.vocab, rnd.split());
        for (int l = 0; l < s.layers; l++) {
            String b = "blk." + l + ".";
            vector(w, b + "attn_norm.weight", s.embd, 1.0f, 0.1f, rnd.split());
            matrix(w, b + "attn_q.weight", type, s.embd, s.embd, rnd.split());
            matrix(w, b + "attn_k.weight", type, s.embd, kv, rnd.split());
            matrix(w, b + "attn_v.weight", type, s.embd, kv, rnd.split());
            if (s.arch.equals("qwen2")) {
                vector(w, b + "attn_q.bias", s.embd, 0f, 0.1f, rnd.split());
                vector(w, b + "attn_k.bias", kv, 0f, 0.1f, rnd.split());
                vector(w, b + "attn_v.bias", kv, 0f, 0.1f, rnd.split());
            }
            matrix(w, b + "attn_output.weight", type, s.embd, s.embd, rnd.split());
            vector(w, b + "ffn_norm.weight", s.embd, 1.0f, 0.1f, rnd.split());
            matrix(w, b + "ffn_gate.weight", type, s.embd, s.ff, rnd.split());
            matrix(w, b + "ffn_up.weight", type, s.embd, s.ff, rnd.split());
            matrix(w, b + "ffn_down.weight", type, s.ff, s.embd, rnd.split());
            if (!Float.isNaN(gate)) vector(w, b + "ei_gate.weight", s.heads, gate, 0f, rnd.split());
        }
        w.write(dest);
    }

    /** Byte tokens plus generated pieces ("▁" + letters), scored so shorter pieces win. */
    private static void vocabulary(GgufWriter w, int n) {
        List<String> tokens = new ArrayList<>(n);
        float[] scores = new float[n];
        int[] types = new int[n];
        tokens.add("<unk>");
        tokens.add("<s>");
        tokens.add("</s>");
        types[0] = 2;
        types[1] = 3;
        types[2] = 3;
        for (int b = 0; b < 256; b++) {
            types[tokens.size()] = 6;
            tokens.add(String.format("<0x%02X>", b));
        }
        for (int i = 0; tokens.size() < n; i++) {
            StringBuilder sb = new StringBuilder(i % 2 == 0 ? "\u2581" : "");
            int v = i / 2;
            do {
                sb.append((char) ('a' + v % 26));
                v /= 26;
            } while (v > 0);
            scores[tokens.size()] = -sb.length() - i * 1e-6f;
            types[tokens.size()] = 1;
            tokens.add(sb.toString());
        }
        w.putString("tokenizer.ggml.model", "llama").putStringArray("tokenizer.ggml.tokens", tokens)
                .putFloat32Array("tokenizer.ggml.scores", scores).putInt32Array("tokenizer.ggml.token_type", types)
                .putUInt32("tokenizer.ggml.bos_token_id", 1).putUInt32("tokenizer.ggml.eos_token_id", 2)
                .putUInt32("tokenizer.ggml.unknown_token_id", 0).putBool("tokenizer.ggml.add_bos_token", true);
    }

    private static void vector(GgufWriter w, String name, int n, float mean, float spread, SplittableRandom rnd) {
        w.addTensor(name, 0, new long[] {n}, 4L * n, out -> {
            ByteBuffer bb = ByteBuffer.allocate(4 * n).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) bb.putFloat(mean + spread * (float) (rnd.nextDouble() * 2 - 1));
            out.write(bb.array());
        });
    }

    /** A cols x rows weight matrix; values uniform with std 1/sqrt(cols), so activations stay O(1). */
    private static void matrix(GgufWriter w, String name, int type, int cols, int rows, SplittableRandom rnd) {
        float amp = (float) (Math.sqrt(3.0 / cols));
        long elems = (long) cols * rows;
        long bytes = switch (type) {
            case 0 -> elems * 4;
            case 1 -> elems * 2;
            case 2 -> elems / 32 * 18;
            case 8 -> elems / 32 * 34;
            default -> throw new IllegalArgumentException("type " + type);
        };
        w.addTensor(name, type, new long[] {cols, rows}, bytes, out -> writeRows(out, type, cols, rows, amp, rnd));
    }

    private static void writeRows(OutputStream out, int type, int cols, int rows, float amp, SplittableRandom rnd)
            throws IOException {
        ByteBuffer bb = ByteBuffer.allocate(cols * 4 + 64).order(ByteOrder.LITTLE_ENDIAN);
        for (int r = 0; r < rows; r++) {
            bb.clear();
            switch (type) {
                case 0 -> {
                    for (int i = 0; i < cols; i++) bb.putFloat(amp * (float) (rnd.nextDouble() * 2 - 1));
                }
                case 1 -> {
                    for (int i = 0; i < cols; i++) bb.putShort(toHalf(amp * (float) (rnd.nextDouble() * 2 - 1)));
                }
                case 8 -> {  // q8_0: scale, then 32 signed bytes spanning [-127, 127]
                    for (int blk = 0; blk < cols / 32; blk++) {
                        bb.putShort(toHalf(amp / 127f));
                        for (int i = 0; i < 32; i++) bb.put((byte) (rnd.nextInt(255) - 127));
                    }
                }
                case 2 -> {  // q4_0: scale, then 16 bytes of two 4-bit values offset by 8
                    for (int blk = 0; blk < cols / 32; blk++) {
                        bb.putShort(toHalf(amp / 8f));
                        for (int i = 0; i < 16; i++) bb.put((byte) rnd.nextInt(256));
                    }
                }
                default -> throw new IllegalArgumentException("type " + type);
            }
            out.write(bb.array(), 0, bb.position());
        }
    }

    /**
     * IEEE 754 binary32 to binary16, rounding to nearest, ties to even (what
     * Float.floatToFloat16 does, but that is Java 20 and this code must run at 17).
     */
    static short toHalf(float f) {
        int x = Float.floatToRawIntBits(f);
        int sign = (x >>> 16) & 0x8000;
        int exp = (x >>> 23) & 0xff;
        int mant = x & 0x7fffff;
        if (exp == 0xff) return (short) (sign | 0x7c00 | (mant != 0 ? 0x200 | (mant >>> 13) : 0));  // inf, NaN
        int e = exp - 127 + 15;  // the binary16 exponent
        if (e >= 0x1f) return (short) (sign | 0x7c00);  // too large: infinity
        int half, shift;
        if (e > 0) {
            half = (e << 10) | (mant >>> 13);
            shift = 13;
        } else {
            if (e < -10) return (short) sign;  // below half the smallest subnormal: zero
            mant |= 0x800000;  // subnormal result: the implicit bit becomes explicit
            shift = 14 - e;
            half = mant >>> shift;
        }
        int rest = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
        // A carry out of the significand bumps the exponent, up to infinity: still correct.
        if (rest > halfway || (rest == halfway && (half & 1) != 0)) half++;
        return (short) (sign | half);
    }
}
