package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ei npu-prepare} through the CLI (the one C function ei_npu_prepare, under whichever
 * binding the suite runs with), then htp-emulator sessions whose cache dir holds what it
 * wrote: they run quantized (logits close to the float graphs', not equal), and a damaged
 * parameters file fails session creation naming the file.
 */
class NpuPrepareTest {
    private static final String TEXT = "Once upon a time there was a little fox who lived in the woods near a river. "
            + "Every morning the fox walked to the water, drank, and watched the fish jump in the sun. "
            + "One day a heron landed beside him and asked why he never tried to catch one. ";

    private static Scenario scenario(Path cacheDir) {
        Scenario.Builder b = Scenario.builder().segmentLength(8).sink(4).window(16).threads(1).device("htp-emulator");
        return (cacheDir == null ? b : b.cacheDir(cacheDir.toString())).build();
    }

    @Test
    void preparesThenRunsQuantized(@TempDir Path tmp) throws IOException {
        Path calib = tmp.resolve("calib.txt"), dir = tmp.resolve("npu");
        Files.writeString(calib, TEXT + TEXT, StandardCharsets.UTF_8);
        String model = TestData.model("tiny-llama-spm-f16.gguf").toString();
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8), e = new PrintStream(err, true, StandardCharsets.UTF_8);
        assertEquals(0, Main.run(new String[] {"npu-prepare", "-m", model, "-f", calib.toString(), "-o", dir.toString(),
                                               "--weights", "16a8w", "-L", "8", "--sink", "4", "--window", "16"}, o, e),
                err.toString(StandardCharsets.UTF_8));
        String printed = out.toString(StandardCharsets.UTF_8);
        assertTrue(printed.contains("npu-prepare: 16a8w") && printed.contains("fold "), printed);
        for (String f : new String[] {"report.txt", "prefill.txt", "decode.txt", "fold.txt"}) assertTrue(Files.exists(dir.resolve(f)), f);
        Path params;
        try (Stream<Path> s = Files.list(dir)) {
            params = s.filter(p -> p.getFileName().toString().endsWith(".params")).findFirst().orElseThrow();
        }

        try (Model m = Model.load(Path.of(model))) {
            int[] held = m.tokenize("The heron laughed and flew away over the river, and the fox went home to sleep.", true, false);
            float[] f, q;
            try (Session s = m.newSession(scenario(null))) {
                f = s.logits(held);
            }
            try (Session s = m.newSession(scenario(dir))) {
                q = s.logits(held);
            }
            double sig = 0, noise = 0;
            for (int i = 0; i < f.length; i++) {
                sig += (double) f[i] * f[i];
                noise += ((double) f[i] - q[i]) * ((double) f[i] - q[i]);
            }
            assertNotEquals(0.0, noise, "the session ran the float graphs");
            double db = 10 * Math.log10(sig / noise);
            // tiny-llama-spm-f16 has random weights; measured about 20 dB here (16a8w).
            assertTrue(db > 12, "logits SQNR " + db + " dB");

            byte[] bytes = Files.readAllBytes(params);
            bytes[bytes.length / 2] ^= 0x5a;
            Files.write(params, bytes);
            ModelFormatException x = assertThrows(ModelFormatException.class, () -> m.newSession(scenario(dir)).close());
            assertTrue(x.getMessage().contains(params.getFileName().toString()), x.getMessage());
        }
    }
}
