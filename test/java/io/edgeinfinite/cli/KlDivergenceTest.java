package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import io.edgeinfinite.TestData;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ei perplexity --kl-divergence-base / --kl-divergence}: the statistics against a
 * computation written here from both models' logits, and the base file reader against
 * malformed files (it is Java, so these tests stand in for a libFuzzer target: every
 * header field out of range, truncation, trailing bytes, bad rows, a flipped bit caught by
 * the checksum, and random mutations that must end in a clear error or a clean read).
 */
class KlDivergenceTest {
    static final Path F32 = TestData.model("tiny-llama-f32.gguf");
    static final Path Q8 = TestData.model("tiny-llama-q8_0.gguf");
    static final int CTX = 48;

    @TempDir
    Path tmp;

    Path text() throws Exception {
        Path f = tmp.resolve("t.txt");
        Files.writeString(f, PerplexityTest.text(2500));
        return f;
    }

    Path base(Path text) {
        return base(text, CTX);
    }

    Path base(Path text, int ctx) {
        Path b = tmp.resolve("base.kld");
        MainTest.Run r = MainTest.ei("perplexity", "-m", F32.toString(), "-f", text.toString(), "--ctx", "" + ctx,
                "--kl-divergence-base", b.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("wrote the base log-probabilities"), r.out());
        return b;
    }

    static double field(String out, String name) {
        Matcher m = Pattern.compile(Pattern.quote(name) + " *: *(-?[0-9.]+)").matcher(out);
        assertTrue(m.find(), name + " in\n" + out);
        return Double.parseDouble(m.group(1));
    }

    /** All-logits of every chunk of a model over the text, by the perplexity rule (BOS in front). */
    static float[][] chunkLogits(Path model, String fileText, int[][] targets) {
        try (Model m = Model.load(model);
                Session s = m.newSession(Scenario.builder().sink(0).window(CTX).segmentLength(CTX).memory(false).build())) {
            int[] all = m.tokenize(fileText.substring(0, fileText.length() - 1), true, false);
            int chunks = all.length / CTX;
            float[][] out = new float[chunks][];
            targets[0] = all;
            for (int c = 0; c < chunks; c++) {
                int[] in = Arrays.copyOfRange(all, c * CTX, c * CTX + CTX);
                in[0] = m.bosToken();
                s.reset();
                out[c] = s.logits(in);
            }
            return out;
        }
    }

    @Test
    void statisticsMatchAComputationFromBothModelsLogits() throws Exception {
        Path text = text();
        Path b = base(text);
        MainTest.Run r = MainTest.ei("perplexity", "-m", Q8.toString(), "-f", text.toString(), "--ctx", "" + CTX,
                "--kl-divergence", b.toString());
        assertEquals(0, r.status(), r.err());

        String t = Files.readString(text);
        int[][] tok = new int[1][];
        float[][] p = chunkLogits(F32, t, tok), q = chunkLogits(Q8, t, tok);
        int v = 1024, n = 0, same = 0;
        double kl = 0, nllQ = 0, nllP = 0, signal2 = 0, noise2 = 0;
        for (int c = 0; c < p.length; c++) {
            for (int i = CTX / 2; i <= CTX - 2; i++) {
                double[] lp = logSoftmax(p[c], i * v, v), lq = logSoftmax(q[c], i * v, v);
                double k = 0;
                int ap = 0, aq = 0;
                for (int j = 0; j < v; j++) {
                    k += Math.exp(lp[j]) * (lp[j] - lq[j]);
                    if (lp[j] > lp[ap]) ap = j;
                    if (lq[j] > lq[aq]) aq = j;
                }
                kl += k;
                if (ap == aq) same++;
                // SQNR over the tokens the base resolves (within 16 nats of its top), centered.
                double sb = 0, sd = 0, sb2 = 0, sd2 = 0;
                int m = 0;
                for (int j = 0; j < v; j++) {
                    if (lp[j] <= lp[ap] - 16) continue;
                    double d = lq[j] - lp[j];
                    sb += lp[j];
                    sb2 += lp[j] * lp[j];
                    sd += d;
                    sd2 += d * d;
                    m++;
                }
                signal2 += sb2 - sb * sb / m;
                noise2 += sd2 - sd * sd / m;
                int target = tok[0][c * CTX + i + 1];
                nllQ -= lq[target];
                nllP -= lp[target];
                n++;
            }
        }
        assertEquals(n, (int) field(r.out(), "tokens compared"));
        double mean = kl / n;
        assertTrue(mean > 1e-5, "q8_0 differs from f32: " + mean);
        // The base keeps ln p in 2.4e-4-nat steps and drops tokens 16 nats below the top one.
        assertEquals(mean, field(r.out(), "KLD mean"), 2e-5 + 0.02 * mean, r.out());
        assertEquals(100.0 * same / n, field(r.out(), "same top token"), 100.0 / n + 1e-3, r.out());
        assertEquals(Math.exp(nllQ / n), field(r.out(), "PPL(Q)"), 1e-5 * Math.exp(nllQ / n), r.out());
        assertEquals(Math.exp(nllP / n), field(r.out(), "PPL(base)"), 1e-5 * Math.exp(nllP / n), r.out());
        assertEquals((nllQ - nllP) / n, field(r.out(), "ln(PPL(Q)/PPL(base))"), 2e-6, r.out());
        double med = field(r.out(), "KLD median"), p99 = field(r.out(), "KLD  99.0%");
        assertTrue(field(r.out(), "KLD min") <= med && med <= p99 && p99 <= field(r.out(), "KLD max"), r.out());
        assertTrue(field(r.out(), "delta p RMS") > 0, r.out());
        double sqnr = 10 * Math.log10(signal2 / noise2);
        assertEquals(sqnr, field(r.out(), "logits SQNR"), 0.3, r.out());
    }

