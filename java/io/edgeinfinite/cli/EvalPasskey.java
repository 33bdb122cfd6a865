package io.edgeinfinite.cli;

import io.edgeinfinite.GenerateOptions;
import io.edgeinfinite.Generation;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code ei eval passkey}: the pass-key retrieval test framed as llama.cpp's passkey example
 * frames it. The prompt is the same instruction, then filler sentences with one sentence
 * carrying a number (1 to 50000), then the same question; the model continues greedily and
 * is right when the first number it writes is the key. Here the filler is a user's text file
 * (its sentences, in order, repeated as needed) or a built-in one, the prompt is sized to a
 * length in tokens, and the key sits at a depth (0: right after the instruction, 1: right
 * before the question). Accuracy by length and depth for each configuration of {@link Eval}.
 */
final class EvalPasskey {
    private EvalPasskey() {}

    // The wording of llama.cpp's examples/passkey (its instruction, key sentence and question).
    static final String INSTRUCTION = "There is an important info hidden inside a lot of irrelevant text. Find it and "
            + "memorize them. I will quiz you about the important information there.";
    static final String QUESTION = " What is the pass key? The pass key is";

    static String keySentence(int key) {
        return " The pass key is " + key + ". Remember it. " + key + " is the pass key.";
    }

    /** Filler written for this project: plain sentences that say nothing about any number. */
    static final String BUILT_IN_FILLER = """
            The river runs slowly past the old mill at the edge of the village. \
            Children walk to school along the path beside the water. \
            In spring the fields turn bright with new grass and small yellow flowers. \
            The baker opens his shop before the sun comes up. \
            Smoke rises from the chimneys on cold mornings. \
            A dog sleeps in the doorway of the library most afternoons. \
            The market fills the square with fruit, bread and loud voices every week. \
            Clouds gather over the hills and the wind turns toward the sea. \
            An old bridge of grey stone crosses the stream near the church. \
            In the evening the lamps are lit one by one along the main street. \
            Farmers bring their carts down the lane when the harvest is done. \
            The bell in the tower rings at noon and again at dusk. \
            Birds nest under the roof of the barn and sing at first light. \
            Rain falls softly on the gardens and the roads grow dark and quiet. \
            A narrow road climbs through the forest to a lake high in the hills. \
            Travellers stop at the inn to rest their horses and share their news. \
            The teacher reads a story aloud while the class listens by the window. \
            Snow covers the rooftops in winter and the river freezes at its banks. \
            Fishermen mend their nets on the shore while the boats rock in the harbour. \
            At night the stars shine clearly above the sleeping town.""";

    record Cell(int correct, int trials, long tokens) {
        double accuracy() {
            return trials == 0 ? Double.NaN : (double) correct / trials;
        }
    }

