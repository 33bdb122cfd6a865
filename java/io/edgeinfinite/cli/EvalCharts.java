package io.edgeinfinite.cli;

import java.util.List;
import java.util.Locale;

/**
 * The SVG charts of {@code ei eval}, written by hand (no library): a line chart (one line per
 * configuration) and grids of cells (accuracy by length and depth, one grid per
 * configuration). Each series is a {@code <g class="series" data-name="...">} so tools and
 * tests can find it.
 */
final class EvalCharts {
    private EvalCharts() {}

    record Line(String name, List<double[]> points) {}

    private static final String[] COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
        "#e377c2", "#17becf"};

    static String lineChart(String title, String xLabel, String yLabel, List<Line> lines) {
        final int w = 720, h = 420, left = 70, right = 170, top = 40, bottom = 55;
        final int pw = w - left - right, ph = h - top - bottom;
        double xmin = Double.POSITIVE_INFINITY, xmax = Double.NEGATIVE_INFINITY;
        double ymin = Double.POSITIVE_INFINITY, ymax = Double.NEGATIVE_INFINITY;
        for (Line l : lines) {
            for (double[] p : l.points()) {
                if (!Double.isFinite(p[1])) continue;
                xmin = Math.min(xmin, p[0]);
                xmax = Math.max(xmax, p[0]);
                ymin = Math.min(ymin, p[1]);
                ymax = Math.max(ymax, p[1]);
            }
        }
        if (!(xmin <= xmax)) {
            xmin = 0;
            xmax = 1;
            ymin = 0;
            ymax = 1;
        }
        // Lengths that double are read best on a log axis.
        final boolean logX = xmin > 0 && xmax / xmin >= 4;
        final double x0 = logX ? Math.log(xmin) : xmin, x1 = logX ? Math.log(xmax) : xmax;
        double pad = (ymax - ymin) * 0.08;
        if (pad == 0) pad = Math.max(Math.abs(ymax) * 0.05, 0.5);
        final double y0 = Math.max(0, ymin - pad), y1 = ymax + pad;
        java.util.function.DoubleUnaryOperator px = x -> left
                + (x1 == x0 ? pw / 2.0 : ((logX ? Math.log(x) : x) - x0) / (x1 - x0) * pw);
        java.util.function.DoubleUnaryOperator py = y -> top + ph - (y - y0) / (y1 - y0) * ph;

        StringBuilder b = header(w, h, title);
        b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
                + "stroke=\"#888\"/>%n", left, top, pw, ph));
        for (int i = 0; i <= 5; i++) {  // y ticks
            double v = y0 + (y1 - y0) * i / 5;
            double y = py.applyAsDouble(v);
            b.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                    + "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>%n", left, y, left + pw, y, left - 6, y + 4,
                    tick(v)));
        }
        java.util.TreeSet<Double> xs = new java.util.TreeSet<>();
        for (Line l : lines) for (double[] p : l.points()) xs.add(p[0]);
        for (double v : xs) {  // x ticks at the measured lengths
            double x = px.applyAsDouble(v);
            b.append(String.format(Locale.ROOT, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
                    + "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>%n", x, top, x, top + ph, x, top + ph + 16,
                    tick(v)));
        }
        b.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>%n",
                left + pw / 2.0, h - 14, esc(xLabel + (logX ? " (log scale)" : ""))));
        b.append(String.format(Locale.ROOT, "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" "
                + "transform=\"rotate(-90 16 %.1f)\">%s</text>%n", top + ph / 2.0, top + ph / 2.0, esc(yLabel)));
        for (int i = 0; i < lines.size(); i++) {
            Line l = lines.get(i);
            String color = COLORS[i % COLORS.length];
            b.append("<g class=\"series\" data-name=\"").append(esc(l.name())).append("\">\n");
            StringBuilder pts = new StringBuilder();
            for (double[] p : l.points()) {
                if (!Double.isFinite(p[1])) continue;
                double x = px.applyAsDouble(p[0]), y = py.applyAsDouble(p[1]);
                pts.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
                b.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\">"
                        + "<title>%s at %s: %s</title></circle>%n", x, y, color, esc(l.name()), tick(p[0]),
                        String.format(Locale.ROOT, "%.4f", p[1])));
            }
            b.append(String.format("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>%n", color,
                    pts.toString().trim()));
            int ly = top + 14 + 20 * i;
            b.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                    + "stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">%s</text>%n", left + pw + 12, ly, left + pw + 36, ly,
                    color, left + pw + 42, ly + 4, esc(l.name())));
            b.append("</g>\n");
        }
        return b.append("</svg>\n").toString();
    }

    /** One grid per series: rows = depths, columns = lengths, cells shaded by value in [0, 1]. */
    record Grid(String name, List<Integer> columns, List<Double> rows, double[][] values) {}

    static String grids(String title, String colLabel, String rowLabel, List<Grid> grids) {
        final int cell = 46, labelW = 60, gap = 40, top = 60;
        int gw = 0, gh = 0;
        for (Grid g : grids) {
            gw = Math.max(gw, labelW + cell * g.columns().size());
            gh = Math.max(gh, cell * g.rows().size());
        }
        int w = Math.max(420, 20 + grids.size() * (gw + gap)), h = top + gh + 60;
        StringBuilder b = header(w, h, title);
        for (int k = 0; k < grids.size(); k++) {
            Grid g = grids.get(k);
            int ox = 20 + k * (gw + gap);
            b.append("<g class=\"series\" data-name=\"").append(esc(g.name())).append("\">\n");
            b.append(String.format("<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>%n", ox, top - 28,
                    esc(g.name())));
            for (int c = 0; c < g.columns().size(); c++) {
                b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>%n",
                        ox + labelW + c * cell + cell / 2, top - 8, g.columns().get(c)));
            }
            for (int r = 0; r < g.rows().size(); r++) {
                int y = top + r * cell;
                b.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>%n",
                        ox + labelW - 6, y + cell / 2 + 4, tick(g.rows().get(r))));
                for (int c = 0; c < g.columns().size(); c++) {
                    double v = g.values()[r][c];
                    int x = ox + labelW + c * cell;
                    b.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                            + "stroke=\"#fff\"><title>%s, length %d, depth %s: %.2f</title></rect>"
                            + "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>%n", x, y, cell, cell, shade(v),
                            esc(g.name()), g.columns().get(c), tick(g.rows().get(r)), v, x + cell / 2, y + cell / 2 + 4,
                            Double.isNaN(v) ? "-" : String.format(Locale.ROOT, "%.2f", v)));
                }
            }
            b.append("</g>\n");
        }
        b.append(String.format("<text x=\"20\" y=\"%d\">columns: %s; rows: %s</text>%n", h - 20, esc(colLabel),
                esc(rowLabel)));
        return b.append("</svg>\n").toString();
    }

    // White (0) to green (1); grey where nothing was measured.
    private static String shade(double v) {
        if (Double.isNaN(v)) return "#ccc";
        double t = Math.max(0, Math.min(1, v));
        return String.format("#%02x%02x%02x", (int) (255 - 211 * t), (int) (255 - 95 * t), (int) (255 - 211 * t));
    }

    private static StringBuilder header(int w, int h, String title) {
        StringBuilder b = new StringBuilder();
        b.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        b.append(String.format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                + "font-family=\"sans-serif\" font-size=\"12\">%n", w, h, w, h));
        b.append(String.format("<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>%n", w, h));
        b.append(String.format("<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>%n", w / 2,
                esc(title)));
        return b;
    }

    static String tick(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e9) return Long.toString((long) v);
        return String.format(Locale.ROOT, Math.abs(v) >= 100 ? "%.0f" : Math.abs(v) >= 10 ? "%.1f" : "%.2f", v);
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
