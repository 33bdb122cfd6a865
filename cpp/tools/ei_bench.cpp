// ei-bench: prompt processing (pp) and text generation (tg) speed, in llama-bench's
// spirit and with the same numbers as `ei bench` (the Java one): -p random tokens in one
// eval, and -n single-token evals after one token of context; each repeated -r times after
// one warm-up run (which pages the weights in and wakes the threads), the session reset
// before every run; tokens/s reported as mean ± sample standard deviation. Random ids
// keep the tokenizer out of the measurement.
#include <chrono>
#include <cmath>
#include <functional>
#include <random>

#include "tool_common.h"

namespace {

const char* const kUsage =
    "usage: ei-bench -m MODEL [options]\n"
    "  -m MODEL    GGUF model file\n"
    "  -p N        prompt tokens processed in one eval (default 512; 0 skips pp)\n"
    "  -n N        tokens generated one at a time (default 128; 0 skips tg)\n"
    "  -r N        repetitions after the warm-up runs (default 3)\n"
    "  -w N        warm-up runs (default 1)\n";

std::string stats(const std::vector<double>& r) {
    double mean = 0;
    for (double v : r) mean += v;
    mean /= static_cast<double>(r.size());
    double var = 0;
    for (double v : r) var += (v - mean) * (v - mean);
    const double sd = r.size() > 1 ? std::sqrt(var / static_cast<double>(r.size() - 1)) : 0.0;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f ± %.2f", mean, sd);
    return buf;
}

int run(int argc, char** argv) {
    using namespace eitool;
    std::vector<std::string> valued = {"-m", "-p", "-n", "-r", "-w"};
    valued.insert(valued.end(), kScenarioOptions.begin(), kScenarioOptions.end());
    const Args a(argc, argv, valued, {});
    if (a.help()) {
        std::printf("%s%s", kUsage, kScenarioUsage);
        return 0;
    }
    const std::string path = a.required("-m");
    const int32_t pp = static_cast<int32_t>(a.integer("-p", 512, 0, 1 << 20));
    const int32_t tg = static_cast<int32_t>(a.integer("-n", 128, 0, 1 << 20));
    const int reps = static_cast<int>(a.integer("-r", 3, 1, 1000));
    const int warmups = static_cast<int>(a.integer("-w", 1, 0, 1000));
    if (pp == 0 && tg == 0) throw UsageError("nothing to measure: -p and -n are both 0");

    const ei_scenario sc = scenario_from(a);
    Engine e;
    e.load(path);
    const int64_t n_vocab = e.param("n_vocab");
    e.start(sc);
    ei_session* s = e.session();

    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> any_token(0, static_cast<int32_t>(n_vocab - 1));
    std::vector<int32_t> prompt(static_cast<size_t>(pp));
    for (int32_t& t : prompt) t = any_token(rng);

    const char* name = std::strrchr(path.c_str(), '/');
    std::printf("model: %s | %s | pool %.1f MiB | cpu %s\n", name ? name + 1 : path.c_str(),
                describe(e.scenario()).c_str(), e.pool_size() / 1048576.0, ei_cpu_features());
    std::printf("%-8s %8s %20s\n", "test", "tokens", "t/s");
    std::fflush(stdout);

    using clock = std::chrono::steady_clock;
    auto repeat = [&](const std::function<double()>& trial) {
        for (int i = 0; i < warmups; ++i) trial();
        std::vector<double> r;
        for (int i = 0; i < reps; ++i) r.push_back(trial());
        return r;
    };
    if (pp > 0) {
        const auto r = repeat([&] {
            check(ei_session_reset(s), "resetting the session");
            const auto t0 = clock::now();
            check(ei_session_eval(s, prompt.data(), pp, nullptr), "prompt eval");
            return pp / std::chrono::duration<double>(clock::now() - t0).count();
        });
        std::printf("%-8s %8d %20s\n", ("pp" + std::to_string(pp)).c_str(), pp, stats(r).c_str());
        std::fflush(stdout);
    }
    if (tg > 0) {
        const auto r = repeat([&] {
            check(ei_session_reset(s), "resetting the session");
            const int32_t first = pp > 0 ? prompt[0] : any_token(rng);
            check(ei_session_eval(s, &first, 1, nullptr), "eval");
            const auto t0 = clock::now();
            for (int32_t i = 0; i < tg; ++i) {
                const int32_t t = any_token(rng);
                check(ei_session_eval(s, &t, 1, nullptr), "token eval");
            }
            return tg / std::chrono::duration<double>(clock::now() - t0).count();
        });
        std::printf("%-8s %8d %20s\n", ("tg" + std::to_string(tg)).c_str(), tg, stats(r).c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string usage = std::string(kUsage) + eitool::kScenarioUsage;
    return eitool::run_tool("ei-bench", usage.c_str(), [&] { return run(argc, argv); });
}