    record Report(String model, String filler, Session.Resolved route, List<Integer> lengths, List<Double> depths,
            int trials, List<String> names, List<String> kinds, List<Cell[][]> cells) {}

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        var models = Eval.models(a);
        List<Eval.Config> configs = Eval.configs(a, models, err);
        Scenario base = Eval.pinShape(configs, Eval.baseScenario(a));
        List<Integer> lengths = Eval.intList(a, "--lengths", "1024,2048");
        List<Double> depths = new ArrayList<>();
        for (String s : a.opt("--depths", "0,0.25,0.5,0.75,1").split(",")) {
            try {
                double d = Double.parseDouble(s.trim());
                if (!(d >= 0 && d <= 1)) throw new NumberFormatException();
                depths.add(d);
            } catch (NumberFormatException e) {
                throw new Main.UsageException("--depths wants numbers in [0, 1] separated by commas, got '" + s + "'");
            }
        }
        int trials = a.intOpt("--trials", 4);
        if (trials < 1) throw new Main.UsageException("--trials must be >= 1");
        String fillerName = a.opt("--filler", "built-in");
        String filler = a.flag("--filler") ? Files.readString(Path.of(fillerName), StandardCharsets.UTF_8)
                : BUILT_IN_FILLER;
        Report r = measure(configs, base, lengths, depths, trials, filler, fillerName, a.longOpt("--seed", 1),
                (cfg, what) -> err.printf("  %-12s %s%n", cfg, what));
        out.print(table(r));
        Eval.writeOutputs(a, out, () -> json(r), () -> svg(r));
    }

    /** Filler sentences: the text split after sentence ends and at blank lines, spaces collapsed. */
    static List<String> sentences(String text) {
        List<String> out = new ArrayList<>();
        for (String s : text.split("(?<=[.!?])\\s+|\\n\\s*\\n")) {
            String t = s.replaceAll("\\s+", " ").trim();
            if (!t.isEmpty()) out.add(" " + t);
        }
        if (out.isEmpty()) throw new IllegalArgumentException("the filler text has no sentences");
        return out;
    }

    /**
     * The prompt text of about {@code tokens} tokens (with BOS) hiding {@code key} at
     * {@code depth}; the filler starts at sentence {@code start}.
     */
    static String prompt(Model m, List<String> sentences, int[] sentenceTokens, int start, int tokens, double depth,
            int key) {
        int fixed = m.tokenize(INSTRUCTION, true, false).length + m.tokenize(keySentence(key), false, false).length
                + m.tokenize(QUESTION, false, false).length;
        // Sentences tokenized alone count a little more than in running text: top up until the
        // whole prompt reaches the length.
        int budget = tokens - fixed;
        String p = prompt(sentences, sentenceTokens, start, budget, depth, key);
        for (int round = 0; round < 8; round++) {
            int missing = tokens - m.tokenize(p, m.addsBos(), false).length;
            if (missing <= 0) break;
            budget += missing;
            p = prompt(sentences, sentenceTokens, start, budget, depth, key);
        }
        return p;
    }

    private static String prompt(List<String> sentences, int[] sentenceTokens, int start, int budget, double depth,
            int key) {
        List<String> units = new ArrayList<>();
        int have = 0;
        for (int i = start; have < budget; i++) {
            int k = i % sentences.size();
            units.add(sentences.get(k));
            have += sentenceTokens[k];
            if (units.size() > 1_000_000) throw new IllegalArgumentException("filler sentences have no tokens");
        }
        // The key goes after the sentence where the filler reaches the depth (by tokens).
        int at = 0;
        for (int acc = 0; at < units.size() && acc + sentenceTokens[(start + at) % sentences.size()] / 2.0 <= depth * have;
                at++) {
            acc += sentenceTokens[(start + at) % sentences.size()];
        }
        StringBuilder b = new StringBuilder(INSTRUCTION);
        for (int i = 0; i < units.size(); i++) {
            if (i == at) b.append(keySentence(key));
            b.append(units.get(i));
        }
        if (at == units.size()) b.append(keySentence(key));
        return b.append(QUESTION).toString();
    }

    private static final Pattern NUMBER = Pattern.compile("\\d+");

    /** The first number of the answer, or -1. */
    static int firstNumber(String answer) {
        Matcher mt = NUMBER.matcher(answer);
        if (!mt.find()) return -1;
        String d = mt.group();
        return d.length() > 9 ? -1 : Integer.parseInt(d);
    }

    interface Progress {
        void update(String config, String what);
    }

    static Report measure(List<Eval.Config> configs, Scenario base, List<Integer> lengths, List<Double> depths,
            int trials, String filler, String fillerName, long seed, Progress progress) {
        List<String> sentences = sentences(filler);
        Path firstModel = configs.get(0).model();
        Session.Resolved route = Eval.resolve(firstModel, base.toBuilder().memory(true).build());
        final int answerTokens = 8;
        // Prompts depend on the tokenizer only: built once from the first model.
        String[][][] prompts = new String[lengths.size()][depths.size()][trials];
        int[][][] keys = new int[lengths.size()][depths.size()][trials];
        try (Model m = Model.load(firstModel)) {
            int[] st = new int[sentences.size()];
            for (int i = 0; i < st.length; i++) st[i] = m.tokenize(sentences.get(i), false, false).length;
            Random rnd = new Random(seed);
            for (int li = 0; li < lengths.size(); li++) {
                for (int di = 0; di < depths.size(); di++) {
                    for (int t = 0; t < trials; t++) {
                        int key = rnd.nextInt(50000) + 1;
                        keys[li][di][t] = key;
                        prompts[li][di][t] = prompt(m, sentences, st, rnd.nextInt(sentences.size()), lengths.get(li),
                                depths.get(di), key);
                    }
                }
            }
        }
        GenerateOptions greedy = GenerateOptions.builder().greedy().maxTokens(answerTokens).build();
        List<String> names = new ArrayList<>(), kinds = new ArrayList<>();
        List<Cell[][]> cells = new ArrayList<>();
        for (Eval.Config c : configs) {
            Cell[][] grid = new Cell[depths.size()][lengths.size()];
            try (Model m = Model.load(c.model())) {
                for (int li = 0; li < lengths.size(); li++) {
                    int[][][] toks = new int[depths.size()][trials][];
                    int longest = 0;
                    for (int di = 0; di < depths.size(); di++) {
                        for (int t = 0; t < trials; t++) {
                            toks[di][t] = m.tokenize(prompts[li][di][t], m.addsBos(), false);
                            longest = Math.max(longest, toks[di][t].length);
                        }
                    }
                    try (Session s = m.newSession(c.scenario(base, longest + answerTokens))) {
                        for (int di = 0; di < depths.size(); di++) {
                            int correct = 0;
                            long tokens = 0;
                            for (int t = 0; t < trials; t++) {
                                s.reset();
                                StringBuilder answer = new StringBuilder();
                                try (Generation g = s.stream(toks[di][t], greedy)) {
                                    while (g.hasNext()) answer.append(g.next());
                                }
                                if (firstNumber(answer.toString()) == keys[li][di][t]) correct++;
                                tokens += toks[di][t].length;
                            }
                            grid[di][li] = new Cell(correct, trials, tokens);
                            progress.update(c.name(), String.format(Locale.ROOT, "length %d, depth %.2f: %d/%d",
                                    lengths.get(li), depths.get(di), correct, trials));
                        }
                    }
                }
            }
            names.add(c.name());
            kinds.add(c.kind().name().toLowerCase());
            cells.add(grid);
        }
        return new Report(firstModel.toString(), fillerName, route, lengths, depths, trials, names, kinds, cells);
    }

    static String table(Report r) {
        StringBuilder b = new StringBuilder(String.format(Locale.ROOT,
                "passkey accuracy (%d trials per cell; route S %d, W %d, L %d; filler: %s)%n", r.trials(),
                r.route().sink(), r.route().window(), r.route().segmentLength(), r.filler()));
        for (int k = 0; k < r.names().size(); k++) {
            b.append(String.format("%-16s", r.names().get(k) + " depth"));
            for (int n : r.lengths()) b.append(String.format("%9d", n));
            b.append('\n');
            for (int di = 0; di < r.depths().size(); di++) {
                b.append(String.format(Locale.ROOT, "%16.2f", r.depths().get(di)));
                for (int li = 0; li < r.lengths().size(); li++) {
                    b.append(String.format(Locale.ROOT, "%9.2f", r.cells().get(k)[di][li].accuracy()));
                }
                b.append('\n');
            }
        }
        return b.toString();
    }

    static String json(Report r) {
        StringBuilder b = new StringBuilder("{\n  \"eval\": \"passkey\",\n");
        b.append("  \"model\": ").append(Eval.str(r.model())).append(",\n");
        b.append("  \"filler\": ").append(Eval.str(r.filler())).append(",\n");
        b.append("  \"route\": ").append(Eval.scenarioJson(r.route())).append(",\n");
        b.append("  \"trials\": ").append(r.trials()).append(",\n  \"series\": [\n");
        for (int k = 0; k < r.names().size(); k++) {
            b.append("    {\"name\": ").append(Eval.str(r.names().get(k))).append(", \"config\": ")
                    .append(Eval.str(r.kinds().get(k))).append(", \"cells\": [");
            String sep = "";
            for (int di = 0; di < r.depths().size(); di++) {
                for (int li = 0; li < r.lengths().size(); li++) {
                    Cell c = r.cells().get(k)[di][li];
                    b.append(sep).append(String.format(Locale.ROOT,
                            "{\"length\": %d, \"depth\": %s, \"accuracy\": %s, \"correct\": %d, \"trials\": %d, "
                                    + "\"mean_tokens\": %d}",
                            r.lengths().get(li), EvalCharts.tick(r.depths().get(di)), Eval.fmt(c.accuracy()), c.correct(),
                            c.trials(), c.tokens() / c.trials()));
                    sep = ", ";
                }
            }
            b.append("]}").append(k + 1 < r.names().size() ? "," : "").append('\n');
        }
        return b.append("  ]\n}\n").toString();
    }

    static String svg(Report r) {
        List<EvalCharts.Grid> grids = new ArrayList<>();
        for (int k = 0; k < r.names().size(); k++) {
            double[][] v = new double[r.depths().size()][r.lengths().size()];
            for (int di = 0; di < v.length; di++) {
                for (int li = 0; li < v[di].length; li++) v[di][li] = r.cells().get(k)[di][li].accuracy();
            }
            grids.add(new EvalCharts.Grid(r.names().get(k), r.lengths(), r.depths(), v));
        }
        return EvalCharts.grids(String.format(Locale.ROOT, "Passkey accuracy (S %d, W %d, L %d; %d trials per cell)",
                r.route().sink(), r.route().window(), r.route().segmentLength(), r.trials()), "prompt length (tokens)",
                "depth of the key (0: start, 1: end)", grids);
    }
}
