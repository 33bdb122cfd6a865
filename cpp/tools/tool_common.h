// Shared by ei-run and ei-bench: option parsing and the model -> plan -> pool -> session
// set-up. Both tools use only the public C ABI, the way an application embeds the
// runtime, so they double as a check that the ABI is enough to run a model.
#pragma once

#include <edgeinfinite/edgeinfinite.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace eitool {

// A bad command line: usage text and exit status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// A failure inside the runtime (or the host): message and exit status 1.
struct RuntimeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline void check(ei_status st, const std::string& what) {
    if (st != EI_OK) {
        const char* msg = ei_last_error();
        throw RuntimeError(what + ": " + (msg && *msg ? msg : "(no message)") + " [" + ei_status_name(st) + "]");
    }
}

// "-x VALUE" options and "--flag" switches; a repeated option keeps every value in order.
class Args {
public:
    Args(int argc, char** argv, std::vector<std::string> valued, std::vector<std::string> flags)
        : valued_(std::move(valued)), flags_(std::move(flags)) {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "-h" || a == "--help") {
                help_ = true;
            } else if (is(flags_, a)) {
                seen_.push_back({a, ""});
            } else if (is(valued_, a)) {
                // The value is taken as is, so a prompt may begin with '-'.
                if (i + 1 >= argc) throw UsageError("option " + a + " needs a value");
                seen_.push_back({a, argv[++i]});
            } else {
                throw UsageError("unknown " + std::string(a.size() > 1 && a[0] == '-' ? "option" : "argument") +
                                 " '" + a + "'");
            }
        }
    }

    bool help() const { return help_; }
    bool flag(const std::string& name) const { return last(name) != nullptr; }

    std::string str(const std::string& name, const std::string& def) const {
        const std::string* v = last(name);
        return v ? *v : def;
    }
    std::string required(const std::string& name) const {
        const std::string* v = last(name);
        if (!v) throw UsageError("option " + name + " is required");
        return *v;
    }
    std::vector<std::string> all(const std::string& name) const {
        std::vector<std::string> out;
        for (const auto& [k, v] : seen_)
            if (k == name) out.push_back(v);
        return out;
    }

    long long integer(const std::string& name, long long def, long long lo, long long hi) const {
        const std::string* v = last(name);
        if (!v) return def;
        errno = 0;
        char* end = nullptr;
        const long long x = std::strtoll(v->c_str(), &end, 10);
        if (v->empty() || *end != '\0' || errno == ERANGE) throw UsageError(name + " expects an integer, got '" + *v + "'");
        if (x < lo || x > hi) {
            throw UsageError(name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + *v);
        }
        return x;
    }
    uint64_t u64(const std::string& name, uint64_t def) const {
        const std::string* v = last(name);
        if (!v) return def;
        errno = 0;
        char* end = nullptr;
        const unsigned long long x = std::strtoull(v->c_str(), &end, 0);
        if (v->empty() || (*v)[0] == '-' || *end != '\0' || errno == ERANGE) {
            throw UsageError(name + " expects a non-negative integer, got '" + *v + "'");
        }
        return x;
    }
    double real(const std::string& name, double def, double lo, double hi) const {
        const std::string* v = last(name);
        if (!v) return def;
        errno = 0;
        char* end = nullptr;
        const double x = std::strtod(v->c_str(), &end);
        // !(x >= lo) also rejects NaN.
        if (v->empty() || *end != '\0' || errno == ERANGE) throw UsageError(name + " expects a number, got '" + *v + "'");
        if (!(x >= lo && x <= hi)) {
            throw UsageError(name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + *v);
        }
        return x;
    }

private:
    static bool is(const std::vector<std::string>& list, const std::string& a) {
        return std::find(list.begin(), list.end(), a) != list.end();
    }
    const std::string* last(const std::string& name) const {
        for (auto it = seen_.rbegin(); it != seen_.rend(); ++it)
            if (it->first == name) return &it->second;
        return nullptr;
    }

    std::vector<std::string> valued_, flags_;
    std::vector<std::pair<std::string, std::string>> seen_;
    bool help_ = false;
};

// Scenario options shared by the tools, spelled as in `ei run`/`ei bench` (Java).
inline const std::vector<std::string> kScenarioOptions = {"-t",       "-L",     "--ctx",         "--sink", "--window",
                                                          "--memory", "--rule", "--memory-keys", "--kv",   "--scenario"};
inline const char* const kScenarioUsage =
    "scenario options (unset ones take the model's edgeinfinite.* metadata, else the defaults):\n"
    "  -t THREADS         threads (default 0: one per core)\n"
    "  -L N               segment length: tokens per prefill graph run (default 128)\n"
    "  --sink S           first tokens kept raw (default 64)\n"
    "  --window W         recent tokens kept raw, >= L (default 2048)\n"
    "  --memory on|off    fold older tokens into the compressed memory (default on)\n"
    "  --rule linear|delta      memory update rule (default linear)\n"
    "  --memory-keys nope|rope  memory keys before or after RoPE (default nope)\n"
    "  --kv f16|f32       KV cache precision (default f16)\n"
    "  --ctx N            plain full attention over at most N tokens (sink 0, window N, memory off)\n"
    "  --scenario NAME    a preset for L, S, W: summarize (256, 64, 1024), qa (128, 64, 2048), chat (64, 32, 4096)\n";

