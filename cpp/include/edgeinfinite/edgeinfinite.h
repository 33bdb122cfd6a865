/*
 * EdgeInfinite C ABI: the only door into the native runtime.
 *
 * Rules every function follows:
 *  - handles are opaque; plain C types only; no C++ exception ever crosses this boundary;
 *  - functions that can fail return ei_status; on failure, ei_last_error() returns a
 *    message for the calling thread (valid until that thread's next failing call);
 *  - strings passed in are NUL-terminated UTF-8; strings returned are owned by the handle
 *    they came from and live as long as it;
 *  - memory for the buffer pool is owned by the caller (Java), never by the runtime.
 *
 * Threads:
 *  - functions without a handle, and ei_last_error, may be called from any thread;
 *  - a model (ei_model) may be shared: its const functions (tokenize, detokenize,
 *    chat formatting, parameters, plan creation, session creation) may run concurrently
 *    on any number of threads;
 *  - plans and sessions hold their model by reference count: ei_model_free may be called
 *    while plans or sessions made from it are open; the model's memory is released with
 *    the last of them. A handle must not be freed while another thread is inside a call
 *    on that same handle (the Java API guarantees this with its locks);
 *  - a session is used by one thread at a time; the one exception is ei_session_cancel,
 *    which may be called from any thread while another thread is inside a call on the
 *    session (but not concurrently with ei_session_free);
 *  - a plan is immutable once made and may be shared.
 */
#ifndef EDGEINFINITE_H
#define EDGEINFINITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EI_API __declspec(dllexport)
#else
#define EI_API __attribute__((visibility("default")))
#endif

/* 2: ei_scenario grew (gates_off, sink_positions): callers built against 1 pass a smaller struct.
 * 3: structs callers fill carry their size (see "Extensible structs"); ei_scenario's backend
 *    became device (a registry name) and gained cache_dir; the device registry and the
 *    planner's CPU fallback report. */
#define EI_ABI_VERSION 3

/* Extensible structs: every struct a caller fills (ei_scenario, ei_sampling) starts with
 * uint32_t struct_size, which the caller sets to sizeof the struct of the header it was
 * built with. Fields are only ever appended: the library reads the fields that lie within
 * struct_size and gives the ones past it their default, so a caller built against an older
 * header keeps working. A size below the struct's first version (EI_*_SIZE_V1), or above
 * 4096 bytes, is refused with EI_ERR_INVALID_ARGUMENT; a size above what this library knows
 * (a newer header) is accepted when every byte it does not know is zero. A struct the
 * library fills for the caller (ei_plan_scenario) follows the same rule: it writes only the
 * fields within struct_size. */

typedef enum ei_status {
    EI_OK = 0,
    EI_ERR_INVALID_ARGUMENT = 1, /* a null handle, a bad size, an id out of range */
    EI_ERR_IO = 2,               /* a file could not be opened, mapped or written */
    EI_ERR_FORMAT = 3,           /* a malformed or truncated file */
    EI_ERR_UNSUPPORTED = 4,      /* an unknown architecture, tensor type, template... */
    EI_ERR_OUT_OF_MEMORY = 5,
    EI_ERR_POOL = 6,             /* a pool too small, misaligned or already released */
    EI_ERR_STATE = 7,            /* a call that the handle's state does not allow */
    EI_ERR_CANCELLED = 8,
    EI_ERR_INTERNAL = 9
} ei_status;

/* Message of the calling thread's last failure ("" if none). */
EI_API const char* ei_last_error(void);
EI_API const char* ei_status_name(ei_status status);
EI_API const char* ei_version(void);
EI_API int32_t ei_abi_version(void);
/* Space-separated CPU features the runtime detected and uses, e.g. "avx2 fma f16c". */
EI_API const char* ei_cpu_features(void);

/* ------------------------------------------------------------------ GGUF inspection */

typedef struct ei_gguf ei_gguf;
typedef struct ei_value ei_value; /* a metadata value; owned by its ei_gguf */

