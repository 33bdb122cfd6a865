package io.edgeinfinite;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.IntConsumer;

/**
 * A multi-turn chat over one session. Each {@link #send(String)} appends only the new turn to
 * the session, formatted with the chat template, and streams the reply; the history is never
 * read again. The reply's tokens stay in the session as they were sampled, and the template's
 * end-of-turn text follows them, so after n turns the session holds the tokens of the one
 * prompt that formats those n turns (the tokens of each reply being the ones sampled).
 *
 * <p>On the memory route (a scenario with memory on) a conversation goes on for any number of
 * turns in the same fixed pool: older turns fold into the compressed memory. {@link #save}
 * writes its fixed-size state plus a few bytes of its own (the format, the system prompt, the
 * end of the last turn not yet fed); {@link Model#restoreConversation} continues it exactly.
 *
 * <p>Thread safety: like a {@link Session}, a conversation and the {@link Generation} it
 * returns are used by one thread at a time; {@link #cancel()} and {@link #close()} work from
 * any thread.
 */
public final class Conversation implements AutoCloseable {
    // A character no template writes: it marks where contents go when the template is probed.
    private static final String MARK = "\uE000";
    private static final byte[] MAGIC = {'E', 'I', 'C', 'O', 'N', 'V', 0, 0};
    private static final int VERSION = 1;
    private static final int[] NONE = new int[0];

    private final Model model;
    private final Session session;
    private final ConversationOptions options;
    private final String format;
    private final List<String> formatStops;
    // What the template writes after an assistant message's content ("<|im_end|>\n").
    private final String closing;
    // The formatting of a finished exchange, the start of every later turn's formatting.
    private final List<ChatMessage> probeExchange = List.of(ChatMessage.user(MARK), ChatMessage.assistant(MARK));
    private final String probeFormatted;

    // Until the first message: what precedes it (the system prompt, or a transcript), formatted
    // together with it. Null afterwards.
    private List<ChatMessage> opening;
    // The end of the last turn, not yet in the session: sampled tokens the generation did not
    // feed, then template text. Both go in with the next message, in the same prefill.
    private int[] owedTokens = NONE;
    private String owedText = "";
    // The last token of the session plus owedTokens (-1: none): the next text is tokenized after it.
    private int lastToken = -1;
    private int turns;
    private long promptStart;
    private volatile Generation current;
    private IntConsumer tokenLog;

    private Conversation(Model model, Session session, ConversationOptions options) {
        this.model = model;
        this.options = options;
        try {
            this.format = options.format() != null ? options.format()
                    : model.chatFormat().orElseThrow(() -> new UnsupportedModelException(
                            "the model's chat template is absent or not a built-in format; name one with"
                                    + " ConversationOptions.builder().format(\"chatml\" | \"llama3\" | \"llama2\")"));
            this.formatStops = model.chatStops(format);
            if (formatStops.isEmpty()) {
                throw new InvalidArgumentException("unknown chat format '" + format + "' (known: chatml, llama3, llama2)");
            }
            // The template must write a reply as: generation prompt, content, closing text.
            String head = model.formatChat(List.of(ChatMessage.user(MARK)), true, format);
            String exchange = model.formatChat(probeExchange, false, format);
            if (!exchange.startsWith(head + MARK)) {
                throw new UnsupportedModelException("chat format '" + format
                        + "' does not write a reply right after its generation prompt; it cannot be continued turn by turn");
            }
            this.closing = exchange.substring(head.length() + MARK.length());
            this.probeFormatted = exchange;
            this.session = session;
        } catch (RuntimeException e) {
            session.close();
            throw e;
        }
        this.opening = options.systemPrompt() == null ? List.of() : List.of(ChatMessage.system(options.systemPrompt()));
    }

    /** Called by {@link Model#newConversation}. */
    static Conversation open(Model model, Scenario scenario, ConversationOptions options) {
        return new Conversation(model, model.newSession(scenario), options == null ? ConversationOptions.defaults() : options);
    }

    public Model model() {
        return model;
    }

    public ConversationOptions options() {
        return options;
    }

    /** The chat format in use. */
    public String format() {
        return format;
    }

    /** User messages sent since the start (or the last {@link #reset}, counting a transcript's). */
    public synchronized int turns() {
        return turns;
    }

    /** Tokens in the session (the end of the last reply goes in with the next message). */
    public long position() {
        return session.position();
    }

