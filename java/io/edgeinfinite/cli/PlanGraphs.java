package io.edgeinfinite.cli;

import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

/** {@code ei plan}: prints the graphs planned for a model and scenario (see {@link Model#describeGraph}). */
final class PlanGraphs {
    private static final List<String> GRAPHS = List.of("prefill", "decode", "fold");

    private PlanGraphs() {}

    static void run(Main.Args a, PrintStream out) {
        String only = a.opt("--graph", null);
        if (only != null && !GRAPHS.contains(only)) {
            throw new Main.UsageException("--graph must be one of " + String.join(", ", GRAPHS) + ", not '" + only + "'");
        }
        Scenario sc = Main.scenario(a);
        try (Model m = Model.load(Path.of(a.required("-m")))) {
            for (String g : only == null ? GRAPHS : List.of(only)) out.print(m.describeGraph(sc, g));
        }
    }
}
