package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Conversations: turns appended one at a time equal one prompt of the formatted history,
 * on every built-in format; state save/restore; many turns in one fixed pool; starting over.
 * The shared models have no chat template, so the tests name the format.
 */
class ConversationTest {
    @TempDir
    Path tmp;

    // 1024-token SentencePiece vocabulary: the template markers are plain text there.
    static final Path SMALL_VOCAB = TestData.model("tiny-llama-f32.gguf");
    // The real Llama 2 vocabulary: </s> is a special token and the model's EOS.
    static final Path LLAMA2_VOCAB = TestData.model("tiny-llama-spm-f16.gguf");
    static final Path QUANT = TestData.model("tiny-llama-q8_0.gguf");

    // Full attention throughout (S + W far above the 20 turns' tokens), so that a token
    // sequence gives the same logits however it is cut into segments.
    static final Scenario FULL = Scenario.builder().segmentLength(32).sink(16).window(4096).threads(2).build();
    // Memory route after a few turns.
    static final Scenario SMALL = Scenario.builder().segmentLength(16).sink(8).window(64).threads(2).build();
    static final GenerateOptions GREEDY = GenerateOptions.builder().greedy().maxTokens(12).build();
    static final String MARK = "\uE000";

    static String question(int i) {
        return "Question " + i + ": what comes after " + (i * 7) + "?";
    }

    static ConversationOptions options(String format, String system, GenerateOptions g) {
        return ConversationOptions.builder().format(format).systemPrompt(system).generate(g).build();
    }

    /** Runs a generation to its end; returns its text. */
    static String drain(Generation g) {
        StringBuilder sb = new StringBuilder();
        while (g.hasNext()) sb.append(g.next());
        return sb.toString();
    }

    /**
     * The one prompt of a history that ends with a user message: the history formatted with
     * the template (generation prompt added) and tokenized as one text, except that each
     * assistant message is the token ids given (the ones its reply sampled).
     */
    static List<Integer> onePrompt(Model m, String format, List<ChatMessage> history, List<int[]> replies) {
        List<ChatMessage> marked = history.stream()
                .map(x -> x.role().equals("assistant") ? ChatMessage.assistant(MARK) : x).toList();
        String[] parts = m.formatChat(marked, true, format).split(MARK, -1);
        assertEquals(replies.size() + 1, parts.length);
        List<Integer> out = new ArrayList<>();
        for (int t : m.tokenize(parts[0], m.addsBos(), true)) out.add(t);
        for (int i = 0; i < replies.size(); i++) {
            for (int t : replies.get(i)) out.add(t);
            for (int t : m.tokenizeAfter(out.get(out.size() - 1), parts[i + 1])) out.add(t);
        }
        return out;
    }

    static int[] ints(List<Integer> l) {
        return l.stream().mapToInt(Integer::intValue).toArray();
    }

