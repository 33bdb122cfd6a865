// The activation collectors through the C ABI (importance matrix, then ranges). The imatrix: which matrices it watches, the rows it
// counts (padding never; the output head's one row per step unless all logits), and the
// sums themselves against an independent computation of layer 0's input from the weights.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "edgeinfinite/edgeinfinite.h"
#include "model.h"

namespace {

struct Run {
    ei_model* model = nullptr;
    ei_plan* plan = nullptr;
    ei_session* session = nullptr;
    void* pool = nullptr;

    Run(const std::string& path, int32_t L) {
        CHECK(ei_model_load(path.c_str(), &model) == EI_OK);
        const ei_scenario sc{sizeof(ei_scenario), L, 0, 4 * L, 0, 0, 0, 2, 1, nullptr, 0, 0, nullptr};  // full attention, f32 KV
        CHECK(ei_plan_create(model, &sc, &plan) == EI_OK);
        const uint64_t align = ei_plan_pool_alignment(plan), size = ei_plan_pool_size(plan);
        pool = std::aligned_alloc(align, (size + align - 1) / align * align);
        std::memset(pool, 0, size);
        CHECK(ei_session_create(model, plan, pool, size, &session) == EI_OK);
    }
    ~Run() {
        ei_session_free(session);
        ei_plan_free(plan);
        ei_model_free(model);
        std::free(pool);
    }

    struct Entry {
        std::string name;
        int64_t cols = 0, rows = 0;
        std::vector<float> sums;
    };
    std::vector<Entry> entries() const {
        std::vector<Entry> out;
        for (int32_t i = 0; i < ei_session_imatrix_count(session); ++i) {
            Entry e;
            const char* name = nullptr;
            CHECK(ei_session_imatrix_entry(session, i, &name, &e.cols, &e.rows, nullptr, 0) == EI_OK);
            e.name = name;
            e.sums.resize(static_cast<size_t>(e.cols));
            CHECK(ei_session_imatrix_entry(session, i, nullptr, nullptr, nullptr, e.sums.data(), e.cols) == EI_OK);
            out.push_back(std::move(e));
        }
        return out;
    }
};

std::vector<int32_t> some_tokens(int n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (i * 53 + 7) % 1000;
    return t;
}

const Run::Entry* find(const std::vector<Run::Entry>& es, const std::string& name) {
    for (const auto& e : es) {
        if (e.name == name) return &e;
    }
    return nullptr;
}

}  // namespace

TEST(imatrix_counts_valid_rows_and_sums_layer0_inputs) {
    const std::string path = check::testdata("models/tiny-llama-f32.gguf");
    Run r(path, 16);
    CHECK(ei_session_imatrix_count(r.session) == 0);
    CHECK(ei_session_imatrix_start(r.session, 0) == EI_OK);
    const int n = 37;  // 16 + 16 + 5: the last step has 11 padding rows
    std::vector<int32_t> tok = some_tokens(n);
    CHECK(ei_session_eval(r.session, tok.data(), n, nullptr) == EI_OK);
    std::vector<Run::Entry> es = r.entries();
    CHECK(es.size() == 4u * 7u);  // 4 layers x q k v o gate up down; no output head unless asked
    for (const auto& e : es) {
        CHECK(e.rows == n);
        CHECK(e.name.rfind("blk.", 0) == 0);
        for (float v : e.sums) CHECK(std::isfinite(v) && v >= 0);
    }
    // q, k, v read the same normed rows; so do gate and up.
    const auto *q = find(es, "blk.0.attn_q.weight"), *k = find(es, "blk.0.attn_k.weight"),
               *v = find(es, "blk.0.attn_v.weight");
    CHECK(q && k && v && q->sums == k->sums && q->sums == v->sums);
    CHECK(find(es, "blk.2.ffn_gate.weight")->sums == find(es, "blk.2.ffn_up.weight")->sums);
    CHECK(find(es, "blk.1.ffn_down.weight")->cols == 768);

    // Layer 0's q input, computed here from the weights: rmsnorm(token_embd[t]) * attn_norm.
    auto m = ei::Model::load(path);
    const int64_t d = m->hparams().n_embd;
    const float* emb = reinterpret_cast<const float*>(m->tok_embd()->data);
    const float* norm = reinterpret_cast<const float*>(m->layers()[0].attn_norm->data);
    CHECK(m->tok_embd()->type == 0 && m->layers()[0].attn_norm->type == 0);  // f32
    std::vector<double> want(static_cast<size_t>(d), 0.0);
    for (int32_t t : tok) {
        const float* x = emb + static_cast<int64_t>(t) * d;
        double ss = 0;
        for (int64_t j = 0; j < d; ++j) ss += double(x[j]) * x[j];
        const double scale = 1.0 / std::sqrt(ss / d + m->hparams().rms_eps);
        for (int64_t j = 0; j < d; ++j) {
            const double y = x[j] * scale * norm[j];
            want[static_cast<size_t>(j)] += y * y;
        }
    }
    double worst = 0;
    for (int64_t j = 0; j < d; ++j) {
        worst = std::max(worst, std::fabs(q->sums[static_cast<size_t>(j)] - want[static_cast<size_t>(j)]) /
                                    (want[static_cast<size_t>(j)] + 1e-30));
    }
    std::printf("layer 0 input sums: worst relative error %.3g\n", worst);
    CHECK(worst < 1e-5);

    // More tokens add up; a restart drops everything; stop detaches.
    CHECK(ei_session_eval(r.session, tok.data(), 3, nullptr) == EI_OK);
    CHECK(r.entries()[0].rows == n + 3);
    CHECK(ei_session_imatrix_start(r.session, 0) == EI_OK);
    CHECK(r.entries()[0].rows == 0);
    CHECK(ei_session_imatrix_stop(r.session) == EI_OK);
    CHECK(ei_session_imatrix_count(r.session) == 0);
    CHECK(ei_session_imatrix_entry(r.session, 0, nullptr, nullptr, nullptr, nullptr, 0) == EI_ERR_INVALID_ARGUMENT);
    CHECK(ei_session_eval(r.session, tok.data(), 3, nullptr) == EI_OK);
}

