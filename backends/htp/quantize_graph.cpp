// The quantization pass of the NPU path (quantize_graph.h: the steps and the choices).
#include "htp/quantize_graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "error.h"
#include "htp/fixed_point.h"

namespace ei::htp {

// ---- calibration ----

void RangeObserver::record(const ExecBuffers& b, uint32_t id) {
    const Tensor& t = b.tensor(id);
    if (t.dtype != DType::Float32 || !b.ptr[id]) return;
    Range& r = ranges_[t.name];
    const float* p = b.at<float>(id);
    for (uint64_t i = 0, n = t.elements(); i < n; ++i) {
        const float v = p[i];
        if (!std::isfinite(v)) continue;  // an overflow is the float graph's problem, not a range
        if (!r.seen) {
            r.lo = r.hi = v;
            r.seen = true;
        } else {
            r.lo = std::min(r.lo, v);
            r.hi = std::max(r.hi, v);
        }
    }
}

void RangeObserver::after(const Node& n, const ExecBuffers& b) {
    // Host inputs are never a node's output: record them where a node reads them.
    for (uint32_t in : n.inputs)
        if (b.tensor(in).kind == TensorKind::AppWrite) record(b, in);
    for (uint32_t out : n.outputs) record(b, out);
}

void RangeObserver::set_range(const std::string& tensor, float lo, float hi) {
    if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
        fail(EI_ERR_INVALID_ARGUMENT, "range of '" + tensor + "' is not a finite [min, max]");
    ranges_[tensor] = Range{lo, hi, true};
}

const RangeObserver::Range* RangeObserver::range(const std::string& tensor) const {
    auto it = ranges_.find(tensor);
    return it == ranges_.end() || !it->second.seen ? nullptr : &it->second;
}

// ---- the pass ----

namespace {

constexpr const char* kTwin = ".fx";  // suffix of the fixed-point twin of a float graph input/output

std::string encoding_text(const Tensor& t) {
    std::ostringstream s;
    switch (t.enc.kind) {
        case Encoding::Kind::None: s << "none"; break;
        case Encoding::Kind::PerTensor: s << "scale=" << t.enc.scale << " offset=" << t.enc.offset; break;
        case Encoding::Kind::PerChannel: s << "per-channel(axis " << t.enc.axis << ")"; break;
        case Encoding::Kind::BlockwiseExpansion:
            s << "blockwise(" << t.enc.block_size << ", " << t.enc.block_scale_bits << "-bit block scales)";
            break;
    }
    return s.str();
}

bool is_kv_io(const Tensor& t) {
    return t.io == IoRole::KCache || t.io == IoRole::VCache || t.io == IoRole::KNew || t.io == IoRole::VNew;
}

// The FullyConnected nodes that produce the logits: walk back from each Logits output
// through non-FullyConnected producers.
std::set<size_t> head_nodes(const QnnGraph& g) {
    std::vector<int64_t> producer(g.tensors.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); ++i)
        for (uint32_t o : g.nodes[i].outputs) producer[o] = static_cast<int64_t>(i);
    std::set<size_t> heads;
    std::vector<uint32_t> todo;
    std::vector<uint8_t> seen(g.tensors.size(), 0);
    for (const Tensor& t : g.tensors)
        if (t.io == IoRole::Logits) todo.push_back(t.id);
    while (!todo.empty()) {
        const uint32_t id = todo.back();
        todo.pop_back();
        if (seen[id]) continue;
        seen[id] = 1;
        if (producer[id] < 0) continue;
        const Node& n = g.nodes[static_cast<size_t>(producer[id])];
        if (n.type == OpType::FullyConnected) {
            heads.insert(static_cast<size_t>(producer[id]));
            continue;
        }
        for (uint32_t in : n.inputs) todo.push_back(in);
    }
    return heads;
}

bool pinned(const std::string& name, const QuantConfig& cfg) {
    for (const std::string& p : cfg.pin_8bit)
        if (name.compare(0, p.size(), p) == 0) return true;
    return false;
}

const float* static_floats(const Tensor& t) { return reinterpret_cast<const float*>(t.data->data()); }

void check_config(const QuantConfig& cfg) {
    if (cfg.activations != DType::UFixed16 && cfg.activations != DType::UFixed8)
        fail(EI_ERR_INVALID_ARGUMENT, std::string("quantize: activations must be UFixed16 or UFixed8, not ") +
                                          dtype_name(cfg.activations));
    if (cfg.kv != DType::UFixed16 && cfg.kv != DType::UFixed8)
        fail(EI_ERR_INVALID_ARGUMENT, std::string("quantize: the KV cache must be UFixed16 or UFixed8, not ") + dtype_name(cfg.kv));
    if (cfg.block_size != 32 && cfg.block_size != 64)
        fail(EI_ERR_INVALID_ARGUMENT, "quantize: block size " + std::to_string(cfg.block_size) + " (32 or 64)");
    if (cfg.block_scale_bits != 4 && cfg.block_scale_bits != 8)
        fail(EI_ERR_INVALID_ARGUMENT, "quantize: block scale bits " + std::to_string(cfg.block_scale_bits) + " (4 or 8)");
    if (!(cfg.sensitive_fraction >= 0 && cfg.sensitive_fraction <= 1))
        fail(EI_ERR_INVALID_ARGUMENT, "quantize: sensitive fraction " + std::to_string(cfg.sensitive_fraction) + " outside [0, 1]");
    if (cfg.tables != DType::UFixed16 && cfg.tables != DType::UFixed8)
        fail(EI_ERR_INVALID_ARGUMENT, std::string("quantize: gathered tables must be UFixed16 or UFixed8, not ") + dtype_name(cfg.tables));
    if (!(cfg.softmax_span > 0)) fail(EI_ERR_INVALID_ARGUMENT, "quantize: softmax span must be positive");
}

}  // namespace

