package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The device registry through Java and the CLI, and where a session's ops run. */
class DevicesTest {
    private static final Path Q8 = TestData.model("tiny-llama-q8_0.gguf");

    @Test
    void cpuIsListedFirstWithItsFeatures() {
        List<Device> devices = EdgeInfinite.devices();
        assertFalse(devices.isEmpty());
        Device cpu = devices.get(0);
        assertEquals("cpu", cpu.name());
        assertEquals("cpu", cpu.kind());
        assertEquals(EdgeInfinite.cpuFeatures(), cpu.features());
        assertTrue(cpu.memory() > 0, "memory");
        assertTrue(cpu.computeUnits() >= 1, "cores");
        Set<String> names = new HashSet<>();
        for (Device d : devices) {
            assertTrue(names.add(d.name()), "unique names: " + d.name());
            if (d != cpu) assertTrue(d.name().startsWith("opencl:") || d.name().equals("htp-emulator"), d.name());
        }
    }

    @Test
    void sessionReportsWhereItsOpsRun() {
        try (Model m = Model.load(Q8);
                Session s = m.newSession(Scenario.fullAttention(64).toBuilder().segmentLength(16).threads(1).build())) {
            OpPlacement p = s.opPlacement();
            String wanted = Scenario.defaultDevice();
            if (wanted.equals("opencl")) assertTrue(p.device().startsWith("opencl:"), p.device());
            else assertEquals(wanted, p.device());
            assertTrue(p.totalOps() > 0);
            // Every op of these graphs has a kernel on the CPU and on OpenCL: nothing falls back.
            assertTrue(p.allOnDevice(), p.summary());
            assertEquals("all " + p.totalOps() + " ops on " + p.device(), p.summary());
        }
    }

    @Test
    void unknownDeviceNamesThePresentOnes() {
        try (Model m = Model.load(Q8)) {
            UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
                    () -> m.newSession(Scenario.builder().device("npu:9").build()));
            assertTrue(e.getMessage().contains("device 'npu:9' is not present (devices: cpu"), e.getMessage());
        }
    }

    @Test
    @SuppressWarnings("deprecation")
    void backendIsTheOlderNameOfDevice() {
        Scenario sc = Scenario.builder().backend("cpu").cacheDir("off").build();
        assertEquals("cpu", sc.device());
        assertEquals("cpu", sc.backend());
        assertEquals("off", sc.cacheDir());
        try (Model m = Model.load(Q8);
                Session s = m.newSession(sc.toBuilder().segmentLength(16).window(64).sink(0).memory(false).build())) {
            assertEquals("cpu", s.opPlacement().device());
            s.eval(new int[] {5, 6, 7});
            assertEquals(3L, s.position());
        }
    }

    @Test
    void cliListsDevices() {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8), e = new PrintStream(err, true, StandardCharsets.UTF_8);
        assertEquals(0, Main.run(new String[] {"devices", "--json"}, o, e));
        String json = out.toString(StandardCharsets.UTF_8);
        assertTrue(json.startsWith("[") && json.contains("\"name\": \"cpu\"") && json.contains("\"compute_units\": "), json);
        out.reset();
        assertEquals(0, Main.run(new String[] {"devices"}, o, e));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("\ncpu "), out.toString(StandardCharsets.UTF_8));
        assertEquals(2, Main.run(new String[] {"devices", "--all"}, o, e));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("devices takes only --json"));
    }
}