/* GGUF metadata value types, numbered as in the GGUF specification. */
typedef enum ei_value_type {
    EI_VALUE_UINT8 = 0, EI_VALUE_INT8 = 1, EI_VALUE_UINT16 = 2, EI_VALUE_INT16 = 3,
    EI_VALUE_UINT32 = 4, EI_VALUE_INT32 = 5, EI_VALUE_FLOAT32 = 6, EI_VALUE_BOOL = 7,
    EI_VALUE_STRING = 8, EI_VALUE_ARRAY = 9, EI_VALUE_UINT64 = 10, EI_VALUE_INT64 = 11,
    EI_VALUE_FLOAT64 = 12
} ei_value_type;

EI_API ei_status ei_gguf_open(const char* path, ei_gguf** out);
EI_API void ei_gguf_close(ei_gguf* gguf);
EI_API uint32_t ei_gguf_version(const ei_gguf* gguf);
EI_API uint64_t ei_gguf_file_size(const ei_gguf* gguf);
EI_API uint64_t ei_gguf_alignment(const ei_gguf* gguf);
EI_API uint64_t ei_gguf_data_offset(const ei_gguf* gguf);

EI_API int64_t ei_gguf_kv_count(const ei_gguf* gguf);
EI_API ei_status ei_gguf_kv(const ei_gguf* gguf, int64_t index, const char** key, const ei_value** value);
/* Value accessors. Scalars: int64/uint64/double/string of the value itself.
 * Arrays: element type, length, and element getters; an array element that is itself an
 * array is reached with ei_value_array_at. Conversions between numeric kinds are allowed;
 * asking a string for a number, or reading past the end, is EI_ERR_INVALID_ARGUMENT. */
EI_API ei_value_type ei_value_get_type(const ei_value* v);
EI_API ei_status ei_value_int(const ei_value* v, int64_t* out);
EI_API ei_status ei_value_uint(const ei_value* v, uint64_t* out);
EI_API ei_status ei_value_float(const ei_value* v, double* out);
EI_API ei_status ei_value_string(const ei_value* v, const char** data, uint64_t* len);
EI_API ei_value_type ei_value_array_type(const ei_value* v);
EI_API int64_t ei_value_array_len(const ei_value* v);
EI_API ei_status ei_value_array_int(const ei_value* v, int64_t i, int64_t* out);
EI_API ei_status ei_value_array_uint(const ei_value* v, int64_t i, uint64_t* out);
EI_API ei_status ei_value_array_float(const ei_value* v, int64_t i, double* out);
EI_API ei_status ei_value_array_string(const ei_value* v, int64_t i, const char** data, uint64_t* len);
EI_API ei_status ei_value_array_at(const ei_value* v, int64_t i, const ei_value** out);

EI_API int64_t ei_gguf_tensor_count(const ei_gguf* gguf);
/* dims: up to 4, innermost (contiguous) first, as GGUF stores them. */
EI_API ei_status ei_gguf_tensor(const ei_gguf* gguf, int64_t index, const char** name, int32_t* type,
                                int32_t* n_dims, int64_t dims[4], uint64_t* offset, uint64_t* n_bytes);
/* Name of a ggml tensor type ("q4_K", "f16"...), or NULL if unknown. */
EI_API const char* ei_tensor_type_name(int32_t type);

/* ------------------------------------------------------------------ models, plans, sessions */

typedef struct ei_model ei_model;
typedef struct ei_plan ei_plan;
typedef struct ei_session ei_session;

/* A scenario: every shape fixed before the first token. A negative field takes the
 * model's edgeinfinite.* metadata, else the built-in default; a NULL scenario means all
 * defaults. Every field is validated when a plan is made. Fields after `device` mean
 * their default at zero (NULL), so a zero-initialised scenario is the default one. */
