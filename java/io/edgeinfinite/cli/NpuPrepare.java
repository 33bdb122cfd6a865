package io.edgeinfinite.cli;

import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * {@code ei npu-prepare}: the quantized Hexagon NPU path of a model, prepared once into a
 * folder ({@link Model#npuPrepare}); then {@code --device htp-emulator --cache-dir DIR} runs it.
 * The calibration text is cut to {@code --max-tokens} (the emulator is single-threaded and
 * slow); the scenario options choose the graphs, and with memory on the text must be long
 * enough to fold.
 */
final class NpuPrepare {
    private NpuPrepare() {}

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        Path model = Path.of(a.required("-m")), dir = Path.of(a.required("-o"));
        String weights = a.opt("--weights", "16a8w");
        int bits = switch (weights) {
            case "16a8w" -> 8;
            case "16a4w" -> 4;
            default -> throw new Main.UsageException("--weights must be 16a8w or 16a4w, got '" + weights + "'");
        };
        int block = a.intOpt("--block", 32);
        if (block != 32 && block != 64) throw new Main.UsageException("--block must be 32 or 64, got " + block);
        double keep = Double.parseDouble(a.opt("--keep-8bit", "0.25"));
        if (!(keep >= 0 && keep <= 1)) throw new Main.UsageException("--keep-8bit must be in [0, 1], got " + keep);
        int max = a.intOpt("--max-tokens", 256);
        if (max < 1) throw new Main.UsageException("--max-tokens must be at least 1");
        String text = Files.readString(Path.of(a.required("-f")), StandardCharsets.UTF_8);
        Scenario sc = Main.scenario(a);
        try (Model m = Model.load(model)) {
            int[] tokens = Perplexity.tokens(m, text);
            if (tokens.length > max) tokens = Arrays.copyOf(tokens, max);
            err.println("npu-prepare: calibrating on " + tokens.length + " tokens with the htp-emulator (slow: single-threaded)...");
            long t0 = System.nanoTime();
            String report = m.npuPrepare(sc, tokens, dir, bits, block, keep);
            // The summary: the lines before the per-tensor table.
            for (String line : report.split("\n")) {
                if (line.startsWith("  ")) break;
                out.println(line);
            }
            out.printf("wrote %s (report.txt, prefill.txt, decode.txt%s) in %.1f s; run with --device htp-emulator --cache-dir %s%n",
                    dir, Files.exists(dir.resolve("fold.txt")) ? ", fold.txt" : "", (System.nanoTime() - t0) / 1e9, dir);
        }
    }
}