    public Session.Route route() {
        return session.route();
    }

    public Session.Placement placement() {
        return session.placement();
    }

    /** Bytes of the session's pool: fixed by model and scenario, however long the conversation. */
    public long poolSize() {
        return session.poolSize();
    }

    /** Bytes of the session state inside a saved conversation: fixed by model and scenario. */
    public long stateSize() {
        return session.stateSize();
    }

    /** The scenario in force. */
    public Session.Resolved scenario() {
        return session.scenario();
    }

    /** Sends a user message and streams the reply with the conversation's options. */
    public Generation send(String userMessage) {
        return send(userMessage, options.generate());
    }

    /** Sends a user message and passes each piece of the reply to onPiece; returns the outcome. */
    public GenerationResult send(String userMessage, Consumer<String> onPiece) {
        try (Generation g = send(userMessage)) {
            while (g.hasNext()) onPiece.accept(g.next());
            return g.result();
        }
    }

    /**
     * Sends a user message and streams the reply with these options (their stop strings join
     * the template's; turn n samples with the seed plus n times a fixed odd constant, so turns
     * differ yet repeat exactly). The message, the end of the previous reply and the
     * generation prompt go into the session on the first {@link Generation#hasNext()}. A reply
     * of this conversation still streaming is closed first (what it produced stays).
     */
    public synchronized Generation send(String userMessage, GenerateOptions options) {
        Objects.requireNonNull(userMessage, "userMessage");
        Objects.requireNonNull(options, "options");
        settleCurrent();
        int[] fresh;
        if (opening != null) {
            List<ChatMessage> messages = new ArrayList<>(opening);
            messages.add(ChatMessage.user(userMessage));
            fresh = model.tokenize(model.formatChat(messages, true, format), model.addsBos(), true);
        } else {
            fresh = model.tokenizeAfter(lastToken, owedText + turnText(userMessage));
        }
        int[] prompt = Arrays.copyOf(owedTokens, owedTokens.length + fresh.length);
        System.arraycopy(fresh, 0, prompt, owedTokens.length, fresh.length);
        LinkedHashSet<String> stops = new LinkedHashSet<>(options.stopStrings());
        stops.addAll(formatStops);
        // Each turn draws its own random numbers (seed mixed with the turn's number): one seed
        // for every turn would repeat the same draws, and a restored conversation, which knows
        // its turn count, still goes on exactly.
        GenerateOptions turn = options.toBuilder().seed(options.seed() + 0x9E3779B97F4A7C15L * turns).build();
        List<String> stopList = List.copyOf(stops);
        Generation g = session.stream(prompt, turn, stopList, ended -> settle(ended, stopList));
        promptStart = session.position();
        opening = null;
        owedTokens = NONE;
        owedText = "";
        lastToken = prompt[prompt.length - 1];
        turns++;
        current = g;
        return g;
    }

    // A user turn after a finished exchange: what the template adds for it, generation prompt
    // included. Each built-in template formats a message independently of the ones before
    // (ConversationTest checks this for each), so the tail of a probe exchange is that text.
    private String turnText(String userMessage) {
        List<ChatMessage> messages = new ArrayList<>(probeExchange);
        messages.add(ChatMessage.user(userMessage));
        String all = model.formatChat(messages, true, format);
        if (!all.startsWith(probeFormatted)) {
            throw new UnsupportedModelException("chat format '" + format + "' rewrites earlier turns when one is added");
        }
        return all.substring(probeFormatted.length());
    }

