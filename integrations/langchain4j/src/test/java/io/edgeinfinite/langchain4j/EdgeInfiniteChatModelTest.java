package io.edgeinfinite.langchain4j;

import static dev.langchain4j.model.LambdaStreamingResponseHandler.onPartialResponse;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.langchain4j.agent.tool.ToolSpecification;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ChatMessage;
import dev.langchain4j.data.message.ImageContent;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.PartialResponse;
import dev.langchain4j.model.chat.response.PartialResponseContext;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.output.FinishReason;
import io.edgeinfinite.GenerateOptions;
import io.edgeinfinite.Generation;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The adapter on a shared model (real Llama 2 vocabulary, random weights, no template: the
 * tests name the llama2 format): its answers are the library's for the same formatted prompt.
 */
class EdgeInfiniteChatModelTest {
    static final Path MODEL = Path.of(System.getProperty("edgeinfinite.testdata", "../../../shared/testdata"))
            .resolve("models/tiny-llama-spm-f16.gguf");
    static final Scenario SCENARIO = Scenario.builder().segmentLength(32).sink(16).window(1024).threads(2).build();
    static Model model;
    static EdgeInfiniteChatModel chat;

    @BeforeAll
    static void load() {
        model = Model.load(MODEL);
        chat = EdgeInfiniteChatModel.builder().model(model).chatFormat("llama2").scenario(SCENARIO).seed(42L).build();
    }

    @AfterAll
    static void close() {
        chat.close();
        model.close();
    }

    static final List<ChatMessage> MESSAGES = List.of(SystemMessage.from("You answer briefly."),
            UserMessage.from("Once upon a time, in a small village by the sea, who lived there?"));

    /** The library's own answer: the messages formatted as llama2, greedy or sampled. */
    static String direct(List<io.edgeinfinite.ChatMessage> messages, GenerateOptions options) {
        try (Session s = model.newSession(SCENARIO)) {
            int[] tokens = model.tokenize(model.formatChat(messages, true, "llama2"), model.addsBos(), true);
            GenerateOptions o = options.toBuilder().stopStrings(model.chatStops("llama2")).build();
            try (Generation g = s.stream(tokens, o)) {
                StringBuilder sb = new StringBuilder();
                while (g.hasNext()) sb.append(g.next());
                return sb.toString();
            }
        }
    }

    static final List<io.edgeinfinite.ChatMessage> SAME = List.of(io.edgeinfinite.ChatMessage.system("You answer briefly."),
            io.edgeinfinite.ChatMessage.user("Once upon a time, in a small village by the sea, who lived there?"));

