package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Sessions opened and closed many times on one model through the public API (under the
 * binding the suite runs with): every close must hand back the native side (plan, session,
 * thread pool) and the pool, so the process's resident memory stays flat.
 */
class SessionSoakTest {
    static final Path TINY = TestData.model("tiny-llama-q8_0.gguf");
    static final int SESSIONS = 10_000;
    static final int WARM_UP = Math.min(1_000, SESSIONS / 2);

    /** VmRSS in KiB: what the process holds now, native memory included, unlike the Java heap figures. */
    static long rssKb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void manySessionsOpenAndCloseWithoutNativeGrowth() throws IOException {
        Scenario sc = Scenario.builder().sink(16).window(64).segmentLength(32).threads(2).build();
        long rssWarm = 0, rssEnd;
        long t0 = System.nanoTime();
        try (Model m = Model.load(TINY)) {
            int[] prompt = {1, 5};
            for (int i = 0; i < SESSIONS; i++) {
                try (Session s = m.newSession(sc)) {
                    if (i % 100 == 0) s.eval(prompt);  // now and then a step, so closing a used session is covered too
                }
                if (i + 1 == WARM_UP) {
                    System.gc();  // Java garbage is not what is measured; settle it before both samples
                    rssWarm = rssKb();
                }
            }
            System.gc();
            rssEnd = rssKb();  // with the model still mapped, as at the first sample
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        System.out.printf("Java sessions (%s): %d opened and closed in %.1f s (%.0f us each); RSS after %d %d KiB,"
                + " at the end %d KiB (growth %d KiB)%n", EdgeInfinite.binding(), SESSIONS, secs, 1e6 * secs / SESSIONS,
                WARM_UP, rssWarm, rssEnd, rssEnd - rssWarm);
        // The Java heap resizing moves RSS by tens of MiB either way; the least a leak could add
        // is far more: a plan left open is ~70 KiB (~600 MiB over the run), a session with its
        // pool ~650 KiB.
        assertTrue(rssEnd - rssWarm < 64 * 1024, "RSS grew by " + (rssEnd - rssWarm) + " KiB");
    }
}
