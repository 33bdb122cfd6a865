// C ABI: models, plans, sessions, tokens and generation.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <set>

#include "capi_common.h"
#include "chat_template.h"
#include "activation_ranges.h"
#include "imatrix.h"
#include "gate_fit.h"
#include "model.h"
#include "plan.h"
#include "session.h"
#include "tokenizer.h"
#if defined(EI_BACKEND_HTP)
#include "htp/npu_prepare.h"
#endif

// Plans and sessions hold the model by reference count: freeing a model handle while
// plans or sessions made from it are open is safe, the weights stay mapped until the
// last of them is freed.
struct ei_model {
    std::shared_ptr<const ei::Model> model;
    std::string chat_format;  // "" when none is recognised
};
struct ei_plan {
    ei::Plan plan;
};
struct ei_session {
    std::unique_ptr<ei::Session> session;
    std::unique_ptr<ei::ImatrixCollector> imatrix;  // while ei imatrix collects (declared after: freed first)
    std::unique_ptr<ei::RangeCollector> ranges;     // while ei calibrate records ranges
};

using ei::capi::guard;
using ei::capi::require;

namespace {

// Copies bytes into a caller buffer of capacity; reports the full size.
void copy_out(const std::string& s, char* out, uint64_t capacity, uint64_t* len_out) {
    *require(len_out, "len_out") = s.size();
    if (out && capacity > 0) std::memcpy(out, s.data(), std::min<uint64_t>(capacity, s.size()));
}

// Copies token ids into a caller buffer of capacity; reports the full count.
void copy_ids(const std::vector<int32_t>& ids, int32_t* out, int32_t capacity, int32_t* n_out) {
    *require(n_out, "n_out") = static_cast<int32_t>(ids.size());
    if (out && capacity > 0) {
        std::memcpy(out, ids.data(), sizeof(int32_t) * std::min<size_t>(ids.size(), static_cast<size_t>(capacity)));
    }
}

// A device name with the process's lifetime: the resolved scenario outlives its plan.
const char* interned(const std::string& s) {
    static std::mutex mu;
    static std::set<std::string> names;
    std::lock_guard<std::mutex> lock(mu);
    return names.insert(s).first->c_str();
}

const ei::Model& model_of(const ei_model* m) { return *require(m, "model")->model; }

ei_model* wrap_model(std::shared_ptr<const ei::Model> model) {
    auto m = std::make_unique<ei_model>();
    m->model = std::move(model);
    if (auto f = ei::detect_chat_format(m->model->gguf().get_string("tokenizer.chat_template"))) {
        m->chat_format = ei::chat_format_name(*f);
    }
    return m.release();
}

}  // namespace