std::vector<std::string> int4_candidates(const QnnGraph& g, const QuantConfig& cfg) {
    const std::set<size_t> heads = cfg.head_8bit ? head_nodes(g) : std::set<size_t>{};
    std::vector<std::string> out;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        if (n.type != OpType::FullyConnected || n.inputs.size() < 2) continue;
        const Tensor& w = g.tensors[n.inputs[1]];
        if (w.kind != TensorKind::Static || w.dtype != DType::Float32 || w.dims.size() != 2) continue;
        if (w.dims[1] % static_cast<uint32_t>(cfg.block_size) != 0) continue;
        if (heads.count(i) || pinned(n.name, cfg)) continue;
        out.push_back(n.name);
    }
    return out;
}

QnnGraph quantize_graph(const QnnGraph& g, const RangeObserver& ranges, const QuantConfig& cfg,
                        const std::set<std::string>& int4_nodes, QuantReport* report, QuantWeightCache* cache) {
    check_config(cfg);
    g.validate();
    QnnGraph q;
    q.name = g.name;
    q.tensors = g.tensors;
    const size_t n0 = g.tensors.size();

    // Who reads each tensor, and how.
    std::vector<std::vector<const Node*>> readers(n0);
    std::vector<uint8_t> fc_weight(n0, 0), fc_bias(n0, 0), other_use(n0, 0);
    for (const Node& n : g.nodes)
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            const uint32_t id = n.inputs[k];
            readers[id].push_back(&n);
            if (n.type == OpType::FullyConnected && k == 1) fc_weight[id] = 1;
            else if (n.type == OpType::FullyConnected && k == 2) fc_bias[id] = 1;
            else other_use[id] = 1;
        }

    // Per-tensor activation encodings from the recorded ranges.
    auto activation = [&](const Tensor& src, Tensor& dst, DType type) {
        const RangeObserver::Range* r = ranges.range(src.name);
        if (!r)
            fail(EI_ERR_INVALID_ARGUMENT, "quantize graph '" + g.name + "': tensor '" + src.name +
                                              "' has no calibrated range (no calibration run reached it)");
        float lo = r->lo, hi = r->hi;
        const auto& rd = readers[src.id];
        const bool softmax_only = !rd.empty() && std::all_of(rd.begin(), rd.end(), [](const Node* n) {
            return n->type == OpType::Softmax;
        });
        if (softmax_only) lo = std::max(lo, hi - cfg.softmax_span);
        dst.dtype = type;
        dst.enc = fx::range_encoding(lo, hi, type);
    };

    std::vector<uint32_t> remap(n0);
    for (uint32_t i = 0; i < n0; ++i) remap[i] = i;
    std::vector<Node> pre, post;  // Converts of the float inputs / outputs
    for (uint32_t i = 0; i < n0; ++i) {
        const Tensor& t = g.tensors[i];
        if (t.dtype != DType::Float32) continue;
        const DType act = is_kv_io(t) ? cfg.kv : cfg.activations;
        if (t.kind == TensorKind::Native) {
            activation(t, q.tensors[i], act);
        } else if (t.kind == TensorKind::AppWrite || t.kind == TensorKind::AppRead) {
            if (t.kind == TensorKind::AppWrite && readers[i].empty()) continue;  // an unused input stays as it is
            Tensor twin = t;
            twin.id = static_cast<uint32_t>(q.tensors.size());
            twin.name = t.name + kTwin;
            twin.kind = TensorKind::Native;
            twin.io = IoRole::None;
            twin.layer = -1;
            activation(t, twin, act);
            q.tensors.push_back(twin);
            remap[i] = twin.id;
            Node c;
            c.type = OpType::Convert;
            c.name = "convert." + t.name;
            if (t.kind == TensorKind::AppWrite) {
                c.inputs = {i};
                c.outputs = {twin.id};
                pre.push_back(c);
            } else {
                c.inputs = {twin.id};
                c.outputs = {i};
                post.push_back(c);
            }
        }
    }

    // Static float tensors other than FullyConnected weights and biases: per tensor, the
    // tables a Gather reads (the embedding) in cfg.tables, every other constant UFixed16.
    std::vector<uint8_t> gathered(n0, 0);
    for (const Node& n : g.nodes)
        if (n.type == OpType::Gather && !n.inputs.empty()) gathered[n.inputs[0]] = 1;
    for (uint32_t i = 0; i < n0; ++i) {
        const Tensor& t = g.tensors[i];
        if (t.kind != TensorKind::Static || t.dtype != DType::Float32 || !other_use[i]) continue;
        const DType ct = gathered[i] ? cfg.tables : DType::UFixed16;
        const float* f = static_floats(t);
        float lo = 0, hi = 0;
        for (uint64_t e = 0; e < t.elements(); ++e) {
            if (!std::isfinite(f[e]))
                fail(EI_ERR_INVALID_ARGUMENT, "quantize graph '" + g.name + "': constant '" + t.name + "' is not finite");
            lo = std::min(lo, f[e]);
            hi = std::max(hi, f[e]);
        }
        Tensor& d = q.tensors[i];
        d.dtype = ct;
        d.enc = fx::range_encoding(lo, hi, ct);
        auto data = std::make_shared<std::vector<uint8_t>>(t.elements() * dtype_bytes(ct));
        std::vector<float> back(t.elements());
        for (uint64_t e = 0; e < t.elements(); ++e) {
            const int32_t v = fx::quantize(f[e], d.enc.scale, d.enc.offset, ct);
            fx::store_q(data->data(), ct, e, v);
            back[e] = fx::dequantize(v, d.enc.scale, d.enc.offset);
        }
        d.data = data;
        if (report)
            report->tensors.push_back({t.name, dtype_name(d.dtype), encoding_text(d), false,
                                       sqnr_db(f, back.data(), t.elements()), d.bytes(), t.elements() * 4, ""});
    }

    // FullyConnected weights (int8 or int4 by node) and biases.
    std::vector<Node> nodes = g.nodes;
    std::map<std::pair<uint32_t, std::string>, uint32_t> placed;  // (float weight, form) -> tensor
    std::set<uint32_t> placed_any;
    for (Node& n : nodes) {
        for (uint32_t& in : n.inputs) in = remap[in];
        for (uint32_t& out : n.outputs) out = remap[out];
        if (n.type != OpType::FullyConnected || n.inputs.size() < 2) continue;
        const Tensor& w = g.tensors[n.inputs[1]];
        if (w.kind != TensorKind::Static || w.dtype != DType::Float32) continue;
        if (w.dims.size() != 2)
            fail(EI_ERR_INVALID_ARGUMENT, "quantize graph '" + g.name + "': weight '" + w.name + "' is not 2-D");
        const bool four = int4_nodes.count(n.name) > 0;
        const std::string form = four ? "int4/" + std::to_string(cfg.block_size) + "/" + std::to_string(cfg.block_scale_bits)
                                      : "int8";
        std::shared_ptr<const QuantizedWeight> qw;
        const auto key = std::make_pair(static_cast<const void*>(w.data.get()), form);
        if (cache) {
            std::lock_guard<std::mutex> lock(cache->mu);
            auto it = cache->forms.find(key);
            if (it != cache->forms.end()) qw = it->second;
        }
        if (!qw) {
            qw = std::make_shared<QuantizedWeight>(
                four ? quantize_int4_blockwise(static_floats(w), w.dims[0], w.dims[1], cfg.block_size, cfg.block_scale_bits)
                     : quantize_int8_per_channel(static_floats(w), w.dims[0], w.dims[1]));
            if (cache) {
                // A session quantizing the same weight concurrently: the first stored stays.
                std::lock_guard<std::mutex> lock(cache->mu);
                qw = cache->forms.emplace(key, qw).first->second;
            }
        }
        // The weight's quantized form: in place for the first form asked of a weight only
        // FullyConnected nodes read, else a tensor of its own (a tied embedding the Gather
        // also reads as UFixed16, or a weight two nodes want in different forms).
        uint32_t wid = w.id;
        const auto pkey = std::make_pair(w.id, form);
        if (placed.count(pkey)) {
            wid = placed[pkey];
        } else if (other_use[w.id] || placed_any.count(w.id)) {
            Tensor t2 = w;
            t2.id = static_cast<uint32_t>(q.tensors.size());
            t2.name = w.name + "." + (four ? "int4" : "int8");
            q.tensors.push_back(t2);
            wid = t2.id;
        }
        placed[pkey] = wid;
        placed_any.insert(w.id);
        Tensor& d = q.tensors[wid];
        if (d.dtype == DType::Float32) {
            d.dtype = qw->dtype;
            d.enc = qw->enc;
            d.data = std::shared_ptr<const std::vector<uint8_t>>(qw, &qw->data);
            if (report) {
                auto src = cfg.weight_sources.find(w.name);
                report->tensors.push_back({d.name, dtype_name(d.dtype), encoding_text(d), true, qw->sqnr_db,
                                           qw->packed_bytes, w.elements() * 4,
                                           src == cfg.weight_sources.end() ? std::string() : src->second});
            }
        }
        n.inputs[1] = wid;
        // The bias at the accumulator's scale: s_x * s_w[c].
        if (n.inputs.size() > 2) {
            const Tensor& bsrc = g.tensors[g.nodes[static_cast<size_t>(&n - nodes.data())].inputs[2]];
            if (bsrc.kind != TensorKind::Static || bsrc.dtype != DType::Float32 || bsrc.elements() != w.dims[0])
                fail(EI_ERR_INVALID_ARGUMENT, "quantize graph '" + g.name + "': bias of '" + n.name + "' is not a float [N] constant");
            const Tensor& x = q.tensors[n.inputs[0]];
            if (x.enc.kind != Encoding::Kind::PerTensor)
                fail(EI_ERR_INVALID_ARGUMENT, "quantize graph '" + g.name + "': input of '" + n.name + "' is not fixed point");
            Tensor bt = bsrc;
            bt.id = static_cast<uint32_t>(q.tensors.size());
            bt.name = n.name + ".bias";
            bt.dtype = DType::SFixed32;
            bt.enc.kind = Encoding::Kind::PerChannel;
            bt.enc.axis = 0;
            bt.enc.offsets.assign(w.dims[0], 0);
            bt.enc.scales.resize(w.dims[0]);
            auto data = std::make_shared<std::vector<uint8_t>>(w.dims[0] * 4);
            const float* bf = static_floats(bsrc);
            for (uint32_t c = 0; c < w.dims[0]; ++c) {
                const float s = x.enc.scale * d.enc.scales[c];
                bt.enc.scales[c] = s;
                fx::store_q(data->data(), DType::SFixed32, c, static_cast<int32_t>(fx::saturate(fx::round_half_up(bf[c] / s), INT32_MIN, INT32_MAX)));
            }
            bt.data = data;
            q.tensors.push_back(bt);
            n.inputs[2] = bt.id;
            if (report) report->tensors.push_back({bt.name, dtype_name(bt.dtype), "per-channel(axis 0)", false, 0, bt.bytes(), bt.bytes(), ""});
        }
    }
    q.nodes = pre;
    q.nodes.insert(q.nodes.end(), nodes.begin(), nodes.end());
    q.nodes.insert(q.nodes.end(), post.begin(), post.end());

    // The report's totals: every constant the quantized graph binds, and its activations.
    if (report) {
        for (const Tensor& t : q.tensors) {
            if (t.kind == TensorKind::Static) {
                bool used = false;
                for (const Node& n : q.nodes)
                    used = used || std::find(n.inputs.begin(), n.inputs.end(), t.id) != n.inputs.end();
                if (!used) continue;
                // A weight's packed size (int4 two per byte, scales) from its report entry: the
                // one of this tensor's type (a tied embedding has two constants of one name,
                // the gathered table and the head's weight; each counts once).
                const TensorReport* w = nullptr;
                for (const TensorReport& r : report->tensors)
                    if (!w && r.weight && r.name == t.name && r.dtype == dtype_name(t.dtype)) w = &r;
                report->weight_bytes += w ? w->bytes : t.bytes();
                report->float_weight_bytes += t.elements() * 4;
            } else if (dtype_quantized(t.dtype) && t.kind == TensorKind::Native) {
                report->tensors.push_back({t.name, dtype_name(t.dtype), encoding_text(t), false, 0, t.bytes(), t.elements() * 4, ""});
            }
        }
    }
    q.validate();
    return q;
}

