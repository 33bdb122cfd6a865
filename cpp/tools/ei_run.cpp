// ei-run: GGUF in, text out, no JVM. Streams the continuation of a prompt to stdout the
// way llama.cpp's simple example does (the prompt echoed, then each piece as it comes);
// statistics go to stderr so stdout is only text.
#include <chrono>

#include "tool_common.h"

namespace {

const char* const kUsage =
    "usage: ei-run -m MODEL -p PROMPT [options]\n"
    "  -m MODEL           GGUF model file\n"
    "  -p PROMPT          prompt text (special tokens such as <s> are parsed)\n"
    "  -n N               tokens to generate (default 128)\n"
    "  --greedy           argmax sampling (ignores --temp/--top-k/--top-p/--min-p)\n"
    "  --temp T           temperature (default 0.8; 0 is greedy)\n"
    "  --top-k K          top-k (default 40; 0 is off)\n"
    "  --top-p P          top-p (default 0.95; 1 is off)\n"
    "  --min-p P          min-p (default 0.05; 0 is off)\n"
    "  --repeat-penalty R repetition penalty (default 1.0, off)\n"
    "  --repeat-last-n N  tokens the penalty looks back over (default 64)\n"
    "  --seed S           sampler seed (default 0x5EED)\n"
    "  --stop STR         stop string (repeatable)\n"
    "  --no-echo          do not print the prompt\n";

const char* stop_name(int32_t done) {
    switch (done) {
        case EI_STOP_EOS: return "eos";
        case EI_STOP_STRING: return "stop string";
        case EI_STOP_MAX_TOKENS: return "max tokens";
        case EI_STOP_CONTEXT_FULL: return "context full";
        default: return "none";
    }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(int argc, char** argv) {
    using namespace eitool;
    std::vector<std::string> valued = {"-m",     "-p",     "-n",    "--temp", "--top-k", "--top-p", "--min-p",
                                       "--repeat-penalty", "--repeat-last-n", "--seed", "--stop"};
    valued.insert(valued.end(), kScenarioOptions.begin(), kScenarioOptions.end());
    const Args a(argc, argv, valued, {"--greedy", "--no-echo"});
    if (a.help()) {
        std::printf("%s%s", kUsage, kScenarioUsage);
        return 0;
    }
    const std::string path = a.required("-m");
    const std::string prompt = a.required("-p");
    const int32_t n_predict = static_cast<int32_t>(a.integer("-n", 128, 0, 1 << 24));

    ei_sampling sp{};
    sp.struct_size = sizeof sp;
    sp.greedy = a.flag("--greedy") ? 1 : 0;
    sp.temperature = static_cast<float>(a.real("--temp", 0.8, 0.0, 1e6));
    sp.top_k = static_cast<int32_t>(a.integer("--top-k", 40, 0, 1 << 30));
    sp.top_p = static_cast<float>(a.real("--top-p", 0.95, 0.0, 1.0));
    sp.min_p = static_cast<float>(a.real("--min-p", 0.05, 0.0, 1.0));
    sp.repeat_penalty = static_cast<float>(a.real("--repeat-penalty", 1.0, 0.0, 1e6));
    sp.repeat_last_n = static_cast<int32_t>(a.integer("--repeat-last-n", 64, 0, 1 << 24));
    sp.seed = a.u64("--seed", 0x5EED);
    sp.max_tokens = n_predict;
    const std::vector<std::string> stops = a.all("--stop");
    std::vector<const char*> stop_ptrs;
    for (const auto& s : stops) stop_ptrs.push_back(s.c_str());

    const ei_scenario sc = scenario_from(a);

    Engine e;
    e.load(path);
    // BOS as the model's metadata asks (tokenizer.ggml.add_bos_token), like llama.cpp.
    const bool add_bos = e.param("add_bos") != 0;
    const std::vector<int32_t> tokens = e.tokenize(prompt, add_bos, true);
    if (tokens.empty()) throw UsageError("the prompt is empty and the model adds no BOS: nothing to start from");
    e.start(sc);
    std::fprintf(stderr, "ei-run: %s | %zu prompt tokens | %s | pool %.1f MiB | cpu %s\n", path.c_str(), tokens.size(),
                 describe(e.scenario()).c_str(), e.pool_size() / 1048576.0, ei_cpu_features());

    if (!a.flag("--no-echo")) {
        std::fputs(prompt.c_str(), stdout);
        std::fflush(stdout);
    }
    const auto t0 = std::chrono::steady_clock::now();
    check(ei_generate_begin(e.session(), tokens.data(), static_cast<int32_t>(tokens.size()), 0, &sp, stop_ptrs.data(),
                            static_cast<int32_t>(stop_ptrs.size())),
          "evaluating the prompt");
    const double t_prompt = seconds_since(t0);

    const auto t1 = std::chrono::steady_clock::now();
    int32_t generated = 0, done = EI_STOP_NONE;
    while (done == EI_STOP_NONE) {
        const char* piece = nullptr;
        uint64_t len = 0;
        int32_t token = -1;
        check(ei_generate_next(e.session(), &piece, &len, &token, &done), "generating");
        if (token >= 0) ++generated;
        if (len > 0) {
            std::fwrite(piece, 1, len, stdout);
            std::fflush(stdout);
        }
    }
    const double t_gen = seconds_since(t1);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "[%zu prompt tokens at %.1f tok/s, %d generated at %.1f tok/s, stop: %s]\n", tokens.size(),
                 t_prompt > 0 ? tokens.size() / t_prompt : 0.0, generated, t_gen > 0 ? generated / t_gen : 0.0,
                 stop_name(done));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string usage = std::string(kUsage) + eitool::kScenarioUsage;
    return eitool::run_tool("ei-run", usage.c_str(), [&] { return run(argc, argv); });
}
