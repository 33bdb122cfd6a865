package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * The {@code htp-emulator} device (the Hexagon NPU path lowered to QNN operations and run by
 * the emulator on the CPU) through the public API and the CLI, under whichever binding the
 * suite runs with (the build runs it under both).
 */
class HtpEmulatorDeviceTest {
    private static Scenario scenario(String device) {
        // Small L / S / W so the prompt and the generation fold into the memory.
        return Scenario.builder().segmentLength(8).sink(4).window(16).threads(1).device(device).build();
    }

    @Test
    void isListedAsAnAccelerator() {
        Device d = EdgeInfinite.devices().stream().filter(x -> x.name().equals("htp-emulator")).findFirst().orElseThrow();
        assertEquals("accelerator", d.kind());
        assertTrue(d.description().contains("Hexagon"), d.description());
    }

    @Test
    void generationEqualsTheCpus() {
        GenerateOptions greedy = GenerateOptions.builder().greedy().maxTokens(24).build();
        try (Model m = Model.load(TestData.model("tiny-llama-spm-f16.gguf"));
                Session cpu = m.newSession(scenario("cpu"));
                Session htp = m.newSession(scenario("htp-emulator"))) {
            GenerationResult a = cpu.generate(GenerationTest.PROMPT, greedy, p -> {});
            GenerationResult b = htp.generate(GenerationTest.PROMPT, greedy, p -> {});
            assertEquals("htp-emulator", htp.opPlacement().device());
            assertTrue(htp.opPlacement().allOnDevice(), htp.opPlacement().summary());
            assertEquals(24, b.generatedTokens());
            assertEquals(a.text(), b.text());
        }
    }

    @Test
    void cliRunsOnTheDevice() {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8), e = new PrintStream(err, true, StandardCharsets.UTF_8);
        assertEquals(0, Main.run(new String[] {"devices"}, o, e));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("htp-emulator"), out.toString(StandardCharsets.UTF_8));
        String model = TestData.model("tiny-llama-spm-f16.gguf").toString();
        String[] texts = new String[2];
        String[] devices = {"cpu", "htp-emulator"};
        for (int i = 0; i < 2; ++i) {
            out.reset();
            assertEquals(0, Main.run(new String[] {"run", "-m", model, "-p", "hello there", "-n", "8", "--greedy",
                                                   "-L", "8", "--sink", "4", "--window", "16", "--device", devices[i]}, o, e),
                    err.toString(StandardCharsets.UTF_8));
            texts[i] = out.toString(StandardCharsets.UTF_8);
        }
        assertEquals(texts[0], texts[1]);
    }
}