typedef struct ei_scenario {
    uint32_t struct_size; /* sizeof(ei_scenario) of the caller's header (see "Extensible structs") */
    int32_t n_batch;     /* L: tokens per prefill graph run (default 128) */
    int32_t n_sink;      /* S: first tokens kept raw (default 64) */
    int32_t n_window;    /* W: recent tokens kept raw, >= L (default 2048) */
    int32_t memory;      /* 1: fold older tokens into memory (default); 0: full attention up to S + W tokens */
    int32_t memory_rule; /* 0: linear (default), 1: delta */
    int32_t memory_rope; /* 0: memory keys before RoPE (default), 1: after */
    int32_t n_threads;   /* 0: one per core */
    int32_t kv_type;     /* 0: f16, 1: f32 */
    /* A device of the registry (ei_device_count): NULL or "cpu" (default); "opencl:N", or
     * "opencl" for the default OpenCL device, where built (EI_ERR_UNSUPPORTED naming the
     * present devices for a name that is not there). Ops the device cannot run are placed
     * on the CPU when the plan is made: ei_plan_fallback_count. */
    const char* device;
    /* Added for evaluation (zero, the default, keeps the behaviour callers had before). */
    int32_t gates_off;   /* 0: the model's memory gates (default); 1: ignore them, g = 0 (sinks + window only) */
    /* Where attention sees the sink keys once tokens have folded: 0 default (1); 1 right
     * behind the window (their RoPE positions move up with each fold, so no query is ever
     * farther from a sink than S + W + L); 2 at their absolute positions. */
    int32_t sink_positions;
    /* ---- the first version ends here (EI_SCENARIO_SIZE_V1); appended since: */
    /* The compiled-program cache folder: OpenCL program binaries (used when the device's
     * program is first built in the process; NULL takes $EI_OPENCL_CACHE_DIR) and the htp
     * device's QNN context binaries (NULL takes $EI_QNN_CACHE_DIR); else the user cache
     * folder; "off": no disk cache. */
    const char* cache_dir;
} ei_scenario;
#define EI_SCENARIO_SIZE_V1 (offsetof(ei_scenario, sink_positions) + sizeof(int32_t))

EI_API ei_status ei_model_load(const char* path, ei_model** out);
/* Loads only the tokenizer (and chat template) of a GGUF, e.g. a vocabulary-only file;
 * such a model can tokenize but cannot be planned or run. */
EI_API ei_status ei_model_load_vocab(const char* path, ei_model** out);
EI_API void ei_model_free(ei_model* model);
/* Hyper-parameters by name: "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff",
 * "head_dim", "n_ctx_train", "bos", "eos". */
EI_API ei_status ei_model_param(const ei_model* model, const char* name, int64_t* out);

/* Plans the pool and graphs of a (model, scenario). Pool size never depends on a prompt. */
EI_API ei_status ei_plan_create(const ei_model* model, const ei_scenario* scenario, ei_plan** out);
EI_API void ei_plan_free(ei_plan* plan);
EI_API uint64_t ei_plan_pool_size(const ei_plan* plan);
EI_API uint64_t ei_plan_pool_alignment(const ei_plan* plan);
EI_API int32_t ei_plan_region_count(const ei_plan* plan);
EI_API ei_status ei_plan_region(const ei_plan* plan, int32_t index, const char** name, uint64_t* offset,
                                uint64_t* size);

/* A session runs the plan's graphs in a pool the caller allocated. The pool must be at
 * least ei_plan_pool_size bytes, aligned to ei_plan_pool_alignment, and stay valid until
 * ei_session_free. The session copies the plan; the plan may be freed after this call. */
EI_API ei_status ei_session_create(const ei_model* model, const ei_plan* plan, void* pool, uint64_t pool_size,
                                   ei_session** out);
EI_API void ei_session_free(ei_session* session);
/* The scenario a plan resolved (model defaults applied), within out->struct_size, which the
 * caller sets; device is the resolved device's name (e.g. "opencl:0" for "opencl"; owned by
 * the library, valid for the process), cache_dir is set to NULL. */