extern "C" {

ei_status ei_model_load(const char* path, ei_model** out) {
    return guard([&] { *require(out, "out") = wrap_model(ei::Model::load(require(path, "path"))); });
}

ei_status ei_model_load_vocab(const char* path, ei_model** out) {
    return guard([&] { *require(out, "out") = wrap_model(ei::Model::load_vocab(require(path, "path"))); });
}

void ei_model_free(ei_model* model) { delete model; }

ei_status ei_model_param(const ei_model* model, const char* name, int64_t* out) {
    return guard([&] {
        const ei::HParams& hp = model_of(model).hparams();
        const ei::Tokenizer& tk = model->model->tokenizer();
        std::string n = require(name, "name");
        int64_t v;
        if (n == "n_vocab") v = hp.n_vocab;
        else if (n == "n_embd") v = hp.n_embd;
        else if (n == "n_layer") v = hp.n_layer;
        else if (n == "n_head") v = hp.n_head;
        else if (n == "n_head_kv") v = hp.n_head_kv;
        else if (n == "n_ff") v = hp.n_ff;
        else if (n == "head_dim") v = hp.head_dim;
        else if (n == "n_ctx_train") v = hp.n_ctx_train;
        else if (n == "bos") v = tk.bos();
        else if (n == "eos") v = tk.eos();
        else if (n == "add_bos") v = tk.add_bos() ? 1 : 0;
        else ei::fail(EI_ERR_INVALID_ARGUMENT, "unknown model parameter '" + n + "'");
        *require(out, "out") = v;
    });
}

ei_status ei_plan_create(const ei_model* model, const ei_scenario* scenario, ei_plan** out) {
    return guard([&] {
        *require(out, "out") = nullptr;
        auto p = std::make_unique<ei_plan>();
        const ei::Model& m = model_of(model);
        p->plan = ei::make_plan(model->model, ei::resolve_scenario(scenario, m.gguf()));
        *out = p.release();
    });
}

void ei_plan_free(ei_plan* plan) { delete plan; }
uint64_t ei_plan_pool_size(const ei_plan* p) { return p ? p->plan.pool.size : 0; }
uint64_t ei_plan_pool_alignment(const ei_plan* p) { return p ? p->plan.pool.alignment : 0; }
int32_t ei_plan_region_count(const ei_plan* p) { return p ? static_cast<int32_t>(p->plan.pool.regions.size()) : 0; }

ei_status ei_plan_region(const ei_plan* p, int32_t index, const char** name, uint64_t* offset, uint64_t* size) {
    return guard([&] {
        const auto& regions = require(p, "plan")->plan.pool.regions;
        if (index < 0 || index >= static_cast<int32_t>(regions.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "region index " + std::to_string(index) + " out of range");
        }
        if (name) *name = regions[index].name.c_str();
        if (offset) *offset = regions[index].offset;
        if (size) *size = regions[index].size;
    });
}

ei_status ei_session_create(const ei_model* model, const ei_plan* plan, void* pool, uint64_t pool_size,
                            ei_session** out) {
    return guard([&] {
        *require(out, "out") = nullptr;
        const ei::Plan& pl = require(plan, "plan")->plan;
        if (pl.model.get() != &model_of(model)) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "the plan was made for another model");
        }
        auto s = std::make_unique<ei_session>();
        s->session = std::make_unique<ei::Session>(pl, static_cast<uint8_t*>(pool), pool_size);
        *out = s.release();
    });
}

void ei_session_free(ei_session* session) { delete session; }

int64_t ei_session_n_past(const ei_session* s) { return s ? s->session->n_past() : 0; }

int32_t ei_session_route(const ei_session* s) { return s ? static_cast<int32_t>(s->session->route()) : 0; }

ei_status ei_session_plan_route(ei_session* s, int64_t upcoming) {
    return guard([&] {
        if (upcoming < 0) ei::fail(EI_ERR_INVALID_ARGUMENT, "upcoming token count must be >= 0");
        require(s, "session")->session->plan_route(upcoming);
    });
}

ei_status ei_session_placement(const ei_session* s, int64_t* sink, int64_t* window, int64_t* memory) {
    return guard([&] {
        ei::Session::Placement p = require(s, "session")->session->placement();
        *require(sink, "sink") = p.sink;
        *require(window, "window") = p.window;
        *require(memory, "memory") = p.memory;
    });
}

ei_status ei_plan_scenario(const ei_plan* p, ei_scenario* out) {
    return guard([&] {
        const ei::Plan& plan = require(p, "plan")->plan;
        const ei::Scenario& sc = plan.scenario;
        ei_scenario& o = *require(out, "out");
        const uint32_t size =
            ei::checked_struct_size(&o, o.struct_size, EI_SCENARIO_SIZE_V1, sizeof(ei_scenario), "ei_scenario");
        // Every field up to EI_SCENARIO_SIZE_V1 fits any accepted size; later ones are checked.
        o.n_batch = sc.n_batch;
        o.n_sink = sc.n_sink;
        o.n_window = sc.n_window;
        o.memory = sc.memory ? 1 : 0;
        o.memory_rule = static_cast<int32_t>(sc.rule);
        o.memory_rope = sc.memory_rope ? 1 : 0;
        o.n_threads = sc.threads();
        o.kv_type = static_cast<int32_t>(sc.kv_type);
        o.device = interned(plan.placement.device);
        o.gates_off = sc.gates_off ? 1 : 0;
        o.sink_positions = sc.sinks_follow ? 1 : 2;
        if (offsetof(ei_scenario, cache_dir) + sizeof(o.cache_dir) <= size) o.cache_dir = nullptr;
    });
}

uint64_t ei_session_state_size(const ei_session* s) { return s ? s->session->state_size() : 0; }

