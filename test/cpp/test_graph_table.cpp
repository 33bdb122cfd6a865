// The graphs' tensor tables (cpp/src/graph.h, filled by plan.cpp): every operand of every
// op has an entry and agrees with it, each op's reads / writes / updates name every tensor
// it touches, and the dataflow is one a static-graph compiler could schedule (activations
// written before they are read, weights and step inputs never written, no two pool tensors
// overlapping). check_graph is also run on broken graphs, to show it catches each fault.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "check.h"
#include "graph.h"
#include "model.h"
#include "plan.h"
#include "step_inputs.h"

using namespace ei;

namespace {

std::vector<const TensorRef*> refs(const Op& op) {
    return {&op.dst, &op.src0, &op.src1, &op.src2, &op.aux, &op.mem_m, &op.mem_z, &op.q_nope, &op.gate_w, &op.gate_b};
}

bool same(const TensorRef& r, const Tensor& t) {
    return r.where == t.where && r.type == t.type && r.offset == t.offset && r.data == t.data && r.cols == t.cols &&
           r.rows == t.rows && r.row_bytes == t.row_bytes;
}

// Every fault found in g, one line each (empty: a sound graph).
std::vector<std::string> check_graph(const Graph& g, const PoolPlan& pool) {
    std::vector<std::string> bad;
    auto fault = [&](const std::string& s) { bad.push_back(g.name + ": " + s); };
    std::set<std::string> names;
    for (size_t i = 0; i < g.tensors.size(); ++i) {
        const Tensor& t = g.tensors[i];
        if (t.id != static_cast<int32_t>(i)) fault("tensor " + t.name + " has id " + std::to_string(t.id) + " at " + std::to_string(i));
        if (!names.insert(t.name).second) fault("two tensors named " + t.name);
        if ((t.role == TensorRole::Weight) != (t.where == TensorRef::Where::Weight)) fault(t.name + ": role and place disagree");
        const TypeTraits tt = type_traits(t.type);
        if (t.quantized != (tt.block_size > 1)) fault(t.name + ": quantized flag wrong for its type");
        if (t.quantized && (t.quant.block_type != t.type || t.quant.block_size != tt.block_size ||
                            t.quant.block_bytes != static_cast<uint64_t>(tt.type_size))) {
            fault(t.name + ": quantization parameters disagree with its type");
        }
        if (t.cols <= 0 || t.rows <= 0) fault(t.name + ": empty shape");
        if (t.where == TensorRef::Where::Pool) {
            // Inside one planned region (per-layer tensors are slices of theirs).
            bool inside = false;
            for (const Region& r : pool.regions) {
                if (t.offset >= r.offset && t.offset + t.bytes() <= r.offset + r.size &&
                    (t.name == r.name || t.name.rfind(r.name + ".", 0) == 0)) {
                    inside = true;
                }
            }
            if (!inside) fault(t.name + ": not inside its pool region");
            if (t.role == TensorRole::Activation && t.rows != g.max_tokens) fault(t.name + ": activation rows != max_tokens");
        }
    }
    // No two pool tensors share bytes: a compiler may place each on its own.
    for (const Tensor& a : g.tensors) {
        for (const Tensor& b : g.tensors) {
            if (a.id < b.id && a.where == TensorRef::Where::Pool && b.where == TensorRef::Where::Pool &&
                a.offset < b.offset + b.bytes() && b.offset < a.offset + a.bytes()) {
                fault(a.name + " and " + b.name + " overlap in the pool");
            }
        }
    }

    std::vector<bool> written(g.tensors.size(), false);
    for (size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        const std::string at = "op " + std::to_string(i) + " " + op_name(op.kind);
        std::set<int32_t> listed;
        for (const auto* list : {&op.reads, &op.writes, &op.updates}) {
            for (int32_t id : *list) {
                if (id < 0 || static_cast<size_t>(id) >= g.tensors.size()) {
                    fault(at + ": names tensor #" + std::to_string(id) + ", not in the table");
                    continue;
                }
                if (!listed.insert(id).second) fault(at + ": lists " + g.tensors[size_t(id)].name + " twice");
            }
        }
        for (const TensorRef* r : refs(op)) {
            if (!r->valid()) continue;
            if (r->id < 0 || static_cast<size_t>(r->id) >= g.tensors.size()) {
                fault(at + ": an operand has no table entry");
            } else if (!same(*r, g.tensors[size_t(r->id)])) {
                fault(at + ": operand " + g.tensors[size_t(r->id)].name + " disagrees with its table entry");
            } else if (!listed.count(r->id)) {
                fault(at + ": operand " + g.tensors[size_t(r->id)].name + " is in no read / write / update list");
            }
        }
        if (!bad.empty()) continue;
        auto T = [&](int32_t id) -> const Tensor& { return g.tensors[size_t(id)]; };
        for (int32_t id : op.reads) {
            const Tensor& t = T(id);
            if ((t.role == TensorRole::Activation || t.role == TensorRole::Output) && !written[size_t(id)]) {
                fault(at + ": reads " + t.name + " before any op writes it");
            }
            if (t.role == TensorRole::Scratch) fault(at + ": reads scratch " + t.name + " it did not write");
        }
        for (int32_t id : op.updates) {
            const Tensor& t = T(id);
            if (t.role != TensorRole::State && !written[size_t(id)]) fault(at + ": updates " + t.name + " before it is written");
        }
        for (const auto* list : {&op.writes, &op.updates}) {
            for (int32_t id : *list) {
                const Tensor& t = T(id);
                if (t.role == TensorRole::Weight || t.role == TensorRole::StepInput) fault(at + ": writes " + t.name);
                written[size_t(id)] = true;
            }
        }
        // Shapes the op's semantics require.
        const TensorRef &d = op.dst, &s0 = op.src0, &s1 = op.src1;
        switch (op.kind) {
            case OpKind::MatMul:
                if (s0.cols != s1.cols || d.cols != s0.rows) fault(at + ": matmul shapes disagree");
                break;
            case OpKind::RmsNorm:
                if (d.cols != s0.cols || s1.cols != s0.cols) fault(at + ": rms_norm shapes disagree");
                break;
            case OpKind::Rope:
            case OpKind::SwiGlu:
                if (d.cols != s0.cols || d.rows != s0.rows) fault(at + ": element-wise shapes disagree");
                break;
            case OpKind::KvStore:
                if (s0.cols != d.cols || s1.cols != op.src2.cols || d.rows != op.src2.rows) fault(at + ": kv_store shapes disagree");
                break;
            case OpKind::GetRows:
                if (d.cols != s0.cols || s1.type != GgmlType::I32) fault(at + ": get_rows shapes disagree");
                break;
            default: break;
        }
    }
    for (const Tensor& t : g.tensors) {
        if (t.role == TensorRole::Output && !written[size_t(t.id)]) fault("output " + t.name + " is never written");
    }
    return bad;
}

Scenario scenario(bool memory) {
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 24;
    sc.n_batch = 7;  // odd, so no size lines up by accident
    sc.n_threads = 2;
    sc.memory = memory;
    return sc;
}

void expect_sound(const Plan& p) {
    for (const Graph* g : {&p.prefill, &p.decode, &p.fold}) {
        const std::vector<std::string> bad = check_graph(*g, p.pool);
        for (const std::string& s : bad) std::fprintf(stderr, "  %s\n", s.c_str());
        CHECK(bad.empty());
        CHECK(!g->tensors.empty());
    }
}

const Tensor* find(const Graph& g, const std::string& name) {
    for (const Tensor& t : g.tensors) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

}  // namespace

TEST(tables_of_every_model_and_scenario_are_sound) {
    for (const char* m : {"models/tiny-llama-f32.gguf", "models/tiny-llama-q4_k_m.gguf", "models/tiny-qwen2-q8_0.gguf"}) {
        auto model = Model::load(check::testdata(m));
        for (bool memory : {false, true}) {
            for (KvType kv : {KvType::F16, KvType::F32}) {
                Scenario sc = scenario(memory);
                sc.kv_type = kv;
                expect_sound(make_plan(model, sc));
            }
        }
    }
}

TEST(table_names_roles_and_quantization) {
    auto model = Model::load(check::testdata("models/tiny-llama-q4_k_m.gguf"));
    const Plan p = make_plan(model, scenario(true));
    const HParams& hp = model->hparams();
    const Graph& g = p.prefill;
    const Tensor* tokens = find(g, "tokens");
    CHECK(tokens && tokens->role == TensorRole::StepInput && tokens->type == GgmlType::I32 && tokens->rows == 7);
    CHECK(&g.tensor(tokens->id) == tokens);
    const Tensor* x = find(g, "x");
    CHECK(x && x->role == TensorRole::Activation && x->rows == 7 && x->cols == hp.n_embd);
    CHECK(find(p.decode, "x") && find(p.decode, "x")->rows == 1);
    const Tensor* logits = find(g, "logits");
    CHECK(logits && logits->role == TensorRole::Output && logits->cols == hp.n_vocab);
    for (int32_t l = 0; l < hp.n_layer; ++l) {
        const Tensor* k = find(g, "kv.k." + std::to_string(l));
        const Tensor* m = find(p.fold, "mem.M." + std::to_string(l));
        CHECK(k && k->role == TensorRole::State && k->type == GgmlType::F16 && k->rows == p.scenario.kv_slots());
        CHECK(m && m->role == TensorRole::State && m->rows == hp.n_head_kv && m->cols == int64_t{hp.head_dim} * hp.head_dim);
    }
    // Per-layer slices sit one after another in their region.
    CHECK(find(g, "kv.v.1")->offset == find(g, "kv.v.0")->offset + find(g, "kv.v.0")->bytes());
    int quantized = 0;
    for (const Tensor& t : g.tensors) {
        if (t.role != TensorRole::Weight) continue;
        CHECK(t.name.find(".weight") != std::string::npos || t.name.find(".bias") != std::string::npos);
        if (t.type == GgmlType::Q4_K) {
            ++quantized;
            CHECK(t.quantized && t.quant.block_size == 256 && t.quant.block_bytes == 144);
        }
    }
    CHECK(quantized > 0);
    // The fold touches only the caches, the memory, its scratch and its step inputs.
    for (const Tensor& t : p.fold.tensors) {
        CHECK(t.name.rfind("kv.", 0) == 0 || t.name.rfind("mem.", 0) == 0 || t.name == "fold" ||
              t.name == "step.fold_slot" || t.name == "step.fold_rope");
    }
    // Step inputs: sized by the graph's rows (the regions by L), read-only to every op.
    for (const Graph* gr : {&p.prefill, &p.decode}) {
        for (const char* n : {"step.pos", "step.kv_slot", "step.rope", "step.sink_rope"}) {
            const Tensor* t = find(*gr, n);
            CHECK(t && t->role == TensorRole::StepInput && t->rows == gr->max_tokens);
        }
        CHECK(find(*gr, "step.pos")->type == GgmlType::I64 && find(*gr, "step.kv_slot")->type == GgmlType::I32);
        CHECK(find(*gr, "step.rope")->cols == hp.n_rot);
        CHECK(find(*gr, "step.visible") && find(*gr, "step.visible")->cols == kVisibleInts);
        CHECK(find(*gr, "step.logit_row") && find(*gr, "step.logit_row")->rows == 1);
        CHECK(!find(*gr, "step.fold_slot"));
    }
    CHECK(find(p.fold, "step.fold_slot")->rows == 7 && find(p.fold, "step.fold_rope")->rows == 7);
    CHECK(p.pool.region("step.rope").size == 7u * uint64_t(hp.n_rot) * 4);
    // Every op that needs a per-step fact names its input.
    for (const Op& op : g.ops) {
        if (op.kind == OpKind::Rope) CHECK(op.rope_rows.id == find(g, "step.rope")->id);
        if (op.kind == OpKind::KvStore) CHECK(op.slots.id == find(g, "step.kv_slot")->id);
        if (op.kind == OpKind::SegmentAttention) {
            CHECK(op.positions.valid() && op.slots.valid() && op.visible.valid());
            CHECK(op.rope_rows.id == find(g, "step.sink_rope")->id);
        }
        if (op.output_head) CHECK(op.logit_row.id == find(g, "step.logit_row")->id);
    }
}

TEST(in_place_updates_are_explicit) {
    auto model = Model::load(check::testdata("models/tiny-llama-f32.gguf"));
    const Plan p = make_plan(model, scenario(true));
    const Graph& g = p.prefill;
    const int32_t x = find(g, "x")->id, gate = find(g, "ffn_gate")->id;
    int acc = 0, swiglu = 0, kv = 0;
    for (const Op& op : g.ops) {
        auto has = [](const std::vector<int32_t>& v, int32_t id) { return std::find(v.begin(), v.end(), id) != v.end(); };
        if (op.kind == OpKind::MatMul && op.accumulate) {
            acc += has(op.updates, x) && !has(op.writes, x) && !has(op.reads, x);
        }
        if (op.kind == OpKind::SwiGlu) swiglu += has(op.updates, gate);
        if (op.kind == OpKind::KvStore) kv += has(op.updates, op.dst.id) && has(op.updates, op.src2.id);
    }
    const int32_t layers = model->hparams().n_layer;
    CHECK(acc == 2 * layers);
    CHECK(swiglu == layers);
    CHECK(kv == layers);
    // The fold reads the caches and its step inputs (slots, un-RoPE rows), updates M and z.
    for (const Op& op : p.fold.ops) CHECK(op.updates.size() == 2 && op.reads.size() == 4);
}

TEST(checker_catches_broken_graphs) {
    auto model = Model::load(check::testdata("models/tiny-llama-f32.gguf"));
    const Plan p = make_plan(model, scenario(true));
    auto broken = [&](auto edit) {
        Graph g = p.prefill;
        edit(g);
        return !check_graph(g, p.pool).empty();
    };
    CHECK(!check_graph(p.prefill, p.pool).empty() == false);
    // An op reading an activation no earlier op wrote: the first Q projection removed.
    CHECK(broken([](Graph& g) {
        for (size_t i = 0; i < g.ops.size(); ++i) {
            if (g.ops[i].kind == OpKind::MatMul) {
                g.ops.erase(g.ops.begin() + long(i));
                return;
            }
        }
    }));
    // An operand missing from the op's lists (a hidden dependency).
    CHECK(broken([](Graph& g) { g.ops[1].reads.clear(); }));
    // A ref that is not its table entry.
    CHECK(broken([](Graph& g) { g.ops[1].src1.offset += 64; }));
    // Writing a weight.
    CHECK(broken([](Graph& g) { g.ops[0].writes.push_back(g.ops[0].src0.id); }));
    // Two pool tensors sharing bytes.
    CHECK(broken([](Graph& g) {
        for (Tensor& t : g.tensors) {
            if (t.name == "xn") t.offset -= 64;
        }
    }));
}

TEST(describe_graph_lists_tensors_and_ops) {
    auto model = Model::load(check::testdata("models/tiny-llama-q8_0.gguf"));
    const Plan p = make_plan(model, scenario(true));
    const std::string s = describe_graph(p.decode);
    CHECK(s.find("graph decode: up to 1 tokens") == 0);
    for (const Tensor& t : p.decode.tensors) CHECK(s.find(" " + t.name + " ") != std::string::npos);
    CHECK(s.find("step_input") != std::string::npos && s.find("blocks of 32 in 34 bytes") != std::string::npos);
    CHECK(s.find("mat_mul (layer 0)  writes act_q #") != std::string::npos);
    CHECK(s.find("updates x #") != std::string::npos);
    CHECK(s.find("swiglu (layer 1)  updates ffn_gate #") != std::string::npos);
}
