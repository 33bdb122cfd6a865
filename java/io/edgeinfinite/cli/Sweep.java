package io.edgeinfinite.cli;

import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * {@code ei bench --sweep}: time to first token, prefill speed, decode speed and peak RSS
 * against prompt length, full attention vs the EdgeInfinite route. Each point runs in its
 * own process, so its peak RSS (VmHWM) is its own. Full attention stops where a point runs
 * past the time budget, or would (its cost grows quadratically).
 */
final class Sweep {
    /** One measured point; null fields for a point that did not run. */
    record Point(String mode, int tokens, double ttftS, double prefillTps, double decodeTps, long rssKb, long poolBytes,
            String note) {}

    private Sweep() {}

    static final String EI_SCENARIO = "qa";  // S 64, W 2048, L 128

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException, InterruptedException {
        Path model = a.flag("-m") ? Path.of(a.required("-m")) : Demo.syntheticModel(Path.of(a.opt("--cache",
                "target/demo")), "qwen2.5-0.5b", out);
        int[] lengths = Arrays.stream(a.opt("--lengths", "1024,4096,16384,65536,131072").split(",")).map(String::trim)
                .mapToInt(Integer::parseInt).toArray();
        long budget = a.longOpt("--budget-s", 900);
        int threads = a.intOpt("-t", 0);
        out.printf("sweep on %s, threads %s, EdgeInfinite scenario '%s', budget %d s per point%n", model.getFileName(),
                threads == 0 ? "all" : threads, EI_SCENARIO, budget);
        List<Point> points = new ArrayList<>();
        Point lastFull = null;
        boolean fullStopped = false;
        for (int n : lengths) {
            for (String mode : List.of("full", "edgeinfinite")) {
                Point p;
                if (mode.equals("full") && fullStopped) {
                    p = new Point(mode, n, Double.NaN, Double.NaN, Double.NaN, -1, -1, "stopped earlier");
                } else if (mode.equals("full") && lastFull != null && !Double.isNaN(lastFull.ttftS)
                        && lastFull.ttftS * Math.pow((double) n / lastFull.tokens, 2) > budget) {
                    double predicted = lastFull.ttftS * Math.pow((double) n / lastFull.tokens, 2);
                    p = new Point(mode, n, Double.NaN, Double.NaN, Double.NaN, -1, -1,
                            String.format(Locale.ROOT, "not run: predicted TTFT %.0f s > budget", predicted));
                    fullStopped = true;
                } else {
                    err.printf("  running %s at %d tokens...%n", mode, n);
                    p = measure(model, mode, n, threads, budget);
                    if (mode.equals("full")) {
                        lastFull = p;
                        if (Double.isNaN(p.ttftS)) fullStopped = true;
                    }
                }
                points.add(p);
                out.println(row(p));
            }
        }
        out.println();
        out.print(table(points));
        Path svg = Path.of(a.opt("--svg", "target/sweep.svg"));
        if (svg.getParent() != null) Files.createDirectories(svg.getParent());
        Files.writeString(svg, svg(points, model.getFileName().toString()));
        out.println("plot: " + svg);
    }