ei_status ei_session_save(const ei_session* s, const char* path) {
    return guard([&] { require(s, "session")->session->save_state(require(path, "path")); });
}

ei_status ei_session_load(ei_session* s, const char* path) {
    return guard([&] { require(s, "session")->session->load_state(require(path, "path")); });
}

ei_status ei_session_reset(ei_session* s) {
    return guard([&] { require(s, "session")->session->reset(); });
}

ei_status ei_session_eval(ei_session* s, const int32_t* tokens, int32_t n, float* logits_out) {
    return guard([&] { require(s, "session")->session->eval(tokens, n, logits_out); });
}

ei_status ei_session_cancel(ei_session* s, int32_t cancel) {
    return guard([&] { require(s, "session")->session->set_cancel(cancel != 0); });
}

ei_status ei_session_last_logits(const ei_session* s, float* out, int32_t n_vocab) {
    return guard([&] {
        const ei::Session& ss = *require(s, "session")->session;
        if (n_vocab != ss.n_vocab()) ei::fail(EI_ERR_INVALID_ARGUMENT, "n_vocab mismatch");
        const float* l = ss.last_logits();
        if (!l) ei::fail(EI_ERR_STATE, "nothing evaluated yet");
        std::memcpy(require(out, "out"), l, sizeof(float) * n_vocab);
    });
}

ei_status ei_tokenize(const ei_model* model, const char* text, uint64_t len, int32_t add_bos, int32_t parse_special,
                      int32_t* out, int32_t capacity, int32_t* n_out) {
    return guard([&] {
        if (!text && len > 0) ei::fail(EI_ERR_INVALID_ARGUMENT, "text is null");
        copy_ids(model_of(model).tokenizer().encode(std::string_view(text ? text : "", len), add_bos != 0,
                                                    parse_special != 0),
                 out, capacity, n_out);
    });
}

ei_status ei_tokenize_after(const ei_model* model, int32_t prev, const char* text, uint64_t len,
                            int32_t parse_special, int32_t* out, int32_t capacity, int32_t* n_out) {
    return guard([&] {
        if (!text && len > 0) ei::fail(EI_ERR_INVALID_ARGUMENT, "text is null");
        const ei::Tokenizer& tk = model_of(model).tokenizer();
        if (prev >= tk.n_vocab()) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "token id " + std::to_string(prev) + " is out of range [0, " +
                                                  std::to_string(tk.n_vocab()) + ")");
        }
        copy_ids(tk.encode_after(prev, std::string_view(text ? text : "", len), parse_special != 0), out, capacity,
                 n_out);
    });
}

ei_status ei_token_piece(const ei_model* model, int32_t token, int32_t special, char* out, uint64_t capacity,
                         uint64_t* len_out) {
    return guard([&] {
        const ei::Tokenizer& tk = model_of(model).tokenizer();
        if (token < 0 || token >= tk.n_vocab()) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "token id " + std::to_string(token) + " is out of range [0, " +
                                                  std::to_string(tk.n_vocab()) + ")");
        }
        copy_out(tk.token_to_piece(token, special != 0), out, capacity, len_out);
    });
}

ei_status ei_detokenize(const ei_model* model, const int32_t* ids, int32_t n, char* out, uint64_t capacity,
                        uint64_t* len_out) {
    return guard([&] {
        const ei::Tokenizer& tk = model_of(model).tokenizer();
        if (n < 0 || (n > 0 && !ids)) ei::fail(EI_ERR_INVALID_ARGUMENT, "bad token buffer");
        for (int32_t i = 0; i < n; ++i) {
            if (ids[i] < 0 || ids[i] >= tk.n_vocab()) {
                ei::fail(EI_ERR_INVALID_ARGUMENT, "token id " + std::to_string(ids[i]) + " is out of range [0, " +
                                                      std::to_string(tk.n_vocab()) + ")");
            }
        }
        copy_out(tk.decode(std::vector<int32_t>(ids, ids + n)), out, capacity, len_out);
    });
}

const char* ei_model_chat_format(const ei_model* model) { return model ? model->chat_format.c_str() : ""; }

const char* ei_chat_detect(const char* jinja) {
    if (!jinja) return "";
    auto f = ei::detect_chat_format(jinja);
    return f ? ei::chat_format_name(*f) : "";
}

