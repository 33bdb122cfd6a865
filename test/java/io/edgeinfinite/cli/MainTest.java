package io.edgeinfinite.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.GgufFile;
import io.edgeinfinite.TestData;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MainTest {
    @TempDir
    Path tmp;

    record Run(int status, String out, String err) {}

    static Run ei(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int st = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(st, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void infoPrintsWhatEveryFileHolds() {
        for (Path p : TestData.allGguf()) {
            Run r = ei("info", p.toString());
            assertEquals(0, r.status(), r.err());
            GgufFile f = GgufFile.read(p);
            assertTrue(r.out().contains("architecture:   " + f.string("general.architecture").orElseThrow()), r.out());
            assertTrue(r.out().contains(f.tensors().size() + " tensors"), r.out());
            assertTrue(r.out().contains("tokenizer:"));
            assertTrue(r.out().contains("chat template:"));
        }
        Run q = ei("info", TestData.model("tiny-llama-q4_k_m.gguf").toString());
        assertTrue(q.out().contains("q4_K        25 tensors"), q.out());
        assertTrue(q.out().contains("q6_K         5 tensors"), q.out());
        assertTrue(q.out().contains("3,541,248"), q.out());
    }

    @Test
    void badInputGivesAClearMessageAndStatus() throws Exception {
        Run none = ei("info", tmp.resolve("nope.gguf").toString());
        assertEquals(1, none.status());
        assertTrue(none.err().contains("cannot open"), none.err());
        Path junk = tmp.resolve("junk.gguf");
        Files.writeString(junk, "not a gguf file");
        Run bad = ei("info", junk.toString());
        assertEquals(1, bad.status());
        assertTrue(bad.err().contains("bad magic"), bad.err());
        assertEquals(2, ei("frobnicate").status());
        assertEquals(2, ei("run", "-m").status());
    }

    @Test
    void planPrintsTheGraphTables() {
        String model = TestData.model("tiny-llama-q8_0.gguf").toString();
        Run all = ei("plan", "-m", model, "-L", "16", "--sink", "4", "--window", "32");
        assertEquals(0, all.status(), all.err());
        assertTrue(all.out().contains("graph prefill: up to 16 tokens"), all.out());
        assertTrue(all.out().contains("graph decode: up to 1 tokens"), all.out());
        assertTrue(all.out().contains("graph fold: up to 16 tokens"), all.out());
        Run decode = ei("plan", "-m", model, "--graph", "decode");
        assertEquals(0, decode.status(), decode.err());
        assertTrue(decode.out().contains("tokens") && decode.out().contains("step_input"), decode.out());
        assertTrue(decode.out().contains("blk.0.attn_q.weight") && decode.out().contains("blocks of 32 in 34 bytes"),
                decode.out());
        assertTrue(decode.out().contains("kv.k.1") && decode.out().contains("state"), decode.out());
        assertTrue(decode.out().contains("updates x #"), decode.out());
        assertTrue(!decode.out().contains("graph fold"), decode.out());
        assertEquals(2, ei("plan", "-m", model, "--graph", "nope").status());
    }

    @Test
    void tokenizePrintsIdsWithoutBos() throws Exception {
        Path text = tmp.resolve("t.txt");
        Files.writeString(text, "Hello world");
        Run r = ei("tokenize", "-m", TestData.vocab("ggml-vocab-llama-spm.gguf").toString(), "-f", text.toString());
        assertEquals(0, r.status(), r.err());
        assertEquals("15043 3186", r.out().trim());
    }

    @Test
    void logitsWritesRowMajorFloats() throws Exception {
        Path out = tmp.resolve("l.f32");
        Run r = ei("logits", "-m", TestData.model("tiny-llama-q8_0.gguf").toString(), "--tokens", "1,2,3", "--out",
                out.toString());
        assertEquals(0, r.status(), r.err());
        assertEquals(3L * 1024 * 4, Files.size(out));
    }

    @Test
    void synthWritesALoadableModelAndBenchRunsIt() {
        Path model = tmp.resolve("tiny.gguf");
        assertEquals(0, ei("synth", "--shape", "tiny", "--type", "q4_0", "-o", model.toString()).status());
        Run b = ei("bench", "-m", model.toString(), "-p", "64", "-n", "8", "-r", "2", "-t", "1");
        assertEquals(0, b.status(), b.err());
        assertTrue(b.out().contains("pp64") && b.out().contains("tg8") && b.out().contains("±"), b.out());
        Run gen = ei("run", "-m", model.toString(), "-p", "hello there", "-n", "8", "--seed", "1");
        assertEquals(0, gen.status(), gen.err());
        assertTrue(gen.out().startsWith("hello there"));
    }
}
