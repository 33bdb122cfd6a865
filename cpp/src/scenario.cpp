#include "scenario.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <thread>

#include "error.h"
#include "gguf.h"

namespace ei {

void Scenario::validate() const {
    auto bad = [](const std::string& m) { fail(EI_ERR_INVALID_ARGUMENT, "scenario: " + m); };
    if (n_batch <= 0) bad("segment length L must be positive, got " + std::to_string(n_batch));
    if (n_batch > 4096) bad("segment length L = " + std::to_string(n_batch) + " exceeds 4096");
    if (n_sink < 0) bad("sink S must be >= 0, got " + std::to_string(n_sink));
    if (n_window < n_batch) {
        bad("window W = " + std::to_string(n_window) + " is smaller than a segment (L = " + std::to_string(n_batch) + ")");
    }
    if (int64_t{n_sink} + n_window + n_batch > (int64_t{1} << 24)) bad("S + W + L exceeds 16M tokens");
    if (n_threads < 0 || n_threads > 256) bad("threads must be 0 (auto) to 256, got " + std::to_string(n_threads));
    if (kv_type != KvType::F16 && kv_type != KvType::F32) bad("unknown KV type " + std::to_string(int(kv_type)));
    if (rule != MemoryRule::Linear && rule != MemoryRule::Delta) bad("unknown memory rule " + std::to_string(int(rule)));
}

int32_t Scenario::threads() const {
    if (n_threads > 0) return n_threads;
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : static_cast<int32_t>(hw);
}

namespace {
// A model's scenario default: validate() checks its meaning, this only that it fits.
int32_t model_setting(const GgufFile& f, const char* key, int32_t def) {
    const int64_t v = f.get_int(key, def);
    if (v < 0 || v > INT32_MAX) {
        fail(EI_ERR_FORMAT, f.path() + ": metadata '" + key + "' = " + std::to_string(v) + " is out of range");
    }
    return static_cast<int32_t>(v);
}
}  // namespace

uint32_t checked_struct_size(const void* s, uint32_t struct_size, size_t first, size_t known, const char* what) {
    // 4 KiB: far beyond any struct this ABI will grow to, short of a pointer or garbage.
    constexpr uint32_t kMaxStructSize = 4096;
    if (struct_size < first || struct_size > kMaxStructSize) {
        fail(EI_ERR_INVALID_ARGUMENT, std::string(what) + ".struct_size = " + std::to_string(struct_size) +
                                          " is not a size of that struct (at least " + std::to_string(first) +
                                          " bytes, its first version; at most " + std::to_string(kMaxStructSize) +
                                          "): set it to sizeof(" + what + ")");
    }
    // A newer header's struct: fields this library does not know must be left zero.
    const auto* bytes = static_cast<const unsigned char*>(s);
    for (size_t i = known; i < struct_size; ++i) {
        if (bytes[i] != 0) {
            fail(EI_ERR_INVALID_ARGUMENT, std::string(what) + " of " + std::to_string(struct_size) +
                                              " bytes sets fields this library (" + std::to_string(known) +
                                              " bytes) does not know (byte " + std::to_string(i) + " is not zero)");
        }
    }
    return std::min<uint32_t>(struct_size, static_cast<uint32_t>(known));
}

Scenario resolve_scenario(const ei_scenario* s, const GgufFile& f) {
    Scenario sc;
    // The model's own settings first (written by `ei gate-init`), then the caller's.
    sc.n_batch = model_setting(f, "edgeinfinite.segment_length", sc.n_batch);
    sc.n_sink = model_setting(f, "edgeinfinite.sink", sc.n_sink);
    sc.n_window = model_setting(f, "edgeinfinite.window", sc.n_window);
    std::string rule = f.get_string("edgeinfinite.memory.rule", "linear");
    if (rule == "delta") sc.rule = MemoryRule::Delta;
    else if (rule != "linear") fail(EI_ERR_FORMAT, f.path() + ": edgeinfinite.memory.rule '" + rule + "' is not linear or delta");
    sc.memory_rope = f.get_bool("edgeinfinite.memory.rope", false);
    if (!s) return sc;
    const uint32_t size = checked_struct_size(s, s->struct_size, EI_SCENARIO_SIZE_V1, sizeof(ei_scenario), "ei_scenario");
    auto has = [&](size_t offset, size_t bytes) { return offset + bytes <= size; };
    if (s->n_batch >= 0) sc.n_batch = s->n_batch;
    if (s->n_sink >= 0) sc.n_sink = s->n_sink;
    if (s->n_window >= 0) sc.n_window = s->n_window;
    if (s->memory >= 0) sc.memory = s->memory != 0;
    if (s->memory_rule >= 0) sc.rule = static_cast<MemoryRule>(s->memory_rule);
    if (s->memory_rope >= 0) sc.memory_rope = s->memory_rope != 0;
    sc.n_threads = s->n_threads;
    sc.kv_type = static_cast<KvType>(s->kv_type);
    if (s->device && *s->device) sc.device = s->device;
    if (s->gates_off != 0 && s->gates_off != 1) {
        fail(EI_ERR_INVALID_ARGUMENT, "scenario: gates_off must be 0 or 1, got " + std::to_string(s->gates_off));
    }
    sc.gates_off = s->gates_off == 1;
    if (s->sink_positions < 0 || s->sink_positions > 2) {
        fail(EI_ERR_INVALID_ARGUMENT, "scenario: sink_positions must be 0 (default), 1 (behind the window) or 2 "
                                      "(absolute), got " + std::to_string(s->sink_positions));
    }
    if (s->sink_positions != 0) sc.sinks_follow = s->sink_positions == 1;
    // Appended after the first version: read only when the caller's struct has them.
    if (has(offsetof(ei_scenario, cache_dir), sizeof(s->cache_dir)) && s->cache_dir) sc.cache_dir = s->cache_dir;
    return sc;
}

}  // namespace ei