const char* ei_chat_stop_string(const char* format_name, int32_t index) {
    if (!format_name || index < 0) return nullptr;
    auto f = ei::chat_format_from_name(format_name);
    if (!f) return nullptr;
    // The lists are fixed per format; keep one copy of each for the process's lifetime.
    static const std::vector<std::string> lists[] = {ei::chat_stop_strings(ei::ChatFormat::ChatML),
                                                     ei::chat_stop_strings(ei::ChatFormat::Llama3),
                                                     ei::chat_stop_strings(ei::ChatFormat::Llama2)};
    const auto& list = lists[static_cast<int>(*f)];
    return index < static_cast<int32_t>(list.size()) ? list[index].c_str() : nullptr;
}

ei_status ei_chat_format(const ei_model* model, const char* format_name, const char* const* roles,
                         const char* const* contents, int32_t n, int32_t add_generation_prompt, char* out,
                         uint64_t capacity, uint64_t* len_out) {
    return guard([&] {
        require(model, "model");
        std::string name = format_name && *format_name ? format_name : model->chat_format;
        if (name.empty()) {
            ei::fail(EI_ERR_UNSUPPORTED,
                     "the model has no chat template this runtime recognises; name one (chatml, llama3, llama2) or "
                     "use a raw prompt");
        }
        auto fmt = ei::chat_format_from_name(name);
        if (!fmt) ei::fail(EI_ERR_UNSUPPORTED, "unknown chat format '" + name + "' (known: chatml, llama3, llama2)");
        if (n < 0 || (n > 0 && (!roles || !contents))) ei::fail(EI_ERR_INVALID_ARGUMENT, "bad message arrays");
        std::vector<ei::ChatMessage> msgs;
        for (int32_t i = 0; i < n; ++i) {
            msgs.push_back({require(roles[i], "role"), require(contents[i], "content")});
        }
        copy_out(ei::format_chat(*fmt, msgs, add_generation_prompt != 0), out, capacity, len_out);
    });
}

ei_status ei_generate_begin(ei_session* s, const int32_t* prompt, int32_t n, int32_t n_evaluated,
                            const ei_sampling* sampling, const char* const* stop_strings, int32_t n_stops) {
    return guard([&] {
        require(s, "session");
        const ei_sampling& c = *require(sampling, "sampling");
        ei::checked_struct_size(&c, c.struct_size, EI_SAMPLING_SIZE_V1, sizeof(ei_sampling), "ei_sampling");
        ei::Session::GenerateOptions o;
        o.sampling.greedy = c.greedy != 0;
        o.sampling.temperature = c.temperature;
        o.sampling.top_k = c.top_k;
        o.sampling.top_p = c.top_p;
        o.sampling.min_p = c.min_p;
        o.sampling.repeat_penalty = c.repeat_penalty;
        o.sampling.repeat_last_n = c.repeat_last_n;
        o.sampling.seed = c.seed;
        o.max_tokens = c.max_tokens;
        if (n_stops < 0 || (n_stops > 0 && !stop_strings)) ei::fail(EI_ERR_INVALID_ARGUMENT, "bad stop strings");
        for (int32_t i = 0; i < n_stops; ++i) o.stop_strings.emplace_back(require(stop_strings[i], "stop string"));
        s->session->begin(prompt, n, n_evaluated, o);
    });
}

ei_status ei_generate_next(ei_session* s, const char** piece, uint64_t* len, int32_t* token, int32_t* done) {
    return guard([&] {
        const ei::Session::Piece& p = require(s, "session")->session->next();
        *require(piece, "piece") = p.text.c_str();
        *require(len, "len") = p.text.size();
        if (token) *token = p.token;
        *require(done, "done") = static_cast<int32_t>(p.done);
    });
}

// ---------------------------------------------------------------- gate fitting (ei fit-gates)

