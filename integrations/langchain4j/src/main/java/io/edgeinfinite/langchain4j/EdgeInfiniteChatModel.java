package io.edgeinfinite.langchain4j;

import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ChatMessage;
import dev.langchain4j.data.message.Content;
import dev.langchain4j.data.message.SystemMessage;
import dev.langchain4j.data.message.TextContent;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.exception.UnsupportedFeatureException;
import dev.langchain4j.model.ModelProvider;
import dev.langchain4j.model.chat.Capability;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.listener.ChatModelListener;
import dev.langchain4j.model.chat.StreamingChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ChatRequestParameters;
import dev.langchain4j.model.chat.request.DefaultChatRequestParameters;
import dev.langchain4j.model.chat.request.ResponseFormatType;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.PartialResponse;
import dev.langchain4j.model.chat.response.PartialResponseContext;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.chat.response.StreamingHandle;
import dev.langchain4j.model.output.FinishReason;
import dev.langchain4j.model.output.TokenUsage;
import io.edgeinfinite.GenerateOptions;
import io.edgeinfinite.Generation;
import io.edgeinfinite.GenerationResult;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import io.edgeinfinite.StopReason;
import io.edgeinfinite.UnsupportedModelException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.locks.ReentrantLock;

/**
 * LangChain4j's {@link ChatModel} and {@link StreamingChatModel} over an EdgeInfinite model.
 *
 * <p>Messages (system, user and AI text) go through the model's chat template, or the format
 * named with {@link Builder#chatFormat}; temperature (0: greedy), top-p, top-k, the maximum
 * output tokens and stop sequences come from the request parameters; responses report token
 * usage and the finish reason (STOP at an end-of-generation token or stop sequence, LENGTH at
 * the token limit or a full context, OTHER when cancelled). Tools, images and JSON response
 * formats are refused with {@link UnsupportedFeatureException}.
 *
 * <p>The adapter keeps one session. When a request's formatted prompt begins with the tokens
 * that session holds (a chat memory sending the history it grows), only the rest is read;
 * otherwise the session starts over. Either way the tokens are those of the whole formatted
 * prompt. Requests are served one at a time; streaming runs on the calling thread unless an
 * executor is given. After a {@link StreamingHandle#cancel()} no more callbacks come.
 */
public final class EdgeInfiniteChatModel implements ChatModel, StreamingChatModel, AutoCloseable {
    private final Model model;
    private final boolean ownsModel;
    private final Scenario scenario;
    private final String format;
    private final String modelName;
    private final long seed;
    private final Executor executor;
    private final ChatRequestParameters defaults;

    private final ReentrantLock lock = new ReentrantLock();
    private Session session; // guarded by lock
    private int[] held = new int[0]; // the tokens the session holds, guarded by lock
    private int lastReused; // guarded by lock

