package io.edgeinfinite.cli;

import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Random;

/**
 * {@code ei bench}, in llama-bench's spirit: prompt processing (pp) of -p tokens and text
 * generation (tg) of -n tokens, each repeated -r times after one warm-up, reported as
 * tokens/s mean ± sd. Tokens are random ids, so no tokenizer cost is measured.
 */
final class Bench {
    private Bench() {}

    static void run(Main.Args a, PrintStream out, PrintStream err) {
        int pp = a.intOpt("-p", 512), tg = a.intOpt("-n", 128), reps = a.intOpt("-r", 3);
        Path path = Path.of(a.required("-m"));
        Scenario sc = Main.scenario(a);
        try (Model m = Model.load(path); Session s = m.newSession(sc)) {
            Random rnd = new Random(42);
            int vocab = m.vocabSize();
            int[] prompt = rnd.ints(pp, 0, vocab).toArray();
            Session.Resolved sr = s.scenario();
            out.printf("model: %s | %s | device %s | threads %d | L %d, S %d, W %d, memory %s%n", path.getFileName(),
                    m.info().architecture(), s.opPlacement().device(), sr.threads(), sr.segmentLength(), sr.sink(), sr.window(),
                    sr.memory() ? "on" : "off");
            if (!s.opPlacement().allOnDevice()) out.println(s.opPlacement().summary());
            out.printf("%-8s %8s %18s%n", "test", "tokens", "t/s");
            if (pp > 0) {
                double[] r = repeat(reps, () -> {
                    s.reset();
                    long t0 = System.nanoTime();
                    s.eval(prompt);
                    return pp * 1e9 / (System.nanoTime() - t0);
                });
                out.printf("%-8s %8d %18s%n", "pp" + pp, pp, stats(r));
            }
            if (tg > 0) {
                double[] r = repeat(reps, () -> {
                    s.reset();
                    s.eval(new int[] {prompt.length > 0 ? prompt[0] : 1});
                    int[] one = new int[1];
                    long t0 = System.nanoTime();
                    for (int i = 0; i < tg; i++) {
                        one[0] = rnd.nextInt(vocab);
                        s.eval(one);
                    }
                    return tg * 1e9 / (System.nanoTime() - t0);
                });
                out.printf("%-8s %8d %18s%n", "tg" + tg, tg, stats(r));
            }
        }
    }

    interface Trial {
        double run();
    }

    static double[] repeat(int reps, Trial t) {
        t.run();  // warm-up: page in weights, spin up threads
        double[] r = new double[reps];
        for (int i = 0; i < reps; i++) r[i] = t.run();
        return r;
    }

    static String stats(double[] r) {
        double mean = 0;
        for (double v : r) mean += v;
        mean /= r.length;
        double var = 0;
        for (double v : r) var += (v - mean) * (v - mean);
        double sd = r.length > 1 ? Math.sqrt(var / (r.length - 1)) : 0;
        return String.format("%.2f ± %.2f", mean, sd);
    }
}