ei_status ei_fit_gates(const ei_plan* plan, int32_t gate, int32_t steps, double ridge, const int32_t* tokens, const float* weights,
                       const int64_t* lengths, int32_t n_seqs, float* gate_w, float* gate_b, double* report) {
    return guard([&] {
        const ei::Plan& pl = require(plan, "plan")->plan;
        require(gate_w, "gate_w");
        require(gate_b, "gate_b");
        require(report, "report");
        ei::GateCalibration cal;
        cal.tokens = tokens;
        cal.lengths = lengths;
        cal.n_seqs = n_seqs;
        cal.weights = weights;
        const ei::GateFitResult r = ei::fit_gates(pl, cal, static_cast<ei::GateKind>(gate), steps, ridge);
        std::memcpy(gate_w, r.w.data(), r.w.size() * sizeof(float));
        std::memcpy(gate_b, r.b.data(), r.b.size() * sizeof(float));
        for (size_t k = 0; k < r.report.size(); ++k) {
            const ei::GateHeadReport& h = r.report[k];
            report[4 * k] = h.err_before;
            report[4 * k + 1] = h.err_after;
            report[4 * k + 2] = h.energy;
            report[4 * k + 3] = h.weight;
        }
    });
}

/* ------------------------------------------------------------------ devices: the plan's placement */

const char* ei_plan_device(const ei_plan* p) { return p ? p->plan.placement.device.c_str() : ""; }

int32_t ei_plan_fallback_count(const ei_plan* p) {
    return p ? static_cast<int32_t>(p->plan.placement.fallbacks.size()) : 0;
}

ei_status ei_plan_fallback(const ei_plan* p, int32_t index, const char** graph, int32_t* op_index, const char** op,
                           int32_t* layer, const char** reason) {
    return guard([&] {
        const auto& fallbacks = require(p, "plan")->plan.placement.fallbacks;
        if (index < 0 || index >= static_cast<int32_t>(fallbacks.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "fallback index " + std::to_string(index) + " out of range (" +
                                                  std::to_string(fallbacks.size()) + ")");
        }
        const ei::Fallback& f = fallbacks[static_cast<size_t>(index)];
        if (graph) *graph = f.graph.c_str();
        if (op_index) *op_index = f.op_index;
        if (op) *op = ei::op_name(f.kind);
        if (layer) *layer = f.layer;
        if (reason) *reason = f.reason.c_str();
    });
}

ei_status ei_plan_graph_ops(const ei_plan* p, const char* graph, int32_t* total, int32_t* on_cpu) {
    return guard([&] {
        const std::vector<uint8_t>* c = require(p, "plan")->plan.placement.on_cpu(require(graph, "graph"));
        if (!c) ei::fail(EI_ERR_INVALID_ARGUMENT, std::string("no graph '") + graph + "' (prefill, decode, fold)");
        if (total) *total = static_cast<int32_t>(c->size());
        if (on_cpu) *on_cpu = static_cast<int32_t>(std::count(c->begin(), c->end(), 1));
    });
}

// ---------------------------------------------------------------- graph tables (issue 14)

ei_status ei_plan_describe_graph(const ei_plan* p, const char* graph, char* out, uint64_t capacity, uint64_t* len_out) {
    return guard([&] {
        const ei::Plan& plan = require(p, "plan")->plan;
        const std::string name = require(graph, "graph");
        const ei::Graph* g = name == "prefill" ? &plan.prefill : name == "decode" ? &plan.decode
                             : name == "fold"  ? &plan.fold : nullptr;
        if (!g) ei::fail(EI_ERR_INVALID_ARGUMENT, "no graph '" + name + "' (graphs: prefill, decode, fold)");
        copy_out(ei::describe_graph(*g), out, capacity, len_out);
    });
}

// ---------------------------------------------------------------- NPU preparation (ei npu-prepare)

ei_status ei_npu_prepare(const ei_plan* p, const int32_t* tokens, int64_t n_tokens, const char* out_dir,
                         int32_t weight_bits, int32_t block, double keep_8bit) {
    return guard([&] {
        const ei::Plan& plan = require(p, "plan")->plan;
        require(tokens, "tokens");
        const std::string dir = require(out_dir, "out_dir");
#if defined(EI_BACKEND_HTP)
        ei::htp::NpuPrepareOptions o;
        o.weight_bits = weight_bits;
        o.block = block;
        o.keep_8bit = keep_8bit;
        ei::htp::npu_prepare(plan, tokens, n_tokens, dir, o);
#else
        (void)plan, (void)n_tokens, (void)weight_bits, (void)block, (void)keep_8bit;
        ei::fail(EI_ERR_UNSUPPORTED, "npu-prepare: this runtime was built without the htp backend");
#endif
    });
}

}  // extern "C"

