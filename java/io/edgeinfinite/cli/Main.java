package io.edgeinfinite.cli;

import io.edgeinfinite.EdgeInfinite;
import io.edgeinfinite.EdgeInfiniteException;
import io.edgeinfinite.GenerateOptions;
import io.edgeinfinite.GenerationResult;
import io.edgeinfinite.GgufFile;
import io.edgeinfinite.Model;
import io.edgeinfinite.ModelInfo;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

/** The {@code ei} command line: one subcommand per job. */
public final class Main {
    private static final String USAGE = """
            usage: ei <command> [options]
              info MODEL.gguf                         what the model file holds
              tokenize -m MODEL -f TEXTFILE           token ids of the file's text (no BOS)
              run -m MODEL -p PROMPT [options]        generate text, streamed to stdout
                  -n N (max tokens, 128)  --greedy  --temp T  --top-k K  --top-p P  --min-p P
                  --repeat-penalty R  --repeat-last-n N  --seed S  --stop STR (repeatable)
                  --chat (wrap the prompt in the model's chat template)
              logits -m MODEL --tokens 1,2,3 --out FILE   float32 logits [n_tokens x n_vocab], little-endian
              perplexity -m MODEL -f TEXTFILE [--ctx N] [--chunks N]   llama.cpp's chunking and scoring
                  --kl-divergence-base FILE   also save the model's log-probabilities over the text
                  --kl-divergence FILE        compare this model against a saved base (KL, top token, PPL ratio)
              imatrix -m MODEL -f CALIB.txt -o FILE [--ctx 512] [--chunks N] [--process-output]
                                                      importance matrix (llama-imatrix's GGUF): sum of x^2 per matrix column
              calibrate -m MODEL -f CALIB.txt -o FILE.json [--ctx 512] [--chunks 16] [--sensitivity-tokens 4096]
                                                      activation ranges and per-layer int8/int4 sensitivity (F32/F16 model)
              plan -m MODEL [--graph prefill|decode|fold] [scenario options]
                                                      the planned graphs (default all three): tensor table (id, name,
                                                      role, type, shape, pool offset, quantization), ops with the
                                                      tensors each reads, writes and updates in place
              devices [--json]                        the devices a scenario can name (--device), with memory and capabilities
              bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPS]
              bench --sweep [-m MODEL] [--lengths 1024,4096,16384,65536,131072] [--budget-s 900] [--svg FILE]
                                                      TTFT, prefill t/s, peak RSS: full attention vs EdgeInfinite
              synth --shape NAME --type TYPE -o FILE [--gate B]
                                                      a random-weight model (shapes: %s), gates g = sigmoid(B)
              demo [--prompt-tokens N] [--shape S]    the main job: a 16K-token prompt, full attention vs EdgeInfinite
              gate-init -m IN --value B -o OUT [--gate scalar|adaptive] [--sink S --window W -L L --rule R]
                                                      copy a model with constant memory gates g = sigmoid(B)
              quantize IN.gguf OUT.gguf TYPE [options]  quantize F32/F16/BF16 weights; TYPE: q8_0, q4_0, q4_k, q6_k,
                                                      q4_k_m, q4_k_s (llama.cpp's mixes)
                  --pure (every matrix TYPE)  --keep-output  --type-override PATTERN=T (regex; repeatable)
                  --token-embedding-type T  --output-type T  --imatrix FILE  --threads N  --allow-requantize
              eval perplexity -m MODEL -f TEXT [--lengths 1024,2048] [--windows 16] [--score-from P]
                  [--span 128] [--repeat-distance D] [--repeats 16] [--skip-windows N]
                                                      late-position and repeated-span perplexity
              eval passkey -m MODEL [--lengths 1024,2048] [--depths 0,0.25,0.5,0.75,1] [--trials 4]
                  [--filler FILE] [--seed S]          pass-key retrieval accuracy by length and depth
                  (both: [--models name=path,...] [--configs full,g0,gated] [--json OUT] [--svg OUT]
                   and scenario options for the memory route; full attention, g = 0 and each model's gates)
              fit-gates -m IN -f CALIB.txt|CALIB.jsonl -o OUT [--gate scalar|adaptive] [scenario options]
                  [--steps 3 --ridge 0.1 (adaptive: Gauss-Newton steps, penalty on the per-token gate)]
                  [--length N (window, default: training context)] [--windows N]
                  [--chat-format F] [--answer-weight 1] [--prompt-weight 0]   (for .jsonl chat data)
                                                      fit the memory gates to full attention (layer-wise distillation)
              npu-prepare -m MODEL -f CALIB.txt -o DIR [--weights 16a8w|16a4w] [--block 32|64] [--keep-8bit 0.25]
                  [--max-tokens 256] [scenario options]
                                                      the quantized Hexagon NPU path: calibrate the lowered graphs on the
                                                      htp-emulator, choose int4 layers by sensitivity, write DIR (params,
                                                      report.txt, graphs); then --device htp-emulator --cache-dir DIR
            scenario options (all commands that run a model):
              --scenario summarize|qa|chat   a preset        -L N  segment length     --sink S  --window W
              --memory on|off  --rule linear|delta  --memory-keys nope|rope  --kv f16|f32  -t THREADS
              --gates on|off   off: ignore the model's memory gates (g = 0, sinks + window only)
              --sinks window|absolute   RoPE positions of the sink keys once tokens fold (default window:
                               kept right behind the window; absolute: ever farther from the queries)
              --device NAME   the device that runs the graphs: cpu, opencl:N (see ei devices), or opencl (the
                              first GPU, else the first OpenCL device; EI_OPENCL_DEVICE=N picks another); ops
                              it cannot run are placed on the CPU and listed. --backend NAME: the same (older name)
                              htp-emulator: the Hexagon NPU path (graphs lowered to QNN ops) emulated on the CPU
                              htp: the Hexagon NPU through QNN (listed where libQnnHtp.so loads; EI_QNN_HTP_LIB=PATH)
              --cache-dir DIR  compiled-program cache: OpenCL program binaries, QNN context binaries
                               (default $EI_OPENCL_CACHE_DIR / $EI_QNN_CACHE_DIR, else ~/.cache; off: none);
                               htp-emulator and htp run quantized where ei npu-prepare -o DIR left the
                               model's parameters
              --ctx N   plain full attention over at most N tokens (memory off)
            """;