// ---- measurement ----

namespace {

// The float graph's tensors of one run, by name.
class Capture : public NodeObserver {
public:
    std::map<std::string, std::vector<float>> values;
    void after(const Node& n, const ExecBuffers& b) override {
        for (uint32_t i : n.inputs)
            if (b.tensor(i).kind == TensorKind::AppWrite) keep(b, i);  // what the input twins stand for
        for (uint32_t o : n.outputs) keep(b, o);
    }

private:
    void keep(const ExecBuffers& b, uint32_t id) {
        const Tensor& t = b.tensor(id);
        if (t.dtype != DType::Float32) return;
        const float* p = b.at<float>(id);
        values[t.name].assign(p, p + t.elements());
    }
};

// Energy of the float values and of the quantized graph's difference from them, by name.
class Compare : public NodeObserver {
public:
    explicit Compare(const Capture& ref) : ref_(ref) {}
    struct Energy {
        double signal = 0, noise = 0, clipped = 0, total = 0;
    };
    std::map<std::string, Energy> energy;
    void after(const Node& n, const ExecBuffers& b) override {
        for (uint32_t o : n.outputs) {
            const Tensor& t = b.tensor(o);
            std::string name = t.name;
            const size_t tw = std::strlen(kTwin);
            if (name.size() > tw && name.compare(name.size() - tw, tw, kTwin) == 0) name.resize(name.size() - tw);
            auto it = ref_.values.find(name);
            if (it == ref_.values.end() || it->second.size() != t.elements()) continue;
            // The error within the tensor's encoded range: values beyond it (an additive
            // mask's -1e9, cut on purpose) are counted as clipped, not as noise.
            auto& e = energy[t.name];
            const bool q = dtype_quantized(t.dtype) && t.enc.kind == Encoding::Kind::PerTensor;
            if (!q && t.dtype != DType::Float32) continue;
            const double lo = q ? fx::dequantize(fx::qmin(t.dtype), t.enc.scale, t.enc.offset) : -1e300;
            const double hi = q ? fx::dequantize(fx::qmax(t.dtype), t.enc.scale, t.enc.offset) : 1e300;
            for (uint64_t i = 0; i < t.elements(); ++i) {
                const double v = q ? fx::dequantize(fx::load_q(b.ptr[o], t.dtype, i), t.enc.scale, t.enc.offset)
                                   : b.at<float>(o)[i];
                double r = it->second[i];
                if (r < lo || r > hi) {
                    r = std::min(hi, std::max(lo, r));
                    e.clipped += 1;
                }
                e.total += 1;
                e.signal += r * r;
                e.noise += (r - v) * (r - v);
            }
        }
    }

private:
    const Capture& ref_;
};

double db(double s, double n) { return s == 0 ? 0 : (n == 0 ? 200 : std::min(200.0, 10 * std::log10(s / n))); }

void add_energy(const std::vector<std::vector<float>>& ref, const std::vector<std::vector<float>>& got, double& s, double& n) {
    if (ref.size() != got.size()) fail(EI_ERR_INTERNAL, "quantize: the graphs returned different outputs");
    for (size_t k = 0; k < ref.size(); ++k) {
        if (ref[k].size() != got[k].size()) fail(EI_ERR_INTERNAL, "quantize: output sizes differ");
        for (size_t i = 0; i < ref[k].size(); ++i) {
            s += static_cast<double>(ref[k][i]) * ref[k][i];
            const double d = static_cast<double>(ref[k][i]) - got[k][i];
            n += d * d;
        }
    }
}

}  // namespace