    /**
     * Runs when a reply ends (finished, cancelled or failed): works out what the session
     * lacks for the reply to be followed by the template's closing text, and owes it.
     */
    private synchronized void settle(Generation g, List<String> stops) {
        if (g != current) return;
        current = null;
        long held;
        try {
            held = session.position();
        } catch (IllegalStateException closed) {
            return;
        }
        int[] prompt = g.promptTokens();
        int[] reply = g.tokens();
        long fed = held - promptStart;
        int fedPrompt = (int) Math.min(fed, prompt.length);
        int fedReply = (int) Math.max(0, Math.min(fed - prompt.length, reply.length));
        log(prompt, fedPrompt);
        log(reply, fedReply);
        if (fedPrompt < prompt.length) {
            // Stopped during the prefill: the rest of the prompt is owed, and the reply is empty.
            owedTokens = Arrays.copyOfRange(prompt, fedPrompt, prompt.length);
            owedText = closing;
            lastToken = prompt[prompt.length - 1];
            return;
        }
        int lastFed = fedReply > 0 ? reply[fedReply - 1] : prompt[prompt.length - 1];
        int n = reply.length;
        if (g.stopReason() == StopReason.EOS && n > 0) {
            // The end-of-generation token is the template's own end of turn (<|im_end|>,
            // <|eot_id|>, </s>) when the closing text starts with it: fed as sampled. Another
            // one (a model's <|endoftext|> in ChatML) is not part of the formatted turn: dropped.
            int[] unfed = Arrays.copyOfRange(reply, fedReply, n - 1);
            String eog = new String(model.tokenPiece(reply[n - 1], true), StandardCharsets.UTF_8);
            if (!eog.isEmpty() && closing.startsWith(eog)) {
                owedTokens = Arrays.copyOf(unfed, unfed.length + 1);
                owedTokens[unfed.length] = reply[n - 1];
                owedText = closing.substring(eog.length());
            } else {
                owedTokens = unfed;
                owedText = closing;
            }
        } else if (g.stopReason() == StopReason.STOP_STRING) {
            settleAtStop(reply, fedReply, stops);
        } else {
            // Every sampled token is part of the reply (max tokens, context full, cancelled).
            owedTokens = Arrays.copyOfRange(reply, fedReply, n);
            owedText = closing;
        }
        lastToken = owedTokens.length > 0 ? owedTokens[owedTokens.length - 1] : lastFed;
    }

    // A stop string ended the reply: its content is the text before the stop string, while the
    // tokens fed may already spell part of it (the template's "<|im_end|>" written as plain
    // text). Whatever they spell of content + closing counts; the rest is owed as text.
    private void settleAtStop(int[] reply, int fedReply, List<String> stops) {
        byte[] want = heldContent(reply, stops);
        if (want == null) { // not found in the raw bytes (the stream saw them through U+FFFD)
            owedTokens = NONE;
            owedText = closing;
            return;
        }
        want = concat(want, closing.getBytes(StandardCharsets.UTF_8));
        int at = 0;
        for (int i = 0; i < fedReply; i++) {
            at = match(want, at, model.tokenPiece(reply[i], true));
            if (at < 0) {
                // The session holds text beyond the content (part of another stop string): the
                // closing follows it as it is.
                owedTokens = NONE;
                owedText = closing;
                return;
            }
        }
        int m = fedReply;
        int[] ends = new int[reply.length + 1];
        ends[m] = at;
        while (m < reply.length) {
            int next = match(want, at, model.tokenPiece(reply[m], true));
            if (next < 0) break;
            at = next;
            ends[++m] = at;
        }
        // Owed text starts on a character boundary (a byte token may end inside one).
        while (m > fedReply && at < want.length && (want[at] & 0xC0) == 0x80) at = ends[--m];
        if (at < want.length && (want[at] & 0xC0) == 0x80) {
            owedTokens = NONE;
            owedText = closing;
            return;
        }
        owedTokens = Arrays.copyOfRange(reply, fedReply, m);
        owedText = new String(want, at, want.length - at, StandardCharsets.UTF_8);
    }

