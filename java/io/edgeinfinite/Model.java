package io.edgeinfinite;

import io.edgeinfinite.internal.Native;
import io.edgeinfinite.internal.NativeBinding;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A loaded model: weights mapped read-only from the GGUF file, hyper-parameters, tokenizer.
 * One model can serve several sessions, each on its own thread. Closing the model closes
 * the sessions still open on it.
 */
public final class Model implements AutoCloseable {
    private final NativeBinding nb = Native.binding();
    private final Path path;
    private final Object lock = new Object();
    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private volatile long handle;
    private volatile ModelInfo info;

    private Model(Path path, long handle) {
        this.path = path;
        this.handle = handle;
    }

    /**
     * Loads a GGUF model.
     *
     * @throws ModelFormatException for a malformed file (the message names field and offset)
     * @throws UnsupportedModelException for an unknown architecture or tensor type
     */
    public static Model load(Path path) {
        return new Model(path, Native.binding().modelLoad(path.toString()));
    }

    NativeBinding binding() {
        return nb;
    }

    /** Loads only the tokenizer of a GGUF (a vocabulary file works): it can tokenize, not run. */
    public static Model loadVocabOnly(Path path) {
        return new Model(path, Native.binding().modelLoadVocab(path.toString()));
    }

    long handle() {
        long h = handle;
        if (h == 0) throw new IllegalStateException("model is closed");
        return h;
    }

    public Path path() {
        return path;
    }

    /** Header facts (architecture, sizes, tensor types...), read once. */
    public ModelInfo info() {
        ModelInfo i = info;
        if (i == null) info = i = ModelInfo.of(GgufFile.read(path));
        return i;
    }

    public int vocabSize() {
        return (int) nb.modelParam(handle(), "n_vocab");
    }

    public int bosToken() {
        return (int) nb.modelParam(handle(), "bos");
    }

    public int eosToken() {
        return (int) nb.modelParam(handle(), "eos");
    }

    /** Whether prompts start with BOS, as the model's tokenizer metadata says. */
    public boolean addsBos() {
        return nb.modelParam(handle(), "add_bos") != 0;
    }

    /** Opens a session with its own buffer pool, planned from this model and the scenario. */
    public Session newSession(Scenario scenario) {
        Session s = new Session(this, scenario);
        sessions.add(s);
        return s;
    }

    /**
     * Opens a session and restores a state saved by {@link Session#saveState}: it continues
     * exactly where the saved one stopped.
     *
     * @throws ModelFormatException for a state from another model or scenario, or a corrupted one
     */
    public Session restoreSession(Path state, Scenario scenario) {
        Session s = newSession(scenario);
        try {
            s.loadState(state);
            return s;
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
    }

    void forget(Session s) {
        sessions.remove(s);
    }

    /** Text to token ids. parseSpecial: recognise special-token text such as {@code <|im_start|>}. */
    public int[] tokenize(String text, boolean addBos, boolean parseSpecial) {
        return nb.tokenize(handle(), text, addBos, parseSpecial);
    }

    /** Token ids to text. */
    public String detokenize(int[] tokens) {
        return nb.detokenize(handle(), tokens);
    }

    /** The built-in chat format the model's template is recognised as ("chatml", "llama3", "llama2"). */
    public Optional<String> chatFormat() {
        String f = nb.modelChatFormat(handle());
        return f == null || f.isEmpty() ? Optional.empty() : Optional.of(f);
    }

    /**
     * Formats a conversation with the model's chat template, or with the named format.
     *
     * @throws UnsupportedModelException when the model's template is not recognised and no format is named
     */
    public String formatChat(List<ChatMessage> messages, boolean addGenerationPrompt, String format) {
        String[] roles = messages.stream().map(ChatMessage::role).toArray(String[]::new);
        String[] contents = messages.stream().map(ChatMessage::content).toArray(String[]::new);
        return nb.chatFormat(handle(), format, roles, contents, addGenerationPrompt);
    }

    /** Stop strings that end the assistant's turn in a chat format. */
    List<String> chatStops(String format) {
        return List.of(nb.chatStops(format));
    }

    @Override
    public void close() {
        synchronized (lock) {
            if (handle == 0) return;
            for (Session s : List.copyOf(sessions)) s.close();
            nb.modelFree(handle);
            handle = 0;
        }
    }
}
