package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * The thread-safety contract (Model and Session Javadoc) under hostile interleavings: a model
 * closed while other threads tokenize, open sessions and evaluate on it; sessions closed or
 * cancelled mid-evaluation. Before the contract was enforced these killed the JVM in native
 * code; now every outcome must be a result or a documented exception. CI also runs this class
 * with the AddressSanitizer build of the native library (.ci/run), where a use-after-free is
 * reported instead of passing silently.
 */
class ConcurrencyTest {
    static final java.nio.file.Path TINY = TestData.model("tiny-llama-q8_0.gguf");
    static final Scenario SMALL = Scenario.builder().sink(4).window(64).segmentLength(16).threads(1).build();
    static final int ROUNDS = Integer.getInteger("edgeinfinite.stress.rounds", 12);

    static Thread start(Runnable r) {
        Thread t = new Thread(r);
        t.start();
        return t;
    }

    static int[] tokens(int n, long seed) {
        return new Random(seed).ints(n, 3, 1000).toArray();
    }

    /** The outcomes a caller may see when another thread closes or cancels under it. */
    static boolean expected(Throwable t) {
        return t instanceof IllegalStateException || t instanceof CancelledException;
    }

    @Test
    void modelClosedWhileOtherThreadsUseIt() throws Exception {
        ConcurrentLinkedQueue<Throwable> unexpected = new ConcurrentLinkedQueue<>();
        AtomicLong succeeded = new AtomicLong();
        for (int round = 0; round < ROUNDS; round++) {
            Model m = Model.load(TINY);
            CountDownLatch go = new CountDownLatch(1);
            List<Thread> users = new ArrayList<>();
            for (int kind = 0; kind < 4; kind++) {
                final int k = kind, seed = round * 10 + kind;
                users.add(start(() -> {
                    try {
                        go.await();
                        for (int i = 0; i < 10_000; i++) {
                            switch (k) {
                                case 0 -> m.tokenize("Once upon a time " + i, true, false);
                                case 1 -> m.detokenize(new int[] {5, 6, 7, 8});
                                case 2 -> m.vocabSize();
                                default -> {
                                    try (Session s = m.newSession(SMALL)) {
                                        s.eval(tokens(200, seed + i)); // folds: the memory route
                                    }
                                }
                            }
                            succeeded.incrementAndGet();
                        }
                    } catch (Throwable t) {
                        if (!expected(t)) unexpected.add(t);
                    }
                }));
            }
            go.countDown();
            Thread.sleep(5 + round * 3L);
            m.close();
            for (Thread t : users) t.join(TimeUnit.MINUTES.toMillis(2));
            assertTrue(m.isClosed());
            assertThrows(IllegalStateException.class, () -> m.tokenize("x", false, false));
            assertThrows(IllegalStateException.class, () -> m.newSession(SMALL));
        }
        if (!unexpected.isEmpty()) throw new AssertionError("unexpected failure", unexpected.peek());
        assertTrue(succeeded.get() > 0, "no call got through before close: the test did not race anything");
    }

    @Test
    void sessionsClosedOrCancelledMidEvaluation() throws Exception {
        ConcurrentLinkedQueue<Throwable> unexpected = new ConcurrentLinkedQueue<>();
        try (Model m = Model.load(TINY)) {
            for (int round = 0; round < ROUNDS; round++) {
                Session s = m.newSession(SMALL);
                CountDownLatch started = new CountDownLatch(1);
                AtomicInteger outcome = new AtomicInteger(-1);
                Thread user = start(() -> {
                    try {
                        started.countDown();
                        s.eval(tokens(3000, 7));
                        outcome.set(0);
                    } catch (Throwable t) {
                        if (!expected(t)) unexpected.add(t);
                        outcome.set(1);
                    }
                });
                started.await();
                Thread.sleep(round % 3);
                if (round % 2 == 0) s.cancel(); // and close below, racing the cancelled call's return
                s.close();
                user.join(TimeUnit.MINUTES.toMillis(2));
                assertTrue(outcome.get() >= 0, "the evaluating thread did not return");
                assertTrue(s.isClosed());
                assertThrows(IllegalStateException.class, s::position);
                s.cancel(); // after close: a no-op, never a crash
            }
        }
        if (!unexpected.isEmpty()) throw new AssertionError("unexpected failure", unexpected.peek());
    }

