package io.edgeinfinite.cli;

import io.edgeinfinite.EdgeInfinite;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code ei demo}: the main job. Writes a synthetic model once (cached; random weights, real
 * shapes, scalar memory gates), then reads one long prompt (16K tokens by default) with plain
 * full attention and with the EdgeInfinite route, each in its own process, and prints time to
 * first token, prefill and decode speed, and peak memory side by side.
 */
final class Demo {
    private Demo() {}

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException, InterruptedException {
        Path cache = Path.of(a.opt("--cache", "target/demo"));
        String shape = a.opt("--shape", "demo-40m");
        Path model = syntheticModel(cache, shape, out);
        int n = a.intOpt("--prompt-tokens", 16384);
        long budget = a.longOpt("--budget-s", 600);
        out.printf("edgeinfinite %s (%s binding, cpu: %s)%n", EdgeInfinite.version(), EdgeInfinite.binding(),
                EdgeInfinite.cpuFeatures());
        out.printf("model: %s (random weights); prompt: %,d tokens; EdgeInfinite scenario '%s' (S 64, W 2048, L 128)%n",
                model.getFileName(), n, Sweep.EI_SCENARIO);
        List<Sweep.Point> points = new ArrayList<>();
        for (String mode : List.of("full", "edgeinfinite")) {
            err.printf("  %s attention over %,d tokens...%n", mode.equals("full") ? "full" : "EdgeInfinite", n);
            points.add(Sweep.measure(model, mode, n, a.intOpt("-t", 0), budget));
        }
        out.println();
        out.printf("%-28s %16s %16s%n", "", "full attention", "EdgeInfinite");
        line(out, "time to first token (s)", points, p -> String.format(Locale.ROOT, "%.2f", p.ttftS()));
        line(out, "prefill (tokens/s)", points, p -> String.format(Locale.ROOT, "%.1f", p.prefillTps()));
        line(out, "decode after prompt (t/s)", points, p -> String.format(Locale.ROOT, "%.2f", p.decodeTps()));
        line(out, "peak RSS (MiB)", points, p -> String.format(Locale.ROOT, "%.1f", p.rssKb() / 1024.0));
        line(out, "buffer pool (MiB)", points, p -> String.format(Locale.ROOT, "%.1f", p.poolBytes() / 1048576.0));
        Sweep.Point full = points.get(0), ei = points.get(1);
        if (!Double.isNaN(full.ttftS()) && !Double.isNaN(ei.ttftS())) {
            out.printf(Locale.ROOT, "%nEdgeInfinite: %.2fx the prefill speed and %.2fx the peak memory of full attention; "
                    + "its pool stays %.1f MiB at any prompt length.%n", ei.prefillTps() / full.prefillTps(),
                    (double) ei.rssKb() / full.rssKb(), ei.poolBytes() / 1048576.0);
        }
        quality(Path.of(a.opt("--eval-dir", "../shared/testdata/eval")), a.intOpt("-t", 0), out, err);
    }

    /**
     * Quality beside speed: random weights say nothing about it, so it is measured on the
     * trained evaluation model (when its folder is there), on held-out text: late-position
     * perplexity with full attention and with the EdgeInfinite route (S 32, W 256, L 64, well
     * inside the model's 1,024-token training context), a few seconds.
     */
    static void quality(Path evalDir, int threads, PrintStream out, PrintStream err) throws IOException {
        Path model = evalDir.resolve("evalmodel-f32.gguf"), text = evalDir.resolve("dev.txt");
        out.println();
        if (!Files.isRegularFile(model) || !Files.isRegularFile(text)) {
            out.println("quality: skipped (no evaluation model and text in " + evalDir + "; --eval-dir DIR)");
            return;
        }
        err.println("  quality: late-position perplexity on the evaluation model...");
        io.edgeinfinite.Scenario route = io.edgeinfinite.Scenario.builder().sink(32).window(256).segmentLength(64)
                .threads(threads).build();
        List<Eval.Config> configs = List.of(new Eval.Config("full", model, Eval.Config.Kind.FULL),
                new Eval.Config("edgeinfinite", model, Eval.Config.Kind.GATED));
        EvalPerplexity.Report r = EvalPerplexity.measure(configs, route, Files.readString(text), text.toString(),
                List.of(1024), 8, null, 128, -1, 8, (c, w) -> {});
        double f = r.series().get(0).byLength().get(1024).perplexity();
        double e = r.series().get(1).byLength().get(1024).perplexity();
        double fr = r.series().get(0).repeat().perplexity(), er = r.series().get(1).repeat().perplexity();
        out.printf(Locale.ROOT, "quality (trained evaluation model %s, held-out text, %d windows of 1,024 tokens; "
                + "EdgeInfinite S 32, W 256, L 64%s):%n", model.getFileName(), r.windows().get(1024),
                Eval.hasGates(model) ? "" : ", no gates: g = 0");
        out.printf("%-28s %16s %16s%n", "", "full attention", "EdgeInfinite");
        out.printf(Locale.ROOT, "%-28s %16.3f %16.3f%n", "perplexity, positions >= 288", f, e);
        out.printf(Locale.ROOT, "%-28s %16.3f %16.3f%n", "perplexity, span repeated", fr, er);
        out.printf("(a %d-token span repeated %d tokens later, %d samples; `ei eval perplexity` measures more)%n",
                r.span(), r.distance(), r.repeatSamples());
    }

    private interface Cell {
        String of(Sweep.Point p);
    }

    private static void line(PrintStream out, String label, List<Sweep.Point> pts, Cell cell) {
        out.printf("%-28s", label);
        for (Sweep.Point p : pts) out.printf(" %16s", Double.isNaN(p.ttftS()) ? p.note() : cell.of(p));
        out.println();
    }

    /** The synthetic Q8_0 model of a shape, with scalar gates g = sigmoid(0), written once. */
    static Path syntheticModel(Path cache, String shape, PrintStream out) throws IOException {
        Files.createDirectories(cache);
        Path model = cache.resolve("synthetic-" + shape + "-q8_0.gguf");
        if (!Files.isRegularFile(model)) {
            out.println("writing the synthetic " + shape + " Q8_0 model to " + model + " (once)...");
            Path tmp = cache.resolve(model.getFileName() + ".tmp");
            Synth.write(Synth.SHAPES.get(shape), 8, 1, 0f, tmp);
            Files.move(tmp, model);
        }
        return model;
    }
}