    private EdgeInfiniteChatModel(Builder b) {
        if ((b.model == null) == (b.modelPath == null)) throw new IllegalArgumentException("give a model or a modelPath");
        this.ownsModel = b.model == null;
        this.model = b.model != null ? b.model : Model.load(b.modelPath);
        try {
            this.format = b.chatFormat != null ? b.chatFormat : model.chatFormat().orElseThrow(() ->
                    new UnsupportedModelException("the model's chat template is absent or not a built-in format; "
                            + "name one with chatFormat(\"chatml\" | \"llama3\" | \"llama2\")"));
            if (model.chatStops(format).isEmpty()) {
                throw new IllegalArgumentException("unknown chat format '" + format + "' (known: chatml, llama3, llama2)");
            }
        } catch (RuntimeException e) {
            if (ownsModel) model.close();
            throw e;
        }
        this.scenario = b.scenario != null ? b.scenario : Scenario.defaults();
        this.modelName = b.modelName != null ? b.modelName : model.path().getFileName().toString();
        this.seed = b.seed != null ? b.seed : GenerateOptions.defaults().seed();
        this.executor = b.executor;
        this.defaults = DefaultChatRequestParameters.builder().modelName(modelName).temperature(b.temperature)
                .topP(b.topP).topK(b.topK).maxOutputTokens(b.maxOutputTokens).stopSequences(b.stopSequences).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The model it runs (closed with this adapter only when the adapter loaded it). */
    public Model model() {
        return model;
    }

    /** The chat format messages are written in. */
    public String chatFormat() {
        return format;
    }

    @Override
    public ChatRequestParameters defaultRequestParameters() {
        return defaults;
    }

    // Both interfaces define these; one answer serves both.
    @Override
    public List<ChatModelListener> listeners() {
        return List.of();
    }

    @Override
    public ModelProvider provider() {
        return ModelProvider.OTHER;
    }

    @Override
    public Set<Capability> supportedCapabilities() {
        return Set.of();
    }

    @Override
    public ChatResponse doChat(ChatRequest request) {
        return run(request, null);
    }

    @Override
    public void doChat(ChatRequest request, StreamingChatResponseHandler handler) {
        Runnable task = () -> {
            ChatResponse response;
            try {
                response = run(request, handler);
            } catch (RuntimeException e) {
                handler.onError(e);
                return;
            }
            if (response != null) handler.onCompleteResponse(response);
        };
        if (executor != null) executor.execute(task);
        else task.run();
    }

    // Formats, tokenizes, reuses what the session holds, generates. With a handler, streams
    // each piece and returns null when the handler cancelled.
    private ChatResponse run(ChatRequest request, StreamingChatResponseHandler handler) {
        ChatRequestParameters p = request.parameters() != null ? request.parameters() : defaults;
        GenerateOptions options = options(p);
        String text = model.formatChat(messages(request.messages()), true, format);
        int[] tokens = model.tokenize(text, model.addsBos(), true);
        lock.lock();
        try {
            if (session == null) session = model.newSession(scenario);
            int reuse = held.length > 0 && held.length < tokens.length && session.position() == held.length
                    && Arrays.equals(tokens, 0, held.length, held, 0, held.length) ? held.length : 0;
            if (reuse == 0) session.reset();
            lastReused = reuse;
            held = new int[0]; // until this request has settled
            Generation g = session.stream(Arrays.copyOfRange(tokens, reuse, tokens.length), options);
            Cancel handle = new Cancel(g);
            try (g) {
                while (g.hasNext()) {
                    String piece = g.next();
                    if (handler != null && !handle.isCancelled()) {
                        handler.onPartialResponse(new PartialResponse(piece), new PartialResponseContext(handle));
                    }
                }
            } finally {
                int[] all = Arrays.copyOf(tokens, tokens.length + g.tokens().length);
                System.arraycopy(g.tokens(), 0, all, tokens.length, g.tokens().length);
                held = Arrays.copyOf(all, (int) Math.min(session.position(), all.length));
            }
            if (handle.isCancelled()) return null;
            GenerationResult r = g.result();
            return ChatResponse.builder().aiMessage(AiMessage.from(r.text())).modelName(modelName)
                    .tokenUsage(new TokenUsage(tokens.length, r.generatedTokens())).finishReason(finishReason(r.stopReason()))
                    .build();
        } finally {
            lock.unlock();
        }
    }

    /** Tests: prompt tokens the last request found already in the session. */
    int lastReusedTokens() {
        lock.lock();
        try {
            return lastReused;
        } finally {
            lock.unlock();
        }
    }

    private GenerateOptions options(ChatRequestParameters p) {
        if (p.toolSpecifications() != null && !p.toolSpecifications().isEmpty()) {
            throw new UnsupportedFeatureException("tools are not supported by EdgeInfinite");
        }
        if (p.responseFormat() != null && p.responseFormat().type() != ResponseFormatType.TEXT) {
            throw new UnsupportedFeatureException("only text responses are supported by EdgeInfinite");
        }
        if (p.frequencyPenalty() != null || p.presencePenalty() != null) {
            throw new UnsupportedFeatureException("frequency and presence penalties are not supported by EdgeInfinite");
        }
        GenerateOptions.Builder b = GenerateOptions.builder().seed(seed);
        if (p.temperature() != null) {
            if (p.temperature() == 0) b.greedy();
            else b.temperature(p.temperature().floatValue());
        }
        if (p.topP() != null) b.topP(p.topP().floatValue());
        if (p.topK() != null) b.topK(p.topK());
        if (p.maxOutputTokens() != null) b.maxTokens(p.maxOutputTokens());
        LinkedHashSet<String> stops = new LinkedHashSet<>();
        if (p.stopSequences() != null) stops.addAll(p.stopSequences());
        stops.addAll(model.chatStops(format));
        return b.stopStrings(List.copyOf(stops)).build();
    }

    private static List<io.edgeinfinite.ChatMessage> messages(List<ChatMessage> in) {
        List<io.edgeinfinite.ChatMessage> out = new ArrayList<>(in.size());
        for (ChatMessage m : in) {
            if (m instanceof SystemMessage s) {
                out.add(io.edgeinfinite.ChatMessage.system(s.text()));
            } else if (m instanceof UserMessage u) {
                out.add(io.edgeinfinite.ChatMessage.user(userText(u)));
            } else if (m instanceof AiMessage a) {
                if (a.hasToolExecutionRequests()) {
                    throw new UnsupportedFeatureException("tool execution requests are not supported by EdgeInfinite");
                }
                out.add(io.edgeinfinite.ChatMessage.assistant(a.text() == null ? "" : a.text()));
            } else {
                throw new UnsupportedFeatureException(m.type() + " messages are not supported by EdgeInfinite");
            }
        }
        return out;
    }

    private static String userText(UserMessage u) {
        if (u.hasSingleText()) return u.singleText();
        StringBuilder sb = new StringBuilder();
        for (Content c : u.contents()) {
            if (!(c instanceof TextContent t)) {
                throw new UnsupportedFeatureException(c.type() + " content is not supported by EdgeInfinite (text only)");
            }
            if (sb.length() > 0) sb.append('\n');
            sb.append(t.text());
        }
        return sb.toString();
    }

    private static FinishReason finishReason(StopReason r) {
        return switch (r) {
            case EOS, STOP_STRING -> FinishReason.STOP;
            case MAX_TOKENS, CONTEXT_FULL -> FinishReason.LENGTH;
            default -> FinishReason.OTHER;
        };
    }

    /** Closes the session, and the model when the adapter loaded it. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (session != null) session.close();
            session = null;
        } finally {
            lock.unlock();
        }
        if (ownsModel) model.close();
    }

    // The handle a streaming handler gets: cancels the generation (from any thread).
    private static final class Cancel implements StreamingHandle {
        private final Generation generation;
        private volatile boolean cancelled;

        Cancel(Generation generation) {
            this.generation = generation;
        }

        @Override
        public void cancel() {
            cancelled = true;
            generation.cancel();
        }

        @Override
        public boolean isCancelled() {
            return cancelled;
        }
    }

    public static final class Builder {
        private Path modelPath;
        private Model model;
        private Scenario scenario;
        private String chatFormat;
        private String modelName;
        private Double temperature;
        private Double topP;
        private Integer topK;
        private Integer maxOutputTokens;
        private List<String> stopSequences;
        private Long seed;
        private Executor executor;

        /** A GGUF file to load (the adapter closes it). */
        public Builder modelPath(Path path) {
            modelPath = path;
            return this;
        }

        /** A model already loaded (the caller closes it). */
        public Builder model(Model m) {
            model = m;
            return this;
        }

        /** The session's shapes; default: the model's settings, else the built-in defaults. */
        public Builder scenario(Scenario s) {
            scenario = s;
            return this;
        }

        /** "chatml", "llama3" or "llama2", for models whose template is absent or not recognised. */
        public Builder chatFormat(String name) {
            chatFormat = name;
            return this;
        }

        /** The name responses report; default: the file name. */
        public Builder modelName(String name) {
            modelName = name;
            return this;
        }

        /** Default temperature (0: greedy); a request's parameters override it. */
        public Builder temperature(Double t) {
            temperature = t;
            return this;
        }

        public Builder topP(Double p) {
            topP = p;
            return this;
        }

        public Builder topK(Integer k) {
            topK = k;
            return this;
        }

        public Builder maxOutputTokens(Integer n) {
            maxOutputTokens = n;
            return this;
        }

        public Builder stopSequences(List<String> stops) {
            stopSequences = stops;
            return this;
        }

        /** The sampler's seed (LangChain4j's request parameters have none). */
        public Builder seed(Long s) {
            seed = s;
            return this;
        }

        /** Where streaming requests run; default: the calling thread. */
        public Builder executor(Executor e) {
            executor = e;
            return this;
        }

        public EdgeInfiniteChatModel build() {
            return new EdgeInfiniteChatModel(this);
        }
    }
}