    static double[] logSoftmax(float[] l, int off, int n) {
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        for (int j = 0; j < n; j++) max = Math.max(max, l[off + j]);
        for (int j = 0; j < n; j++) sum += Math.exp(l[off + j] - max);
        double[] out = new double[n];
        for (int j = 0; j < n; j++) out[j] = l[off + j] - max - Math.log(sum);
        return out;
    }

    @Test
    void aModelAgainstItsOwnBaseIsNearZero() throws Exception {
        Path text = text();
        Path b = base(text);
        MainTest.Run r = MainTest.ei("perplexity", "-m", F32.toString(), "-f", text.toString(), "--ctx", "" + CTX,
                "--kl-divergence", b.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(Math.abs(field(r.out(), "KLD mean")) < 1e-4, r.out());
        assertEquals(100.0, field(r.out(), "same top token"), 1e-9, r.out());
        assertEquals(1.0, field(r.out(), "PPL(Q)/PPL(base)"), 1e-6, r.out());
        // Only the base file's 16-bit steps separate them.
        assertTrue(field(r.out(), "logits SQNR") > 60, r.out());
    }

    @Test
    void refusesABaseMadeForAnotherTextCtxOrVocabulary() throws Exception {
        Path text = text();
        Path b = base(text);
        Path other = tmp.resolve("other.txt");
        Files.writeString(other, PerplexityTest.text(2500).replace("the", "a"));
        MainTest.Run r = MainTest.ei("perplexity", "-m", Q8.toString(), "-f", other.toString(), "--ctx", "" + CTX,
                "--kl-divergence", b.toString());
        assertEquals(1, r.status());
        assertTrue(r.err().contains("another text") || r.err().contains("chunks"), r.err());
        MainTest.Run c = MainTest.ei("perplexity", "-m", Q8.toString(), "-f", text.toString(), "--ctx", "32",
                "--kl-divergence", b.toString());
        assertEquals(1, c.status());
        assertTrue(c.err().contains("with --ctx 48, this run uses --ctx 32"), c.err());
        MainTest.Run v = MainTest.ei("perplexity", "-m", TestData.model("tiny-qwen2-f32.gguf").toString(), "-f",
                text.toString(), "--ctx", "" + CTX, "--kl-divergence", b.toString());
        assertEquals(1, v.status());
        assertTrue(v.err().contains("another vocabulary"), v.err());
    }

    /** Reads a whole base file as --kl-divergence does. */
    static void readAll(Path f) throws Exception {
        try (KlBaseFile.Reader r = new KlBaseFile.Reader(f)) {
            KlBaseFile.Row row = new KlBaseFile.Row(r.header.nVocab());
            for (long i = 0; i < r.header.rows(); i++) r.next(row);
        }
    }

    Path mutated(byte[] good, Consumer<ByteBuffer> edit) throws Exception {
        byte[] b = good.clone();
        edit.accept(ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN));
        Path f = tmp.resolve("bad.kld");
        Files.write(f, b);
        return f;
    }