TEST(imatrix_output_head_rows_follow_the_logits_asked_for) {
    Run r(check::testdata("models/tiny-llama-f32.gguf"), 16);
    CHECK(ei_session_imatrix_start(r.session, 1) == EI_OK);
    const int n = 37;
    std::vector<int32_t> tok = some_tokens(n);
    CHECK(ei_session_eval(r.session, tok.data(), n, nullptr) == EI_OK);
    auto es = r.entries();
    CHECK(es.size() == 29u && es.back().name == "output.weight");
    CHECK(es.back().rows == 3);  // one row per step: only the last row's logits are computed
    CHECK(ei_session_reset(r.session) == EI_OK);
    CHECK(ei_session_imatrix_start(r.session, 1) == EI_OK);
    std::vector<float> logits(static_cast<size_t>(n) * 1024);
    CHECK(ei_session_eval(r.session, tok.data(), n, logits.data()) == EI_OK);
    es = r.entries();
    CHECK(es.back().rows == n);
    // The head reads the final norm's rows; with all rows they are n finite sums.
    for (float v : es.back().sums) CHECK(std::isfinite(v) && v > 0);
    // A too-small buffer is refused, not overrun.
    std::vector<float> small(10);
    CHECK(ei_session_imatrix_entry(r.session, 0, nullptr, nullptr, nullptr, small.data(), 10) == EI_ERR_INVALID_ARGUMENT);
    CHECK(ei_session_imatrix_start(nullptr, 0) == EI_ERR_INVALID_ARGUMENT);
}

// Activation ranges (ei calibrate) share the session's one observer slot with the imatrix.
TEST(ranges_record_exact_extremes_and_histogram_quantiles) {
    const std::string path = check::testdata("models/tiny-llama-f32.gguf");
    Run r(path, 16);
    CHECK(ei_session_ranges_start(r.session) == EI_OK);
    const int n = 37;
    std::vector<int32_t> tok = some_tokens(n);
    CHECK(ei_session_eval(r.session, tok.data(), n, nullptr) == EI_OK);
    const int32_t count = ei_session_ranges_count(r.session);
    // token_embd + 4 x (attn_norm q k v q_rope k_rope attn attn_output ffn_norm gate up swiglu down) + output_norm
    CHECK(count == 1 + 4 * 13 + 1);
    auto m = ei::Model::load(path);
    const int64_t d = m->hparams().n_embd;
    const float* emb = reinterpret_cast<const float*>(m->tok_embd()->data);
    // token_embd's range is the range of the embedding rows read, computed here.
    double lo = 1e30, hi = -1e30;
    std::vector<float> abs_values;
    for (int32_t t : tok) {
        for (int64_t j = 0; j < d; ++j) {
            const float v = emb[static_cast<int64_t>(t) * d + j];
            lo = std::min<double>(lo, v);
            hi = std::max<double>(hi, v);
            abs_values.push_back(std::fabs(v));
        }
    }
    std::sort(abs_values.begin(), abs_values.end());
    bool found = false;
    for (int32_t i = 0; i < count; ++i) {
        const char* name = nullptr;
        double mn = 0, mx = 0;
        uint64_t cnt = 0;
        const double qs[3] = {0.5, 0.99, 0.999};
        double aq[3] = {0, 0, 0};
        CHECK(ei_session_ranges_entry(r.session, i, &name, &mn, &mx, &cnt, qs, aq, 3) == EI_OK);
        CHECK(mn <= mx && std::isfinite(mn) && std::isfinite(mx) && cnt > 0);
        CHECK(aq[0] <= aq[1] && aq[1] <= aq[2] && aq[2] <= std::max(std::fabs(mn), std::fabs(mx)));
        if (std::string(name) == "token_embd") {
            found = true;
            CHECK(mn == lo && mx == hi);
            CHECK(cnt == static_cast<uint64_t>(n * d));  // padding rows excluded
            for (int k = 0; k < 3; ++k) {
                // The histogram's answer is the upper edge of the bin holding the exact quantile.
                const size_t idx = static_cast<size_t>(std::ceil(qs[k] * static_cast<double>(abs_values.size()))) - 1;
                const double exact = abs_values[idx];
                CHECK(aq[k] >= exact && aq[k] <= exact * 1.0219 + 1e-12);
            }
        }
    }
    CHECK(found);
    const double bad_q[1] = {1.5};
    double out[1];
    CHECK(ei_session_ranges_entry(r.session, 0, nullptr, nullptr, nullptr, nullptr, bad_q, out, 1) ==
          EI_ERR_INVALID_ARGUMENT);
    // Starting the imatrix replaces the ranges; stopping the ranges then leaves the imatrix alone.
    CHECK(ei_session_imatrix_start(r.session, 0) == EI_OK);
    CHECK(ei_session_ranges_count(r.session) == 0);
    CHECK(ei_session_ranges_stop(r.session) == EI_OK);
    CHECK(ei_session_eval(r.session, tok.data(), 5, nullptr) == EI_OK);
    CHECK(r.entries()[0].rows == 5);
}