    private Main() {}

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs a command; returns the process exit status. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help") || args[0].equals("help")) {
            out.print(usage());
            return args.length == 0 ? 2 : 0;
        }
        try {
            if (args[0].equals("devices")) {  // its --json is a switch, elsewhere an option with a file
                Devices.run(Arrays.copyOfRange(args, 1, args.length), out);
                return 0;
            }
            Args a = new Args(Arrays.copyOfRange(args, 1, args.length));
            switch (args[0]) {
                case "info" -> info(a, out);
                case "tokenize" -> tokenize(a, out);
                case "run" -> generate(a, out, err);
                case "logits" -> logits(a, out);
                case "perplexity" -> perplexity(a, out, err);
                case "bench" -> {
                    if (a.flag("--sweep")) Sweep.run(a, out, err);
                    else Bench.run(a, out, err);
                }
                case "bench-point" -> Sweep.point(a, out);
                case "synth" -> Synth.run(a, out);
                case "demo" -> Demo.run(a, out, err);
                case "gate-init" -> GateInit.run(a, out);
                case "quantize" -> Quantize.run(a, out, err);
                case "imatrix" -> Imatrix.run(a, out, err);
                case "calibrate" -> Calibrate.run(a, out, err);
                case "eval" -> Eval.run(a, out, err);
                case "fit-gates" -> FitGates.run(a, out, err);
                case "plan" -> PlanGraphs.run(a, out);
                case "npu-prepare" -> NpuPrepare.run(a, out, err);
                case "version" -> out.println("edgeinfinite " + EdgeInfinite.version() + " (" + EdgeInfinite.binding()
                        + ", " + EdgeInfinite.platform() + ", cpu: " + EdgeInfinite.cpuFeatures() + ")");
                default -> throw new UsageException("unknown command '" + args[0] + "'");
            }
            return 0;
        } catch (UsageException e) {
            err.println("ei: " + e.getMessage());
            err.print(usage());
            return 2;
        } catch (EdgeInfiniteException e) {
            err.println("ei: " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            err.println("ei: interrupted");
            return 1;
        } catch (IOException | IllegalArgumentException | IllegalStateException e) {
            err.println("ei: " + e.getMessage());
            return 1;
        }
    }

    private static String usage() {
        return USAGE.formatted(String.join(", ", Synth.shapes()));
    }

    static Scenario scenario(Args a) {
        Scenario.Builder b = a.flag("--scenario") ? Scenario.preset(a.opt("--scenario", "")).toBuilder()
                : Scenario.builder();
        if (a.flag("--ctx")) {
            int ctx = a.intOpt("--ctx", 0);
            b.sink(0).window(ctx).memory(false);
            // A context shorter than the default segment (128) is read as one segment of its
            // own length (the window must hold a segment).
            if (ctx > 0 && ctx < 128 && b.build().segmentLength() < 0) b.segmentLength(ctx);
        }
        if (a.flag("-L")) b.segmentLength(a.intOpt("-L", 0));
        if (a.flag("--sink")) b.sink(a.intOpt("--sink", 0));
        if (a.flag("--window")) b.window(a.intOpt("--window", 0));
        if (a.flag("--memory")) b.memory(onOff(a.opt("--memory", ""), "--memory"));
        if (a.flag("--gates")) b.gates(onOff(a.opt("--gates", ""), "--gates"));
        if (a.flag("--sinks")) b.sinkPositions(choice(Scenario.SinkPositions.class, a.opt("--sinks", ""), "--sinks"));
        if (a.flag("--rule")) b.memoryRule(choice(Scenario.MemoryRule.class, a.opt("--rule", ""), "--rule"));
        if (a.flag("--memory-keys")) {
            b.memoryKeys(choice(Scenario.MemoryKeys.class, a.opt("--memory-keys", ""), "--memory-keys"));
        }
        if (a.flag("--device") && a.flag("--backend") && !a.opt("--device", "").equals(a.opt("--backend", ""))) {
            throw new UsageException("--device and --backend (its older name) name different devices");
        }
        if (a.flag("--backend")) b.device(a.opt("--backend", "cpu"));
        if (a.flag("--device")) b.device(a.opt("--device", "cpu"));
        if (a.flag("--cache-dir")) b.cacheDir(a.opt("--cache-dir", null));
        return b.threads(a.intOpt("-t", 0)).kvType(choice(Scenario.KvType.class, a.opt("--kv", "f16"), "--kv")).build();
    }

    private static boolean onOff(String v, String opt) {
        return switch (v) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new UsageException(opt + " must be on or off, got '" + v + "'");
        };
    }

    static <E extends Enum<E>> E choice(Class<E> type, String v, String opt) {
        for (E e : type.getEnumConstants()) {
            if (e.name().equalsIgnoreCase(v)) return e;
        }
        throw new UsageException(opt + " must be one of " + java.util.Arrays.toString(type.getEnumConstants()).toLowerCase()
                + ", got '" + v + "'");
    }

    private static void info(Args a, PrintStream out) {
        String path = a.positional(0, "MODEL.gguf");
        GgufFile f = GgufFile.read(Path.of(path));
        out.println("file:           " + path + " (GGUF v" + f.version() + ", " + f.tensors().size() + " tensors, "
                + f.metadata().size() + " metadata keys)");
        out.print(ModelInfo.of(f).format());
        out.println("runtime:        edgeinfinite " + EdgeInfinite.version() + " via " + EdgeInfinite.binding()
                + ", cpu " + EdgeInfinite.cpuFeatures());
    }

    private static void tokenize(Args a, PrintStream out) throws IOException {
        String text = Files.readString(Path.of(a.required("-f")), StandardCharsets.UTF_8);
        try (Model m = Model.loadVocabOnly(Path.of(a.required("-m")))) {
            int[] ids = m.tokenize(text, false, false);
            out.println(Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(" ")));
        }
    }

    static GenerateOptions options(Args a) {
        GenerateOptions.Builder b = GenerateOptions.builder().maxTokens(a.intOpt("-n", 128))
                .temperature(a.floatOpt("--temp", 0.8f)).topK(a.intOpt("--top-k", 40)).topP(a.floatOpt("--top-p", 0.95f))
                .minP(a.floatOpt("--min-p", 0.05f))
                .repeatPenalty(a.floatOpt("--repeat-penalty", 1.0f), a.intOpt("--repeat-last-n", 64))
                .seed(a.longOpt("--seed", 0x5EED)).stopStrings(a.all("--stop")).chat(a.flag("--chat"));
        if (a.flag("--greedy")) b.greedy();
        return b.build();
    }

    private static void generate(Args a, PrintStream out, PrintStream err) {
        String prompt = a.required("-p");
        GenerateOptions o = options(a);
        Scenario sc = scenario(a);
        try (Model m = Model.load(Path.of(a.required("-m"))); Session s = m.newSession(sc)) {
            Devices.reportFallback(s, err);
            if (!a.flag("--no-echo") && !o.chat()) out.print(prompt);
            GenerationResult r = s.generate(prompt, o, piece -> {
                out.print(piece);
                out.flush();
            }, progressBar(err));
            out.println();
            err.printf("[%d prompt tokens at %.1f tok/s, %d generated at %.1f tok/s, stop: %s, route: %s]%n",
                    r.promptTokens(), r.prefillTokensPerSecond(), r.generatedTokens(), r.decodeTokensPerSecond(),
                    r.stopReason().name().toLowerCase(), s.route().name().toLowerCase());
        }
    }

    /** A prefill progress bar on stderr, drawn for prompts of several segments. */
    static Session.ProgressListener progressBar(PrintStream err) {
        return (done, total) -> {
            if (total < 2048) return;
            int width = 40, filled = (int) (width * done / total);
            err.printf("\r[%s%s] %3d%% %,d/%,d tokens", "=".repeat(filled), " ".repeat(width - filled), 100 * done / total,
                    done, total);
            if (done == total) err.print("\r" + " ".repeat(width + 40) + "\r");
            err.flush();
        };
    }

    private static void logits(Args a, PrintStream out) throws IOException {
        int[] tokens = Arrays.stream(a.required("--tokens").split(",")).map(String::trim).filter(s -> !s.isEmpty())
                .mapToInt(Integer::parseInt).toArray();
        Path dest = Path.of(a.required("--out"));
        Scenario sc = scenario(a);
        try (Model m = Model.load(Path.of(a.required("-m"))); Session s = m.newSession(sc)) {
            float[] l = s.logits(tokens);
            ByteBuffer bb = ByteBuffer.allocate(l.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            bb.asFloatBuffer().put(l);
            Files.write(dest, bb.array());
            out.printf("wrote %d x %d logits to %s%n", tokens.length, m.vocabSize(), dest);
        }
    }

    private static void perplexity(Args a, PrintStream out, PrintStream err) throws IOException {
        String textPath = a.required("-f");
        String text = Perplexity.asRead(Files.readString(Path.of(textPath), StandardCharsets.UTF_8));
        int ctx = a.intOpt("--ctx", 512);
        String saveBase = a.opt("--kl-divergence-base", null), against = a.opt("--kl-divergence", null);
        if (saveBase != null && against != null) {
            throw new UsageException("--kl-divergence-base writes a base file and --kl-divergence reads one: give one of them");
        }
        Scenario sc = scenario(a);
        Path modelPath = Path.of(a.required("-m"));
        long start = System.nanoTime();
        try (Model m = Model.load(modelPath); Session s = m.newSession(sc)) {
            Perplexity.Chunking ch = Perplexity.Chunking.of(Perplexity.tokens(m, text), ctx, a.intOpt("--chunks", 0),
                    m.addsBos() ? m.bosToken() : -1);
            int vocab = m.vocabSize();
            Perplexity.Progress progress = chunkProgress(err, "chunks");
            TokenScores.Nll nll = new TokenScores.Nll();
            if (against != null) {
                KlDivergence kl = new KlDivergence();
                try (KlBaseFile.Reader base = new KlBaseFile.Reader(Path.of(against))) {
                    checkBaseMatches(base, ch, vocab, vocabHash(modelPath), against, textPath);
                    KlBaseFile.Row row = new KlBaseFile.Row(vocab);
                    Perplexity.run(s, ch, (c, logits) -> {
                        for (int i = ch.first(); i < ch.ctx() - 1; i++) {
                            base.next(row);
                            kl.add(logits, i, vocab, row, ch.target(c, i));
                        }
                    }, progress);
                }
                out.printf("KL divergence of %s against %s over %d chunks of %d (%.1f s)%n", modelPath.getFileName(),
                        Path.of(against).getFileName(), ch.chunks(), ctx, (System.nanoTime() - start) / 1e9);
                kl.report(out);
                return;
            }
            if (saveBase != null) {
                KlBaseFile.Header h = new KlBaseFile.Header(vocab, ctx, ch.chunks(), ch.first(), ch.bos(), vocabHash(modelPath));
                try (KlBaseFile.Writer w = new KlBaseFile.Writer(Path.of(saveBase), h, ch.chunkedTokens())) {
                    Perplexity.run(s, ch, (c, logits) -> {
                        Perplexity.score(ch, c, logits, vocab, nll);
                        for (int i = ch.first(); i < ch.ctx() - 1; i++) w.writeRow(logits, i, ch.target(c, i));
                    }, progress);
                }
            } else {
                Perplexity.run(s, ch, (c, logits) -> Perplexity.score(ch, c, logits, vocab, nll), progress);
            }
            out.printf(java.util.Locale.ROOT, "perplexity: %.4f ± %.4f over %d tokens in %d chunks of %d (mean -ln p %.6f; %.1f s)%n",
                    nll.perplexity(), nll.perplexityError(), nll.count(), ch.chunks(), ctx, nll.meanNll().mean(),
                    (System.nanoTime() - start) / 1e9);
            if (saveBase != null) out.println("wrote the base log-probabilities to " + saveBase);
        }
    }

    /** The vocabulary's fingerprint, as a KL base file records it. */
    private static long vocabHash(Path model) {
        Object tokens = GgufFile.read(model).metadata().get("tokenizer.ggml.tokens");
        if (!(tokens instanceof List<?> l)) throw new IllegalArgumentException(model + " has no tokenizer.ggml.tokens");
        return KlBaseFile.vocabHash(l.stream().map(String::valueOf).toList());
    }

    /** Refuses a base file made for another vocabulary, chunk size or token list. */
    static void checkBaseMatches(KlBaseFile.Reader base, Perplexity.Chunking ch, int vocab, long vocabHash, String basePath,
            String textPath) {
        KlBaseFile.Header h = base.header;
        String what = "the KL-divergence base file " + basePath + " was made ";
        if (h.nVocab() != vocab || h.vocabHash() != vocabHash) {
            throw new IllegalArgumentException(what + "with another vocabulary (" + h.nVocab() + " tokens, hash "
                    + Long.toHexString(h.vocabHash()) + "; this model: " + vocab + " tokens, hash " + Long.toHexString(vocabHash) + ")");
        }
        if (h.ctx() != ch.ctx()) {
            throw new IllegalArgumentException(what + "with --ctx " + h.ctx() + ", this run uses --ctx " + ch.ctx());
        }
        if (h.chunks() != ch.chunks()) {
            throw new IllegalArgumentException(what + "over " + h.chunks() + " chunks; " + textPath + " gives " + ch.chunks()
                    + " here (another text, or --chunks)");
        }
        if (h.bos() != ch.bos()) {
            throw new IllegalArgumentException(what + "with BOS " + h.bos() + " at each chunk's start; this model uses " + ch.bos());
        }
        int[] mine = ch.chunkedTokens();
        for (int i = 0; i < mine.length; i++) {
            if (mine[i] != base.tokens[i]) {
                throw new IllegalArgumentException(what + "from another text or tokenization: token " + i + " is " + base.tokens[i]
                        + " there and " + mine[i] + " in " + textPath);
            }
        }
    }

    /** Whether a stream is the process's own stderr/stdout attached to a terminal. */
    static boolean isTerminal(PrintStream s) {
        if (s != System.err && s != System.out) return false;
        java.io.Console c = System.console();
        if (c == null) return false;
        try {  // JDK 22+: a Console exists even when redirected; ask it (reflection: java/ compiles for 17)
            return (Boolean) java.io.Console.class.getMethod("isTerminal").invoke(c);
        } catch (ReflectiveOperationException e) {
            return true;  // before 22 a Console exists only on a terminal
        }
    }

    /**
     * Progress over steps: on a terminal one line redrawn in place; otherwise (a log, a pipe)
     * a line at every tenth of the work, like the other commands' progress lines.
     */
    static Perplexity.Progress chunkProgress(PrintStream err, String unit) {
        boolean tty = isTerminal(err);
        long t0 = System.nanoTime();
        return (done, total) -> {
            double s = (System.nanoTime() - t0) / 1e9;
            if (tty) {
                err.printf("\r[%d/%d %s, %.0f s]", done, total, unit, s);
                if (done == total) err.println();
            } else if (done == total || done * 10 / total != (done - 1) * 10 / total) {
                err.printf(java.util.Locale.ROOT, "  %d/%d %s (%.1f s)%n", done, total, unit, s);
            }
            err.flush();
        };
    }

    /** A bad command line: printed with the usage text, exit status 2. */
    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    /** Minimal option parsing: "-x value", "--flag", positionals; repeated options kept in order. */
    static final class Args {
        private final Map<String, List<String>> opts = new TreeMap<>();
        private final List<String> positionals = new java.util.ArrayList<>();
        private static final List<String> FLAGS = List.of("--greedy", "--chat", "--no-echo", "--sweep", "--full",
                "--progress", "--process-output",
                // quantize
                "--pure", "--keep-output", "--allow-requantize");

        Args(String[] args) {
            for (int i = 0; i < args.length; i++) {
                String s = args[i];
                if (s.startsWith("-") && s.length() > 1 && !isNumber(s)) {
                    if (FLAGS.contains(s)) {
                        opts.computeIfAbsent(s, k -> new java.util.ArrayList<>()).add("true");
                    } else {
                        if (i + 1 >= args.length) throw new UsageException("option " + s + " needs a value");
                        opts.computeIfAbsent(s, k -> new java.util.ArrayList<>()).add(args[++i]);
                    }
                } else {
                    positionals.add(s);
                }
            }
        }

        private static boolean isNumber(String s) {
            try {
                Double.parseDouble(s);
                return true;
            } catch (NumberFormatException e) {
                return false;
            }
        }

        String positional(int i, String what) {
            if (i >= positionals.size()) throw new UsageException("missing " + what);
            return positionals.get(i);
        }

        String required(String key) {
            List<String> v = opts.get(key);
            if (v == null) throw new UsageException("missing option " + key);
            return v.get(v.size() - 1);
        }

        String opt(String key, String def) {
            List<String> v = opts.get(key);
            return v == null ? def : v.get(v.size() - 1);
        }

        List<String> all(String key) {
            return opts.getOrDefault(key, List.of());
        }

        boolean flag(String key) {
            return opts.containsKey(key);
        }

        int intOpt(String key, int def) {
            String v = opt(key, null);
            try {
                return v == null ? def : Integer.parseInt(v);
            } catch (NumberFormatException e) {
                throw new UsageException(key + " needs an integer, got '" + v + "'");
            }
        }

        long longOpt(String key, long def) {
            String v = opt(key, null);
            try {
                return v == null ? def : Long.parseLong(v);
            } catch (NumberFormatException e) {
                throw new UsageException(key + " needs an integer, got '" + v + "'");
            }
        }

        float floatOpt(String key, float def) {
            String v = opt(key, null);
            try {
                return v == null ? def : Float.parseFloat(v);
            } catch (NumberFormatException e) {
                throw new UsageException(key + " needs a number, got '" + v + "'");
            }
        }
    }
}