EI_API ei_status ei_plan_scenario(const ei_plan* plan, ei_scenario* out);

/* Tokens held so far (the next token's position). */
EI_API int64_t ei_session_n_past(const ei_session* session);
/* 0: full attention (nothing folded nor planned to be), 1: the memory route. */
EI_API int32_t ei_session_route(const ei_session* session);
/* Declares how many tokens the work ahead adds, so the session picks its route up front. */
EI_API ei_status ei_session_plan_route(ei_session* session, int64_t upcoming);
/* Where the past tokens live; sink + window + memory == n_past. */
EI_API ei_status ei_session_placement(const ei_session* session, int64_t* sink, int64_t* window, int64_t* memory);
/* Session state: a fixed-size file (versioned header, sink and window KV, memory,
 * positions, checksum). Loading treats the file as untrusted: it checks every header
 * field (model, scenario, sizes, positions against the window ring) and the checksum
 * before it reads the payload into the session; a refused file (EI_ERR_FORMAT) leaves
 * the session unchanged. */
EI_API uint64_t ei_session_state_size(const ei_session* session);
EI_API ei_status ei_session_save(const ei_session* session, const char* path);
EI_API ei_status ei_session_load(ei_session* session, const char* path);
EI_API ei_status ei_session_reset(ei_session* session);
/* Evaluates n tokens at the current position. logits_out: NULL, or room for n x n_vocab
 * floats receiving the logits of every position (row-major). */
EI_API ei_status ei_session_eval(ei_session* session, const int32_t* tokens, int32_t n, float* logits_out);
/* Requests (cancel != 0) or withdraws (0) a cancel. While requested, ei_session_eval and
 * ei_generate_begin / ei_generate_next stop before their next segment of L tokens with
 * EI_ERR_CANCELLED; the segments already run stay in the session (ei_session_n_past).
 * The request stays until withdrawn. Thread-safe: see "Threads" above. */
EI_API ei_status ei_session_cancel(ei_session* session, int32_t cancel);
/* Copies the last evaluated position's logits (n_vocab floats). */
EI_API ei_status ei_session_last_logits(const ei_session* session, float* out, int32_t n_vocab);

/* ------------------------------------------------------------------ tokens and text */

/* Tokenizes len bytes of text. Writes up to capacity ids; *n_out receives the full count
 * (call again with a larger buffer when it exceeds capacity). */
EI_API ei_status ei_tokenize(const ei_model* model, const char* text, uint64_t len, int32_t add_bos,
                             int32_t parse_special, int32_t* out, int32_t capacity, int32_t* n_out);
/* As ei_tokenize (without BOS), for text that continues a sequence whose last token is prev
 * (prev < 0: the text starts the sequence). SentencePiece vocabularies put a space before raw
 * text only at the start and after special tokens, and a special token with rstrip eats the
 * spaces after it: this call applies both as if prev's text came just before, so a sequence
 * built piece by piece (a conversation's turns) holds the tokens of its whole text wherever
 * the pieces meet at a special token. */
EI_API ei_status ei_tokenize_after(const ei_model* model, int32_t prev, const char* text, uint64_t len,
                                   int32_t parse_special, int32_t* out, int32_t capacity, int32_t* n_out);
/* The bytes one token stands for (possibly part of a UTF-8 character); special != 0 renders
 * control tokens as their text ("<|im_end|>") instead of nothing. Writes up to capacity
 * bytes; *len_out receives the full size. */
EI_API ei_status ei_token_piece(const ei_model* model, int32_t token, int32_t special, char* out, uint64_t capacity,
                                uint64_t* len_out);
/* Decodes ids to UTF-8 bytes. Writes up to capacity bytes; *len_out receives the full size. */
EI_API ei_status ei_detokenize(const ei_model* model, const int32_t* ids, int32_t n, char* out, uint64_t capacity,
                               uint64_t* len_out);
