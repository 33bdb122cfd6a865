// ei npu-prepare end to end (backends/htp/npu_prepare.h, device_graphs.h): prepare a tiny
// model's quantization into a folder from a calibration text, then run htp-emulator sessions
// whose scenario's cache_dir is that folder. They must run the quantized graphs (their
// logits close to the float graphs' on held-out tokens, within a stated SQNR floor, and not
// equal to them), and a damaged parameters file must fail session creation with a message
// naming the file (never a silent float run).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "check.h"
#include "htp/device_graphs.h"
#include "htp/htp_emulator_backend.h"
#include "htp/npu_params.h"
#include "htp/npu_prepare.h"
#include "session.h"

using namespace ei;

namespace {

std::string temp_dir(const char* tag) {
    char t[] = "/tmp/ei-npuprep-XXXXXX";
    const char* d = mkdtemp(t);
    CHECK(d != nullptr);
    return std::string(d ? d : "/tmp") + "/" + tag;
}

bool exists(const std::string& p) { return std::ifstream(p).good(); }

std::string slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<int32_t> text(size_t n, int32_t seed, int32_t vocab) {
    std::vector<int32_t> t(n);
    for (size_t i = 0; i < n; ++i) t[i] = int32_t((uint64_t(i) * 7919 + uint64_t(seed) * 104729) % uint64_t(vocab - 3)) + 3;
    return t;
}

struct Run {
    std::vector<float> logits;  // every position's
    std::string mode;
    int64_t folded = 0;
};

// An htp-emulator session of plan with the scenario's cache_dir set to dir ("" : float).
Run run(const Plan& plan, const std::string& dir, const std::vector<int32_t>& tokens) {
    Scenario sc = plan.scenario;
    sc.cache_dir = dir;
    std::vector<uint8_t> pool(plan.pool.size + 64);
    uint8_t* base = pool.data() + (64 - reinterpret_cast<uintptr_t>(pool.data()) % 64) % 64;
    std::unique_ptr<Backend> be = htp::make_htp_emulator_backend(sc);
    Backend* raw = be.get();
    Session s(plan, base, plan.pool.size, std::move(be));
    Run r;
    r.mode = htp::device_graphs(*raw)->mode();
    s.plan_route(int64_t(tokens.size()));
    r.logits.resize(tokens.size() * size_t(s.n_vocab()));
    s.eval(tokens.data(), int32_t(tokens.size()), r.logits.data());
    r.folded = s.placement().memory;
    return r;
}

double sqnr_db(const std::vector<float>& ref, const std::vector<float>& got) {
    double s = 0, n = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        s += double(ref[i]) * ref[i];
        n += (double(ref[i]) - got[i]) * (double(ref[i]) - got[i]);
    }
    return n == 0 ? 999 : 10 * std::log10(s / n);
}

}  // namespace

// Floors: the tiny model's logits (every position) through the quantized graphs against its
// float graphs on held-out tokens (calibrated on others), through the memory route (folds).
// Measured 21.0 dB for 16a8w and 12.1 dB for 16a4w (21 of 29 weights int4) on x86-64; the
// floors leave room for other machines' float rounding while a broken encoding (a few dB,
// or garbage) fails. The tiny model has random weights: the trained evaluation model's
// figures are in the report of test/bench/npu_quality.sh.
TEST(npu_prepare_then_quantized_sessions) {
    auto model = Model::load(check::testdata("models/tiny-llama-f32.gguf"));
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 16;
    sc.n_batch = 8;
    sc.device = "htp-emulator";
    const Plan plan = make_plan(model, sc);
    const int32_t V = model->hparams().n_vocab;
    const std::vector<int32_t> calib = text(72, 1, V), held = text(40, 2, V);
    const Run ref = run(plan, "", held);
    CHECK(ref.mode == "float");
    CHECK(ref.folded > 0);

    const double floor_db[2] = {16.0, 8.0};
    for (int four = 0; four < 2; ++four) {
        const std::string dir = temp_dir(four ? "16a4w" : "16a8w");
        htp::NpuPrepareOptions o;
        o.weight_bits = four ? 4 : 8;
        o.samples = 2;
        const std::string report = htp::npu_prepare(plan, calib.data(), int64_t(calib.size()), dir, o);
        const std::string params = htp::npu_params_file(dir, model->fingerprint());
        CHECK(exists(params));
        for (const char* f : {"report.txt", "prefill.txt", "decode.txt", "fold.txt"}) CHECK(exists(dir + "/" + f));
        CHECK(slurp(dir + "/report.txt") == report);
        CHECK(report.find("fold ") != std::string::npos);  // the folds were observed
        CHECK(slurp(dir + "/decode.txt").find("UFIXED_POINT_16") != std::string::npos);

        const Run q = run(plan, dir, held);
        const double db = sqnr_db(ref.logits, q.logits);
        std::printf("  %s: held-out logits SQNR %.2f dB vs float (floor %.0f); mode: %s\n", four ? "16a4w" : "16a8w", db,
                    floor_db[four], q.mode.c_str());
        CHECK(q.mode.rfind(four ? "quantized 16a4w" : "quantized 16a8w", 0) == 0);
        CHECK(q.folded == ref.folded);
        CHECK(db >= floor_db[four]);
        CHECK(db < 100);  // quantized, not the float graphs
        if (four) CHECK(q.mode.find(" 0 of ") == std::string::npos);  // some weights went to int4

        // A damaged file fails session creation, naming the file and what is wrong.
        std::string bytes = slurp(params);
        bytes[bytes.size() / 2] = char(bytes[bytes.size() / 2] ^ 0x5a);
        std::ofstream(params, std::ios::binary | std::ios::trunc) << bytes;
        CHECK_THROWS(run(plan, dir, held), EI_ERR_FORMAT, params.c_str());
        CHECK_THROWS(run(plan, dir, held), EI_ERR_FORMAT, "checksum");
    }
}

// A calibration text too short to run both prefill forms, and a memory scenario whose text
// never folds, are refused before anything is written.
TEST(npu_prepare_refuses_short_texts) {
    auto model = Model::load(check::testdata("models/tiny-llama-f32.gguf"));
    Scenario sc;
    sc.n_sink = 4;
    sc.n_window = 64;
    sc.n_batch = 8;
    const Plan plan = make_plan(model, sc);
    const std::vector<int32_t> t = text(40, 3, model->hparams().n_vocab);
    const std::string dir = temp_dir("short");
    CHECK_THROWS(htp::npu_prepare(plan, t.data(), 12, dir, {}), EI_ERR_INVALID_ARGUMENT, "too short");
    CHECK_THROWS(htp::npu_prepare(plan, t.data(), 40, dir, {}), EI_ERR_INVALID_ARGUMENT, "fold");
    CHECK(!exists(htp::npu_params_file(dir, model->fingerprint())));
    htp::NpuPrepareOptions bad;
    bad.weight_bits = 6;
    CHECK_THROWS(htp::npu_prepare(plan, t.data(), 40, dir, bad), EI_ERR_INVALID_ARGUMENT, "bits");
}