    /**
     * The bytes of a reply that a stop string ended, up to the stop string, as the session
     * spells them (control tokens sampled inside it as their text), or null if no stop string
     * shows in them. The generation matched its stop strings token by token, earliest first,
     * on text; this replays that on the tokens' bytes, where the content ends at a byte.
     */
    private byte[] heldContent(int[] reply, List<String> stops) {
        java.io.ByteArrayOutputStream raw = new java.io.ByteArrayOutputStream();
        int end = -1;
        for (int i = 0; i < reply.length && end < 0; i++) {
            raw.writeBytes(model.tokenPiece(reply[i], false));
            byte[] seen = raw.toByteArray();
            for (String stop : stops) {
                int at = indexOf(seen, stop.getBytes(StandardCharsets.UTF_8));
                if (at >= 0 && (end < 0 || at < end)) end = at;
            }
        }
        if (end < 0) return null;
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        int done = 0;
        for (int i = 0; i < reply.length && done < end; i++) {
            byte[] plain = model.tokenPiece(reply[i], false);
            int take = Math.min(plain.length, end - done);
            if (plain.length == 0) out.writeBytes(model.tokenPiece(reply[i], true));
            else out.write(plain, 0, take);
            done += take;
        }
        return out.toByteArray();
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        if (needle.length == 0) return -1; // empty stop strings are ignored, as natively
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) continue outer;
            }
            return i;
        }
        return -1;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    // The offset after piece when want holds it at offset at, else -1.
    private static int match(byte[] want, int at, byte[] piece) {
        if (at + piece.length > want.length) return -1;
        for (int i = 0; i < piece.length; i++) {
            if (want[at + i] != piece[i]) return -1;
        }
        return at + piece.length;
    }

    private void log(int[] tokens, int n) {
        if (tokenLog == null) return;
        for (int i = 0; i < n; i++) tokenLog.accept(tokens[i]);
    }

    /** Tests: receives every token the session is given, in order, as each turn settles. */
    synchronized void tokenLog(IntConsumer log) {
        tokenLog = log;
    }

    // A reply still streaming is closed: it settles (cancelled) before anything else happens.
    private void settleCurrent() {
        Generation g = current;
        if (g != null) g.close();
        if (current == g) current = null; // it failed in a way that never reached settle
    }

    /** Starts over: an empty session, then the system prompt with the next message. */
    public synchronized void reset() {
        reset(options.systemPrompt() == null ? List.of() : List.of(ChatMessage.system(options.systemPrompt())));
    }

    /**
     * Starts over from a transcript (system, user and assistant messages, in order; it
     * replaces the system prompt): the next message is formatted together with it, as one
     * prompt.
     */
    public synchronized void reset(List<ChatMessage> transcript) {
        settleCurrent();
        session.reset();
        opening = List.copyOf(transcript);
        owedTokens = NONE;
        owedText = "";
        lastToken = -1;
        turns = (int) transcript.stream().filter(m -> m.role().equals("user")).count();
    }

    /** Stops a reply in progress (from any thread); what it produced stays in the conversation. */
    public void cancel() {
        Generation g = current;
        if (g != null) g.cancel();
    }

    /**
     * Saves the conversation: the session's fixed-size state and what the conversation needs
     * to go on (format, system prompt, sampling settings, the end of the last turn). Written
     * beside the target and renamed, so a crash never leaves half a file under its name.
     *
     * @throws IllegalStateException while a reply is still streaming
     */
    public synchronized void save(Path path) {
        if (current != null) throw new IllegalStateException("a reply is still streaming: finish or close it first");
        Path dir = path.toAbsolutePath().getParent();
        Path state = null, tmp = null;
        try {
            state = Files.createTempFile(dir, ".conversation-", ".state");
            session.saveState(state);
            tmp = Files.createTempFile(dir, ".conversation-", ".tmp");
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp)))) {
                writeHeader(out);
                out.writeLong(Files.size(state));
                Files.copy(state, out);
            }
            try {
                Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot save the conversation to " + path, e);
        } finally {
            deleteQuietly(state);
            deleteQuietly(tmp);
        }
    }

    private void writeHeader(DataOutputStream out) throws IOException {
        out.write(MAGIC);
        out.writeInt(VERSION);
        writeString(out, format);
        writeString(out, options.systemPrompt());
        out.writeInt(opening == null ? -1 : opening.size());
        if (opening != null) {
            for (ChatMessage m : opening) {
                writeString(out, m.role());
                writeString(out, m.content());
            }
        }
        out.writeInt(owedTokens.length);
        for (int t : owedTokens) out.writeInt(t);
        writeString(out, owedText);
        out.writeInt(lastToken);
        out.writeInt(turns);
        GenerateOptions o = options.generate();
        out.writeBoolean(o.greedy());
        out.writeFloat(o.temperature());
        out.writeInt(o.topK());
        out.writeFloat(o.topP());
        out.writeFloat(o.minP());
        out.writeFloat(o.repeatPenalty());
        out.writeInt(o.repeatLastN());
        out.writeLong(o.seed());
        out.writeInt(o.maxTokens());
        out.writeInt(o.stopStrings().size());
        for (String s : o.stopStrings()) writeString(out, s);
        Session.Resolved r = session.scenario();
        out.writeInt(r.segmentLength());
        out.writeInt(r.sink());
        out.writeInt(r.window());
        out.writeBoolean(r.memory());
        out.writeInt(r.memoryRule().ordinal());
        out.writeInt(r.memoryKeys().ordinal());
        out.writeInt(r.kvType().ordinal());
        writeString(out, session.requestedScenario().device());
    }

    /** Called by {@link Model#restoreConversation}; scenario null: the saved one (threads: one per core). */
    static Conversation restore(Model model, Path path, Scenario scenario) {
        Path state = null;
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(path)))) {
            byte[] magic = new byte[MAGIC.length];
            in.readFully(magic);
            if (!Arrays.equals(magic, MAGIC)) throw bad(path, "not a saved conversation");
            int version = in.readInt();
            if (version != VERSION) throw bad(path, "version " + version + " (this library reads version " + VERSION + ")");
            String format = readString(in);
            String system = readString(in);
            int nOpening = in.readInt();
            List<ChatMessage> opening = null;
            if (nOpening >= 0) {
                opening = new ArrayList<>();
                for (int i = 0; i < nOpening; i++) opening.add(new ChatMessage(readString(in), readString(in)));
            }
            int[] owed = new int[checkCount(path, in.readInt())];
            for (int i = 0; i < owed.length; i++) owed[i] = in.readInt();
            String owedText = readString(in);
            int lastToken = in.readInt();
            int turns = in.readInt();
            GenerateOptions.Builder g = GenerateOptions.builder();
            if (in.readBoolean()) g.greedy();
            g.temperature(in.readFloat()).topK(in.readInt()).topP(in.readFloat()).minP(in.readFloat());
            float penalty = in.readFloat();
            g.repeatPenalty(penalty, in.readInt()).seed(in.readLong()).maxTokens(in.readInt());
            List<String> stops = new ArrayList<>();
            for (int i = checkCount(path, in.readInt()); i > 0; i--) stops.add(readString(in));
            g.stopStrings(stops);
            Scenario saved = Scenario.builder().segmentLength(in.readInt()).sink(in.readInt()).window(in.readInt())
                    .memory(in.readBoolean()).memoryRule(Scenario.MemoryRule.values()[in.readInt()])
                    .memoryKeys(Scenario.MemoryKeys.values()[in.readInt()])
                    .kvType(Scenario.KvType.values()[in.readInt()]).device(readString(in)).build();
            long size = in.readLong();
            state = Files.createTempFile("edgeinfinite-conversation-", ".state");
            try (OutputStream out = Files.newOutputStream(state)) {
                copy(in, out, size);
            }
            ConversationOptions options = new ConversationOptions(format, system, g.build());
            Session session = model.restoreSession(state, scenario != null ? scenario : saved);
            Conversation c = new Conversation(model, session, options);
            c.opening = opening == null ? null : List.copyOf(opening);
            c.owedTokens = owed;
            c.owedText = owedText;
            c.lastToken = lastToken;
            c.turns = turns;
            return c;
        } catch (EOFException | ArrayIndexOutOfBoundsException e) {
            throw bad(path, "truncated or corrupted");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the conversation " + path, e);
        } finally {
            deleteQuietly(state);
        }
    }

    private static ModelFormatException bad(Path path, String why) {
        return new ModelFormatException("saved conversation '" + path + "': " + why);
    }

    private static int checkCount(Path path, int n) {
        if (n < 0 || n > (1 << 24)) throw bad(path, "corrupted (a count of " + n + ")");
        return n;
    }

    private static void copy(InputStream in, OutputStream out, long size) throws IOException {
        byte[] buf = new byte[1 << 16];
        for (long left = size; left > 0;) {
            int n = in.read(buf, 0, (int) Math.min(buf.length, left));
            if (n < 0) throw new EOFException();
            out.write(buf, 0, n);
            left -= n;
        }
    }

    // Length-prefixed UTF-8 (-1: null); unlike writeUTF, not limited to 64 KB.
    private static void writeString(DataOutputStream out, String s) throws IOException {
        if (s == null) {
            out.writeInt(-1);
            return;
        }
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        out.writeInt(b.length);
        out.write(b);
    }

    private static String readString(DataInputStream in) throws IOException {
        int n = in.readInt();
        if (n < 0) return null;
        if (n > (1 << 28)) throw new EOFException();
        byte[] b = new byte[n];
        in.readFully(b);
        return new String(b, StandardCharsets.UTF_8);
    }

    private static void deleteQuietly(Path p) {
        if (p == null) return;
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // a leftover temporary file is harmless
        }
    }

    public boolean isClosed() {
        return session.isClosed();
    }

    /** Closes the session (a reply in progress is cancelled). */
    @Override
    public void close() {
        cancel();
        session.close();
    }
}