/* Chat: formats messages with the model's built-in template (or the named one: "chatml",
 * "llama3", "llama2"); roles and contents are parallel arrays of n strings. */
EI_API ei_status ei_chat_format(const ei_model* model, const char* format_name, const char* const* roles,
                                const char* const* contents, int32_t n, int32_t add_generation_prompt, char* out,
                                uint64_t capacity, uint64_t* len_out);
/* Name of the model's chat format ("chatml", "llama3", "llama2"), or "" when its template
 * is absent or not recognised. */
EI_API const char* ei_model_chat_format(const ei_model* model);
/* The built-in chat format a Jinja chat template is recognised as, or "" if none. */
EI_API const char* ei_chat_detect(const char* jinja_template);
/* Stop string number index of a chat format (where the assistant's turn ends), or NULL
 * past the last one or for an unknown format. */
EI_API const char* ei_chat_stop_string(const char* format_name, int32_t index);

/* ------------------------------------------------------------------ generation */

typedef struct ei_sampling {
    uint32_t struct_size;   /* sizeof(ei_sampling) of the caller's header (see "Extensible structs") */
    int32_t greedy;         /* non-zero: argmax */
    float temperature;      /* 0: argmax */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* 1: off */
    float min_p;            /* 0: off */
    float repeat_penalty;   /* 1: off */
    int32_t repeat_last_n;
    uint64_t seed;
    int32_t max_tokens;
} ei_sampling;
#define EI_SAMPLING_SIZE_V1 (offsetof(ei_sampling, max_tokens) + sizeof(int32_t))

typedef enum ei_stop_reason {
    EI_STOP_NONE = 0, EI_STOP_EOS = 1, EI_STOP_STRING = 2, EI_STOP_MAX_TOKENS = 3, EI_STOP_CONTEXT_FULL = 4
} ei_stop_reason;

/* Feeds the prompt and arms the sampler. The first n_evaluated prompt tokens were already
 * fed with ei_session_eval (e.g. in chunks, to report progress): they only seed the
 * repetition history. n may be 0 to continue after earlier tokens. */
EI_API ei_status ei_generate_begin(ei_session* session, const int32_t* prompt, int32_t n, int32_t n_evaluated,
                                   const ei_sampling* sampling, const char* const* stop_strings, int32_t n_stops);
/* One step: *piece and *len receive whole UTF-8 characters (possibly none), owned by the
 * session until the next call; *token the sampled id (-1 at the end); *done the reason
 * generation ended (EI_STOP_NONE while it goes on). Stopping early is just not calling again. */
EI_API ei_status ei_generate_next(ei_session* session, const char** piece, uint64_t* len, int32_t* token,
                                  int32_t* done);

/* ------------------------------------------------------------------ quantization (ei quantize) */

/* Bytes of one row of n_cols elements of a ggml tensor type; 0 when the type is unknown or
 * n_cols is not a multiple of its block size. */
EI_API uint64_t ei_tensor_row_size(int32_t type, int64_t n_cols);
/* Converts rows x cols values of src_type (F32, F16, BF16, or any type the CPU backend reads,
 * to requantize) into dst_type (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K), rows spread
 * over n_threads (<= 0: one per core). src_size and dst_size must be exactly rows times the
 * types' row sizes. importance: NULL (minimize the plain squared error; Q8_0, Q4_0 and Q5_0
 * then round exactly as ggml's reference code) or cols finite non-negative per-column weights
 * (minimize sum_j importance_j (x_j - x^_j)^2, searching block scales and mins). */
EI_API ei_status ei_quantize_rows(int32_t dst_type, int32_t src_type, const void* src, uint64_t src_size, int64_t rows,
                                  int64_t cols, const float* importance, int32_t n_threads, void* dst,
                                  uint64_t dst_size);

/* ------------------------------------------------------------------ importance matrix (ei imatrix) */

