package io.edgeinfinite.cli;

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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code ei eval perplexity}: for each length n, the text's tokens (no BOS) are cut into
 * consecutive windows of n (the first token of each replaced by BOS where the model uses
 * one, as {@code ei perplexity} does) and each window is read from an empty context. The
 * <b>late positions</b> are scored: the logits at positions {@code first .. n - 2} against the
 * next token, where {@code first} is S + W of the route (the first position whose early
 * context has left the raw window), or {@code --score-from}. With {@code --score-from n/2}
 * (or S + W = n/2) the full-attention figure is exactly {@code ei perplexity --ctx n}'s.
 *
 * <p><b>Repeated span</b>: a span of {@code --span} tokens (128) of the text, taken a little
 * after the sink, comes back {@code --repeat-distance} tokens after it began (600, or more
 * when the window would still hold the span); the repeat's tokens after its first are
 * scored. Only a look back past the window can predict them.
 *
 * <p>{@code --skip-windows N} leaves out the first N windows of the longest length (N times
 * that many tokens of the token list) before anything is cut, for every length and for the
 * repeat samples: text a gate fit has seen ({@code ei fit-gates --windows N}) is not scored.
 */
final class EvalPerplexity {
    private EvalPerplexity() {}

    /** One configuration's figures. */
    record Series(String name, String kind, String model, Map<Integer, TokenScores.Nll> byLength,
            TokenScores.Nll repeat) {}