PreparedGraph prepare_quantized(const QnnGraph& g, const QuantConfig& cfg, const GraphRunner& run, size_t n_samples,
                                QuantWeightCache* cache, const RangeObserver* calibrated) {
    check_config(cfg);
    if (n_samples == 0) fail(EI_ERR_INVALID_ARGUMENT, "quantize: no calibration samples");
    RangeObserver own;
    std::vector<std::vector<std::vector<float>>> ref(n_samples);
    for (size_t i = 0; i < n_samples; ++i) ref[i] = run(g, i, calibrated ? nullptr : &own);
    const RangeObserver& ranges = calibrated ? *calibrated : own;

    const size_t n_sens = cfg.sensitivity_samples ? std::min(cfg.sensitivity_samples, n_samples) : n_samples;
    auto output_sqnr = [&](const QnnGraph& qg) {
        double s = 0, n = 0;
        for (size_t i = 0; i < n_sens; ++i) add_energy(ref[i], run(qg, i, nullptr), s, n);
        return db(s, n);
    };

    PreparedGraph out;
    std::set<std::string> int4;
    if (cfg.int4) {
        const std::vector<std::string> cands = int4_candidates(g, cfg);
        int4.insert(cands.begin(), cands.end());
        if (cfg.sensitive_fraction > 0 && !cands.empty()) {
            for (const std::string& c : cands)
                out.report.layers.push_back({c, output_sqnr(quantize_graph(g, ranges, cfg, {c}, nullptr, cache)), false});
            std::stable_sort(out.report.layers.begin(), out.report.layers.end(),
                             [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.output_sqnr_db < b.output_sqnr_db; });
            const size_t keep = static_cast<size_t>(std::llround(cfg.sensitive_fraction * static_cast<double>(cands.size())));
            for (size_t k = 0; k < keep && k < out.report.layers.size(); ++k) {
                out.report.layers[k].kept_8bit = true;
                int4.erase(out.report.layers[k].node);
            }
        }
    }
    out.graph = quantize_graph(g, ranges, cfg, int4, &out.report, cache);

    // Every tensor's SQNR and the outputs', one sample at a time (a float run captured,
    // then the quantized run compared against it).
    std::map<std::string, Compare::Energy> energy;
    double s = 0, n = 0;
    for (size_t i = 0; i < n_samples; ++i) {
        Capture cap;
        const auto fo = run(g, i, &cap);
        Compare cmp(cap);
        add_energy(fo, run(out.graph, i, &cmp), s, n);
        for (const auto& kv : cmp.energy) {
            Compare::Energy& e = energy[kv.first];
            e.signal += kv.second.signal;
            e.noise += kv.second.noise;
            e.clipped += kv.second.clipped;
            e.total += kv.second.total;
        }
    }
    out.report.output_sqnr_db = db(s, n);
    for (TensorReport& r : out.report.tensors) {
        auto it = energy.find(r.name);
        if (!r.weight && it != energy.end()) {
            r.sqnr_db = db(it->second.signal, it->second.noise);
            r.clipped = it->second.total > 0 ? it->second.clipped / it->second.total : 0;
        }
    }
    return out;
}

std::string QuantReport::text() const {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(2);
    s << "output SQNR vs float: " << output_sqnr_db << " dB; weights " << weight_bytes << " bytes (float "
      << float_weight_bytes << ")\n";
    for (const TensorReport& t : tensors)
        s << "  " << (t.weight ? "weight " : "tensor ") << t.name << " " << t.dtype << " " << t.encoding
          << " sqnr=" << t.sqnr_db << " dB" << (t.source.empty() ? "" : " (against its " + t.source + " source)")
          << (t.clipped > 0 ? " clipped=" + std::to_string(t.clipped * 100).substr(0, 5) + "%" : std::string())
          << " bytes=" << t.bytes << "\n";
    for (const LayerSensitivity& l : layers)
        s << "  layer " << l.node << " int4-only output sqnr=" << l.output_sqnr_db << " dB" << (l.kept_8bit ? " kept 8-bit" : "")
          << "\n";
    return s.str();
}

}  // namespace ei::htp
