package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.Json;
import io.edgeinfinite.TestData;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ei calibrate}: the fake-quantizers against a reference, the file's fields, and bad input. */
class CalibrateTest {
    @TempDir
    Path tmp;

    // The formats written out plainly in double: groups of `block` inputs per row, s = max|w| / qmax.
    static double[] reference(float[] w, int rows, int cols, int qmax, int block) {
        double[] out = new double[w.length];
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < cols; g += block) {
                int end = Math.min(cols, g + block);
                double amax = 0;
                for (int j = g; j < end; j++) amax = Math.max(amax, Math.abs(w[r * cols + j]));
                double s = amax / qmax;
                for (int j = g; j < end; j++) {
                    double x = s == 0 ? 0 : w[r * cols + j] / s;
                    double q = Math.signum(x) * Math.min(qmax, Math.floor(Math.abs(x) + 0.5));
                    out[r * cols + j] = q * s;
                }
            }
        }
        return out;
    }

    @Test
    void fakeQuantizersMatchAPlainReference() {
        Random rnd = new Random(7);
        int rows = 5, cols = 70;  // 70 = 2 blocks of 32 + a block of 6
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * Math.exp(rnd.nextGaussian()));
        for (int j = 0; j < cols; j++) w[3 * cols + j] = 0;  // an all-zero row stays zero
        for (Calibrate.WeightFormat f : Calibrate.WeightFormat.values()) {
            float[] q = w.clone();
            f.apply(q, rows, cols);
            int block = f == Calibrate.WeightFormat.INT8_PER_CHANNEL ? cols : 32;
            double[] want = reference(w, rows, cols, f.qmax, block);
            int levels = 0;
            for (int i = 0; i < w.length; i++) {
                assertEquals(want[i], q[i], 1e-6 * Math.abs(want[i]) + 1e-30, f + " at " + i);
                if (q[i] != w[i]) levels++;
            }
            assertTrue(levels > w.length / 2, "values moved to the grid");
            float[] again = q.clone();
            f.apply(again, rows, cols);
            for (int i = 0; i < q.length; i++) assertEquals(q[i], again[i], 1e-6 * Math.abs(q[i]), "idempotent");
        }
    }

    @Test
    void halvesConvert() {
        assertEquals(1.0f, Calibrate.halfToFloat((short) 0x3C00));
        assertEquals(-2.0f, Calibrate.halfToFloat((short) 0xC000));
        assertEquals(0x1p-24f, Calibrate.halfToFloat((short) 0x0001));
        assertEquals(65504f, Calibrate.halfToFloat((short) 0x7BFF));
        assertEquals(0x1p-14f, Calibrate.halfToFloat((short) 0x0400));
    }

    @Test
    @SuppressWarnings("unchecked")
    void writesRangesAndSensitivityOfEveryLayer() throws Exception {
        Path text = tmp.resolve("t.txt");
        Files.writeString(text, PerplexityTest.text(3000));
        Path out = tmp.resolve("cal.json");
        MainTest.Run r = MainTest.ei("calibrate", "-m", TestData.model("tiny-llama-f32.gguf").toString(), "-f",
                text.toString(), "-o", out.toString(), "--ctx", "32", "--chunks", "2", "--sensitivity-tokens", "20");
        assertEquals(0, r.status(), r.err());
        Map<String, Object> j = (Map<String, Object>) Json.parse(Files.readString(out));
        assertEquals("edgeinfinite-calibration", j.get("format"));
        assertEquals(1.0, ((Number) j.get("version")).doubleValue());
        assertEquals(64.0, ((Number) j.get("tokens")).doubleValue());
        Map<String, Object> acts = (Map<String, Object>) j.get("activations");
        assertEquals(1 + 4 * 13 + 1, acts.size());
        for (String site : List.of("token_embd", "blk.0.attn_norm", "blk.0.attn_q", "blk.1.attn", "blk.3.ffn_down",
                "blk.2.ffn_swiglu", "blk.0.q_rope", "output_norm")) {
            assertTrue(acts.containsKey(site), site);
        }
        for (Map.Entry<String, Object> e : acts.entrySet()) {
            Map<String, Object> s = (Map<String, Object>) e.getValue();
            double min = ((Number) s.get("min")).doubleValue(), max = ((Number) s.get("max")).doubleValue();
            assertTrue(min <= max, e.getKey());
            List<Object> q = (List<Object>) s.get("abs_quantiles");
            assertEquals(Calibrate.QUANTILES.length, q.size());
            for (int i = 1; i < q.size(); i++) {
                assertTrue(((Number) q.get(i - 1)).doubleValue() <= ((Number) q.get(i)).doubleValue(), e.getKey());
            }
            assertTrue(((Number) q.get(q.size() - 1)).doubleValue() <= Math.max(-min, max), e.getKey());
        }
        assertEquals(64.0 * 256, ((Number) ((Map<String, Object>) acts.get("token_embd")).get("count")).doubleValue());
        assertEquals(64.0 * 768, ((Number) ((Map<String, Object>) acts.get("blk.0.ffn_swiglu")).get("count")).doubleValue());
        Map<String, Object> sens = (Map<String, Object>) j.get("sensitivity");
        assertEquals(20.0, ((Number) sens.get("positions")).doubleValue());
        List<Object> layers = (List<Object>) sens.get("layers");
        assertEquals(4, layers.size());
        for (Object o : layers) {
            Map<String, Object> l = (Map<String, Object>) o;
            Map<String, Object> i8 = (Map<String, Object>) l.get("int8_per_channel"), i4 = (Map<String, Object>) l.get("int4_block32");
            double k8 = ((Number) i8.get("kl_mean")).doubleValue(), k4 = ((Number) i4.get("kl_mean")).doubleValue();
            assertTrue(k8 > 0 && k4 > k8, "int4 hurts more than int8: " + l);
            double m8 = ((Number) i8.get("logit_rel_mse")).doubleValue(), m4 = ((Number) i4.get("logit_rel_mse")).doubleValue();
            assertTrue(m8 > 0 && m4 > m8 && m4 < 1, l.toString());
            double top = ((Number) i8.get("same_top")).doubleValue();
            assertTrue(top >= 0 && top <= 1, l.toString());
        }
        assertTrue(Files.list(tmp).noneMatch(p -> p.getFileName().toString().startsWith("calibrate-")), "temporary copy removed");
    }

    @Test
    void refusesQuantizedWeights() throws Exception {
        Path text = tmp.resolve("t.txt");
        Files.writeString(text, PerplexityTest.text(3000));
        MainTest.Run r = MainTest.ei("calibrate", "-m", TestData.model("tiny-llama-q8_0.gguf").toString(), "-f",
                text.toString(), "-o", tmp.resolve("c.json").toString(), "--ctx", "32");
        assertEquals(1, r.status());
        assertTrue(r.err().contains("calibrate measures quantization from float weights"), r.err());
    }
}