/* Starts (or restarts from zero) collecting activation statistics on the session: from now
 * on every evaluation adds, for every weight matrix of the transformer blocks (and the output
 * head when include_output != 0), the squares of the activations it multiplies, per input
 * column, over the valid rows (padding excluded; the output head sees every row only when
 * all logits are requested, else the last one). The collector belongs to the session. */
EI_API ei_status ei_session_imatrix_start(ei_session* session, int32_t include_output);
/* Matrices watched (0 when no collection was started). */
EI_API int32_t ei_session_imatrix_count(const ei_session* session);
/* Matrix index: *name its GGUF name (owned by the session until the next start/stop),
 * *n_cols its input width, *rows the activation rows summed; sums, when not NULL, receives
 * the n_cols sums of x_j^2 (capacity floats available; EI_ERR_INVALID_ARGUMENT if fewer). */
EI_API ei_status ei_session_imatrix_entry(const ei_session* session, int32_t index, const char** name,
                                          int64_t* n_cols, int64_t* rows, float* sums, int64_t capacity);
/* Stops collecting and drops the statistics. */
EI_API ei_status ei_session_imatrix_stop(ei_session* session);

/* ------------------------------------------------------------------ activation ranges (ei calibrate) */

/* Starts (or restarts) recording activation ranges on the session: for every op output
 * a quantized backend needs a scale for (named after the model: "blk.0.attn_norm",
 * "blk.0.attn_q", "blk.0.attn" ...), the exact min and max over valid rows and a log-scale
 * histogram of |x|. A session watches with one collector at a time: this stops an
 * importance matrix being collected, and ei_session_imatrix_start stops this. */
EI_API ei_status ei_session_ranges_start(ei_session* session);
EI_API int32_t ei_session_ranges_count(const ei_session* session);
/* Site index: *name (owned by the session until the next start/stop), *min, *max, *count
 * values seen; abs_quantiles[k] receives the quantile quantiles[k] (in [0, 1]) of |x|, read
 * as the upper edge of its histogram bin (at most 2.2% above the exact value, never above
 * max |x|), for k < n_quantiles. */
EI_API ei_status ei_session_ranges_entry(const ei_session* session, int32_t index, const char** name, double* min,
                                         double* max, uint64_t* count, const double* quantiles,
                                         double* abs_quantiles, int32_t n_quantiles);
EI_API ei_status ei_session_ranges_stop(ei_session* session);

/* ------------------------------------------------------------------ gate fitting (ei fit-gates) */

/* Fits the memory gates for the route a plan describes (its model, S, W, L, memory rule and
 * keys, KV type, threads) by layer-wise distillation (DESIGN section 6): each calibration
 * sequence runs with full attention (the teacher), and at every layer, query head and
 * position whose early context the route would have folded, the route's A_local and A_mem
 * (computed from the teacher's Q/K/V with the route's segments and folds) are blended to
 * match the teacher's output. Runs the teacher once (gate 1: scalar, closed form) or
 * steps + 2 times (gate 2: adaptive, damped Gauss-Newton steps from the scalar fit; ridge >= 0
 * penalises the per-token part of its logit, see cpp/src/gate_fit.h).
 * tokens: n_seqs sequences back to back, lengths[i] tokens each, each longer than S + W.
 * weights: NULL (all 1) or one finite weight >= 0 per token, for the blend at that position.
 * Outputs, [n_layer][n_head] unless said: gate_w: scalar: beta (g = sigmoid(beta));
 * adaptive: [n_layer][n_head][2 * head_dim] (A_mem weights, then A_local's); gate_b: the
 * adaptive bias (zeros for scalar); report: 4 doubles per head: weighted squared error at
 * g = 0, with the fitted gate, sum of w |A_full|^2, and the weight of the scored positions. */
EI_API ei_status ei_fit_gates(const ei_plan* plan, int32_t gate, int32_t steps, double ridge, const int32_t* tokens,
                              const float* weights, const int64_t* lengths, int32_t n_seqs, float* gate_w,
                              float* gate_b, double* report);