    @Test
    void cancelStopsAPrefillBeforeItsNextSegmentAndTheSessionContinuesExactly() {
        int[] doc = tokens(600, 11);
        int L = SMALL.segmentLength();
        try (Model m = Model.load(TINY); Session s = m.newSession(SMALL); Session ref = m.newSession(SMALL)) {
            AtomicLong cancelledAt = new AtomicLong(-1);
            // The listener runs between groups of segments: cancelling there is deterministic.
            CancelledException e = assertThrows(CancelledException.class, () -> s.eval(doc, (done, total) -> {
                if (cancelledAt.get() < 0) {
                    cancelledAt.set(done);
                    s.cancel();
                }
            }));
            assertTrue(e.getMessage().contains("cancelled"), e.getMessage());
            long at = s.position();
            assertEquals(cancelledAt.get(), at, "nothing ran after the cancel");
            assertTrue(at > 0 && at < doc.length && at % L == 0, "position " + at);
            // The request was consumed: the session continues where it stopped, bit for bit.
            float[] rest = s.eval(java.util.Arrays.copyOfRange(doc, (int) at, doc.length));
            assertArrayEquals(ref.eval(doc), rest);
            assertEquals(doc.length, s.position());
        }
    }

    @Test
    void cancelFromAnotherThreadStopsALongPrefill() throws Exception {
        Scenario sc = SMALL.toBuilder().threads(1).build();
        try (Model m = Model.load(TINY); Session s = m.newSession(sc)) {
            int[] doc = tokens(50_000, 12);
            CountDownLatch running = new CountDownLatch(1);
            Thread canceller = start(() -> {
                try {
                    running.await();
                    Thread.sleep(50);
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
                s.cancel();
            });
            assertThrows(CancelledException.class, () -> s.eval(doc, (done, total) -> running.countDown()));
            canceller.join();
            long at = s.position();
            assertTrue(at < doc.length && at % sc.segmentLength() == 0, "stopped at " + at);
            s.eval(new int[] {5}); // still usable
            assertEquals(at + 1, s.position());
        }
    }

    @Test
    void generationCancelStopsItsPrefill() {
        try (Model m = Model.load(TestData.model("tiny-llama-spm-f16.gguf")); Session s = m.newSession(SMALL)) {
            String prompt = "Once upon a time there was a tiny model. ".repeat(40);
            Generation[] g = new Generation[1];
            g[0] = s.stream(prompt, GenerateOptions.builder().greedy().maxTokens(8).build(),
                    (done, total) -> g[0].cancel());
            assertEquals(0, s.position(), "the prompt is read on the first hasNext");
            assertTrue(!g[0].hasNext());
            GenerationResult r = g[0].result();
            assertEquals(StopReason.CANCELLED, r.stopReason());
            assertEquals(0, r.generatedTokens());
            assertTrue(s.position() < r.promptTokens(), "the prefill stopped early at " + s.position());
            // A generation cancelled before it began runs nothing at all.
            s.reset();
            Generation early = s.stream("Hello", GenerateOptions.builder().greedy().maxTokens(4).build());
            early.cancel();
            assertTrue(!early.hasNext());
            assertEquals(StopReason.CANCELLED, early.stopReason());
            assertEquals(0, s.position());
            // And a stale cancel does not leak into the next generation.
            GenerationResult next = s.generate("Hello", GenerateOptions.builder().greedy().maxTokens(4).build(), p -> {});
            assertEquals(4, next.generatedTokens());
        }
    }
}
