package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Generation through the public API on the tiny model that carries the real Llama 2 vocabulary. */
class GenerationTest {
    static final String PROMPT = "Once upon a time, in a small village by the sea, there lived";

    static Model model() {
        return Model.load(TestData.model("tiny-llama-spm-f16.gguf"));
    }

    @Test
    void greedyMatchesLlamaCppText() {
        try (Model m = model(); Session s = m.newSession(Scenario.defaults())) {
            GenerationResult r = s.generate(PROMPT, GenerateOptions.builder().greedy().maxTokens(24).build(), p -> {});
            assertEquals(" lived".repeat(8) + "onnes".repeat(16), r.text());
            assertEquals(24, r.generatedTokens());
            assertEquals(StopReason.MAX_TOKENS, r.stopReason());
            assertEquals(16, r.promptTokens());
        }
    }

    @Test
    void streamedPiecesAreWholeCharactersAndAddUp() {
        try (Model m = model(); Session s = m.newSession(Scenario.defaults())) {
            List<String> pieces = new ArrayList<>();
            GenerationResult r = s.generate("Über café 北京", GenerateOptions.builder().maxTokens(40).seed(3).build(),
                    pieces::add);
            assertEquals(r.text(), String.join("", pieces));
            for (String p : pieces) {
                assertFalse(p.isEmpty());
                assertFalse(p.contains("\uFFFD") && !r.text().contains("\uFFFD"));
                byte[] b = p.getBytes(StandardCharsets.UTF_8);
                assertEquals(p, new String(b, StandardCharsets.UTF_8), "piece is valid UTF-8 on its own");
            }
        }
    }

    @Test
    void sameSeedSameTextOtherSeedOtherText() {
        try (Model m = model()) {
            String a = run(m, 11), b = run(m, 11), c = run(m, 12);
            assertEquals(a, b);
            assertNotEquals(a, c);
        }
    }

    @Test
    void badSamplingSettingsAreRefusedBeforeAnyTokenIsFed() {
        var b = GenerateOptions.builder();
        assertThrows(InvalidArgumentException.class, () -> b.temperature(-1f).build());
        assertThrows(InvalidArgumentException.class, () -> GenerateOptions.builder().topP(0f).build());
        assertThrows(InvalidArgumentException.class, () -> GenerateOptions.builder().minP(Float.NaN).build());
        assertThrows(InvalidArgumentException.class, () -> GenerateOptions.builder().repeatPenalty(0f, 64).build());
        assertThrows(InvalidArgumentException.class, () -> GenerateOptions.builder().maxTokens(-1).build());
        var e = assertThrows(InvalidArgumentException.class, () -> GenerateOptions.builder().topP(1.5f).build());
        assertTrue(e.getMessage().contains("top_p must be in (0, 1], got 1.5"), e.getMessage());
    }

    private static String run(Model m, long seed) {
        try (Session s = m.newSession(Scenario.defaults())) {
            return s.generate(PROMPT, GenerateOptions.builder().temperature(1.5f).topK(0).topP(1f).minP(0f).seed(seed)
                    .maxTokens(24).build(), p -> {}).text();
        }
    }

    @Test
    void stopStringEndsGenerationAndIsNotEmitted() {
        try (Model m = model(); Session s = m.newSession(Scenario.defaults())) {
            GenerationResult r = s.generate(PROMPT,
                    GenerateOptions.builder().greedy().maxTokens(24).stopStrings(List.of("livedonn")).build(), p -> {});
            assertEquals(StopReason.STOP_STRING, r.stopReason());
            assertEquals(" lived".repeat(7) + " ", r.text());
        }
    }

    @Test
    void iteratorCancelAndStreamForms() {
        try (Model m = model(); Session s = m.newSession(Scenario.defaults())) {
            try (Generation g = s.stream(PROMPT, GenerateOptions.builder().greedy().maxTokens(24).build())) {
                assertEquals(" lived", g.next());
                g.cancel();
                assertFalse(g.hasNext());
                assertEquals(StopReason.CANCELLED, g.stopReason());
            }
            s.reset();
            try (Generation g = s.stream(PROMPT, GenerateOptions.builder().greedy().maxTokens(3).build())) {
                assertEquals(List.of(" lived", " lived", " lived"), g.pieces().toList());
            }
        }
    }

    @Test
    void contextFullEndsGeneration() {
        try (Model m = model();
                Session s = m.newSession(Scenario.fullAttention(20).toBuilder().segmentLength(8).build())) {
            GenerationResult r = s.generate(PROMPT, GenerateOptions.builder().greedy().maxTokens(50).build(), p -> {});
            assertEquals(StopReason.CONTEXT_FULL, r.stopReason());
            assertEquals(5, r.generatedTokens());  // 16 prompt tokens + 4 fed back = 20 positions, then one more sampled
        }
    }

    @Test
    void chatNeedsARecognisedTemplate() {
        try (Model m = model(); Session s = m.newSession(Scenario.defaults())) {
            assertTrue(m.chatFormat().isEmpty());
            UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
                    () -> s.stream("hi", GenerateOptions.builder().chat(true).build()));
            assertTrue(e.getMessage().contains("raw prompt"));
            String chatml = m.formatChat(List.of(ChatMessage.user("hi")), true, "chatml");
            assertEquals("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", chatml);
        }
    }

    @Test
    void tokenizeAndDetokenizeRoundTrip() {
        try (Model m = model()) {
            int[] ids = m.tokenize(PROMPT, true, false);
            assertEquals(1, ids[0]);
            assertEquals(16, ids.length);
            assertEquals(PROMPT, m.detokenize(ids));
        }
    }
}