    @Test
    void chatMapsMessagesThroughTheTemplateAndReportsUsage() {
        ChatResponse r = chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.0).maxOutputTokens(16).build());
        String want = direct(SAME, GenerateOptions.builder().greedy().maxTokens(16).build());
        assertEquals(want, r.aiMessage().text());
        assertFalse(want.isEmpty());
        int promptTokens = model.tokenize(model.formatChat(SAME, true, "llama2"), true, true).length;
        assertEquals(promptTokens, r.tokenUsage().inputTokenCount());
        assertEquals(16, r.tokenUsage().outputTokenCount());
        assertEquals(FinishReason.LENGTH, r.finishReason());
        assertEquals("tiny-llama-spm-f16.gguf", r.modelName());
    }

    @Test
    void samplingFollowsTheRequestParameters() {
        ChatResponse r = chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.9).topK(20).topP(0.9)
                .maxOutputTokens(12).build());
        assertEquals(direct(SAME, GenerateOptions.builder().temperature(0.9f).topK(20).topP(0.9f).seed(42).maxTokens(12)
                .build()), r.aiMessage().text());

        String greedy = direct(SAME, GenerateOptions.builder().greedy().maxTokens(16).build());
        String stop = greedy.substring(greedy.length() / 2, greedy.length() / 2 + 1);
        ChatResponse s = chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.0).maxOutputTokens(16)
                .stopSequences(List.of(stop)).build());
        assertEquals(FinishReason.STOP, s.finishReason());
        assertEquals(greedy.substring(0, greedy.indexOf(stop)), s.aiMessage().text());
    }

    @Test
    void streamingSendsTheSameTextInPieces() {
        List<String> pieces = new ArrayList<>();
        AtomicReference<ChatResponse> done = new AtomicReference<>();
        AtomicReference<Throwable> error = new AtomicReference<>();
        chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.0).maxOutputTokens(16).build(),
                new StreamingChatResponseHandler() {
                    @Override
                    public void onPartialResponse(String partial) {
                        pieces.add(partial);
                    }

                    @Override
                    public void onCompleteResponse(ChatResponse response) {
                        done.set(response);
                    }

                    @Override
                    public void onError(Throwable e) {
                        error.set(e);
                    }
                });
        assertNull(error.get());
        assertTrue(pieces.size() > 1, "pieces " + pieces);
        assertEquals(String.join("", pieces), done.get().aiMessage().text());
        assertEquals(direct(SAME, GenerateOptions.builder().greedy().maxTokens(16).build()), done.get().aiMessage().text());
        assertEquals(FinishReason.LENGTH, done.get().finishReason());
    }

    @Test
    void aStreamCancelledByItsHandlerStops() {
        List<String> pieces = new ArrayList<>();
        AtomicReference<ChatResponse> done = new AtomicReference<>();
        chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.0).maxOutputTokens(32).build(),
                new StreamingChatResponseHandler() {
                    @Override
                    public void onPartialResponse(PartialResponse partial, PartialResponseContext context) {
                        pieces.add(partial.text());
                        context.streamingHandle().cancel();
                    }

                    @Override
                    public void onCompleteResponse(ChatResponse response) {
                        done.set(response);
                    }

                    @Override
                    public void onError(Throwable e) {
                        throw new AssertionError(e);
                    }
                });
        assertEquals(1, pieces.size());
        assertNull(done.get(), "no callback after a cancel");
        // The adapter serves the next request as usual.
        assertEquals(16, chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.0).maxOutputTokens(16).build())
                .tokenUsage().outputTokenCount());
    }

    @Test
    void aGrowingHistoryReusesTheSessionAndAnswersAsAFreshOne() {
        // One token: the session then holds the first prompt and nothing of the reply, so the
        // second prompt starts with what it holds whatever this random model replied.
        ChatResponse r1 = chat.chat(ChatRequest.builder().messages(MESSAGES).temperature(0.0).maxOutputTokens(1).build());
        List<ChatMessage> grown = new ArrayList<>(MESSAGES);
        grown.add(AiMessage.from(" In a house by the harbour."));
        grown.add(UserMessage.from("And then?"));
        ChatResponse r2 = chat.chat(ChatRequest.builder().messages(grown).temperature(0.0).maxOutputTokens(16).build());
        assertEquals(r1.tokenUsage().inputTokenCount(), chat.lastReusedTokens(), "the first prompt is not read again");
        try (EdgeInfiniteChatModel fresh = EdgeInfiniteChatModel.builder().model(model).chatFormat("llama2")
                .scenario(SCENARIO).build()) {
            assertEquals(fresh.chat(ChatRequest.builder().messages(grown).temperature(0.0).maxOutputTokens(16).build())
                    .aiMessage().text(), r2.aiMessage().text());
            assertEquals(0, fresh.lastReusedTokens());
        }
    }

    @Test
    void toolsImagesAndJsonAreRefused() {
        assertThrows(UnsupportedFeatureException.class, () -> chat.chat(ChatRequest.builder().messages(MESSAGES)
                .toolSpecifications(ToolSpecification.builder().name("clock").description("time").build()).build()));
        assertThrows(UnsupportedFeatureException.class, () -> chat.chat(ChatRequest.builder()
                .messages(UserMessage.from(TextContent.from("What is this?"), ImageContent.from("https://example.invalid/a.png")))
                .build()));
        assertThrows(UnsupportedFeatureException.class, () -> chat.chat(ChatRequest.builder()
                .messages(UserMessage.from("hi")).responseFormat(dev.langchain4j.model.chat.request.ResponseFormat.JSON).build()));
        // Multi-part text is joined.
        ChatResponse r = chat.chat(ChatRequest.builder().messages(UserMessage.from(TextContent.from("a"),
                TextContent.from("b"))).temperature(0.0).maxOutputTokens(2).build());
        assertEquals(model.tokenize(model.formatChat(List.of(io.edgeinfinite.ChatMessage.user("a\nb")), true, "llama2"),
                true, true).length, r.tokenUsage().inputTokenCount());
    }

    /** The README's example, on a shared model (no template in it, hence the format). */
    @Test
    void theReadmeExampleRuns() {
        StringBuilder streamed = new StringBuilder();
        try (EdgeInfiniteChatModel model = EdgeInfiniteChatModel.builder()
                .modelPath(MODEL)
                .scenario(Scenario.chat())
                .temperature(0.7)
                .maxOutputTokens(16)
                .chatFormat("llama2")
                .build()) {
            assertNotNull(model.chat("Why is the sky blue?"));
            model.chat("And at sunset?", onPartialResponse(streamed::append));
        }
        assertFalse(streamed.toString().isEmpty());
    }
}