    void expectError(Path f, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> readAll(f));
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void malformedBaseFilesGetClearErrors() throws Exception {
        byte[] good = Files.readAllBytes(base(text()));
        readAll(mutated(good, b -> {}));
        expectError(mutated(good, b -> b.put(0, (byte) 'X')), "no EIKLBASE magic");
        expectError(mutated(good, b -> b.putInt(8, 2)), "version 2");
        expectError(mutated(good, b -> b.putInt(12, 0)), "n_vocab is 0");
        expectError(mutated(good, b -> b.putInt(12, 1 << 30)), "n_vocab is");
        expectError(mutated(good, b -> b.putInt(16, 1)), "ctx is 1");
        expectError(mutated(good, b -> b.putInt(16, 64)), "first is 24");
        expectError(mutated(good, b -> b.putInt(20, 0)), "n_chunks is 0");
        expectError(mutated(good, b -> b.putInt(20, Integer.MAX_VALUE)), "implies");
        expectError(mutated(good, b -> b.putInt(24, 23)), "first is 23");
        expectError(mutated(good, b -> b.putInt(28, 1024)), "bos is 1024");
        expectError(mutated(good, b -> b.putLong(40, 1)), "reserved is 1");
        expectError(mutated(good, b -> b.putInt(48, 5000)), "token 5000 at 0");
        int rows = KlBaseFile.HEADER + 4 * ByteBuffer.wrap(good).order(ByteOrder.LITTLE_ENDIAN).getInt(16)
                * ByteBuffer.wrap(good).order(ByteOrder.LITTLE_ENDIAN).getInt(20);
        expectError(mutated(good, b -> b.putFloat(rows + 4, Float.NaN)), "row 0: floor NaN");
        expectError(mutated(good, b -> b.putFloat(rows + 8, 1f)), "row 0: floor");
        expectError(mutated(good, b -> b.putFloat(rows + 4, 5f)), "row 0");
        expectError(mutated(good, b -> b.putFloat(rows, Float.POSITIVE_INFINITY)), "row 0: the next token's ln p is Infinity");
        expectError(mutated(good, b -> b.put(good.length - 10, (byte) (b.get(good.length - 10) ^ 1))), "fails its checksum");
        Path shorter = tmp.resolve("short.kld");
        Files.write(shorter, Arrays.copyOf(good, good.length - 1));
        expectError(shorter, "(truncated?)");
        Files.write(shorter, Arrays.copyOf(good, 20));
        expectError(shorter, "ends inside the header");
        Files.write(shorter, Arrays.copyOf(good, good.length + 3));
        expectError(shorter, "implies");
    }

    @Test
    void randomMutationsEndInAClearErrorOrACleanRead() throws Exception {
        Path small = tmp.resolve("small.txt");
        Files.writeString(small, PerplexityTest.text(400));
        byte[] good = Files.readAllBytes(base(small, 16));  // a few chunks: 300 reads stay fast
        Random rnd = new Random(13);
        Path f = tmp.resolve("m.kld");
        int errors = 0;
        for (int k = 0; k < 300; k++) {
            byte[] b = good.clone();
            int flips = 1 + rnd.nextInt(4);
            for (int j = 0; j < flips; j++) {
                // Half the mutations hit the header and tokens, where the checks are densest.
                int at = rnd.nextBoolean() ? rnd.nextInt(200) : rnd.nextInt(b.length);
                b[at] = (byte) rnd.nextInt(256);
            }
            if (rnd.nextInt(8) == 0) b = Arrays.copyOf(b, rnd.nextInt(b.length + 16));
            Files.write(f, b);
            try {
                readAll(f);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage().startsWith("KL-divergence base file"), e.getMessage());
                errors++;
            }
        }
        assertTrue(errors > 250, "the checksum catches what the field checks let through: " + errors);
    }
}