// ------------------------------------------------------------------ importance matrix

ei_status ei_session_imatrix_start(ei_session* s, int32_t include_output) {
    return guard([&] {
        ei::Session& ss = *require(s, "session")->session;
        ss.set_observer(nullptr);
        s->ranges.reset();
        s->imatrix = std::make_unique<ei::ImatrixCollector>(ss.model(), include_output != 0);
        ss.set_observer(s->imatrix.get());
    });
}

int32_t ei_session_imatrix_count(const ei_session* s) {
    return s && s->imatrix ? static_cast<int32_t>(s->imatrix->entries().size()) : 0;
}

ei_status ei_session_imatrix_entry(const ei_session* s, int32_t index, const char** name, int64_t* n_cols,
                                   int64_t* rows, float* sums, int64_t capacity) {
    return guard([&] {
        if (!require(s, "session")->imatrix) ei::fail(EI_ERR_INVALID_ARGUMENT, "no importance matrix is being collected");
        const auto& entries = s->imatrix->entries();
        if (index < 0 || index >= static_cast<int32_t>(entries.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "imatrix entry " + std::to_string(index) + " out of range");
        }
        const ei::ImatrixCollector::Entry& e = entries[static_cast<size_t>(index)];
        if (name) *name = e.name.c_str();
        if (n_cols) *n_cols = e.cols;
        if (rows) *rows = e.rows;
        if (sums) {
            if (capacity < e.cols) {
                ei::fail(EI_ERR_INVALID_ARGUMENT, "imatrix sums of " + e.name + " need " + std::to_string(e.cols) +
                                                      " floats, got room for " + std::to_string(capacity));
            }
            for (int64_t j = 0; j < e.cols; ++j) sums[j] = static_cast<float>(e.sum2[static_cast<size_t>(j)]);
        }
    });
}

ei_status ei_session_imatrix_stop(ei_session* s) {
    return guard([&] {
        if (!require(s, "session")->imatrix) return;  // another collector may be watching
        s->session->set_observer(nullptr);
        s->imatrix.reset();
    });
}

// ------------------------------------------------------------------ activation ranges

ei_status ei_session_ranges_start(ei_session* s) {
    return guard([&] {
        ei::Session& ss = *require(s, "session")->session;
        ss.set_observer(nullptr);
        s->imatrix.reset();
        s->ranges = std::make_unique<ei::RangeCollector>(ss.plan());
        ss.set_observer(s->ranges.get());
    });
}

int32_t ei_session_ranges_count(const ei_session* s) {
    return s && s->ranges ? static_cast<int32_t>(s->ranges->sites().size()) : 0;
}

ei_status ei_session_ranges_entry(const ei_session* s, int32_t index, const char** name, double* min, double* max,
                                  uint64_t* count, const double* quantiles, double* abs_quantiles, int32_t n_quantiles) {
    return guard([&] {
        if (!require(s, "session")->ranges) ei::fail(EI_ERR_INVALID_ARGUMENT, "no activation ranges are being recorded");
        const auto& sites = s->ranges->sites();
        if (index < 0 || index >= static_cast<int32_t>(sites.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "range site " + std::to_string(index) + " out of range");
        }
        if (n_quantiles < 0 || (n_quantiles > 0 && (!quantiles || !abs_quantiles))) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "quantiles: bad buffers");
        }
        const ei::RangeCollector::Site& site = sites[static_cast<size_t>(index)];
        if (name) *name = site.name.c_str();
        if (min) *min = site.min;
        if (max) *max = site.max;
        if (count) *count = site.count;
        for (int32_t k = 0; k < n_quantiles; ++k) {
            if (!(quantiles[k] >= 0 && quantiles[k] <= 1)) {
                ei::fail(EI_ERR_INVALID_ARGUMENT, "quantile " + std::to_string(quantiles[k]) + " is not in [0, 1]");
            }
            abs_quantiles[k] = site.abs_quantile(quantiles[k]);
        }
    });
}

ei_status ei_session_ranges_stop(ei_session* s) {
    return guard([&] {
        if (!require(s, "session")->ranges) return;  // another collector may be watching
        s->session->set_observer(nullptr);
        s->ranges.reset();
    });
}
