package io.edgeinfinite.cli;

import io.edgeinfinite.TensorInfo;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Which type each tensor of a model gets under {@code ei quantize TYPE}: llama.cpp's rules
 * for its mixes (llama-quant.cpp, as of the reference build), restricted to the types this
 * runtime reads.
 *
 * <ul>
 *   <li>Quantized at all: 2-D (or more) tensors whose name ends in {@code weight}, except
 *       norms ({@code _norm.weight}), {@code output.weight} with {@code --keep-output}, MoE
 *       routers ({@code ffn_gate_inp}) and our memory gates ({@code ei_gate}, read as F32).
 *       The rest are copied unchanged.
 *   <li>{@code output.weight}, or {@code token_embd.weight} when there is no output tensor
 *       (tied embeddings): Q6_K unless the mix is Q8_0; Q8_0 when its rows are not a multiple
 *       of 256.
 *   <li>Q4_K_M: {@code attn_v} and {@code ffn_down} Q6_K on the layers use_more_bits picks
 *       (the first and last eighth, and every third in between). Q4_K_S: {@code attn_v} of
 *       the first 4 layers and {@code ffn_down} of the first eighth, where llama.cpp uses
 *       Q5_K; this runtime reads no Q5_K, so Q6_K here (one step up, a slightly larger file).
 *   <li>Then rows that the type's block does not divide fall back (Q4_K to Q5_0, Q6_K to
 *       Q8_0, a 32-block type to F16), as llama.cpp does.
 * </ul>
 *
 * Options as llama-quantize's: {@code --pure} (no mix rules), overrides by pattern (the first
 * matching one wins, then only the fallback applies), {@code --token-embedding-type},
 * {@code --output-type}.
 */
final class QuantRecipe {
    static final int F32 = 0, F16 = 1, Q4_0 = 2, Q5_0 = 6, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30;

    /** The types a tensor can be written as, by name. */
    static final Map<String, Integer> TYPES = Map.of("f32", F32, "f16", F16, "bf16", BF16, "q8_0", Q8_0, "q4_0", Q4_0,
            "q5_0", Q5_0, "q4_k", Q4_K, "q6_k", Q6_K);

    /** A recipe: the default type of the matrices and llama.cpp's general.file_type number. */
    enum Mix {
        Q8_0("q8_0", QuantRecipe.Q8_0, 7), Q4_0("q4_0", QuantRecipe.Q4_0, 2), Q4_K("q4_k", QuantRecipe.Q4_K, 14),
        Q6_K("q6_k", QuantRecipe.Q6_K, 18), Q4_K_M("q4_k_m", QuantRecipe.Q4_K, 15), Q4_K_S("q4_k_s", QuantRecipe.Q4_K, 14);

        final String label;
        final int type, ftype;

        Mix(String label, int type, int ftype) {
            this.label = label;
            this.type = type;
            this.ftype = ftype;
        }

        static Mix parse(String s) {
            for (Mix m : values()) {
                if (m.label.equals(s.toLowerCase(Locale.ROOT))) return m;
            }
            throw new Main.UsageException("unknown quantization type '" + s + "' (known: q8_0, q4_0, q4_k, q6_k, q4_k_m, q4_k_s)");
        }
    }

    /** A type named on the command line (f32, f16, bf16, q8_0, q4_0, q5_0, q4_k, q6_k; any case). */
    static int parseType(String s, String option) {
        Integer t = TYPES.get(s.toLowerCase(Locale.ROOT));
        if (t == null) {
            throw new Main.UsageException(option + ": unknown tensor type '" + s + "' (known: f32, f16, bf16, q8_0, q4_0, q5_0, q4_k, q6_k)");
        }
        return t;
    }

    static String typeName(int t) {
        return switch (t) {
            case F32 -> "f32";
            case F16 -> "f16";
            case BF16 -> "bf16";
            case Q8_0 -> "q8_0";
            case Q4_0 -> "q4_0";
            case Q5_0 -> "q5_0";
            case Q4_K -> "q4_K";
            case Q6_K -> "q6_K";
            default -> "type " + t;
        };
    }

    static int blockSize(int t) {
        return switch (t) {
            case Q8_0, Q4_0, Q5_0 -> 32;
            case Q4_K, Q6_K -> 256;
            default -> 1;
        };
    }

    /** An override: tensors whose name the pattern finds (regex search, as llama-quantize's --tensor-type) get type. */
    record Override(Pattern pattern, int type) {
        static Override parse(String spec) {
            int eq = spec.lastIndexOf('=');
            if (eq <= 0 || eq == spec.length() - 1) {
                throw new Main.UsageException("--type-override needs PATTERN=TYPE, got '" + spec + "'");
            }
            String p = spec.substring(0, eq);
            try {
                return new Override(Pattern.compile(p), parseType(spec.substring(eq + 1), "--type-override"));
            } catch (PatternSyntaxException e) {
                throw new Main.UsageException("--type-override: bad pattern '" + p + "': " + e.getDescription());
            }
        }
    }