    /** What tokens spell, control tokens as their text (BOS left out). */
    static String spelled(Model m, List<Integer> tokens) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (int i = 0; i < tokens.size(); i++) {
            if (i == 0 && tokens.get(0) == m.bosToken()) continue;
            b.writeBytes(m.tokenPiece(tokens.get(i), true));
        }
        return b.toString(StandardCharsets.UTF_8);
    }

    /**
     * A reply as the session holds it: what was sampled, less an end-of-generation token that
     * ended it, and cut where a stop string began (found in the tokens' bytes as the stream
     * found it in their text), control tokens spelled out.
     */
    static String heldReply(Model m, Generation g, List<String> stops) {
        int[] r = g.tokens();
        if (g.stopReason() == StopReason.EOS) r = Arrays.copyOf(r, r.length - 1);
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        if (g.stopReason() != StopReason.STOP_STRING) {
            for (int t : r) b.writeBytes(m.tokenPiece(t, true));
            return b.toString(StandardCharsets.UTF_8);
        }
        String raw = "";
        int end = -1;
        for (int i = 0; i < r.length && end < 0; i++) {
            raw += new String(m.tokenPiece(r[i], false), StandardCharsets.ISO_8859_1); // one char per byte
            for (String s : stops) {
                int at = raw.indexOf(new String(s.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1));
                if (at >= 0 && (end < 0 || at < end)) end = at;
            }
        }
        assertTrue(end >= 0, "the stop string is in the reply's bytes");
        int done = 0;
        for (int i = 0; i < r.length && done < end; i++) {
            byte[] plain = m.tokenPiece(r[i], false);
            if (plain.length == 0) b.writeBytes(m.tokenPiece(r[i], true));
            b.write(plain, 0, Math.min(plain.length, end - done));
            done += Math.min(plain.length, end - done);
        }
        return b.toString(StandardCharsets.UTF_8);
    }

    @ParameterizedTest
    @CsvSource({"chatml, tiny-llama-f32.gguf", "llama3, tiny-llama-f32.gguf", "llama2, tiny-llama-spm-f16.gguf",
        "chatml, tiny-llama-spm-f16.gguf"})
    void twentyTurnsEqualOnePromptOfTheFormattedHistory(String format, String model) {
        try (Model m = Model.load(TestData.model(model));
                Conversation c = m.newConversation(FULL, options(format, "You are a terse assistant.", GREEDY));
                Session one = m.newSession(FULL)) {
            List<Integer> log = new ArrayList<>();
            c.tokenLog(log::add);
            List<ChatMessage> history = new ArrayList<>(List.of(ChatMessage.system("You are a terse assistant.")));
            List<int[]> replies = new ArrayList<>();
            GenerateOptions withStops = GREEDY.toBuilder().stopStrings(m.chatStops(format)).build();
            int[] last = null;
            for (int turn = 1; turn <= 20; turn++) {
                Generation g = c.send(question(turn));
                String text = drain(g);
                int[] sampled = g.tokens();
                assertNotEquals(StopReason.STOP_STRING, g.stopReason(), "turn " + turn);
                history.add(ChatMessage.user(question(turn)));

                // A fresh session given the one prompt of the same history replies the same, token
                // for token (checked on some turns: each costs a prefill of the whole history).
                if (turn <= 2 || turn == 7 || turn == 20) {
                    List<Integer> prompt = onePrompt(m, format, history, replies);
                    one.reset();
                    Generation og = one.stream(ints(prompt), withStops);
                    assertEquals(text, drain(og), "turn " + turn);
                    assertArrayEquals(sampled, og.tokens(), "turn " + turn);
                }

                boolean eos = g.stopReason() == StopReason.EOS;
                replies.add(eos ? Arrays.copyOf(sampled, sampled.length - 1) : sampled);
                history.add(ChatMessage.assistant(text));
                last = sampled;
            }
            assertEquals(20, c.turns());
            // The session holds exactly that prompt (20 questions) and the last reply as fed so far.
            List<Integer> expected = onePrompt(m, format, history.subList(0, history.size() - 1),
                    replies.subList(0, replies.size() - 1));
            for (int i = 0; i < last.length - 1; i++) expected.add(last[i]);
            assertEquals(expected, log);
            assertEquals(log.size(), c.position());
            assertEquals(Session.Route.FULL, c.route());
            // The history formats to the same text with the replies in place (llama3 trims
            // contents, so there the replies' edge spaces may differ from what was sampled).
            if (!format.equals("llama3")) {
                List<ChatMessage> marked = history.stream()
                        .map(x -> x.role().equals("assistant") ? ChatMessage.assistant(MARK) : x).toList();
                String[] parts = m.formatChat(marked, false, format).split(MARK, -1);
                StringBuilder sb = new StringBuilder(parts[0]);
                for (int i = 1; i < parts.length; i++) sb.append(history.get(2 * i).content()).append(parts[i]);
                assertEquals(m.formatChat(history, false, format), sb.toString());
            }
            System.out.printf("conversation %s on %s: 20 turns, %d tokens, equal to one prompt%n", format, model,
                    c.position());
        }
    }

    /**
     * Replies ended every way (stop string, end of generation, length, cancelled mid-reply,
     * never started): the session always spells the formatted history.
     */
    @ParameterizedTest
    @CsvSource({"chatml, tiny-llama-f32.gguf", "llama2, tiny-llama-f32.gguf", "llama3, tiny-llama-f32.gguf"})
    void everyEndingLeavesTheFormattedHistory(String format, String model) {
        Scenario wide = Scenario.builder().segmentLength(32).sink(16).window(512).threads(2).build();
        // Near-uniform sampling: an end-of-generation token comes up about once in n_vocab.
        GenerateOptions hot = GenerateOptions.builder().temperature(50).topK(0).topP(1).minP(0).seed(11)
                .maxTokens(48).build();
        try (Model m = Model.load(TestData.model(model));
                Conversation c = m.newConversation(wide, options(format, null, hot))) {
            List<Integer> log = new ArrayList<>();
            c.tokenLog(log::add);
            List<ChatMessage> history = new ArrayList<>();
            List<String> stops = m.chatStops(format), withE = new ArrayList<>(List.of("e"));
            withE.addAll(stops);
            int eos = 0, stop = 0;
            for (int turn = 1; turn <= 200 && (eos < 1 || turn <= 12); turn++) {
                String q = question(turn);
                Generation g;
                String reply;
                if (turn == 3) {
                    // Sent, then replaced by the next message before it ran: an empty reply.
                    c.send(q);
                    history.add(ChatMessage.user(q));
                    history.add(ChatMessage.assistant(""));
                    continue;
                } else if (turn == 5) {
                    g = c.send(q);
                    for (int i = 0; i < 3 && g.hasNext(); i++) g.next();
                    g.close(); // cancelled mid-reply: what was sampled stays
                    assertEquals(StopReason.CANCELLED, g.stopReason());
                    reply = heldReply(m, g, stops);
                } else if (turn % 4 == 0) {
                    g = c.send(q, hot.toBuilder().stopStrings(List.of("e")).build());
                    drain(g);
                    reply = heldReply(m, g, withE);
                } else {
                    g = c.send(q);
                    drain(g);
                    reply = heldReply(m, g, stops);
                }
                if (g.stopReason() == StopReason.EOS) eos++;
                if (g.stopReason() == StopReason.STOP_STRING) stop++;
                history.add(ChatMessage.user(q));
                history.add(ChatMessage.assistant(reply));
            }
            assertTrue(eos > 0, "no reply ended with an end-of-generation token");
            assertTrue(stop > 0, "no reply ended at a stop string");
            // A last message whose reply is one token, never fed: the session then holds the
            // formatted history with the generation prompt, no more.
            Generation g = c.send("Last question?", hot.toBuilder().maxTokens(1).build());
            drain(g);
            history.add(ChatMessage.user("Last question?"));
            // The replies go in as held (llama3 would trim them), the rest as the template writes it.
            List<ChatMessage> marked = history.stream()
                    .map(x -> x.role().equals("assistant") ? ChatMessage.assistant(MARK) : x).toList();
            String[] parts = m.formatChat(marked, true, format).split(MARK, -1);
            StringBuilder formatted = new StringBuilder(parts[0]);
            for (int i = 1; i < parts.length; i++) formatted.append(history.get(2 * i - 1).content()).append(parts[i]);
            int[] whole = m.tokenize(formatted.toString(), m.addsBos(), true);
            // Compared as text, U+2581 as a space: the small vocabulary has no "▁" token, so a
            // space the tokenizer writes comes out as the bytes of U+2581, one sampled as a space.
            String wantS = spelled(m, Arrays.stream(whole).boxed().toList()).replace('\u2581', ' ');
            String gotS = spelled(m, log).replace('\u2581', ' ');
            assertEquals(wantS, gotS);
            assertEquals(log.size(), c.position());
            System.out.printf("conversation %s on %s: %d turns (%d ended by EOS, %d at a stop string), %d tokens, %s%n",
                    format, model, c.turns(), eos, stop, c.position(), c.route());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"chatml", "llama3", "llama2"})
    void everyBuiltInTemplateGrowsByAppending(String format) {
        try (Model m = Model.loadVocabOnly(TestData.vocab("ggml-vocab-llama-spm.gguf"))) {
            for (String system : new String[] {null, "Be brief."}) {
                List<ChatMessage> h = new ArrayList<>();
                if (system != null) h.add(ChatMessage.system(system));
                for (int i = 0; i < 5; i++) {
                    String before = m.formatChat(h, false, format);
                    h.add(ChatMessage.user("message " + i));
                    String withPrompt = m.formatChat(h, true, format);
                    assertTrue(withPrompt.startsWith(before), format + ": " + withPrompt + " after " + before);
                    h.add(ChatMessage.assistant("reply " + i));
                    assertTrue(m.formatChat(h, false, format).startsWith(withPrompt + "reply " + i), format);
                }
            }
        }
    }

    @Test
    void aRestoredConversationContinuesAsTheOriginal() throws IOException {
        GenerateOptions sampled = GenerateOptions.builder().temperature(0.9f).seed(7).maxTokens(16).build();
        Path saved = tmp.resolve("chat.eiconv");
        List<String> original = new ArrayList<>(), restored = new ArrayList<>(), restored2 = new ArrayList<>();
        long[] positions = new long[2];
        try (Model m = Model.load(QUANT);
                Conversation c = m.newConversation(SMALL, options("chatml", "You help.", sampled))) {
            for (int t = 1; t <= 6; t++) drain(c.send(question(t)));
            Generation open = c.send(question(7));
            assertThrows(IllegalStateException.class, () -> c.save(saved), "mid-reply");
            drain(open);
            c.save(saved);
            assertEquals(Session.Route.MEMORY, c.route());
            assertTrue(c.placement().memory() > 0);
            for (int t = 8; t <= 12; t++) original.add(drain(c.send(question(t))));
            positions[0] = c.position();

            try (Conversation r = m.restoreConversation(saved)) {
                assertEquals(7, r.turns());
                assertEquals("chatml", r.format());
                assertEquals("You help.", r.options().systemPrompt());
                assertEquals(sampled, r.options().generate());
                for (int t = 8; t <= 12; t++) restored.add(drain(r.send(question(t))));
                positions[1] = r.position();
            }
            try (Conversation r = m.restoreConversation(saved, SMALL.toBuilder().threads(1).build())) {
                for (int t = 8; t <= 12; t++) restored2.add(drain(r.send(question(t))));
            }
            assertEquals(original, restored);
            assertEquals(original, restored2);
            assertEquals(positions[0], positions[1]);
            assertTrue(Files.size(saved) > c.stateSize() && Files.size(saved) < c.stateSize() + 1024,
                    "the state plus a few hundred bytes: " + Files.size(saved));

            // Another shape, another model, a damaged file: refused with a clear message.
            Scenario other = SMALL.toBuilder().window(128).build();
            EdgeInfiniteException e = assertThrows(ModelFormatException.class, () -> m.restoreConversation(saved, other));
            assertTrue(e.getMessage().contains("scenario"), e.getMessage());
            byte[] bytes = Files.readAllBytes(saved);
            Path cut = tmp.resolve("cut.eiconv");
            Files.write(cut, Arrays.copyOf(bytes, bytes.length / 2));
            assertThrows(ModelFormatException.class, () -> m.restoreConversation(cut));
            Path junk = tmp.resolve("junk.eiconv");
            Files.writeString(junk, "not a conversation");
            assertThrows(ModelFormatException.class, () -> m.restoreConversation(junk));
        }
        try (Model other = Model.load(TestData.model("tiny-llama-q4_0.gguf"))) {
            EdgeInfiniteException e = assertThrows(ModelFormatException.class, () -> other.restoreConversation(saved));
            assertTrue(e.getMessage().contains("another model"), e.getMessage());
        }
    }

    @Test
    void aConversationSavedBeforeItsFirstMessageRestores() {
        Path saved = tmp.resolve("fresh.eiconv");
        try (Model m = Model.load(QUANT); Conversation c = m.newConversation(FULL, options("llama2", "Sys.", GREEDY))) {
            c.save(saved);
            try (Conversation r = m.restoreConversation(saved)) {
                assertEquals(drain(c.send("Hello")), drain(r.send("Hello")));
                assertEquals(c.position(), r.position());
            }
        }
    }

    @Test
    void aHundredTurnsRunInTheSameFixedPool() throws IOException {
        GenerateOptions short8 = GenerateOptions.builder().greedy().maxTokens(8).build();
        try (Model m = Model.load(QUANT); Conversation c = m.newConversation(SMALL, options("chatml", "Sys.", short8))) {
            long pool = c.poolSize(), state = c.stateSize();
            Path at10 = tmp.resolve("at10.eiconv"), at100 = tmp.resolve("at100.eiconv");
            for (int t = 1; t <= 100; t++) {
                drain(c.send(question(t)));
                if (t == 10) c.save(at10);
            }
            c.save(at100);
            assertEquals(100, c.turns());
            assertEquals(pool, c.poolSize());
            assertEquals(state, c.stateSize());
            assertEquals(Files.size(at10), Files.size(at100), "the saved size does not grow with the turns");
            assertEquals(Session.Route.MEMORY, c.route());
            Session.Placement p = c.placement();
            assertEquals(c.position(), p.sink() + p.window() + p.memory());
            assertTrue(c.position() > 20 * c.scenario().fullCapacity(), "position " + c.position());
            System.out.printf("100 turns: %d tokens through S + W = %d (%d in memory), pool %d bytes, "
                    + "saved conversation %d bytes (state %d)%n", c.position(), c.scenario().fullCapacity(),
                    p.memory(), pool, Files.size(at100), state);
        }
    }

    @Test
    void resetStartsOverAndATranscriptIsOnePrompt() {
        try (Model m = Model.load(SMALL_VOCAB);
                Conversation c = m.newConversation(FULL, options("chatml", "Sys.", GREEDY));
                Conversation fresh = m.newConversation(FULL, options("chatml", "Sys.", GREEDY));
                Session one = m.newSession(FULL)) {
            for (int t = 1; t <= 3; t++) drain(c.send(question(t)));
            c.reset();
            assertEquals(0, c.position());
            assertEquals(0, c.turns());
            assertEquals(drain(fresh.send("Hi")), drain(c.send("Hi")));
            assertEquals(fresh.position(), c.position());

            List<ChatMessage> transcript = List.of(ChatMessage.system("Other."), ChatMessage.user("a"),
                    ChatMessage.assistant("b"), ChatMessage.user("c"), ChatMessage.assistant("d"));
            c.reset(transcript);
            assertEquals(2, c.turns());
            String reply = drain(c.send("e"));
            List<ChatMessage> all = new ArrayList<>(transcript);
            all.add(ChatMessage.user("e"));
            int[] prompt = m.tokenize(m.formatChat(all, true, "chatml"), m.addsBos(), true);
            assertEquals(drain(one.stream(prompt, GREEDY.toBuilder().stopStrings(m.chatStops("chatml")).build())), reply);
        }
    }

    /** The README's example, on a shared model (which has no template, hence the format). */
    @Test
    void theReadmeExampleRuns() {
        Path model = SMALL_VOCAB, saved = tmp.resolve("chat.eiconv");
        StringBuilder out = new StringBuilder();
        ConversationOptions options = ConversationOptions.builder()
                .systemPrompt("You are a helpful assistant.")
                .generate(GenerateOptions.builder().temperature(0.7f).maxTokens(16).build())
                .format("chatml")
                .build();
        try (Model m = Model.load(model);
                Conversation chat = m.newConversation(Scenario.chat().toBuilder().threads(2).build(), options)) {
            chat.send("Hi! Who are you?", out::append);
            chat.send("What did I just ask?", out::append);
            chat.save(saved);
        }
        try (Model m = Model.load(model); Conversation chat = m.restoreConversation(saved)) {
            assertEquals(16, chat.send("Where were we?", out::append).generatedTokens());
            assertEquals(3, chat.turns());
        }
        assertTrue(out.length() > 0);
    }

    @Test
    void formatsAreCheckedUpFront() {
        try (Model m = Model.load(QUANT)) {
            assertThrows(UnsupportedModelException.class, () -> m.newConversation(FULL), "no template in the file");
            assertThrows(InvalidArgumentException.class,
                    () -> m.newConversation(FULL, ConversationOptions.builder().format("vicuna").build()));
            try (Conversation c = m.newConversation(FULL, options("llama3", null, GREEDY))) {
                assertEquals("llama3", c.format());
            }
        }
    }
}
