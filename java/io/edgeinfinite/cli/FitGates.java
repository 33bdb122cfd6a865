package io.edgeinfinite.cli;

import io.edgeinfinite.ChatMessage;
import io.edgeinfinite.GateFit;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@code ei fit-gates}: fits the memory gates of a model for a scenario on calibration data
 * (see {@link GateFit}) and writes a copy of the model with them and the scenario's
 * {@code edgeinfinite.*} settings, through the one writer {@code gate-init} uses.
 *
 * <p>Calibration data: plain text is cut into windows of {@code --length} tokens (default the
 * model's training context), each starting from BOS where the model uses one, as
 * {@code ei perplexity} does. A {@code .jsonl} file holds chat conversations (see
 * {@link ChatJsonl}): each runs through the chat template as one sequence, and the blend at
 * a position counts {@code --answer-weight} where the next token belongs to an assistant
 * turn (its end marker included) and {@code --prompt-weight} elsewhere: the loss on answers
 * of segmented instruction tuning, as weights in the fit's sums.
 */
final class FitGates {
    private FitGates() {}

    /** Calibration sequences and, for chat data, their per-position weights. */
    record Calibration(List<int[]> sequences, List<float[]> weights, int skipped) {
        long tokens() {
            return sequences.stream().mapToLong(s -> s.length).sum();
        }
    }

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        Path in = Path.of(a.required("-m")), dest = Path.of(a.required("-o")), data = Path.of(a.required("-f"));
        if (in.toAbsolutePath().equals(dest.toAbsolutePath())) throw new Main.UsageException("-o must differ from -m");
        GateFit.Kind kind = Main.choice(GateFit.Kind.class, a.opt("--gate", "scalar"), "--gate");
        int steps = a.intOpt("--steps", 3);
        if (steps < 0 || steps > 100) throw new Main.UsageException("--steps must be 0 to 100, got " + steps);
        double ridge = a.floatOpt("--ridge", 0.1f);
        if (!(ridge >= 0) || Double.isInfinite(ridge)) throw new Main.UsageException("--ridge must be a number >= 0");
        Scenario sc = Main.scenario(a);
        try (Model m = Model.load(in)) {
            Session.Resolved r;
            try (Session probe = m.newSession(sc)) {
                r = probe.scenario();
            }
            if (!r.memory()) throw new Main.UsageException("fit-gates needs the memory route (not --memory off / --ctx)");
            int windows = a.intOpt("--windows", Integer.MAX_VALUE);
            if (windows <= 0) throw new Main.UsageException("--windows must be positive, got " + windows);
            String text = Files.readString(data, StandardCharsets.UTF_8);
            Calibration cal;
            if (data.getFileName().toString().endsWith(".jsonl")) {
                cal = chat(m, ChatJsonl.parse(text, data.toString()), a.opt("--chat-format", null),
                        a.floatOpt("--answer-weight", 1f), a.floatOpt("--prompt-weight", 0f), r.fullCapacity(), windows);
            } else {
                int n = a.intOpt("--length", defaultLength(m));
                cal = text(m, text, n, r.fullCapacity(), windows);
            }
            err.printf("fit-gates: %s gates for S = %d, W = %d, L = %d, %s rule, memory keys %s: %d sequences, %d tokens%s%n",
                    kind.name().toLowerCase(), r.sink(), r.window(), r.segmentLength(),
                    r.memoryRule().name().toLowerCase(), r.memoryKeys().name().toLowerCase(), cal.sequences().size(),
                    cal.tokens(), cal.skipped() > 0 ? " (" + cal.skipped() + " conversations of at most S + W tokens skipped)" : "");
            long t0 = System.nanoTime();
            GateFit.Result fit = GateFit.fit(m, sc, kind, steps, ridge, cal.sequences(), cal.weights());
            double seconds = (System.nanoTime() - t0) / 1e9;
            report(fit, out);
            out.printf("fit: %.1f s, %d calibration tokens in %d sequences, %d teacher run%s%n", seconds, cal.tokens(),
                    cal.sequences().size(), fit.passes(), fit.passes() == 1 ? "" : "s");
            GateInit.Settings settings = new GateInit.Settings(r.sink(), r.window(), r.segmentLength(),
                    r.memoryRule().name().toLowerCase(), r.memoryKeys() == Scenario.MemoryKeys.ROPE);
            boolean adaptive = kind == GateFit.Kind.ADAPTIVE;
            GateInit.write(in, dest, settings, adaptive, (layer, heads, headDim) -> {
                int per = adaptive ? 2 * headDim * heads : heads;
                return new float[][] {Arrays.copyOfRange(fit.weight(), layer * per, (layer + 1) * per),
                    adaptive ? Arrays.copyOfRange(fit.bias(), layer * heads, (layer + 1) * heads) : null};
            });
            out.println("wrote " + dest);
        }
    }

    private static int defaultLength(Model m) {
        return (int) Math.max(0, m.info().contextLength());
    }

    /** Windows of n tokens of the text (BOS first where the model uses one), at most max of them. */
    static Calibration text(Model m, String text, int n, long fullCapacity, int max) {
        if (n <= fullCapacity) {
            throw new IllegalArgumentException("calibration windows of " + n + " tokens must be longer than S + W = "
                    + fullCapacity + " (set --length, or a smaller --sink/--window)");
        }
        int[] all = m.tokenize(text, false, false);
        int count = Math.min(max, all.length / n);
        if (count == 0) {
            throw new IllegalArgumentException("calibration text has " + all.length + " tokens, fewer than one window of "
                    + n + " (windows must be longer than S + W = " + fullCapacity + ")");
        }
        List<int[]> seqs = new ArrayList<>();
        for (int c = 0; c < count; c++) {
            int[] w = Arrays.copyOfRange(all, c * n, (c + 1) * n);
            if (m.addsBos()) w[0] = m.bosToken();
            seqs.add(w);
        }
        return new Calibration(seqs, null, 0);
    }

    /**
     * Each conversation through the chat template; position p weighs answerWeight when token
     * p + 1 belongs to an assistant turn, promptWeight otherwise. Conversations of at most S + W
     * tokens never reach the memory and are skipped (an error if none is left).
     */
    static Calibration chat(Model m, List<List<ChatMessage>> convs, String format, float answerWeight,
            float promptWeight, long fullCapacity, int max) {
        if (!(answerWeight >= 0) || !(promptWeight >= 0) || Float.isInfinite(answerWeight)
                || Float.isInfinite(promptWeight)) {
            throw new Main.UsageException("--answer-weight and --prompt-weight must be finite numbers >= 0");
        }
        List<int[]> seqs = new ArrayList<>();
        List<float[]> weights = new ArrayList<>();
        int skipped = 0;
        for (int c = 0; c < convs.size() && seqs.size() < max; c++) {
            List<ChatMessage> conv = convs.get(c);
            String full = m.formatChat(conv, false, format);
            // Cut the text at the start and end of each assistant turn; tokenize piece by piece.
            List<Integer> cuts = new ArrayList<>();
            for (int i = 0; i < conv.size(); i++) {
                if (!conv.get(i).role().equals("assistant")) continue;
                String before = m.formatChat(conv.subList(0, i), true, format);
                String upto = m.formatChat(conv.subList(0, i + 1), false, format);
                if (!full.startsWith(upto) || !upto.startsWith(before)) {
                    throw new IllegalArgumentException("conversation " + (c + 1) + ": the chat template does not render "
                            + "turn by turn (a prefix of the conversation is not a prefix of its text)");
                }
                cuts.add(before.length());
                cuts.add(upto.length());
            }
            List<Integer> toks = new ArrayList<>();
            List<Boolean> answer = new ArrayList<>();
            int from = 0;
            for (int k = 0; k <= cuts.size(); k++) {
                int to = k < cuts.size() ? cuts.get(k) : full.length();
                if (to > from) {
                    boolean first = toks.isEmpty();
                    for (int t : m.tokenize(full.substring(from, to), first && m.addsBos(), true)) {
                        toks.add(t);
                        answer.add(k % 2 == 1);  // pieces between cut 2j and 2j+1 are answers
                    }
                }
                from = Math.max(from, to);
            }
            if (toks.size() <= fullCapacity) {
                skipped++;
                continue;
            }
            int[] seq = toks.stream().mapToInt(Integer::intValue).toArray();
            float[] w = new float[seq.length];
            for (int p = 0; p < seq.length; p++) {
                w[p] = p + 1 < seq.length && answer.get(p + 1) ? answerWeight : promptWeight;
            }
            seqs.add(seq);
            weights.add(w);
        }
        if (seqs.isEmpty()) {
            throw new IllegalArgumentException("no conversation is longer than S + W = " + fullCapacity + " tokens ("
                    + skipped + " skipped): the route would never fold any of it into memory");
        }
        return new Calibration(seqs, weights, skipped);
    }

    /** Per layer and head: relative error before (g = 0) and after, and the gate (scalar). */
    static void report(GateFit.Result fit, PrintStream out) {
        out.println("relative blend error |A - A_full|^2 / |A_full|^2 over the scored positions, g = 0 -> fitted:");
        for (int l = 0; l < fit.layers(); l++) {
            double b = 0, af = 0, e = 0;
            StringBuilder heads = new StringBuilder();
            for (int h = 0; h < fit.heads(); h++) {
                b += fit.errorBefore(l, h);
                af += fit.errorAfter(l, h);
                e += fit.energy(l, h);
                double eh = Math.max(fit.energy(l, h), Double.MIN_VALUE);
                heads.append(String.format("  h%d %.4f->%.4f", h, fit.errorBefore(l, h) / eh, fit.errorAfter(l, h) / eh));
                if (fit.kind() == GateFit.Kind.SCALAR) heads.append(String.format(" g=%.3f", fit.gate(l, h)));
            }
            e = Math.max(e, Double.MIN_VALUE);
            out.printf("layer %2d: %.4f -> %.4f (%.1f%% lower)%s%n", l, b / e, af / e, b > 0 ? 100 * (1 - af / b) : 0.0,
                    heads);
        }
    }
}