    /** Settings of a run. tokenEmbeddingType / outputType: -1 when not given. */
    record Options(Mix mix, boolean pure, boolean keepOutput, int tokenEmbeddingType, int outputType,
            List<Override> overrides) {}

    /** The decision for one tensor: its new type, and a note when a fallback or override applied. */
    record Choice(TensorInfo tensor, boolean quantize, int type, String note) {}

    private QuantRecipe() {}

    static boolean quantizable(TensorInfo t, Options o) {
        String n = t.name();
        return t.shape().length >= 2 && n.endsWith("weight") && !n.contains("_norm.weight")
                && !(o.keepOutput && n.equals("output.weight")) && !n.contains("ffn_gate_inp.weight")
                && !n.contains(".ei_gate.");
    }

    private static final Pattern LAYER = Pattern.compile("^blk\\.(\\d+)\\.");

    private static int layer(String name) {
        Matcher m = LAYER.matcher(name);
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    static boolean useMoreBits(int i, int n) {
        return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    }

    private static boolean isAttnV(String n) {
        return n.contains("attn_v.weight") || n.contains("attn_qkv.weight") || n.contains("attn_kv_b.weight");
    }

    /**
     * The type of every tensor, in the input's order. nLayer is the model's block_count (the
     * layer count llama.cpp's ffn_down rule uses).
     */
    static List<Choice> plan(List<TensorInfo> tensors, int nLayer, Options o) {
        boolean tied = tensors.stream().noneMatch(t -> t.name().equals("output.weight"));
        int nAttnV = (int) tensors.stream().filter(t -> isAttnV(t.name()) && !t.name().equals("output.weight")
                && !t.name().equals("token_embd.weight")).count();
        // llama.cpp walks tensors ordered by layer, then name; its per-kind counters are the
        // layer indices the mix rules see.
        List<TensorInfo> ordered = new ArrayList<>(tensors);
        ordered.sort(Comparator.comparingInt((TensorInfo t) -> layer(t.name())).thenComparing(TensorInfo::name));
        Map<String, Choice> byName = new LinkedHashMap<>();
        int iAttnV = 0, iFfnDown = 0;
        for (TensorInfo t : ordered) {
            String n = t.name();
            if (!quantizable(t, o)) {
                byName.put(n, new Choice(t, false, t.type(), null));
                continue;
            }
            int type = o.mix.type;
            String note = null;
            boolean embd = n.equals("token_embd.weight"), out = n.equals("output.weight");
            if (o.tokenEmbeddingType >= 0 && embd) {
                type = o.tokenEmbeddingType;
            } else if (o.outputType >= 0 && out) {
                type = o.outputType;
            } else {
                boolean manual = false;
                for (Override ov : o.overrides) {
                    if (ov.pattern.matcher(n).find()) {
                        type = ov.type;
                        manual = true;
                        note = "override " + ov.pattern.pattern();
                        break;
                    }
                }
                if (!manual && !o.pure) {
                    if (out || (tied && embd)) {
                        if (o.outputType >= 0) type = o.outputType;
                        else if (t.shape()[0] % blockSize(type) != 0) type = Q8_0;
                        else if (type != Q8_0) type = Q6_K;
                    } else if (!embd && isAttnV(n)) {
                        if (o.mix == Mix.Q4_K_M && useMoreBits(iAttnV, nAttnV)) type = Q6_K;
                        else if (o.mix == Mix.Q4_K_S && iAttnV < 4) type = Q6_K;
                        iAttnV++;
                    } else if (!embd && n.contains("ffn_down")) {
                        if (o.mix == Mix.Q4_K_M && useMoreBits(iFfnDown, nLayer)) type = Q6_K;
                        else if (o.mix == Mix.Q4_K_S && iFfnDown < nLayer / 8) type = Q6_K;
                        iFfnDown++;
                    }
                }
            }
            long cols = t.shape()[0];
            if (cols % blockSize(type) != 0) {
                int fb = switch (type) {
                    case Q4_K -> Q5_0;
                    case Q6_K -> Q8_0;
                    default -> type;
                };
                if (cols % blockSize(fb) != 0) fb = F16;
                note = "rows of " + cols + " are not a multiple of " + blockSize(type) + " (" + typeName(type)
                        + "): falling back to " + typeName(fb);
                type = fb;
            }
            byName.put(n, new Choice(t, type != t.type(), type, note));
        }
        List<Choice> out = new ArrayList<>(tensors.size());
        for (TensorInfo t : tensors) out.add(byName.get(t.name()));
        return out;
    }
}
