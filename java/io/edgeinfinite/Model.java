package io.edgeinfinite;

import io.edgeinfinite.internal.Native;
import io.edgeinfinite.internal.NativeBinding;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.LongFunction;

/**
 * A loaded model: weights mapped read-only from the GGUF file, hyper-parameters, tokenizer.
 *
 * <p>Thread safety: a model is shared freely. Any number of threads may tokenize, format
 * chats and open sessions on it at once; each session is then used by one thread at a time
 * (see {@link Session}). {@link #close()} may be called from any thread at any moment: calls
 * already inside the native runtime finish first (an evaluation in progress on one of its
 * sessions is cancelled at its next segment), later calls throw
 * {@link IllegalStateException}. Closing the model closes the sessions still open on it.
 */
public final class Model implements AutoCloseable {
    private final NativeBinding nb = Native.binding();
    private final Path path;
    // Read lock: a call that uses the native handle; write lock: close() retiring it. So the
    // handle is never freed while a call on it is in flight.
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private long handle; // guarded by lock
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

    /** The native handle; only valid under the read lock, so callers use {@link #withHandle}. */
    private long handle() {
        if (handle == 0) throw new IllegalStateException("model is closed");
        return handle;
    }

    /** Runs a native call on the model's handle, which stays valid until the call returns. */
    <T> T withHandle(LongFunction<T> call) {
        lock.readLock().lock();
        try {
            return call.apply(handle());
        } finally {
            lock.readLock().unlock();
        }
    }

    long param(String name) {
        return withHandle(h -> nb.modelParam(h, name));
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
        return (int) param("n_vocab");
    }

    public int bosToken() {
        return (int) param("bos");
    }

    public int eosToken() {
        return (int) param("eos");
    }

    /** Whether prompts start with BOS, as the model's tokenizer metadata says. */
    public boolean addsBos() {
        return param("add_bos") != 0;
    }

    /** Opens a session with its own buffer pool, planned from this model and the scenario. */
    public Session newSession(Scenario scenario) {
        // Under the read lock: close() cannot slip between creating and registering it.
        return withHandle(h -> {
            Session s = new Session(this, h, scenario);
            sessions.add(s);
            return s;
        });
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

    /**
     * Opens a conversation: a session whose turns are formatted with the chat template one at
     * a time (see {@link Conversation}).
     *
     * @throws UnsupportedModelException when options name no format and the model's template is
     *         absent or not a built-in one
     */
    public Conversation newConversation(Scenario scenario, ConversationOptions options) {
        return Conversation.open(this, scenario, options);
    }

    /** A conversation with the model's template, no system prompt and default sampling. */
    public Conversation newConversation(Scenario scenario) {
        return Conversation.open(this, scenario, ConversationOptions.defaults());
    }

    /**
     * Restores a conversation saved by {@link Conversation#save}, with the scenario it was
     * saved with (threads: one per core): it continues exactly where the saved one stopped.
     *
     * @throws ModelFormatException for a file from another model, or a corrupted one
     */
    public Conversation restoreConversation(Path path) {
        return Conversation.restore(this, path, null);
    }

    /**
     * As {@link #restoreConversation(Path)}, with a scenario of the same shapes (segment, sink,
     * window, memory and KV settings) but perhaps other threads.
     */
    public Conversation restoreConversation(Path path, Scenario scenario) {
        return Conversation.restore(this, path, scenario);
    }

    void forget(Session s) {
        sessions.remove(s);
    }

    /**
     * A graph planned for this model and scenario, as text ({@code ei plan}): its tensor
     * table (id, name, role, type, shape, pool offset, block quantization) and its ops with
     * the tensors each reads, writes and updates in place.
     *
     * @param graph "prefill", "decode" or "fold"
     */
    public String describeGraph(Scenario scenario, String graph) {
        return withHandle(h -> {
            long plan = Session.createPlan(nb, h, scenario);
            try {
                return nb.planDescribeGraph(plan, graph);
            } finally {
                nb.planFree(plan);
            }
        });
    }

    /**
     * {@code ei npu-prepare}: chooses this model's quantization for the Hexagon NPU path and
     * writes it into outDir, where every {@code htp-emulator} session whose scenario's cache
     * dir is outDir then runs the quantized graphs. The scenario's float graphs, lowered to
     * QNN operations, run on the emulator over the calibration tokens (prefill, decode and the
     * folds the scenario makes) to record every tensor's range; for 16a4w the layers whose
     * int4 weights cost the most logits SQNR (the keep8bit share) stay int8. Also writes
     * report.txt (encodings, SQNR against float, bytes, per-layer sensitivity) and the
     * quantized graphs prefill.txt, decode.txt, fold.txt.
     *
     * @param weightBits 8 (16a8w) or 4 (16a4w)
     * @param block int4 block along the input dimension: 32 or 64
     * @param keep8bit 16a4w: share (0..1) of the int4 candidates kept int8, most sensitive first
     * @return the text of report.txt
     */
    public String npuPrepare(Scenario scenario, int[] tokens, Path outDir, int weightBits, int block, double keep8bit)
            throws java.io.IOException {
        withHandle(h -> {
            long plan = Session.createPlan(nb, h, scenario);
            try {
                nb.npuPrepare(plan, tokens, outDir.toString(), weightBits, block, keep8bit);
                return null;
            } finally {
                nb.planFree(plan);
            }
        });
        return java.nio.file.Files.readString(outDir.resolve("report.txt"), java.nio.charset.StandardCharsets.UTF_8);
    }

    /** Text to token ids. parseSpecial: recognise special-token text such as {@code <|im_start|>}. */
    public int[] tokenize(String text, boolean addBos, boolean parseSpecial) {
        return withHandle(h -> nb.tokenize(h, text, addBos, parseSpecial));
    }

    /** Token ids to text. */
    public String detokenize(int[] tokens) {
        return withHandle(h -> nb.detokenize(h, tokens));
    }

    /** The built-in chat format the model's template is recognised as ("chatml", "llama3", "llama2"). */
    public Optional<String> chatFormat() {
        String f = withHandle(nb::modelChatFormat);
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
        return withHandle(h -> nb.chatFormat(h, format, roles, contents, addGenerationPrompt));
    }

    /** Stop strings that end the assistant's turn in a chat format (empty for an unknown one). */
    public List<String> chatStops(String format) {
        return List.of(nb.chatStops(format));
    }

    /** Tokens of text that continues a sequence whose last token is prev (-1: none); no BOS. */
    int[] tokenizeAfter(int prev, String text) {
        return withHandle(h -> nb.tokenizeAfter(h, prev, text, true));
    }

    /** The bytes a token stands for; special: control tokens as their text. */
    byte[] tokenPiece(int token, boolean special) {
        return withHandle(h -> nb.tokenPiece(h, token, special));
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        lock.readLock().lock();
        try {
            return handle == 0;
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override
    public void close() {
        long h;
        lock.writeLock().lock();
        try {
            if (handle == 0) return;
            h = handle;
            handle = 0; // from here on no new call or session can start
        } finally {
            lock.writeLock().unlock();
        }
        // Outside the lock: a session call in flight may itself be waiting for the read lock
        // (Session.stream tokenizes through the model); it now fails fast instead of deadlocking.
        for (Session s : List.copyOf(sessions)) s.close();
        // Natively, sessions hold the model by reference count, so this is safe in any order.
        nb.modelFree(h);
    }
}
