package io.edgeinfinite.cli;

import io.edgeinfinite.EdgeInfinite;
import io.edgeinfinite.GenerateOptions;
import io.edgeinfinite.GenerationResult;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code ei demo}: the main job. Writes a synthetic model with Qwen2.5-0.5B shapes once
 * (cached), then runs a long prompt through it and prints time to first token, prefill and
 * decode speed, and the session's pool size. The weights are random, so the text is
 * nonsense; the numbers are real.
 */
final class Demo {
    private Demo() {}

    static void run(Main.Args a, PrintStream out) throws IOException {
        Path cache = Path.of(a.opt("--cache", "target/demo"));
        Files.createDirectories(cache);
        Path model = cache.resolve("synthetic-qwen2.5-0.5b-q8_0.gguf");
        if (!Files.isRegularFile(model)) {
            out.println("writing the synthetic Qwen2.5-0.5B-shaped Q8_0 model to " + model + " (once)...");
            Path tmp = cache.resolve("synthetic.tmp");
            Synth.write(Synth.SHAPES.get("qwen2.5-0.5b"), 8, 1, tmp);
            Files.move(tmp, model);
        }
        int promptTokens = a.intOpt("--prompt-tokens", 1024);
        int newTokens = a.intOpt("-n", 32);
        out.printf("edgeinfinite %s (%s, cpu: %s)%n", EdgeInfinite.version(), EdgeInfinite.binding(),
                EdgeInfinite.cpuFeatures());
        try (Model m = Model.load(model)) {
            String prompt = longPrompt(m, promptTokens);
            int n = m.tokenize(prompt, true, false).length;
            Scenario sc = Main.scenario(a);
            try (Session s = m.newSession(sc)) {
                report(out, m, s, sc, prompt, n, newTokens);
            }
        }
    }

    private static void report(PrintStream out, Model m, Session s, Scenario sc, String prompt, int n, int newTokens) {
        out.printf("model: %s, %,d parameters, %s%n", m.path().getFileName(), m.info().parameterCount(), sc);
        out.printf("pool: %.1f MiB, planned once for the scenario%n", s.poolSize() / 1048576.0);
        GenerateOptions o = GenerateOptions.builder().maxTokens(newTokens).seed(7).build();
        out.printf("prompt: %d tokens; generating %d tokens...%n", n, newTokens);
        StringBuilder text = new StringBuilder();
        GenerationResult r = s.generate(prompt, o, text::append);
        out.printf("time to first token: %.2f s (prefill %.1f tokens/s)%n", r.prefillNanos() / 1e9,
                r.prefillTokensPerSecond());
        out.printf("decode: %d tokens at %.2f tokens/s (stop: %s)%n", r.generatedTokens(), r.decodeTokensPerSecond(),
                r.stopReason().name().toLowerCase());
        String shown = text.length() > 120 ? text.substring(0, 120) + "..." : text.toString();
        out.println("text (random weights): " + shown.replace('\n', ' '));
    }

    /** Words repeated until the prompt has about n tokens. */
    private static String longPrompt(Model m, int n) {
        String[] words = {"the", "river", "carried", "old", "letters", "past", "quiet", "towns", "and", "every",
            "reader", "kept", "one", "line", "of", "them"};
        StringBuilder sb = new StringBuilder();
        int i = 0;
        while (true) {
            sb.append(words[i++ % words.length]).append(' ');
            if (i % 64 == 0 && m.tokenize(sb.toString(), true, false).length >= n) return sb.toString();
        }
    }
}
