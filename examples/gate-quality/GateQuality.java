import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A rough quality check of fitted memory gates (the official table comes from `ei eval`):
 * over windows of 1,024 tokens of a text (BOS first, as `ei perplexity` cuts them; the first
 * SKIP windows are left out, e.g. those the gates were fitted on),
 * the perplexity of late positions 512-1022 and of a repeated span (tokens 100-227 of the
 * window copied over 700-827, 600 tokens later, scored from 701 on: predictable only by
 * looking back past the window), for each configuration given.
 *
 * <p>Run from the project root after `./ei build`:
 * <pre>java --enable-native-access=ALL-UNNAMED -cp target/edgeinfinite-0.1.0.jar \
 *     examples/gate-quality/GateQuality.java TEXT SKIP WINDOWS SINK WINDOW L label=MODEL[,full][,rule=delta][,keys=rope] ...</pre>
 */
public class GateQuality {
    static final int N = 1024, SPAN = 128, FROM = 100, TO = 700;

    public static void main(String[] args) throws Exception {
        String text = Files.readString(Path.of(args[0]));
        int skip = Integer.parseInt(args[1]), windows = Integer.parseInt(args[2]), sink = Integer.parseInt(args[3]),
                window = Integer.parseInt(args[4]), seg = Integer.parseInt(args[5]);
        for (int i = 6; i < args.length; i++) {
            String label = args[i].substring(0, args[i].indexOf('='));
            String[] parts = args[i].substring(label.length() + 1).split(",");
            Scenario.Builder b = Scenario.builder().sink(sink).window(window).segmentLength(seg).memory(true);
            boolean full = false;
            for (int k = 1; k < parts.length; k++) {
                if (parts[k].equals("full")) full = true;
                else if (parts[k].equals("rule=delta")) b.memoryRule(Scenario.MemoryRule.DELTA);
                else if (parts[k].equals("keys=rope")) b.memoryKeys(Scenario.MemoryKeys.ROPE);
                else throw new IllegalArgumentException("unknown option " + parts[k]);
            }
            Scenario sc = full ? Scenario.fullAttention(N) : b.build();
            long t0 = System.nanoTime();
            try (Model m = Model.load(Path.of(parts[0])); Session s = m.newSession(sc)) {
                int[] all = m.tokenize(text, false, false);
                int count = Math.min(windows, all.length / N - skip);
                if (count <= 0) throw new IllegalArgumentException("the text has no window after the first " + skip);
                double late = 0, rep = 0;
                int nLate = 0, nRep = 0;
                for (int c = 0; c < count; c++) {
                    int[] w = Arrays.copyOfRange(all, (skip + c) * N, (skip + c + 1) * N);
                    if (m.addsBos()) w[0] = m.bosToken();
                    s.reset();
                    float[] l = s.logits(w);
                    for (int p = N / 2; p < N - 1; p++, nLate++) late -= logSoftmax(l, p, m.vocabSize(), w[p + 1]);
                    int[] r = w.clone();
                    System.arraycopy(w, FROM, r, TO, SPAN);
                    s.reset();
                    l = s.logits(r);
                    for (int p = TO; p < TO + SPAN - 1; p++, nRep++) rep -= logSoftmax(l, p, m.vocabSize(), r[p + 1]);
                }
                System.out.printf("%-22s late %.4f  repeated span %.4f  (%d windows, %.0f s)%n", label,
                        Math.exp(late / nLate), Math.exp(rep / nRep), count, (System.nanoTime() - t0) / 1e9);
            }
        }
    }

    static double logSoftmax(float[] l, int row, int n, int target) {
        int off = row * n;
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, l[off + i]);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.exp(l[off + i] - max);
        return l[off + target] - max - Math.log(sum);
    }
}
