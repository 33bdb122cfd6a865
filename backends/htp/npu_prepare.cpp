#include "htp/npu_prepare.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "error.h"
#include "file_io.h"
#include "ggml_types.h"
#include "htp/device_graphs.h"
#include "htp/emulator.h"
#include "htp/htp_emulator_backend.h"
#include "htp/lower.h"
#include "htp/qnn_adapter.h"
#include "session.h"

namespace ei::htp {

namespace {

using Sample = std::map<std::string, std::vector<uint8_t>>;  // AppWrite tensor name -> bytes

// The calibration session's node observer: every tensor's range, which graphs ran, and the
// inputs of the last few one-row prefill executions (copied when an execution's first node
// has run: the host wrote them before it, and no node writes a graph input).
class Calibration : public NodeObserver {
public:
    explicit Calibration(size_t keep) : keep_(keep) {}
    RangeObserver ranges;
    std::deque<Sample> samples;
    std::map<std::string, int64_t> runs;  // "prefill", "prefill (all logits)", "decode", "fold"

    void after(const Node& n, const ExecBuffers& b) override {
        ranges.after(n, b);
        if (&n != &b.graph->nodes.front()) return;
        bool one_row = false;
        for (const Tensor& t : b.graph->tensors) one_row = one_row || (t.kind == TensorKind::AppWrite && t.io == IoRole::LogitRow);
        // The all-logits prefill is its own graph (kPrefillAllLogits, no LogitRow input).
        const bool prefill = b.graph->name == "prefill" || b.graph->name == kPrefillAllLogits;
        ++runs[prefill && !one_row ? "prefill (all logits)" : b.graph->name];
        if (!prefill || !one_row || keep_ == 0) return;
        Sample s;
        for (const Tensor& t : b.graph->tensors) {
            if (t.kind == TensorKind::AppWrite) s[t.name].assign(b.ptr[t.id], b.ptr[t.id] + t.bytes());
        }
        samples.push_back(std::move(s));
        if (samples.size() > keep_) samples.pop_front();
    }

private:
    size_t keep_;
};

void write_text(const std::string& path, const std::string& text) {
    if (!write_file_atomic(path, text.data(), text.size())) fail(EI_ERR_IO, "cannot write '" + path + "'");
}

}  // namespace

std::string npu_prepare(const Plan& plan, const int32_t* tokens, int64_t n, const std::string& dir,
                        const NpuPrepareOptions& o) {
    if (!plan.model) fail(EI_ERR_INVALID_ARGUMENT, "npu-prepare: the plan has no model");
    if (o.weight_bits != 8 && o.weight_bits != 4) {
        fail(EI_ERR_INVALID_ARGUMENT, "npu-prepare: weights of " + std::to_string(o.weight_bits) + " bits (16a8w: 8, 16a4w: 4)");
    }
    if (o.samples < 1 || o.sensitivity_samples < 1 || o.decode_steps < 0) {
        fail(EI_ERR_INVALID_ARGUMENT, "npu-prepare: samples, sensitivity samples must be >= 1 and decode steps >= 0");
    }
    if (dir.empty()) fail(EI_ERR_INVALID_ARGUMENT, "npu-prepare: no output folder");
    const Scenario& sc = plan.scenario;
    const int64_t L = sc.n_batch;
    // The text feeds, in order: prefill with every row's logits, one-row prefill (the
    // samples), decode steps. Each prefill part needs a full chunk of L.
    const int64_t decode = std::min<int64_t>(o.decode_steps, n / 4);
    const int64_t rest = n - decode, all_part = rest / 2;
    if (!tokens || all_part < L || rest - all_part < L) {
        fail(EI_ERR_INVALID_ARGUMENT, "npu-prepare: a calibration text of " + std::to_string(n) + " tokens is too short: it needs " +
                                          std::to_string(2 * L) + " for two prefill chunks of " + std::to_string(L) + " and " +
                                          std::to_string(o.decode_steps) + " decode steps (" + std::to_string(2 * L + o.decode_steps) + ")");
    }
    const Model& model = *plan.model;
    const int32_t V = model.hparams().n_vocab;

    // 1. calibration: the float graphs (no cache_dir: parameters already there are not read).
    Scenario float_sc = sc;
    float_sc.cache_dir.clear();
    Calibration cal(size_t(o.samples));
    {
        std::vector<uint8_t> pool(plan.pool.size + 64);
        uint8_t* base = pool.data() + (64 - reinterpret_cast<uintptr_t>(pool.data()) % 64) % 64;
        std::unique_ptr<Backend> be = make_htp_emulator_backend(float_sc, true);
        set_node_observer(*be, &cal);
        Session s(plan, base, plan.pool.size, std::move(be));
        s.plan_route(n);
        std::vector<float> logits(size_t(L) * size_t(V));
        auto feed = [&](int64_t from, int64_t to, int64_t piece, bool all) {
            for (int64_t at = from; at < to; at += piece) {
                const int64_t m = std::min(piece, to - at);
                // Without memory the session holds at most its capacity: start over when full.
                if (!sc.memory && s.n_past() + m > sc.full_capacity()) {
                    s.reset();
                    s.plan_route(n - at);
                }
                s.eval(tokens + at, int32_t(m), all ? logits.data() : nullptr);
            }
        };
        feed(0, all_part, L, true);
        feed(all_part, rest, L, false);
        feed(rest, n, 1, false);  // teacher-forced decode steps
    }
    const char* needed[] = {"prefill (all logits)", "prefill", "decode", "fold"};
    for (const char* g : needed) {
        if (std::string(g) == "fold" && !sc.memory) continue;  // no memory: the fold graph never runs
        if (std::string(g) == "decode" && decode == 0) continue;
        if (!cal.runs.count(g)) {
            fail(EI_ERR_INVALID_ARGUMENT, std::string("npu-prepare: the calibration text (") + std::to_string(n) + " tokens) never ran the " + g +
                                              " graph" + (std::string(g) == "fold" ? ": give a longer text or a smaller sink/window so folds happen" : ""));
        }
    }

    // 2. the per-layer choice and the measurement, on the prefill graph and the samples.
    WeightStore ws;
    LowerOptions fo;
    fo.float_cache = true;
    const QnnGraph prefill = lower_graph(plan.prefill, sc, ws, fo);
    const std::vector<Sample> samples(cal.samples.begin(), cal.samples.end());
    const GraphRunner run = [&](const QnnGraph& q, size_t i, NodeObserver* obs) {
        Emulator e(q);
        for (const Tensor& t : e.graph().tensors) {
            if (t.kind != TensorKind::AppWrite) continue;
            auto it = samples.at(i).find(t.name);
            if (it == samples.at(i).end() || it->second.size() != t.bytes()) {
                fail(EI_ERR_INTERNAL, "npu-prepare: sample " + std::to_string(i) + " has no input '" + t.name + "' of its size");
            }
            std::memcpy(e.data(t.id), it->second.data(), it->second.size());
        }
        e.run(obs);
        std::vector<std::vector<float>> out;
        for (const Tensor& t : e.graph().tensors) {
            if (t.kind != TensorKind::AppRead) continue;
            const float* f = e.data_as<float>(t.id);
            out.emplace_back(f, f + t.elements());
        }
        return out;
    };
    QuantConfig cfg;
    cfg.int4 = o.weight_bits == 4;
    cfg.block_size = o.block;
    cfg.sensitive_fraction = cfg.int4 ? o.keep_8bit : 0.0;
    cfg.sensitivity_samples = size_t(o.sensitivity_samples);
    for (const TensorInfo& t : model.gguf().tensors()) {
        if (t.type != int32_t(GgmlType::F32)) {
            const char* tn = type_traits(t.type).name;
            cfg.weight_sources[t.name] = tn ? tn : "?";
        }
    }
    QuantWeightCache qcache;
    const PreparedGraph pg = prepare_quantized(prefill, cfg, run, samples.size(), &qcache, &cal.ranges);

    // 3. the parameters: every FullyConnected weight's bits (4 where the prefill graph took
    // int4), every recorded range.
    NpuParams p;
    p.model_fp = model.fingerprint();
    p.scheme = cfg.int4 ? "16a4w" : "16a8w";
    p.block_size = cfg.int4 ? o.block : 0;
    std::map<std::string, int32_t> bits;
    for (const Node& nd : pg.graph.nodes) {
        if (nd.type != OpType::FullyConnected || nd.inputs.size() < 2) continue;
        const bool four = pg.graph.tensors[nd.inputs[1]].dtype == DType::SFixed4;
        // The float graph's node of that name names the GGUF weight.
        for (const Node& fnode : prefill.nodes) {
            if (fnode.name != nd.name || fnode.type != OpType::FullyConnected) continue;
            const std::string w = gguf_weight_name(prefill.tensors[fnode.inputs[1]].name);
            auto it = bits.find(w);
            // A weight two nodes read in different forms keeps 8 bits.
            bits[w] = it == bits.end() ? (four ? 4 : 8) : std::max(it->second, four ? 4 : 8);
        }
    }
    for (const Graph* g : {&plan.decode, &plan.fold}) {  // weights only other graphs read: 8-bit
        for (const std::string& w : fc_weight_names(lower_graph(*g, sc, ws, fo))) bits.emplace(w, 8);
    }
    for (const auto& kv : bits) p.weights.push_back({kv.first, kv.second});
    for (const auto& kv : cal.ranges.ranges()) {
        if (kv.second.seen) p.ranges.push_back({kv.first, kv.second.lo, kv.second.hi});
    }
    store_npu_params(dir, p);
    const std::string file = npu_params_file(dir, p.model_fp);

    // The graphs as the device builds them from the stored file (read back: what a session gets).
    NpuParams stored;
    if (!load_npu_params(dir, p.model_fp, stored)) fail(EI_ERR_IO, "npu-prepare: '" + file + "' is not there after writing it");
    DeviceGraphs dg(std::move(stored), file);
    WeightStore ws2;
    const std::pair<const Graph*, const char*> graphs[] = {{&plan.prefill, "prefill"}, {&plan.decode, "decode"}, {&plan.fold, "fold"}};
    std::vector<QnnGraph> lowered;
    for (const auto& g : graphs) {
        if (std::string(g.second) == "fold" && !sc.memory) continue;
        lowered.push_back(dg.lower(*g.first, sc, ws2, LowerOptions()));
        write_text(dir + "/" + g.second + ".txt", lowered.back().describe());
    }
    // The QNN context binary of those graphs where the QNN HTP library loads (a phone);
    // elsewhere the report says why there is none.
    std::string context;
    try {
        QnnAdapter qa;
        std::vector<const QnnGraph*> ptrs;
        for (const QnnGraph& g : lowered) ptrs.push_back(&g);
        qa.prepare(ptrs, dir);
        context = "QNN context binary: " + qa.cache_file(dir, ptrs) + " (" + qa.provider_name() + ", weights " + qa.weight_sharing() + ")";
    } catch (const Error& e) {
        if (e.status() != EI_ERR_UNSUPPORTED) throw;
        context = std::string("no QNN context binary: ") + e.what();
    }

    size_t four = 0;
    for (const NpuParams::WeightBits& w : p.weights) four += w.bits == 4;
    std::ostringstream r;
    r.setf(std::ios::fixed);
    r.precision(2);
    r << "npu-prepare: " << p.scheme << (cfg.int4 ? " (int4 blocks of " + std::to_string(o.block) + ")" : std::string())
      << ", " << four << " of " << p.weights.size() << " weights 4-bit\n"
      << "parameters: " << file << " (" << p.ranges.size() << " tensor ranges)\n"
      << "calibration: " << n << " tokens; graph runs:";
    for (const auto& kv : cal.runs) r << " " << kv.first << " " << kv.second;
    r << "; " << samples.size() << " prefill samples replayed\n"
      << "prefill graph: logits SQNR vs float " << pg.report.output_sqnr_db << " dB on the samples; weights "
      << pg.report.weight_bytes << " bytes (float " << pg.report.float_weight_bytes << ", "
      << double(pg.report.weight_bytes) / double(std::max<uint64_t>(1, pg.report.float_weight_bytes)) * 100 << "%)\n"
      << "scenario: sink " << sc.n_sink << " window " << sc.n_window << " segment " << sc.n_batch
      << " memory " << (sc.memory ? "on" : "off") << "\n"
      << context << "\n"
      << pg.report.text();
    write_text(dir + "/report.txt", r.str());
    return r.str();
}

}  // namespace ei::htp