inline int32_t choice(const Args& a, const std::string& name, const std::vector<std::string>& values) {
    if (!a.flag(name)) return -1;
    const std::string v = a.str(name, "");
    for (size_t i = 0; i < values.size(); ++i)
        if (values[i] == v) return static_cast<int32_t>(i);
    std::string known;
    for (const auto& x : values) known += (known.empty() ? "" : ", ") + x;
    throw UsageError(name + " must be one of " + known + ", got '" + v + "'");
}

// A negative field leaves the choice to the model's metadata, else the runtime default.
inline ei_scenario scenario_from(const Args& a) {
    ei_scenario sc{};
    sc.struct_size = sizeof sc;
    // The presets of Java's Scenario; explicit -L, --sink, --window override them.
    int32_t preset[3] = {-1, -1, -1};
    if (a.flag("--scenario")) {
        const int32_t which = choice(a, "--scenario", {"summarize", "qa", "chat"});
        const int32_t table[3][3] = {{256, 64, 1024}, {128, 64, 2048}, {64, 32, 4096}};
        for (int i = 0; i < 3; ++i) preset[i] = table[which][i];
    }
    sc.n_batch = static_cast<int32_t>(a.integer("-L", preset[0], 1, 4096));
    sc.n_sink = static_cast<int32_t>(a.integer("--sink", preset[1], 0, 1 << 24));
    sc.n_window = static_cast<int32_t>(a.integer("--window", preset[2], 1, 1 << 24));
    sc.memory = choice(a, "--memory", {"off", "on"});
    sc.memory_rule = choice(a, "--rule", {"linear", "delta"});
    sc.memory_rope = choice(a, "--memory-keys", {"nope", "rope"});
    if (a.flag("--ctx")) {
        sc.n_sink = 0;
        sc.n_window = static_cast<int32_t>(a.integer("--ctx", 0, 1, 1 << 24));
        sc.memory = 0;
    }
    sc.n_threads = static_cast<int32_t>(a.integer("-t", 0, 0, 256));
    sc.kv_type = std::max(choice(a, "--kv", {"f16", "f32"}), 0);
    sc.device = "cpu";
    return sc;
}

// "L 128, S 64, W 2048, memory on, threads 2": what a plan resolved, for the logs.
inline std::string describe(const ei_scenario& r) {
    const int threads = r.n_threads > 0 ? r.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return "L " + std::to_string(r.n_batch) + ", S " + std::to_string(r.n_sink) + ", W " + std::to_string(r.n_window) +
           ", memory " + (r.memory ? "on" : "off") + ", threads " + std::to_string(threads);
}

// Model, pool and session, released in the right order (the session before its pool).
class Engine {
public:
    Engine() = default;
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    ~Engine() {
        ei_session_free(session_);
        std::free(pool_);
        ei_model_free(model_);
    }

    void load(const std::string& path) { check(ei_model_load(path.c_str(), &model_), "loading the model"); }

    int64_t param(const char* name) const {
        int64_t v = 0;
        check(ei_model_param(model_, name, &v), std::string("reading model parameter ") + name);
        return v;
    }

    // Plans the scenario and allocates its pool here: the runtime never owns pool memory.
    void start(const ei_scenario& sc) {
        ei_plan* plan = nullptr;
        check(ei_plan_create(model_, &sc, &plan), "planning the scenario");
        const uint64_t size = ei_plan_pool_size(plan);
        // aligned_alloc wants a power-of-two alignment and a size that is a multiple of it.
        uint64_t align = std::max<uint64_t>(ei_plan_pool_alignment(plan), alignof(std::max_align_t));
        const uint64_t rounded = (size + align - 1) / align * align;
        pool_ = std::aligned_alloc(align, rounded);
        if (!pool_) {
            ei_plan_free(plan);
            throw RuntimeError("cannot allocate a pool of " + std::to_string(rounded >> 20) + " MiB");
        }
        // Zeroed, as the Java binding's pool is, so runs are reproducible.
        std::memset(pool_, 0, rounded);
        pool_size_ = rounded;
        resolved_.struct_size = sizeof resolved_;
        ei_status st = ei_plan_scenario(plan, &resolved_);
        if (st == EI_OK) st = ei_session_create(model_, plan, pool_, rounded, &session_);
        ei_plan_free(plan);  // the session keeps its own copy
        check(st, "creating the session");
    }

    std::vector<int32_t> tokenize(const std::string& text, bool add_bos, bool parse_special) const {
        int32_t n = 0;
        check(ei_tokenize(model_, text.data(), text.size(), add_bos, parse_special, nullptr, 0, &n), "tokenizing");
        std::vector<int32_t> ids(static_cast<size_t>(n));
        if (n > 0) check(ei_tokenize(model_, text.data(), text.size(), add_bos, parse_special, ids.data(), n, &n),
                         "tokenizing");
        return ids;
    }

    ei_model* model() const { return model_; }
    ei_session* session() const { return session_; }
    uint64_t pool_size() const { return pool_size_; }
    const ei_scenario& scenario() const { return resolved_; }

private:
    ei_model* model_ = nullptr;
    ei_session* session_ = nullptr;
    void* pool_ = nullptr;
    uint64_t pool_size_ = 0;
    ei_scenario resolved_{};
};

// Runs a tool's body with the exit statuses both tools share: 0 ok, 1 runtime failure,
// 2 bad command line (with the usage text).
template <class F>
int run_tool(const char* tool, const char* usage, F&& body) {
    try {
        return body();
    } catch (const UsageError& e) {
        std::fprintf(stderr, "%s: %s\n\n%s", tool, e.what(), usage);
        return 2;
    } catch (const RuntimeError& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "\n%s: error: %s\n", tool, e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "\n%s: error: %s\n", tool, e.what());
        return 1;
    }
}

}  // namespace eitool