/* ------------------------------------------------------------------ devices (ei devices) */

/* The device registry: "cpu" always (index 0), then one "opencl:N" per OpenCL device when an
 * OpenCL platform loads (listed once per process, on first use). */
EI_API int32_t ei_device_count(void);
/* Device index: strings are owned by the library and live as long as the process. *kind:
 * "cpu", "gpu", "accelerator" or "other"; *description: the device's own name; *features:
 * space-separated capabilities ("avx2 fma ..." for the CPU; "fp16 subgroups unified_memory
 * qcom opencl_c=1.2" as present for OpenCL); *memory and *max_alloc in bytes (0: unknown);
 * *compute_units: cores or compute units. Any output may be NULL. */
EI_API ei_status ei_device_get(int32_t index, const char** name, const char** kind, const char** description,
                               const char** vendor, const char** driver, const char** features, uint64_t* memory,
                               uint64_t* max_alloc, int32_t* compute_units);

/* The device a plan runs on ("cpu", "opencl:0"...), owned by the plan. */
EI_API const char* ei_plan_device(const ei_plan* plan);
/* Ops of the plan's graphs that its device cannot run, placed on the CPU at planning. */
EI_API int32_t ei_plan_fallback_count(const ei_plan* plan);
/* Fallback index: *graph "prefill", "decode" or "fold"; *op_index the op's position in its
 * graph; *op its kind ("mat_mul"...); *layer its layer (-1: none); *reason why the device
 * cannot run it. Strings are owned by the plan. Any output may be NULL. */
EI_API ei_status ei_plan_fallback(const ei_plan* plan, int32_t index, const char** graph, int32_t* op_index,
                                  const char** op, int32_t* layer, const char** reason);
/* Ops per graph: *total of the graph, *on_cpu placed on the CPU by fallback. */
EI_API ei_status ei_plan_graph_ops(const ei_plan* plan, const char* graph, int32_t* total, int32_t* on_cpu);

/* ------------------------------------------------------------------ graph tables (issue 14) */

/* The planned graph named graph ("prefill", "decode" or "fold") as text: its tensor table
 * (id, name, role, type, shape, pool offset and bytes, block quantization) and its ops with
 * the tensors each reads, writes and updates in place. Writes up to capacity bytes;
 * *len_out receives the full size (call again with a larger buffer when it exceeds capacity). */
EI_API ei_status ei_plan_describe_graph(const ei_plan* plan, const char* graph, char* out, uint64_t capacity,
                                        uint64_t* len_out);

/* ------------------------------------------------------------------ NPU preparation (ei npu-prepare) */

/* Chooses the NPU quantization of the plan's model and stores it in out_dir (issue 15;
 * backends/htp/npu_prepare.h): the plan's float graphs, lowered to QNN operations, run on the
 * htp-emulator over the n_tokens calibration tokens (prefill, decode and the folds the plan's
 * scenario makes) while every tensor's range is recorded; weight_bits 8 (16a8w) or 4 (16a4w:
 * int4 in blocks of block (32 or 64) along the input, the keep_8bit share (0..1) of the most
 * sensitive layers kept int8, measured on recorded prefill inputs). Writes
 * out_dir/htp-<fingerprint>.params (read by every htp-emulator session whose scenario's
 * cache_dir is out_dir), out_dir/report.txt (the summary first, then per tensor encoding,
 * SQNR against float and bytes, per layer sensitivity) and the quantized graphs
 * out_dir/prefill.txt, decode.txt, fold.txt. EI_ERR_UNSUPPORTED where the runtime was built
 * without the htp backend; EI_ERR_INVALID_ARGUMENT for a text too short to run every graph. */
EI_API ei_status ei_npu_prepare(const ei_plan* plan, const int32_t* tokens, int64_t n_tokens, const char* out_dir,
                                int32_t weight_bits, int32_t block, double keep_8bit);

#ifdef __cplusplus
}
#endif

#endif /* EDGEINFINITE_H */
