package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.internal.NativeBinding;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

    /**
     * The streamed pieces add up to the generated tokens decoded all at once: nothing lost,
     * repeated or changed between the sampler and the consumer. The tokens come from the same
     * generation (same seed) in a second session, stepped by hand.
     */
    @Test
    void streamedPiecesAddUpToTheTokensDecoded() {
        String prompt = "Über café 北京";
        GenerateOptions opts = GenerateOptions.builder().maxTokens(40).seed(3).build();
        try (Model m = model(); Session s = m.newSession(Scenario.defaults());
                Session again = m.newSession(Scenario.defaults())) {
            List<String> pieces = new ArrayList<>();
            GenerationResult r = s.generate(prompt, opts, pieces::add);
            List<Integer> ids = new ArrayList<>();
            for (int id : m.tokenize(prompt, true, true)) ids.add(id);  // as stream() tokenizes it
            List<String> stepped = new ArrayList<>();
            try (Generation g = again.stream(prompt, opts)) {
                g.start();  // the prompt, without taking a step
                for (NativeBinding.Step st = again.step();; st = again.step()) {
                    if (st.token() >= 0) ids.add(st.token());
                    if (!st.text().isEmpty()) stepped.add(st.text());
                    if (st.done() != 0) break;
                }
            }
            assertEquals(pieces, stepped, "the same seed gives the same pieces");
            String whole = m.detokenize(ids.stream().mapToInt(Integer::intValue).toArray());
            assertEquals(whole, prompt + String.join("", pieces));
            assertTrue(r.text().codePoints().anyMatch(c -> c > 0x7F), "no multi-byte character to check: " + r.text());
        }
    }

    /**
     * Pieces are whole UTF-8 characters. A model made here generates, greedily, the byte tokens
     * of "北京" one byte at a time (E5 8C 97 E4 BA AC), then {@code </s>}: the pieces must be
     * the two characters, not six bytes that would each decode to U+FFFD on their own.
     */
    @Test
    void bytesOfACharacterComeOutAsOnePiece(@TempDir Path tmp) throws IOException {
        Path chain = tmp.resolve("chain.gguf");
        writeByteChainModel(chain, new int[] {0xE5, 0x8C, 0x97, 0xE4, 0xBA, 0xAC});
        try (Model m = Model.load(chain); Session s = m.newSession(Scenario.defaults())) {
            List<String> pieces = new ArrayList<>();
            GenerationResult r = s.generate("", GenerateOptions.builder().greedy().maxTokens(20).build(), pieces::add);
            assertEquals(List.of("北", "京"), pieces);
            assertEquals(StopReason.EOS, r.stopReason());
            assertEquals(7, r.generatedTokens());
        }
    }

    /**
     * A one-layer llama whose next token depends only on the current one: BOS, then the byte
     * tokens of {@code bytes} in order, then EOS. Attention and FFN outputs are zero, so the
     * residual stream is the token's embedding, a one-hot vector; the output row of each
     * chain token is the one-hot vector of the token before it.
     */
    static void writeByteChainModel(Path path, int[] bytes) throws IOException {
        int e = 16, vocab = 3 + 256;
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        int[] types = new int[vocab];
        types[0] = 2;
        types[1] = 3;
        types[2] = 3;
        for (int b = 0; b < 256; b++) {
            types[tokens.size()] = 6;
            tokens.add(String.format("<0x%02X>", b));
        }
        int[] chain = new int[bytes.length + 2];
        chain[0] = 1;
        for (int i = 0; i < bytes.length; i++) chain[i + 1] = 3 + bytes[i];
        chain[chain.length - 1] = 2;
        float[] embd = new float[vocab * e], out = new float[vocab * e];
        for (int i = 0; i + 1 < chain.length; i++) {
            embd[chain[i] * e + i] = 1f;  // token chain[i] is one-hot in dimension i...
            out[chain[i + 1] * e + i] = 1f;  // ...which the output row of the next token reads
        }
        float[] ones = new float[e], zeros = new float[e * e];
        java.util.Arrays.fill(ones, 1f);
        GgufWriter w = new GgufWriter().putString("general.architecture", "llama")
                .putUInt32("llama.embedding_length", e).putUInt32("llama.block_count", 1)
                .putUInt32("llama.attention.head_count", 1).putUInt32("llama.feed_forward_length", e)
                .putString("tokenizer.ggml.model", "llama").putStringArray("tokenizer.ggml.tokens", tokens)
                .putFloat32Array("tokenizer.ggml.scores", new float[vocab])
                .putInt32Array("tokenizer.ggml.token_type", types).putUInt32("tokenizer.ggml.bos_token_id", 1)
                .putUInt32("tokenizer.ggml.eos_token_id", 2).putBool("tokenizer.ggml.add_bos_token", true);
        f32(w, "token_embd.weight", new long[] {e, vocab}, embd);
        f32(w, "output.weight", new long[] {e, vocab}, out);
        f32(w, "output_norm.weight", new long[] {e}, ones);
        f32(w, "blk.0.attn_norm.weight", new long[] {e}, ones);
        f32(w, "blk.0.ffn_norm.weight", new long[] {e}, ones);
        for (String t : List.of("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")) {
            f32(w, "blk.0." + t + ".weight", new long[] {e, e}, zeros);
        }
        w.write(path);
    }

    private static void f32(GgufWriter w, String name, long[] shape, float[] v) {
        w.addTensor(name, 0, shape, 4L * v.length, o -> {
            ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
            for (float x : v) bb.putFloat(x);
            o.write(bb.array());
        });
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
