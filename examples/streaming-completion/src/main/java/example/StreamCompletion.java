package example;

import io.edgeinfinite.EdgeInfinite;
import io.edgeinfinite.GenerateOptions;
import io.edgeinfinite.GenerationResult;
import io.edgeinfinite.Model;
import io.edgeinfinite.Scenario;
import io.edgeinfinite.Session;
import java.nio.file.Path;

/** Streams the greedy continuation of a prompt, piece by piece, as it is generated. */
public final class StreamCompletion {
    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: StreamCompletion MODEL.gguf [PROMPT] [TOKENS]");
            System.exit(2);
        }
        String prompt = args.length > 1 ? args[1] : "Once upon a time";
        int tokens = args.length > 2 ? Integer.parseInt(args[2]) : 32;
        try (Model model = Model.load(Path.of(args[0]));
                Session session = model.newSession(Scenario.defaults())) {
            GenerateOptions options = GenerateOptions.builder().greedy().maxTokens(tokens).build();
            System.out.print(prompt);
            GenerationResult r = session.generate(prompt, options, piece -> {
                System.out.print(piece);
                System.out.flush();
            });
            System.out.println();
            System.out.printf("[%d tokens generated, stop: %s, %.0f tokens/s, EdgeInfinite %s via %s]%n",
                    r.generatedTokens(), r.stopReason(), r.decodeTokensPerSecond(), EdgeInfinite.version(),
                    EdgeInfinite.binding());
        }
    }
}
