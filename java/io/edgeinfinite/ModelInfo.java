package io.edgeinfinite;

import io.edgeinfinite.internal.Native;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * What a user wants to know about a model file, derived from its GGUF header without
 * loading weights: architecture, sizes, parameter count, tensor types, tokenizer, chat template.
 */
public record ModelInfo(
        String architecture,
        String name,
        long fileSize,
        long parameterCount,
        Map<String, TypeUsage> tensorTypes,
        long contextLength,
        long embeddingLength,
        long blockCount,
        long headCount,
        long headCountKv,
        long feedForwardLength,
        long vocabSize,
        double ropeFreqBase,
        String tokenizer,
        boolean chatTemplatePresent,
        String chatFormat) {

    /** How many tensors of one type a model has, and their bytes. */
    public record TypeUsage(int tensors, long bytes, long elements) {}

    public static ModelInfo of(GgufFile f) {
        String arch = f.string("general.architecture").orElse("unknown");
        Map<String, TypeUsage> types = new TreeMap<>();
        long params = 0;
        for (TensorInfo t : f.tensors()) {
            params += t.elements();
            types.merge(t.typeName(), new TypeUsage(1, t.bytes(), t.elements()),
                    (a, b) -> new TypeUsage(a.tensors + b.tensors, a.bytes + b.bytes, a.elements + b.elements));
        }
        String p = arch + ".";
        long nHead = f.integer(p + "attention.head_count").orElse(0L);
        long vocab = f.arrayLength("tokenizer.ggml.tokens").map(Integer::longValue)
                .or(() -> f.integer(p + "vocab_size")).orElse(0L);
        Optional<String> template = f.string("tokenizer.chat_template");
        String chat = template.map(t -> Native.binding().chatDetect(t)).orElse("");
        return new ModelInfo(arch, f.string("general.name").orElse(""), f.fileSize(), params, types,
                f.integer(p + "context_length").orElse(0L), f.integer(p + "embedding_length").orElse(0L),
                f.integer(p + "block_count").orElse(0L), nHead,
                f.integer(p + "attention.head_count_kv").orElse(nHead), f.integer(p + "feed_forward_length").orElse(0L),
                vocab, f.real(p + "rope.freq_base").orElse(0.0), tokenizerKind(f), template.isPresent(), chat);
    }

    private static String tokenizerKind(GgufFile f) {
        String model = f.string("tokenizer.ggml.model").orElse("");
        return switch (model) {
            case "llama" -> "SentencePiece (llama)";
            case "gpt2" -> "byte-level BPE (gpt2, pre-tokenizer " + f.string("tokenizer.ggml.pre").orElse("default") + ")";
            case "" -> "none";
            default -> model + " (not supported)";
        };
    }

    /** A human-readable report, as {@code ei info} prints it. */
    public String format() {
        StringBuilder sb = new StringBuilder();
        line(sb, "architecture", architecture);
        if (!name.isEmpty()) line(sb, "name", name);
        line(sb, "file size", String.format("%,d bytes (%.2f MiB)", fileSize, fileSize / 1048576.0));
        line(sb, "parameters", String.format("%,d (%s)", parameterCount, humanCount(parameterCount)));
        line(sb, "context length", Long.toString(contextLength));
        line(sb, "embedding", Long.toString(embeddingLength));
        line(sb, "layers", Long.toString(blockCount));
        line(sb, "heads", headCount + " query, " + headCountKv + " key/value");
        line(sb, "feed-forward", Long.toString(feedForwardLength));
        line(sb, "vocabulary", Long.toString(vocabSize));
        if (ropeFreqBase > 0) line(sb, "rope base", String.valueOf(ropeFreqBase));
        line(sb, "tokenizer", tokenizer);
        line(sb, "chat template", !chatTemplatePresent ? "absent"
                : chatFormat.isEmpty() ? "present (not a built-in format: use raw prompts)" : "present (" + chatFormat + ")");
        sb.append("tensor types:\n");
        tensorTypes.forEach((type, u) -> sb.append(String.format("  %-8s %5d tensors %,14d params %10.2f MiB%n", type,
                u.tensors(), u.elements(), u.bytes() / 1048576.0)));
        return sb.toString();
    }

    private static void line(StringBuilder sb, String key, String value) {
        sb.append(String.format("%-15s %s%n", key + ":", value));
    }

    private static String humanCount(long n) {
        if (n >= 1_000_000_000L) return String.format("%.2fB", n / 1e9);
        if (n >= 1_000_000L) return String.format("%.2fM", n / 1e6);
        if (n >= 1_000L) return String.format("%.1fK", n / 1e3);
        return Long.toString(n);
    }
}
