// A scenario fixes every shape before the first token (DESIGN §2): from it and a model,
// the planner derives the pool and the graphs. Nothing here depends on a prompt.
//
// KV layout it implies, per layer: S sink slots, then a ring of W + L window slots. A
// token at position p < S lives in sink slot p; later tokens in ring slot
// S + (p - S) mod (W + L). With memory on, when a new segment would overflow the ring, its
// oldest L tokens are folded into the compressed memory (M, z) first.
#pragma once
#include <cstdint>
#include <string>

#include "edgeinfinite/edgeinfinite.h"
#include "graph.h"

namespace ei {

class GgufFile;

enum class KvType : int32_t { F16 = 0, F32 = 1 };
enum class MemoryRule : int32_t { Linear = 0, Delta = 1 };

struct Scenario {
    int32_t n_batch = 128;   // L: query tokens per prefill graph run
    int32_t n_sink = 64;     // S: first tokens kept raw forever
    int32_t n_window = 2048; // W: most recent tokens kept raw (the ring has W + L slots)
    bool memory = true;      // off: plain full attention, at most S + W tokens
    MemoryRule rule = MemoryRule::Linear;
    bool memory_rope = false;  // memory keys/queries after RoPE (default: before, "NoPE")
    bool gates_off = false;    // ignore the model's gates: g = 0, the StreamingLLM baseline (evaluation)
    // Sink keys seen right behind the window (their RoPE positions move up L with each fold),
    // so their distance to a query stays within S + W + L at any length; false: at their
    // absolute positions, ever further from the queries.
    bool sinks_follow = kSinksFollowByDefault;
    static constexpr bool kSinksFollowByDefault = true;
    int32_t n_threads = 0;   // 0: one per available core
    KvType kv_type = KvType::F16;
    std::string device = "cpu";  // a registry name or alias (device_registry.h), checked at planning
    std::string cache_dir;       // compiled-program cache folder: OpenCL program binaries, QNN context binaries ("": the environment's)

    int32_t kv_slots() const { return n_sink + n_window + n_batch; }
    // Tokens that fit without folding anything: the full-attention route's limit.
    int64_t full_capacity() const { return int64_t{n_sink} + n_window; }
    int64_t slot_of(int64_t pos) const { return kv_slot(pos, n_sink, int64_t{n_window} + n_batch); }

    // Throws ei::Error(EI_ERR_INVALID_ARGUMENT) naming the bad setting.
    void validate() const;
    int32_t threads() const;
};

// The scenario a C caller asked for: negative fields take the model's edgeinfinite.* keys,
// else the built-in defaults above. NULL means all defaults.
Scenario resolve_scenario(const ei_scenario* s, const GgufFile& model);

// The bytes of a caller's extensible struct the library may read (edgeinfinite.h,
// "Extensible structs"): struct_size clamped to known, the size this library was built
// with. Throws EI_ERR_INVALID_ARGUMENT for a size below first (the struct's first version)
// or above 4 KiB, or a larger struct whose bytes past known are not all zero.
uint32_t checked_struct_size(const void* s, uint32_t struct_size, size_t first, size_t known, const char* what);

}  // namespace ei