    /** Runs one point in a child JVM and parses its report. */
    static Point measure(Path model, String mode, int n, int threads, long budgetS)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse("java"));
        cmd.add("--enable-native-access=ALL-UNNAMED");
        for (String prop : List.of("edgeinfinite.library.path", "edgeinfinite.binding", "edgeinfinite.cache.dir")) {
            String v = System.getProperty(prop);
            if (v != null) cmd.add("-D" + prop + "=" + v);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "bench-point", "-m",
                model.toString(), "--mode", mode, "--tokens", Integer.toString(n), "-t", Integer.toString(threads)));
        Process proc = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        List<String> lines = new ArrayList<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(proc.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null;) lines.add(l);
            } catch (IOException ignored) {
                // the process died; what was read is reported below
            }
        });
        reader.start();
        if (!proc.waitFor(budgetS, TimeUnit.SECONDS)) {
            proc.destroyForcibly();
            reader.join();
            return new Point(mode, n, Double.NaN, Double.NaN, Double.NaN, -1, -1, "stopped: over the " + budgetS + " s budget");
        }
        reader.join();
        for (String l : lines) {
            if (l.startsWith("POINT ")) return parse(mode, n, l);
        }
        return new Point(mode, n, Double.NaN, Double.NaN, Double.NaN, -1, -1,
                "failed: " + (lines.isEmpty() ? "exit " + proc.exitValue() : lines.get(lines.size() - 1)));
    }

    private static Point parse(String mode, int n, String line) {
        double ttft = 0, pp = 0, tg = 0;
        long rss = 0, pool = 0;
        for (String kv : line.substring(6).split(" ")) {
            String[] p = kv.split("=");
            switch (p[0]) {
                case "ttft_s" -> ttft = Double.parseDouble(p[1]);
                case "prefill_tps" -> pp = Double.parseDouble(p[1]);
                case "decode_tps" -> tg = Double.parseDouble(p[1]);
                case "rss_kb" -> rss = Long.parseLong(p[1]);
                case "pool_bytes" -> pool = Long.parseLong(p[1]);
                default -> { }
            }
        }
        return new Point(mode, n, ttft, pp, tg, rss, pool, "");
    }

    /** The child side: one prompt of n random tokens, then 16 decode steps; prints one line. */
    static void point(Main.Args a, PrintStream out) throws IOException {
        Path model = Path.of(a.required("-m"));
        String mode = a.required("--mode");
        int n = a.intOpt("--tokens", 1024), decode = 16, threads = a.intOpt("-t", 0);
        Scenario sc = (mode.equals("full") ? Scenario.fullAttention(n + decode + 1) : Scenario.preset(EI_SCENARIO))
                .toBuilder().threads(threads).build();
        try (Model m = Model.load(model); Session s = m.newSession(sc)) {
            int[] prompt = new Random(1).ints(n, 3, m.vocabSize()).toArray();
            long t0 = System.nanoTime();
            float[] logits = s.eval(prompt);
            long t1 = System.nanoTime();
            int[] one = {argmax(logits)};
            for (int i = 0; i < decode; i++) one[0] = argmax(s.eval(one));
            long t2 = System.nanoTime();
            out.printf(Locale.ROOT, "POINT ttft_s=%.3f prefill_tps=%.2f decode_tps=%.2f rss_kb=%d pool_bytes=%d route=%s%n",
                    (t1 - t0) / 1e9, n * 1e9 / (t1 - t0), decode * 1e9 / (t2 - t1), peakRssKb(), s.poolSize(), s.route());
        }
    }

    private static int argmax(float[] l) {
        int b = 0;
        for (int i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
        return b;
    }

    /** The process's peak resident set (VmHWM), in KiB; -1 where /proc is missing. */
    static long peakRssKb() throws IOException {
        Path status = Path.of("/proc/self/status");
        if (!Files.exists(status)) return -1;
        for (String l : Files.readAllLines(status)) {
            if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("[^0-9]", ""));
        }
        return -1;
    }

    static String row(Point p) {
        if (Double.isNaN(p.ttftS)) return String.format(Locale.ROOT, "%-13s %8d  %s", p.mode, p.tokens, p.note);
        return String.format(Locale.ROOT, "%-13s %8d  TTFT %9.2f s  prefill %8.1f t/s  decode %7.2f t/s  peak RSS %8.1f MiB",
                p.mode, p.tokens, p.ttftS, p.prefillTps, p.decodeTps, p.rssKb / 1024.0);
    }

    static String table(List<Point> points) {
        StringBuilder sb = new StringBuilder();
        sb.append("| prompt tokens | route | TTFT (s) | prefill (t/s) | decode (t/s) | peak RSS (MiB) | pool (MiB) |\n");
        sb.append("|---:|---|---:|---:|---:|---:|---:|\n");
        for (Point p : points) {
            if (Double.isNaN(p.ttftS)) {
                sb.append(String.format(Locale.ROOT, "| %d | %s | %s | | | | |%n", p.tokens, p.mode, p.note));
            } else {
                sb.append(String.format(Locale.ROOT, "| %d | %s | %.2f | %.1f | %.2f | %.1f | %.1f |%n", p.tokens, p.mode,
                        p.ttftS, p.prefillTps, p.decodeTps, p.rssKb / 1024.0, p.poolBytes / 1048576.0));
            }
        }
        return sb.toString();
    }

    /** Two panels (TTFT and peak RSS against prompt length, log-log), one line per route. */
    static String svg(List<Point> points, String title) {
        int w = 900, h = 400, pw = 380, ph = 280, top = 60, left1 = 70, left2 = 520;
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif' "
                + "font-size='12'>%n<rect width='100%%' height='100%%' fill='white'/>%n", w, h));
        sb.append(String.format("<text x='%d' y='24' font-size='15'>EdgeInfinite vs full attention: %s</text>%n", left1,
                esc(title)));
        panel(sb, points, left1, top, pw, ph, "time to first token (s)", true);
        panel(sb, points, left2, top, pw, ph, "peak RSS (MiB)", false);
        sb.append(String.format("<line x1='%d' y1='44' x2='%d' y2='44' stroke='#d62728' stroke-width='2'/>"
                + "<text x='%d' y='48'>full attention</text>%n", left1 + 300, left1 + 325, left1 + 330));
        sb.append(String.format("<line x1='%d' y1='44' x2='%d' y2='44' stroke='#1f77b4' stroke-width='2'/>"
                + "<text x='%d' y='48'>EdgeInfinite</text>%n", left1 + 440, left1 + 465, left1 + 470));
        sb.append("</svg>\n");
        return sb.toString();
    }

    private static void panel(StringBuilder sb, List<Point> pts, int x0, int y0, int pw, int ph, String label,
            boolean ttft) {
        List<Point> ok = pts.stream().filter(p -> !Double.isNaN(p.ttftS)).toList();
        if (ok.isEmpty()) return;
        double minX = ok.stream().mapToDouble(p -> Math.log(p.tokens)).min().orElse(0);
        double maxX = ok.stream().mapToDouble(p -> Math.log(p.tokens)).max().orElse(1);
        double minY = ok.stream().mapToDouble(p -> Math.log(value(p, ttft))).min().orElse(0);
        double maxY = ok.stream().mapToDouble(p -> Math.log(value(p, ttft))).max().orElse(1);
        if (maxX - minX < 1e-9) maxX = minX + 1;
        if (maxY - minY < 1e-9) maxY = minY + 1;
        double padY = (maxY - minY) * 0.1;
        minY -= padY;
        maxY += padY;
        sb.append(String.format("<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>%n", x0, y0, pw, ph));
        sb.append(String.format("<text x='%d' y='%d'>%s</text>%n", x0, y0 - 6, esc(label)));
        sb.append(String.format("<text x='%d' y='%d'>prompt tokens (log scale)</text>%n", x0 + pw / 2 - 70, y0 + ph + 34));
        for (Point p : ok) {
            if (!p.mode.equals("edgeinfinite")) continue;
            int x = (int) (x0 + (Math.log(p.tokens) - minX) / (maxX - minX) * pw);
            sb.append(String.format("<text x='%d' y='%d' text-anchor='middle'>%s</text>%n", x, y0 + ph + 16,
                    p.tokens >= 1024 ? p.tokens / 1024 + "K" : Integer.toString(p.tokens)));
        }
        for (int i = 0; i <= 4; i++) {
            double v = Math.exp(minY + (maxY - minY) * i / 4);
            int y = (int) (y0 + ph - ph * i / 4.0);
            sb.append(String.format(Locale.ROOT, "<text x='%d' y='%d' text-anchor='end'>%s</text>%n", x0 - 4, y + 4,
                    v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.2f", v)));
        }
        for (String mode : List.of("full", "edgeinfinite")) {
            StringBuilder path = new StringBuilder();
            for (Point p : ok) {
                if (!p.mode.equals(mode)) continue;
                double x = x0 + (Math.log(p.tokens) - minX) / (maxX - minX) * pw;
                double y = y0 + ph - (Math.log(value(p, ttft)) - minY) / (maxY - minY) * ph;
                path.append(path.length() == 0 ? "M" : " L").append(String.format(Locale.ROOT, "%.1f %.1f", x, y));
                sb.append(String.format(Locale.ROOT, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>%n", x, y, color(mode)));
            }
            if (path.length() > 0) {
                sb.append(String.format("<path d='%s' fill='none' stroke='%s' stroke-width='2'/>%n", path, color(mode)));
            }
        }
    }

    private static double value(Point p, boolean ttft) {
        return ttft ? Math.max(p.ttftS, 1e-3) : Math.max(p.rssKb / 1024.0, 1e-3);
    }

    private static String color(String mode) {
        return mode.equals("full") ? "#d62728" : "#1f77b4";
    }

    private static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }
}
