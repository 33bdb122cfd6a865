package io.edgeinfinite.cli;

import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code ei eval}: long-context quality of a model and scenario, compared across
 * configurations of the same weights:
 * <ul>
 * <li>{@code full}: plain full attention over the whole sequence (memory off);
 * <li>{@code g0}: the memory route with the gates ignored (g = 0: sinks + window only, the
 * StreamingLLM baseline; {@link Scenario.Builder#gates(boolean)});
 * <li>{@code gated}: the memory route with each model's own gates (one series per model of
 * {@code --models}; skipped for a model without gate tensors, where it is g0).
 * </ul>
 * full and g0 run on the first model: gates change neither. Subcommands: {@link EvalPerplexity}
 * and {@link EvalPasskey}; both write JSON ({@code --json}) and an SVG chart ({@code --svg}).
 */
final class Eval {
    private Eval() {}

    /** One way of running the model: the series of a chart. */
    record Config(String name, Path model, Kind kind) {
        enum Kind { FULL, G0, GATED }

        /** The scenario for a sequence of {@code tokens} tokens (full attention must hold them all). */
        Scenario scenario(Scenario base, int tokens) {
            return switch (kind) {
                case FULL -> base.toBuilder().sink(0).window(tokens).memory(false).build();
                case G0 -> base.toBuilder().memory(true).gates(false).build();
                case GATED -> base.toBuilder().memory(true).gates(true).build();
            };
        }
    }

    static void run(Main.Args a, PrintStream out, PrintStream err) throws IOException {
        String what = a.positional(0, "eval kind (perplexity or passkey)");
        switch (what) {
            case "perplexity" -> EvalPerplexity.run(a, out, err);
            case "passkey" -> EvalPasskey.run(a, out, err);
            default -> throw new Main.UsageException("unknown eval '" + what + "' (perplexity or passkey)");
        }
    }

    /** {@code -m MODEL} or {@code --models name=path,...} (the first one also runs full and g0). */
    static Map<String, Path> models(Main.Args a) {
        Map<String, Path> models = new LinkedHashMap<>();
        if (a.flag("--models")) {
            for (String item : a.required("--models").split(",")) {
                int eq = item.indexOf('=');
                if (eq <= 0 || eq == item.length() - 1) {
                    throw new Main.UsageException("--models wants name=path,..., got '" + item + "'");
                }
                String name = item.substring(0, eq).trim();
                if (!name.matches("[A-Za-z0-9_.+-]+")) {
                    throw new Main.UsageException("--models: name '" + name + "' may only use letters, digits, _.+-");
                }
                if (models.put(name, Path.of(item.substring(eq + 1).trim())) != null) {
                    throw new Main.UsageException("--models: name '" + name + "' given twice");
                }
            }
        }
        if (a.flag("-m")) {
            Path m = Path.of(a.required("-m"));
            String name = m.getFileName().toString().replaceFirst("\\.gguf$", "").replaceAll("[^A-Za-z0-9_.+-]", "_");
            if (models.containsKey(name)) name = name + "-m";
            Map<String, Path> all = new LinkedHashMap<>();
            all.put(name, m);
            all.putAll(models);
            models = all;
        }
        if (models.isEmpty()) throw new Main.UsageException("missing option -m MODEL (or --models name=path,...)");
        for (Path p : models.values()) {
            if (!Files.isRegularFile(p)) throw new IllegalArgumentException("model file " + p + " does not exist");
        }
        return models;
    }

    /** The configurations asked for ({@code --configs full,g0,gated}, all by default). */
    static List<Config> configs(Main.Args a, Map<String, Path> models) {
        return configs(a, models, null);
    }

    /** As above; skipped models (no gates) are named on {@code err} when it is given. */
    static List<Config> configs(Main.Args a, Map<String, Path> models, PrintStream err) {
        List<String> wanted = List.of(a.opt("--configs", "full,g0,gated").split(","));
        for (String w : wanted) {
            if (!List.of("full", "g0", "gated").contains(w.trim())) {
                throw new Main.UsageException("--configs: unknown configuration '" + w + "' (full, g0, gated)");
            }
        }
        Path first = models.values().iterator().next();
        List<Config> out = new ArrayList<>();
        if (wanted.contains("full")) out.add(new Config("full", first, Config.Kind.FULL));
        if (wanted.contains("g0")) out.add(new Config("g0", first, Config.Kind.G0));
        if (wanted.contains("gated")) {
            for (Map.Entry<String, Path> e : models.entrySet()) {
                if (hasGates(e.getValue())) out.add(new Config(e.getKey(), e.getValue(), Config.Kind.GATED));
                else if (err != null) err.println("  " + e.getKey() + ": no gate tensors, its route is g0 (not run twice)");
            }
        }
        if (out.isEmpty()) throw new Main.UsageException("no configuration to run (the models have no gates?)");
        return out;
    }

    static boolean hasGates(Path model) {
        return io.edgeinfinite.GgufFile.read(model).tensors().stream().anyMatch(t -> t.name().contains(".ei_gate."));
    }

    /** The scenario options of the command line; the memory route's settings come from here. */
    static Scenario baseScenario(Main.Args a) {
        if (a.flag("--ctx") || a.flag("--memory")) {
            throw new Main.UsageException("eval picks full attention and the memory route itself: drop --ctx / --memory");
        }
        return Main.scenario(a);
    }

    /** The scenario a model resolves (its edgeinfinite.* keys applied): S, W, L of the route. */
    static Session.Resolved resolve(Path model, Scenario sc) {
        try (Model m = Model.load(model); Session s = m.newSession(sc)) {
            return s.scenario();
        }
    }

    /**
     * The route's shape (S, W, L) for every configuration: the command line's, else the
     * edgeinfinite.* keys of the first gated model (a fitted copy says what it was fitted
     * for), else the first model's. Pinned, so every series scores the same positions;
     * each gated model keeps its own rule and keys unless the command line sets them.
     */
    static Scenario pinShape(List<Config> configs, Scenario base) {
        Path shapeModel = configs.stream().filter(c -> c.kind() == Config.Kind.GATED).map(Config::model).findFirst()
                .orElse(configs.get(0).model());
        Session.Resolved r = resolve(shapeModel, base.toBuilder().memory(true).build());
        return base.toBuilder().sink(r.sink()).window(r.window()).segmentLength(r.segmentLength()).build();
    }

    static List<Integer> intList(Main.Args a, String key, String def) {
        List<Integer> v = new ArrayList<>();
        for (String s : a.opt(key, def).split(",")) {
            try {
                int n = Integer.parseInt(s.trim());
                if (n <= 0) throw new NumberFormatException();
                v.add(n);
            } catch (NumberFormatException e) {
                throw new Main.UsageException(key + " wants positive integers separated by commas, got '" + s + "'");
            }
        }
        return v;
    }

    static String fmt(double v) {
        return Double.isNaN(v) ? "null" : String.format(Locale.ROOT, "%.4f", v);
    }

    /** JSON string literal. */
    static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.append('"').toString();
    }

    static String scenarioJson(Session.Resolved r) {
        return "{\"segment_length\": " + r.segmentLength() + ", \"sink\": " + r.sink() + ", \"window\": " + r.window()
                + ", \"rule\": " + str(r.memoryRule().name().toLowerCase()) + ", \"memory_keys\": "
                + str(r.memoryKeys().name().toLowerCase()) + ", \"kv\": " + str(r.kvType().name().toLowerCase())
                + ", \"sinks\": " + str(r.sinkPositions().name().toLowerCase()) + "}";
    }

    /** Writes the report's JSON (--json) and SVG (--svg) where the options ask, saying so. */
    static void writeOutputs(Main.Args a, java.io.PrintStream out, java.util.function.Supplier<String> json,
            java.util.function.Supplier<String> svg) throws IOException {
        if (a.flag("--json")) {
            write(Path.of(a.required("--json")), json.get());
            out.println("wrote " + a.required("--json"));
        }
        if (a.flag("--svg")) {
            write(Path.of(a.required("--svg")), svg.get());
            out.println("wrote " + a.required("--svg"));
        }
    }

    static void write(Path dest, String text) throws IOException {
        Path dir = dest.toAbsolutePath().getParent();
        if (dir != null) Files.createDirectories(dir);
        Files.writeString(dest, text, StandardCharsets.UTF_8);
    }
}