    record Report(String model, String text, Session.Resolved route, int scoreFrom, int span, int distance,
            int repeatSamples, Map<Integer, Integer> windows, List<Series> series, int skippedTokens) {}

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        Map<String, Path> models = Eval.models(a);
        List<Eval.Config> configs = Eval.configs(a, models, err);
        Scenario base = Eval.pinShape(configs, Eval.baseScenario(a));
        Path textFile = Path.of(a.required("-f"));
        String text = Files.readString(textFile, StandardCharsets.UTF_8);
        List<Integer> lengths = Eval.intList(a, "--lengths", "1024");
        int maxWindows = a.intOpt("--windows", 16);
        int span = a.intOpt("--span", 128);
        int repeats = a.intOpt("--repeats", 16);
        Integer scoreFrom = a.flag("--score-from") ? a.intOpt("--score-from", 0) : null;
        int skipWindows = a.intOpt("--skip-windows", 0);
        if (maxWindows < 1 || span < 2 || repeats < 0 || skipWindows < 0) {
            throw new Main.UsageException("--windows must be >= 1, --span >= 2, --repeats >= 0, --skip-windows >= 0");
        }
        Report r = measure(configs, base, text, textFile.toString(), lengths, maxWindows, scoreFrom, span,
                a.flag("--repeat-distance") ? a.intOpt("--repeat-distance", 0) : -1, repeats, skipWindows,
                (cfg, what) -> err.printf("  %-12s %s%n", cfg, what));
        out.print(table(r));
        Eval.writeOutputs(a, out, () -> json(r), () -> svg(r));
    }

    interface Progress {
        void update(String config, String what);
    }

    static Report measure(List<Eval.Config> configs, Scenario base, String text, String textName, List<Integer> lengths,
            int maxWindows, Integer scoreFrom, int span, int distanceOpt, int repeats, Progress progress) {
        return measure(configs, base, text, textName, lengths, maxWindows, scoreFrom, span, distanceOpt, repeats, 0,
                progress);
    }

    /** As above, the first skipWindows windows of the longest length left out. */
    static Report measure(List<Eval.Config> configs, Scenario base, String text, String textName, List<Integer> lengths,
            int maxWindows, Integer scoreFrom, int span, int distanceOpt, int repeats, int skipWindows,
            Progress progress) {
        Path first = configs.get(0).model();
        Session.Resolved route = Eval.resolve(first, base.toBuilder().memory(true).build());
        int from = scoreFrom != null ? scoreFrom : route.sink() + route.window();
        int[] all;
        int bos;
        try (Model m = Model.load(first)) {
            all = Perplexity.tokens(m, text);  // as ei perplexity chunks it: BOS in front
            bos = m.addsBos() ? m.bosToken() : -1;
        }
        long skip = (long) skipWindows * lengths.stream().mapToInt(Integer::intValue).max().orElse(0);
        if (skip > 0) {
            if (skip >= all.length) {
                throw new IllegalArgumentException("--skip-windows " + skipWindows + " leaves out " + skip
                        + " tokens, but the text has " + all.length);
            }
            all = Arrays.copyOfRange(all, (int) skip, all.length);  // its first token becomes BOS as every window's
        }
        Map<Integer, Integer> windows = new LinkedHashMap<>();
        for (int n : lengths) {
            if (from >= n - 1) {
                throw new IllegalArgumentException("length " + n + " has no late positions: scoring starts at " + from
                        + " (S + W, or --score-from)");
            }
            windows.put(n, Perplexity.Chunking.of(all, n, maxWindows, bos).chunks());
        }
        // The repeat must come back after its first copy has left the window (W + L slots).
        int offset = route.sink() + 32;
        int distance = distanceOpt > 0 ? distanceOpt
                : Math.max(600, route.window() + route.segmentLength() + span);
        if (distance < span) throw new IllegalArgumentException("--repeat-distance must be at least the span");
        int seqLen = offset + distance + span;
        int repeatSamples = repeats == 0 ? 0 : Math.min(repeats, all.length / (offset + distance));

        List<Series> series = new ArrayList<>();
        for (Eval.Config c : configs) {
            Map<Integer, TokenScores.Nll> byLength = new LinkedHashMap<>();
            try (Model m = Model.load(c.model())) {
                for (int n : lengths) {
                    try (Session s = m.newSession(c.scenario(base, n))) {
                        TokenScores.Nll total = new TokenScores.Nll();
                        Perplexity.Chunking ch = Perplexity.Chunking.of(all, n, maxWindows, bos);
                        for (int w = 0; w < ch.chunks(); w++) {
                            TokenScorer.score(s, ch.input(w), from, n - 1, total);
                            progress.update(c.name(), String.format(Locale.ROOT, "length %d: window %d/%d, ppl %.4f", n,
                                    w + 1, windows.get(n), total.perplexity()));
                        }
                        byLength.put(n, total);
                    }
                }
                TokenScores.Nll rep = null;
                if (repeatSamples > 0) {
                    try (Session s = m.newSession(c.scenario(base, seqLen))) {
                        rep = new TokenScores.Nll();
                        for (int i = 0; i < repeatSamples; i++) {
                            int[] seq = repeated(all, i * (offset + distance), offset, distance, span, bos);
                            TokenScorer.score(s, seq, offset + distance, seq.length - 1, rep);
                        }
                        progress.update(c.name(), String.format(Locale.ROOT, "repeated span: ppl %.4f over %d samples",
                                rep.perplexity(), repeatSamples));
                    }
                }
                series.add(new Series(c.name(), c.kind().name().toLowerCase(), c.model().toString(), byLength, rep));
            }
        }
        return new Report(first.toString(), textName, route, from, span, distance, repeatSamples, windows, series,
                (int) skip);
    }

    /**
     * tokens[at .. at + offset + distance) followed by the span tokens[at + offset .. + span):
     * the span begins at position offset and again at offset + distance.
     */
    static int[] repeated(int[] all, int at, int offset, int distance, int span, int bos) {
        int[] seq = new int[offset + distance + span];
        System.arraycopy(all, at, seq, 0, offset + distance);
        System.arraycopy(all, at + offset, seq, offset + distance, span);
        if (bos >= 0) seq[0] = bos;
        return seq;
    }

    static String table(Report r) {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "late-position perplexity (positions >= %d; route S %d, W %d, L %d, %s)%n",
                r.scoreFrom(), r.route().sink(), r.route().window(), r.route().segmentLength(),
                r.route().memoryRule().name().toLowerCase()));
        if (r.skippedTokens() > 0) b.append(String.format("(the text's first %d tokens left out)%n", r.skippedTokens()));
        b.append(String.format("%-16s", "config"));
        for (int n : r.windows().keySet()) b.append(String.format("%14s", n + " (x" + r.windows().get(n) + ")"));
        if (r.repeatSamples() > 0) b.append(String.format("%18s", "repeated span"));
        b.append('\n');
        for (Series s : r.series()) {
            b.append(String.format("%-16s", s.name()));
            for (int n : r.windows().keySet()) b.append(String.format(Locale.ROOT, "%14.4f", s.byLength().get(n).perplexity()));
            if (s.repeat() != null) b.append(String.format(Locale.ROOT, "%18.4f", s.repeat().perplexity()));
            b.append('\n');
        }
        if (r.repeatSamples() > 0) {
            b.append(String.format("repeated span: %d tokens coming back %d tokens later, %d samples%n", r.span(),
                    r.distance(), r.repeatSamples()));
        }
        return b.toString();
    }

    static String json(Report r) {
        StringBuilder b = new StringBuilder("{\n");
        b.append("  \"eval\": \"perplexity\",\n");
        b.append("  \"model\": ").append(Eval.str(r.model())).append(",\n");
        b.append("  \"text\": ").append(Eval.str(r.text())).append(",\n");
        b.append("  \"route\": ").append(Eval.scenarioJson(r.route())).append(",\n");
        b.append("  \"score_from\": ").append(r.scoreFrom()).append(",\n");
        b.append("  \"skipped_tokens\": ").append(r.skippedTokens()).append(",\n");
        b.append("  \"windows\": {");
        String sep = "";
        for (var e : r.windows().entrySet()) {
            b.append(sep).append('"').append(e.getKey()).append("\": ").append(e.getValue());
            sep = ", ";
        }
        b.append("},\n");
        b.append("  \"repeat\": {\"span\": ").append(r.span()).append(", \"distance\": ").append(r.distance())
                .append(", \"samples\": ").append(r.repeatSamples()).append("},\n");
        b.append("  \"series\": [\n");
        for (int i = 0; i < r.series().size(); i++) {
            Series s = r.series().get(i);
            b.append("    {\"name\": ").append(Eval.str(s.name())).append(", \"config\": ").append(Eval.str(s.kind()))
                    .append(", \"model\": ").append(Eval.str(s.model())).append(", \"late\": [");
            sep = "";
            for (var e : s.byLength().entrySet()) {
                b.append(sep).append("{\"length\": ").append(e.getKey()).append(", \"perplexity\": ")
                        .append(Eval.fmt(e.getValue().perplexity())).append(", \"tokens\": ").append(e.getValue().count())
                        .append('}');
                sep = ", ";
            }
            b.append("], \"repeat_perplexity\": ").append(s.repeat() == null ? "null" : Eval.fmt(s.repeat().perplexity()))
                    .append('}').append(i + 1 < r.series().size() ? "," : "").append('\n');
        }
        return b.append("  ]\n}\n").toString();
    }

    static String svg(Report r) {
        List<EvalCharts.Line> lines = new ArrayList<>();
        for (Series s : r.series()) {
            List<double[]> pts = new ArrayList<>();
            for (var e : s.byLength().entrySet()) pts.add(new double[] {e.getKey(), e.getValue().perplexity()});
            lines.add(new EvalCharts.Line(s.name(), pts));
        }
        String title = String.format(Locale.ROOT, "Late-position perplexity (positions >= %d; S %d, W %d, L %d)",
                r.scoreFrom(), r.route().sink(), r.route().window(), r.route().segmentLength());
        return EvalCharts.lineChart(title, "length (tokens)", "perplexity", lines);
    }
}
