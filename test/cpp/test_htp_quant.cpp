// The NPU quantization (backends/htp: fixed_point, weight_quant, quant_kernels,
// quantize_graph): requantization rounding ties and saturation; weight quantizers on real
// GGUF weights (F32, and Q8_0/Q4_0 sources); every fixed-point kernel against the float
// reference on its dequantized inputs, on random data of odd sizes, within half an output
// step (the kernel's result is the correctly rounded one; 1e-3 of a step is left for the
// float reference's own rounding); and the graph pass on a hand-built transformer block
// made of the evaluation model's layer-0 weights: it validates and its outputs stay above
// the stated SQNR floors for 16a8w and 16a4w on held-out inputs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>

#include "check.h"
#include "error.h"
#include "gguf.h"
#include "htp/fixed_point.h"
#include "htp/quantize_graph.h"
#include "htp/weight_quant.h"
#include "htp_test_executor.h"

using namespace ei::htp;
using namespace htp_test;

namespace {

constexpr double kHalfStep = 0.5 + 1e-3;

std::vector<float> randn(std::mt19937& rng, size_t n, float scale, float mean = 0) {
    std::normal_distribution<float> nd(mean, scale);
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    return v;
}
std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
}

uint64_t count(const std::vector<uint32_t>& d) {
    uint64_t n = 1;
    for (uint32_t x : d) n *= x;
    return n;
}

Encoding enc_of(const std::vector<float>& v, DType t) {
    float lo = 0, hi = 0;
    for (float x : v) lo = std::min(lo, x), hi = std::max(hi, x);
    return fx::range_encoding(lo, hi, t);
}

// One op input for the kernel checks: real values, quantized per tensor to dt (or Int32).
struct In {
    std::vector<uint32_t> dims;
    std::vector<float> v;
    DType dt = DType::UFixed16;
    std::vector<int32_t> idx;  // dt == Int32
    In(std::vector<uint32_t> d, std::vector<float> values, DType t = DType::UFixed16)
        : dims(std::move(d)), v(std::move(values)), dt(t) {}
    In(std::vector<uint32_t> d, std::vector<int32_t> indices) : dims(std::move(d)), dt(DType::Int32), idx(std::move(indices)) {}
};

// Runs op `t` twice: the fixed-point kernel on inputs quantized to their types, and the
// float reference on the dequantized values of those same inputs; the output is quantized
// to out_dt with the encoding of the reference result's range (or `out_enc` when given).
// Returns the largest error of the kernel's output in output steps, against the reference
// clamped to the output's representable range.
double op_error_steps(OpType t, const std::vector<Param>& params, const std::vector<In>& ins,
                      const std::vector<uint32_t>& out_dims, DType out_dt, const Encoding* out_enc = nullptr,
                      std::vector<int32_t>* q_out = nullptr) {
    Builder fb, qb;
    std::map<std::string, std::vector<uint8_t>> fin, qin;
    std::vector<uint32_t> fids, qids;
    for (size_t k = 0; k < ins.size(); ++k) {
        const std::string name = "in" + std::to_string(k);
        if (ins[k].dt == DType::Int32) {
            fids.push_back(fb.add(name, TensorKind::AppWrite, DType::Int32, ins[k].dims, IoRole::TokenIds));
            qids.push_back(qb.add(name, TensorKind::AppWrite, DType::Int32, ins[k].dims, IoRole::TokenIds));
            fin[name] = qin[name] = bytes_of(ins[k].idx);
            continue;
        }
        const Encoding e = enc_of(ins[k].v, ins[k].dt);
        std::vector<float> deq(ins[k].v.size());
        std::vector<uint8_t> qbytes(ins[k].v.size() * dtype_bytes(ins[k].dt));
        for (size_t i = 0; i < deq.size(); ++i) {
            const int32_t q = fx::quantize(ins[k].v[i], e.scale, e.offset, ins[k].dt);
            fx::store_q(qbytes.data(), ins[k].dt, i, q);
            deq[i] = fx::dequantize(q, e.scale, e.offset);
        }
        fids.push_back(fb.add(name, TensorKind::AppWrite, DType::Float32, ins[k].dims, IoRole::AttnMask));
        qids.push_back(qb.add(name, TensorKind::AppWrite, ins[k].dt, ins[k].dims, IoRole::AttnMask));
        qb.g.tensors.back().enc = e;
        fin[name] = bytes_of(deq);
        qin[name] = qbytes;
    }
    const uint32_t fo = fb.add("out", TensorKind::AppRead, DType::Float32, out_dims, IoRole::Logits);
    fb.node("op", t, fids, {fo}).params = params;
    Run fr;
    execute(fb.g, fin, fr);
    const float* ref = fr.b.at<float>(fo);
    const uint64_t n = count(out_dims);
    const Encoding oe = out_enc ? *out_enc : enc_of(std::vector<float>(ref, ref + n), out_dt);
    const uint32_t qo = qb.add("out", TensorKind::AppRead, out_dt, out_dims, IoRole::Logits);
    qb.g.tensors.back().enc = oe;
    qb.node("op", t, qids, {qo}).params = params;
    qb.g.validate();
    Run qr;
    execute(qb.g, qin, qr);
    const double lo = fx::dequantize(fx::qmin(out_dt), oe.scale, oe.offset);
    const double hi = fx::dequantize(fx::qmax(out_dt), oe.scale, oe.offset);
    double worst = 0;
    if (q_out) q_out->clear();
    for (uint64_t i = 0; i < n; ++i) {
        const int32_t q = fx::load_q(qr.b.ptr[qo], out_dt, i);
        if (q_out) q_out->push_back(q);
        const double r = std::min(hi, std::max(lo, static_cast<double>(ref[i])));
        worst = std::max(worst, std::fabs(fx::dequantize(q, oe.scale, oe.offset) - r) / oe.scale);
    }
    return worst;
}

Param axis(double a) { return scalar_param("axis", Param::Kind::Int32, a); }

}  // namespace

// ---- fixed point ----

TEST(requantization_rounds_ties_up_once_and_saturates) {
    const fx::Multiplier half = fx::make_multiplier(0.5);
    CHECK_EQ(fx::apply(3, half), 2);    // 1.5 -> 2
    CHECK_EQ(fx::apply(-3, half), -1);  // -1.5 -> -1 (ties toward +inf, as vasr:rnd)
    CHECK_EQ(fx::apply(5, half), 3);
    CHECK_EQ(fx::apply(-5, half), -2);
    CHECK_EQ(fx::apply(4, half), 2);
    const fx::Multiplier q = fx::make_multiplier(0.25);
    CHECK_EQ(fx::apply(2, q), 1);
    CHECK_EQ(fx::apply(-2, q), 0);
    CHECK_EQ(fx::apply(1, q), 0);
    CHECK_EQ(fx::apply(-1, q), 0);
    // Saturation to each output type, after the offset.
    const fx::Multiplier one = fx::make_multiplier(1.0);
    CHECK_EQ(fx::requantize(70000, one, 0, DType::UFixed16), 65535);
    CHECK_EQ(fx::requantize(-5, one, 0, DType::UFixed16), 0);
    CHECK_EQ(fx::requantize(-5, one, -10, DType::UFixed16), 5);
    CHECK_EQ(fx::requantize(300, one, 0, DType::UFixed8), 255);
    CHECK_EQ(fx::requantize(-300, one, 0, DType::SFixed8), -128);
    CHECK_EQ(fx::requantize(int64_t{1} << 40, one, 0, DType::SFixed32), INT32_MAX);
    // Huge accumulators do not wrap (the product is formed in 128 bits).
    CHECK_EQ(fx::apply(INT64_MAX / 2, fx::make_multiplier(0.5)), INT64_MAX / 4 + 1);
    // The multiplier's precision and the single rounding, against exact rounding in double.
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> ex(-20, 8);
    std::uniform_int_distribution<int64_t> acc(-(int64_t{1} << 40), int64_t{1} << 40);
    for (int i = 0; i < 20000; ++i) {
        const double real = std::pow(2.0, ex(rng));
        const fx::Multiplier m = fx::make_multiplier(real);
        CHECK(m.m >= (int64_t{1} << 30) && m.m < (int64_t{1} << 31));
        CHECK(std::fabs(m.real() / real - 1) < std::ldexp(1.0, -30));
        const int64_t a = acc(rng);
        const double want = static_cast<double>(a) * m.real();  // exact enough: |a| < 2^41
        CHECK(std::fabs(static_cast<double>(fx::apply(a, m)) - std::floor(want + 0.5)) <= 1.0);
    }
    CHECK_EQ(fx::make_multiplier(0).m, 0);
    // Multipliers of 2^30 and more (no rounding left to do) and just below (shift 1 or 0).
    CHECK_EQ(fx::apply(3, fx::make_multiplier(std::ldexp(1.0, 40))), int64_t{3} << 40);
    CHECK_EQ(fx::apply(-3, fx::make_multiplier(std::ldexp(1.0, 30) - 1)), -3 * ((int64_t{1} << 30) - 1));
    CHECK_EQ(fx::apply(INT64_MAX / 2, fx::make_multiplier(std::ldexp(1.0, 40))), INT64_MAX);
    CHECK_EQ(fx::apply(-(int64_t{1} << 40), fx::make_multiplier(std::ldexp(1.0, 40))), INT64_MIN);
    CHECK_THROWS(fx::make_multiplier(-1), EI_ERR_INTERNAL, "multiplier");
    CHECK_THROWS(fx::make_multiplier(NAN), EI_ERR_INTERNAL, "multiplier");
}

TEST(quantize_rounds_ties_up_and_keeps_zero_exact) {
    CHECK_EQ(fx::quantize(0.5f, 1.0f, 0, DType::UFixed8), 1);
    CHECK_EQ(fx::quantize(-0.5f, 1.0f, -10, DType::UFixed8), 10);  // round(-0.5) = 0, minus offset
    CHECK_EQ(fx::quantize(-1.5f, 1.0f, -10, DType::UFixed8), 9);
    CHECK_EQ(fx::quantize(1e9f, 1.0f, 0, DType::UFixed8), 255);
    CHECK_EQ(fx::quantize(-1e9f, 1.0f, -3, DType::UFixed16), 0);
    CHECK_EQ(fx::quantize(NAN, 1.0f, 0, DType::UFixed16), 0);
    CHECK_EQ(fx::quantize(100.f, 1.0f, 0, DType::SFixed4), 7);
    CHECK_EQ(fx::quantize(-100.f, 1.0f, 0, DType::SFixed4), -8);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-50, 50);
    for (int i = 0; i < 2000; ++i) {
        float lo = u(rng), hi = u(rng);
        if (lo > hi) std::swap(lo, hi);
        for (DType t : {DType::UFixed16, DType::UFixed8}) {
            const Encoding e = fx::range_encoding(lo, hi, t);
            CHECK(e.scale > 0 && e.offset <= 0 && e.offset >= -fx::qmax(t));
            // Zero is exact, and both ends are within half a step of the grid's ends.
            CHECK_EQ(fx::dequantize(fx::quantize(0.0f, e.scale, e.offset, t), e.scale, e.offset), 0.0f);
            const double glo = fx::dequantize(0, e.scale, e.offset), ghi = fx::dequantize(fx::qmax(t), e.scale, e.offset);
            CHECK(glo <= std::min(0.0f, lo) + 0.5 * e.scale + 1e-6);
            CHECK(ghi >= std::max(0.0f, hi) - 0.5 * e.scale - 1e-6);
        }
    }
    CHECK_THROWS(fx::range_encoding(1, 0, DType::UFixed16), EI_ERR_INVALID_ARGUMENT, "impossible range");
    CHECK_THROWS(fx::range_encoding(0, INFINITY, DType::UFixed16), EI_ERR_INVALID_ARGUMENT, "impossible range");
    CHECK_THROWS(fx::range_encoding(0, 1, DType::SFixed8), EI_ERR_INTERNAL, "not an unsigned");
}

// ---- weights ----

TEST(weight_quantizers_on_random_rows) {
    std::mt19937 rng(11);
    const int64_t rows = 37, cols = 192;
    std::vector<float> w = randn(rng, rows * cols, 0.02f);
    for (int64_t r = 0; r < rows; ++r) w[r * cols + (r * 7) % cols] *= 9;  // an outlier per row
    for (int64_t c = 0; c < cols; ++c) w[5 * cols + c] = 0;                 // an all-zero row
    const QuantizedWeight q8 = quantize_int8_per_channel(w.data(), rows, cols);
    const auto d8 = dequantize_weight(q8);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const int8_t q = static_cast<int8_t>(q8.data[r * cols + c]);
            CHECK(q >= -127 && q <= 127);
            CHECK(std::fabs(d8[r * cols + c] - w[r * cols + c]) <= 0.5f * q8.enc.scales[r] * 1.0001f);
        }
    CHECK(q8.sqnr_db > 30);
    CHECK_EQ(q8.packed_bytes, static_cast<uint64_t>(rows * cols + 4 * rows));
    for (int bs : {32, 64})
        for (int bits : {4, 8}) {
            const QuantizedWeight q4 = quantize_int4_blockwise(w.data(), rows, cols, bs, bits);
            const int64_t nb = cols / bs;
            CHECK_EQ(q4.enc.block_scales.size(), static_cast<size_t>(rows * nb));
            for (uint8_t m : q4.enc.block_scales) CHECK(m < (1u << bits));
            for (uint8_t v : q4.data) CHECK(static_cast<int8_t>(v) >= -8 && static_cast<int8_t>(v) <= 7);
            std::printf("random rows int4 block %d, %d-bit block scales: %.2f dB (int8 %.2f dB)\n", bs, bits, q4.sqnr_db,
                        q8.sqnr_db);
            CHECK(q4.sqnr_db > 12);
            CHECK(q4.sqnr_db < q8.sqnr_db);
            CHECK_EQ(q4.packed_bytes, static_cast<uint64_t>(rows * cols / 2 + 4 * rows + rows * nb * bits / 8));
        }
    // 8-bit block scales are finer than 4-bit ones.
    CHECK(quantize_int4_blockwise(w.data(), rows, cols, 32, 8).sqnr_db >=
          quantize_int4_blockwise(w.data(), rows, cols, 32, 4).sqnr_db - 0.05);
    CHECK_THROWS(quantize_int4_blockwise(w.data(), rows, 96 + 16, 32, 4), EI_ERR_INVALID_ARGUMENT, "multiple of the block");
    CHECK_THROWS(quantize_int4_blockwise(w.data(), rows, cols, 48, 4), EI_ERR_INVALID_ARGUMENT, "block size 48");
    CHECK_THROWS(quantize_int4_blockwise(w.data(), rows, cols, 32, 6), EI_ERR_INVALID_ARGUMENT, "block scale bits 6");
    w[3] = NAN;
    CHECK_THROWS(quantize_int8_per_channel(w.data(), rows, cols), EI_ERR_INVALID_ARGUMENT, "non-finite");
}

TEST(weight_quantizers_on_gguf_weights) {
    // F32 source: the evaluation model. Q8_0 / Q4_0 / Q4_K sources: the SQNR is against their
    // dequantized values (what the runtime computes with), not the original float weights.
    struct Src {
        const char* file;
        double int8_floor, int4_floor;
    };
    const Src srcs[] = {{"eval/evalmodel-f32.gguf", 40, 19},
                        {"models/tiny-llama-f16.gguf", 40, 19},
                        {"models/tiny-llama-q8_0.gguf", 40, 19},
                        {"models/tiny-llama-q4_0.gguf", 40, 21},
                        {"models/tiny-llama-q4_k_m.gguf", 40, 19}};
    for (const Src& s : srcs) {
        auto f = ei::GgufFile::open(check::testdata(s.file));
        for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.1.ffn_up.weight"}) {
            const ei::TensorInfo* t = f->tensor(name);
            CHECK(t != nullptr);
            if (!t) continue;
            const auto type = static_cast<ei::GgmlType>(t->type);
            const auto w = dequantize_gguf(type, t->data, t->rows(), t->ne[0]);
            const auto q8 = quantize_int8_per_channel(w.data(), t->rows(), t->ne[0]);
            const auto q4 = quantize_int4_blockwise(w.data(), t->rows(), t->ne[0], 32, 4);
            const auto q4b = quantize_int4_blockwise(w.data(), t->rows(), t->ne[0], 64, 8);
            std::printf("%s %s (%s%s): int8/channel %.2f dB, int4/32 4-bit %.2f dB, int4/64 8-bit %.2f dB\n", s.file, name,
                        ei::type_traits(type).name, gguf_type_is_quantized(type) ? ", already quantized" : "", q8.sqnr_db,
                        q4.sqnr_db, q4b.sqnr_db);
            CHECK(q8.sqnr_db > s.int8_floor);
            CHECK(q4.sqnr_db > s.int4_floor);
            CHECK(q4b.sqnr_db > s.int4_floor);
        }
    }
    CHECK(gguf_type_is_quantized(ei::GgmlType::Q4_0));
    CHECK(!gguf_type_is_quantized(ei::GgmlType::F16));
    std::vector<uint8_t> junk(64);
    CHECK_THROWS(dequantize_gguf(ei::GgmlType::Q8_0, junk.data(), 1, 33), EI_ERR_INVALID_ARGUMENT, "not a multiple");
    CHECK_THROWS(dequantize_gguf(ei::GgmlType::IQ2_XXS, junk.data(), 1, 256), EI_ERR_UNSUPPORTED, "cannot be dequantized");
}

// ---- kernels ----

namespace {

// FullyConnected x [rows, K] (UFixed16) with a quantized weight and an SFixed32 bias,
// against the float product of the dequantized operands. Returns the worst error in
// output steps; `narrow` shrinks the output range so results saturate.
double fc_error_steps(const QuantizedWeight& qw, int rows, bool bias, bool narrow, int* saturated = nullptr) {
    std::mt19937 rng(static_cast<uint32_t>(qw.cols * 31 + rows));
    const uint32_t N = static_cast<uint32_t>(qw.rows), K = static_cast<uint32_t>(qw.cols);
    const std::vector<float> x = randn(rng, static_cast<size_t>(rows) * K, 1.5f, 0.3f);
    const std::vector<float> bv = randn(rng, N, 0.2f);
    const Encoding xe = enc_of(x, DType::UFixed16);
    std::vector<uint8_t> xq(x.size() * 2);
    std::vector<float> xd(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        const int32_t q = fx::quantize(x[i], xe.scale, xe.offset, DType::UFixed16);
        fx::store_q(xq.data(), DType::UFixed16, i, q);
        xd[i] = fx::dequantize(q, xe.scale, xe.offset);
    }
    const std::vector<float> wd = dequantize_weight(qw);
    // Float reference, with the bias as the kernel sees it (rounded to the accumulator's grid).
    std::vector<int32_t> bq(N);
    std::vector<float> bscale(N);
    std::vector<double> ref(static_cast<size_t>(rows) * N);
    for (uint32_t c = 0; c < N; ++c) {
        bscale[c] = xe.scale * qw.enc.scales[c];
        bq[c] = static_cast<int32_t>(fx::round_half_up(bv[c] / bscale[c]));
    }
    float lo = 0, hi = 0;
    for (int r = 0; r < rows; ++r)
        for (uint32_t c = 0; c < N; ++c) {
            double acc = bias ? static_cast<double>(bscale[c]) * bq[c] : 0.0;
            for (uint32_t k = 0; k < K; ++k) acc += static_cast<double>(xd[r * K + k]) * wd[c * K + k];
            ref[r * N + c] = acc;
            lo = std::min(lo, static_cast<float>(acc));
            hi = std::max(hi, static_cast<float>(acc));
        }
    if (narrow) lo *= 0.5f, hi *= 0.5f;
    const Encoding ye = fx::range_encoding(lo, hi, DType::UFixed16);
    Builder b;
    const uint32_t xi = b.add("x", TensorKind::AppWrite, DType::UFixed16, {static_cast<uint32_t>(rows), K}, IoRole::AttnMask);
    b.g.tensors[xi].enc = xe;
    const uint32_t wi = b.add("w", TensorKind::Static, qw.dtype, {N, K});
    b.g.tensors[wi].enc = qw.enc;
    b.g.tensors[wi].data = std::make_shared<std::vector<uint8_t>>(qw.data);
    std::vector<uint32_t> in = {xi, wi};
    if (bias) {
        const uint32_t bi = b.add("b", TensorKind::Static, DType::SFixed32, {N});
        b.g.tensors[bi].enc.kind = Encoding::Kind::PerChannel;
        b.g.tensors[bi].enc.scales = bscale;
        b.g.tensors[bi].enc.offsets.assign(N, 0);
        b.g.tensors[bi].data = std::make_shared<std::vector<uint8_t>>(bytes_of(bq));
        in.push_back(bi);
    }
    const uint32_t yi = b.add("y", TensorKind::AppRead, DType::UFixed16, {static_cast<uint32_t>(rows), N}, IoRole::Logits);
    b.g.tensors[yi].enc = ye;
    b.node("fc", OpType::FullyConnected, in, {yi});
    b.g.validate();
    Run r;
    execute(b.g, {{"x", xq}}, r);
    const double glo = fx::dequantize(0, ye.scale, ye.offset), ghi = fx::dequantize(65535, ye.scale, ye.offset);
    double worst = 0;
    int sat = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const int32_t q = fx::load_q(r.b.ptr[yi], DType::UFixed16, i);
        if (ref[i] > ghi || ref[i] < glo) {
            ++sat;
            CHECK_EQ(q, ref[i] > ghi ? 65535 : 0);
        }
        const double want = std::min(ghi, std::max(glo, ref[i]));
        worst = std::max(worst, std::fabs(fx::dequantize(q, ye.scale, ye.offset) - want) / ye.scale);
    }
    if (saturated) *saturated = sat;
    return worst;
}

}  // namespace

TEST(fully_connected_int8_and_int4_vs_float) {
    std::mt19937 rng(5);
    // int8 per channel, odd sizes, with and without bias.
    for (uint32_t K : {97u, 333u}) {
        const auto w = randn(rng, 13 * K, 0.05f);
        const auto q = quantize_int8_per_channel(w.data(), 13, K);
        CHECK(fc_error_steps(q, 7, true, false) <= kHalfStep);
        CHECK(fc_error_steps(q, 3, false, false) <= kHalfStep);
    }
    // int4 block-wise, both block sizes and block-scale widths.
    for (int bs : {32, 64})
        for (int bits : {4, 8}) {
            const uint32_t K = static_cast<uint32_t>(bs * 5);
            const auto w = randn(rng, 11 * K, 0.05f);
            const auto q = quantize_int4_blockwise(w.data(), 11, K, bs, bits);
            CHECK(fc_error_steps(q, 5, true, false) <= kHalfStep);
        }
    // A narrow output range: the results beyond it saturate to 0 / 65535 exactly.
    const auto w = randn(rng, 9 * 64, 0.05f);
    int sat = 0;
    CHECK(fc_error_steps(quantize_int8_per_channel(w.data(), 9, 64), 6, true, true, &sat) <= kHalfStep);
    CHECK(sat > 0);
    // Worst case accumulation (every activation at 65535, every weight at -127) over a long
    // row stays exact: the byte-plane bound, not int32, limits K.
    {
        const uint32_t K = 4096;
        std::vector<float> wf(2 * K, -1.0f);
        const auto q = quantize_int8_per_channel(wf.data(), 2, K);
        Builder b;
        const uint32_t xi = b.add("x", TensorKind::AppWrite, DType::UFixed16, {1, K}, IoRole::AttnMask);
        b.g.tensors[xi].enc = fx::range_encoding(0, 1, DType::UFixed16);
        const uint32_t wi = b.add("w", TensorKind::Static, DType::SFixed8, {2, K});
        b.g.tensors[wi].enc = q.enc;
        b.g.tensors[wi].data = std::make_shared<std::vector<uint8_t>>(q.data);
        const uint32_t yi = b.add("y", TensorKind::AppRead, DType::UFixed16, {1, 2}, IoRole::Logits);
        b.g.tensors[yi].enc = fx::range_encoding(-static_cast<float>(K), 0, DType::UFixed16);
        b.node("fc", OpType::FullyConnected, {xi, wi}, {yi});
        std::vector<uint8_t> xq(2 * K, 0xFF);  // 65535: real 1.0
        Run r;
        execute(b.g, {{"x", xq}}, r);
        const Encoding& ye = b.g.tensors[yi].enc;
        CHECK_NEAR(fx::dequantize(fx::load_q(r.b.ptr[yi], DType::UFixed16, 0), ye.scale, ye.offset), -1.0 * K, ye.scale);
    }
    // Beyond the exact bound the kernel refuses instead of wrapping.
    {
        const uint32_t K = 65856;  // a multiple of 32 above 65793
        Builder b;
        const uint32_t xi = b.add("x", TensorKind::AppWrite, DType::UFixed16, {1, K}, IoRole::AttnMask);
        b.g.tensors[xi].enc = fx::range_encoding(0, 1, DType::UFixed16);
        const uint32_t wi = b.add("w", TensorKind::Static, DType::SFixed8, {1, K});
        b.g.tensors[wi].enc.kind = Encoding::Kind::PerChannel;
        b.g.tensors[wi].enc.scales = {1.0f};
        b.g.tensors[wi].data = std::make_shared<std::vector<uint8_t>>(K, 1);
        const uint32_t yi = b.add("y", TensorKind::AppRead, DType::UFixed16, {1, 1}, IoRole::Logits);
        b.g.tensors[yi].enc = fx::range_encoding(0, 1, DType::UFixed16);
        b.node("fc", OpType::FullyConnected, {xi, wi}, {yi});
        Run r;
        CHECK_THROWS(execute(b.g, {{"x", std::vector<uint8_t>(2 * K, 0)}}, r), EI_ERR_UNSUPPORTED, "exact");
    }
}

TEST(matmul_uint16_and_uint8_kv_vs_float) {
    std::mt19937 rng(9);
    const Param t1 = scalar_param("transpose_in1", Param::Kind::Bool, 1);
    // Scores: q [3, 5, 19] x k^T with k [3, 7, 19] (k from an 8-bit cache).
    CHECK(op_error_steps(OpType::MatMul, {t1},
                         {{{3, 5, 19}, randn(rng, 3 * 5 * 19, 1.0f)}, {{3, 7, 19}, randn(rng, 3 * 7 * 19, 1.0f), DType::UFixed8}},
                         {3, 5, 7}, DType::UFixed16) <= kHalfStep);
    // Probabilities x V: p [5, 9] (UFixed16, [0, 1]) x v [9, 11] (UFixed8).
    CHECK(op_error_steps(OpType::MatMul, {}, {{{5, 9}, uniform(rng, 45, 0, 1)}, {{9, 11}, randn(rng, 99, 2.0f), DType::UFixed8}},
                         {5, 11}, DType::UFixed16) <= kHalfStep);
    // Both UFixed16, transpose_in0.
    CHECK(op_error_steps(OpType::MatMul, {scalar_param("transpose_in0", Param::Kind::Bool, 1)},
                         {{{13, 6}, randn(rng, 78, 1.0f)}, {{13, 4}, randn(rng, 52, 1.0f)}}, {6, 4}, DType::UFixed16) <= kHalfStep);
    // 16x16 byte planes stay exact in 32 bits up to K = 33 024; beyond, the kernel refuses.
    CHECK(op_error_steps(OpType::MatMul, {}, {{{1, 33024}, uniform(rng, 33024, 0, 1)}, {{33024, 1}, uniform(rng, 33024, 0, 1)}},
                         {1, 1}, DType::UFixed16) <= kHalfStep);
    CHECK_THROWS(op_error_steps(OpType::MatMul, {}, {{{1, 33026}, uniform(rng, 33026, 0, 1)}, {{33026, 1}, uniform(rng, 33026, 0, 1)}},
                                {1, 1}, DType::UFixed16),
                 EI_ERR_UNSUPPORTED, "byte-plane");
}

TEST(elementwise_kernels_vs_float) {
    std::mt19937 rng(13);
    const std::vector<uint32_t> od = {2, 5, 7};
    for (OpType t : {OpType::ElementWiseAdd, OpType::ElementWiseSubtract, OpType::ElementWiseMultiply}) {
        CHECK(op_error_steps(t, {}, {{od, randn(rng, 70, 2.0f)}, {{5, 1}, randn(rng, 5, 1.0f)}}, od, DType::UFixed16) <= kHalfStep);
        CHECK(op_error_steps(t, {}, {{{7}, randn(rng, 7, 3.0f)}, {od, randn(rng, 70, 0.1f)}}, od, DType::UFixed16) <= kHalfStep);
        CHECK(op_error_steps(t, {}, {{od, randn(rng, 70, 2.0f)}, {od, randn(rng, 70, 2.0f), DType::UFixed8}}, od,
                             DType::UFixed8) <= kHalfStep);
    }
    CHECK(op_error_steps(OpType::ElementWiseDivide, {}, {{od, randn(rng, 70, 2.0f)}, {{5, 1}, uniform(rng, 5, 0.5f, 3.0f)}}, od,
                         DType::UFixed16) <= kHalfStep);
    CHECK(op_error_steps(OpType::ElementWiseNeg, {}, {{od, randn(rng, 70, 2.0f, 1.0f)}}, od, DType::UFixed16) <= kHalfStep);
    CHECK(op_error_steps(OpType::Sigmoid, {}, {{od, randn(rng, 70, 4.0f)}}, od, DType::UFixed16) <= kHalfStep);
    CHECK(op_error_steps(OpType::Elu, {scalar_param("alpha", Param::Kind::Float, 1.0)}, {{od, randn(rng, 70, 3.0f)}}, od,
                         DType::UFixed16) <= kHalfStep);
    // Broadcast shapes that do not match are refused.
    CHECK_THROWS(op_error_steps(OpType::ElementWiseAdd, {}, {{{3}, randn(rng, 3, 1.0f)}, {od, randn(rng, 70, 1.0f)}}, od,
                                DType::UFixed16),
                 EI_ERR_UNSUPPORTED, "broadcast");
}

TEST(softmax_rmsnorm_reducesum_vs_float) {
    std::mt19937 rng(17);
    // Softmax over masked scores: a third of the entries at -1e4 (the mask's large negative).
    std::vector<float> s = randn(rng, 5 * 23, 3.0f);
    for (size_t i = 0; i < s.size(); i += 3) s[i] -= 1e4f;
    Encoding pe = fx::range_encoding(0, 1, DType::UFixed16);
    CHECK(op_error_steps(OpType::Softmax, {axis(-1), scalar_param("beta", Param::Kind::Float, 1.0)}, {{{5, 23}, s}}, {5, 23},
                         DType::UFixed16, &pe) <= kHalfStep);
    // RmsNorm with gamma and beta, odd width.
    CHECK(op_error_steps(OpType::RmsNorm, {scalar_param("epsilon", Param::Kind::Float, 1e-5)},
                         {{{5, 37}, randn(rng, 185, 2.0f, 0.5f)}, {{37}, uniform(rng, 37, 0.2f, 2.0f)}, {{37}, randn(rng, 37, 0.1f)}},
                         {5, 37}, DType::UFixed16) <= kHalfStep);
    CHECK(op_error_steps(OpType::ReduceSum, {tensor_param("axes", {1}, {1}), scalar_param("keep_dims", Param::Kind::Bool, 1)},
                         {{{3, 11, 5}, randn(rng, 165, 1.0f)}}, {3, 1, 5}, DType::UFixed16) <= kHalfStep);
    CHECK(op_error_steps(OpType::ReduceSum, {tensor_param("axes", {0, 2}, {2})}, {{{3, 11, 5}, randn(rng, 165, 1.0f)}}, {1, 11, 1},
                         DType::UFixed16) <= kHalfStep);
}

TEST(data_movement_requantizes_between_encodings) {
    std::mt19937 rng(19);
    // Each op with an output encoding different from the input's (a wider range), so the
    // values are requantized, and once with the same encoding (a pure copy, bit-exact).
    const Encoding wide = fx::range_encoding(-9, 7, DType::UFixed16);
    CHECK(op_error_steps(OpType::Reshape, {}, {{{6, 5}, randn(rng, 30, 1.0f)}}, {5, 6}, DType::UFixed16, &wide) <= kHalfStep);
    CHECK(op_error_steps(OpType::Transpose, {tensor_param("perm", {2, 0, 1}, {3})}, {{{3, 4, 5}, randn(rng, 60, 1.0f)}}, {5, 3, 4},
                         DType::UFixed16, &wide) <= kHalfStep);
    CHECK(op_error_steps(OpType::StridedSlice, {tensor_param("ranges", {1, 6, 2, 0, 9, 3}, {2, 3})}, {{{7, 9}, randn(rng, 63, 1.0f)}},
                         {3, 3}, DType::UFixed16, &wide) <= kHalfStep);
    CHECK(op_error_steps(OpType::Concat, {axis(1)}, {{{3, 4}, randn(rng, 12, 1.0f)}, {{3, 5}, randn(rng, 15, 4.0f), DType::UFixed8}},
                         {3, 9}, DType::UFixed16, &wide) <= kHalfStep);
    CHECK(op_error_steps(OpType::Concat, {axis(0)}, {{{2, 4}, randn(rng, 8, 1.0f)}, {{3, 4}, randn(rng, 12, 1.0f)}}, {5, 4},
                         DType::UFixed16, &wide) <= kHalfStep);
    In idx({4}, std::vector<int32_t>{3, 0, 10, 3});
    CHECK(op_error_steps(OpType::Gather, {axis(0)}, {{{11, 6}, randn(rng, 66, 1.0f)}, idx}, {4, 6}, DType::UFixed16, &wide) <=
          kHalfStep);
    CHECK(op_error_steps(OpType::Gather, {axis(1)}, {{{2, 11}, randn(rng, 22, 1.0f)}, idx}, {2, 4}, DType::UFixed16, &wide) <=
          kHalfStep);
    // Same encoding: the copy keeps the codes.
    const std::vector<float> v = randn(rng, 30, 1.0f);
    const Encoding same = enc_of(v, DType::UFixed16);
    std::vector<int32_t> got;
    CHECK(op_error_steps(OpType::Reshape, {}, {{{6, 5}, v}}, {30}, DType::UFixed16, &same, &got) <= kHalfStep);
    for (size_t i = 0; i < v.size(); ++i) CHECK_EQ(got[i], fx::quantize(v[i], same.scale, same.offset, DType::UFixed16));
    In bad({1}, std::vector<int32_t>{11});
    CHECK_THROWS(op_error_steps(OpType::Gather, {axis(0)}, {{{11, 6}, randn(rng, 66, 1.0f)}, bad}, {1, 6}, DType::UFixed16, &wide),
                 EI_ERR_UNSUPPORTED, "index 11");
}

TEST(convert_float_fixed_and_fixed_fixed) {
    std::mt19937 rng(23);
    const std::vector<float> v = randn(rng, 41, 2.0f);
    // Float -> UFixed16 -> UFixed8 -> Float: each step within half a step of its grid.
    Builder b;
    const uint32_t f = b.add("f", TensorKind::AppWrite, DType::Float32, {41}, IoRole::AttnMask);
    const uint32_t a = b.add("a", TensorKind::Native, DType::UFixed16, {41});
    b.g.tensors[a].enc = enc_of(v, DType::UFixed16);
    const uint32_t c = b.add("c", TensorKind::Native, DType::UFixed8, {41});
    b.g.tensors[c].enc = enc_of(v, DType::UFixed8);
    const uint32_t o = b.add("o", TensorKind::AppRead, DType::Float32, {41}, IoRole::Logits);
    b.node("c1", OpType::Convert, {f}, {a});
    b.node("c2", OpType::Convert, {a}, {c});
    b.node("c3", OpType::Convert, {c}, {o});
    b.g.validate();
    Run r;
    execute(b.g, {{"f", bytes_of(v)}}, r);
    const Encoding& e16 = b.g.tensors[a].enc;
    const Encoding& e8 = b.g.tensors[c].enc;
    for (size_t i = 0; i < v.size(); ++i) {
        const double x16 = fx::dequantize(fx::load_q(r.b.ptr[a], DType::UFixed16, i), e16.scale, e16.offset);
        CHECK(std::fabs(x16 - v[i]) <= e16.scale * kHalfStep);
        const double x8 = fx::dequantize(fx::load_q(r.b.ptr[c], DType::UFixed8, i), e8.scale, e8.offset);
        CHECK(std::fabs(x8 - x16) <= e8.scale * kHalfStep);
        CHECK_EQ(r.b.at<float>(o)[i], static_cast<float>(x8));
    }
}

// ---- the graph pass ----

namespace {

// A transformer block of a real model's layer-0 weights as a lowered float graph, shaped
// like the lowering's graphs (token ids in, a Gather of the embedding, RmsNorm, Q/K/V
// projections, the step's K/V rows out to the host, attention over the cache and the
// step's own rows with an additive mask, the memory retrieval sigma(q) M / (sigma(q) z +
// eps) with sigma = Elu + 1 and a gate blend, the output projection, the SwiGLU FFN, the
// final norm and the logits). Single-head attention over the kv width keeps it small.
struct Block {
    QnnGraph g;
    std::vector<std::map<std::string, std::vector<uint8_t>>> samples;
    std::string head;  // the logits FullyConnected's name
    uint32_t D = 0, kvd = 0, V = 0, L = 0, S = 0;
};

std::vector<float> gguf_floats(const ei::GgufFile& f, const std::string& name, std::vector<uint32_t>* dims) {
    const ei::TensorInfo* t = f.tensor(name);
    if (!t) return {};
    dims->clear();
    if (t->n_dims == 1) dims->push_back(static_cast<uint32_t>(t->ne[0]));
    else dims->assign({static_cast<uint32_t>(t->rows()), static_cast<uint32_t>(t->ne[0])});
    return dequantize_gguf(static_cast<ei::GgmlType>(t->type), t->data, t->rows(), t->ne[0]);
}

Block build_block(const std::string& path, uint32_t L, uint32_t S, size_t n_samples) {
    auto f = ei::GgufFile::open(path);
    Block blk;
    blk.L = L;
    blk.S = S;
    Builder b;
    std::map<std::string, uint32_t> w;
    std::map<std::string, std::vector<float>> wv;
    std::map<std::string, std::vector<uint32_t>> wd;
    for (const char* n : {"token_embd.weight", "output_norm.weight", "output.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
                          "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_q.bias", "blk.0.attn_k.bias",
                          "blk.0.attn_v.bias", "blk.0.attn_output.weight", "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight",
                          "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"}) {
        std::vector<uint32_t> d;
        std::vector<float> v = gguf_floats(*f, n, &d);
        if (v.empty()) continue;
        wv[n] = v;
        wd[n] = d;
        w[n] = b.constant(n, d, v);
    }
    const uint32_t D = wd["token_embd.weight"][1], V = wd["token_embd.weight"][0], kvd = wd["blk.0.attn_k.weight"][0];
    blk.D = D, blk.V = V, blk.kvd = kvd;
    auto fc = [&](const std::string& name, uint32_t x, const std::string& wname, uint32_t out) {
        std::vector<uint32_t> in = {x, w[wname + ".weight"]};
        if (w.count(wname + ".bias")) in.push_back(w[wname + ".bias"]);
        b.node(name, OpType::FullyConnected, in, {out});
        return out;
    };
    auto nat = [&](const std::string& n, std::vector<uint32_t> d) { return b.native(n, std::move(d)); };
    const Param eps = scalar_param("epsilon", Param::Kind::Float, 1e-5);
    const uint32_t ids = b.add("token_ids", TensorKind::AppWrite, DType::Int32, {L}, IoRole::TokenIds);
    const uint32_t h = nat("h", {L, D});
    b.node("get_rows", OpType::Gather, {w["token_embd.weight"], ids}, {h}).params = {axis(0)};
    const uint32_t n1 = nat("blk.0.attn_norm", {L, D});
    b.node("blk.0.attn_norm", OpType::RmsNorm, {h, w["blk.0.attn_norm.weight"]}, {n1}).params = {eps};
    const uint32_t q = fc("blk.0.attn_q", n1, "blk.0.attn_q", nat("blk.0.attn_q", {L, D}));
    const uint32_t k = fc("blk.0.attn_k", n1, "blk.0.attn_k",
                          b.add("blk.0.k_new", TensorKind::AppRead, DType::Float32, {L, kvd}, IoRole::KNew));
    const uint32_t v = fc("blk.0.attn_v", n1, "blk.0.attn_v",
                          b.add("blk.0.v_new", TensorKind::AppRead, DType::Float32, {L, kvd}, IoRole::VNew));
    const uint32_t qs = nat("blk.0.q_head", {L, kvd});
    b.node("blk.0.q_head", OpType::StridedSlice, {q}, {qs}).params = {tensor_param("ranges", {0, L, 1, 0, kvd, 1}, {2, 3})};
    const uint32_t kc_in = b.add("blk.0.k_cache", TensorKind::AppWrite, DType::Float32, {S, kvd}, IoRole::KCache);
    const uint32_t vc_in = b.add("blk.0.v_cache", TensorKind::AppWrite, DType::Float32, {S, kvd}, IoRole::VCache);
    const uint32_t kc = nat("blk.0.k_all", {S + L, kvd}), vc = nat("blk.0.v_all", {S + L, kvd});
    b.node("blk.0.k_all", OpType::Concat, {kc_in, k}, {kc}).params = {axis(0)};
    b.node("blk.0.v_all", OpType::Concat, {vc_in, v}, {vc}).params = {axis(0)};
    const uint32_t sc = nat("blk.0.kq", {L, S + L});
    b.node("blk.0.kq", OpType::MatMul, {qs, kc}, {sc}).params = {scalar_param("transpose_in1", Param::Kind::Bool, 1)};
    const uint32_t scale = b.constant("kq_scale", {1}, {1.0f / std::sqrt(static_cast<float>(kvd))});
    const uint32_t sc2 = nat("blk.0.kq_scaled", {L, S + L});
    b.node("blk.0.kq_scaled", OpType::ElementWiseMultiply, {sc, scale}, {sc2});
    const uint32_t mask = b.add("attn_mask", TensorKind::AppWrite, DType::Float32, {L, S + L}, IoRole::AttnMask);
    const uint32_t sm = nat("blk.0.kq_masked", {L, S + L});
    b.node("blk.0.kq_masked", OpType::ElementWiseAdd, {sc2, mask}, {sm});
    const uint32_t p = nat("blk.0.kq_soft", {L, S + L});
    b.node("blk.0.kq_soft", OpType::Softmax, {sm}, {p}).params = {axis(-1), scalar_param("beta", Param::Kind::Float, 1)};
    const uint32_t a = nat("blk.0.kqv", {L, kvd});
    b.node("blk.0.kqv", OpType::MatMul, {p, vc}, {a});
    // Memory retrieval and the gate blend.
    const uint32_t M = b.add("blk.0.mem_m", TensorKind::AppWrite, DType::Float32, {kvd, kvd}, IoRole::MemM);
    const uint32_t z = b.add("blk.0.mem_z", TensorKind::AppWrite, DType::Float32, {kvd, 1}, IoRole::MemZ);
    const uint32_t one = b.constant("one", {1}, {1.0f}), meps = b.constant("mem_eps", {1}, {1e-3f});
    const uint32_t e = nat("blk.0.q_elu", {L, kvd}), sq = nat("blk.0.q_sigma", {L, kvd});
    b.node("blk.0.q_elu", OpType::Elu, {qs}, {e}).params = {scalar_param("alpha", Param::Kind::Float, 1)};
    b.node("blk.0.q_sigma", OpType::ElementWiseAdd, {e, one}, {sq});
    const uint32_t num = nat("blk.0.mem_num", {L, kvd}), den = nat("blk.0.mem_den", {L, 1}), den2 = nat("blk.0.mem_den_eps", {L, 1});
    b.node("blk.0.mem_num", OpType::MatMul, {sq, M}, {num});
    b.node("blk.0.mem_den", OpType::MatMul, {sq, z}, {den});
    b.node("blk.0.mem_den_eps", OpType::ElementWiseAdd, {den, meps}, {den2});
    const uint32_t r = nat("blk.0.mem_read", {L, kvd});
    b.node("blk.0.mem_read", OpType::ElementWiseDivide, {num, den2}, {r});
    std::mt19937 grng(29);
    const std::vector<float> gate = uniform(grng, kvd, 0.2f, 0.8f);
    std::vector<float> ogate(kvd);
    for (uint32_t i = 0; i < kvd; ++i) ogate[i] = 1 - gate[i];
    const uint32_t gt = b.constant("blk.0.gate", {kvd}, gate), ogt = b.constant("blk.0.gate_inv", {kvd}, ogate);
    const uint32_t a1 = nat("blk.0.attn_gated", {L, kvd}), r1 = nat("blk.0.mem_gated", {L, kvd}), a2 = nat("blk.0.blend", {L, kvd});
    b.node("blk.0.attn_gated", OpType::ElementWiseMultiply, {a, gt}, {a1});
    b.node("blk.0.mem_gated", OpType::ElementWiseMultiply, {r, ogt}, {r1});
    b.node("blk.0.blend", OpType::ElementWiseAdd, {a1, r1}, {a2});
    // Widen to the model width: the blend and the query head side by side, repeated.
    std::vector<uint32_t> parts;
    uint32_t width = 0;
    while (width < D) {
        parts.push_back(parts.size() % 2 ? qs : a2);
        width += kvd;
    }
    const uint32_t cat = nat("blk.0.heads", {L, width}), cs = nat("blk.0.heads_d", {L, D});
    b.node("blk.0.heads", OpType::Concat, parts, {cat}).params = {axis(1)};
    b.node("blk.0.heads_d", OpType::StridedSlice, {cat}, {cs}).params = {tensor_param("ranges", {0, L, 1, 0, D, 1}, {2, 3})};
    const uint32_t o = fc("blk.0.attn_output", cs, "blk.0.attn_output", nat("blk.0.attn_output", {L, D}));
    const uint32_t h2 = nat("blk.0.attn_res", {L, D});
    b.node("blk.0.attn_res", OpType::ElementWiseAdd, {h, o}, {h2});
    const uint32_t n2 = nat("blk.0.ffn_norm", {L, D});
    b.node("blk.0.ffn_norm", OpType::RmsNorm, {h2, w["blk.0.ffn_norm.weight"]}, {n2}).params = {eps};
    const uint32_t F = wd["blk.0.ffn_gate.weight"][0];
    const uint32_t gg = fc("blk.0.ffn_gate", n2, "blk.0.ffn_gate", nat("blk.0.ffn_gate", {L, F}));
    const uint32_t uu = fc("blk.0.ffn_up", n2, "blk.0.ffn_up", nat("blk.0.ffn_up", {L, F}));
    const uint32_t sg = nat("blk.0.ffn_sig", {L, F}), si = nat("blk.0.ffn_silu", {L, F}), mm = nat("blk.0.ffn_mul", {L, F});
    b.node("blk.0.ffn_sig", OpType::Sigmoid, {gg}, {sg});
    b.node("blk.0.ffn_silu", OpType::ElementWiseMultiply, {gg, sg}, {si});
    b.node("blk.0.ffn_mul", OpType::ElementWiseMultiply, {si, uu}, {mm});
    const uint32_t dd = fc("blk.0.ffn_down", mm, "blk.0.ffn_down", nat("blk.0.ffn_down", {L, D}));
    const uint32_t h3 = nat("blk.0.ffn_res", {L, D});
    b.node("blk.0.ffn_res", OpType::ElementWiseAdd, {h2, dd}, {h3});
    const uint32_t n3 = nat("output_norm", {L, D});
    b.node("output_norm", OpType::RmsNorm, {h3, w["output_norm.weight"]}, {n3}).params = {eps};
    const uint32_t logits = b.add("logits", TensorKind::AppRead, DType::Float32, {L, V}, IoRole::Logits);
    // Tied embeddings (no output.weight): the head reads the embedding table the Gather reads.
    blk.head = "output";
    b.node("output", OpType::FullyConnected, {n3, w.count("output.weight") ? w["output.weight"] : w["token_embd.weight"]}, {logits});
    b.g.name = "block";
    b.g.validate();
    blk.g = b.g;

    // Inputs: random tokens; a cache of K/V rows of other random tokens (the projections of
    // their normalized embeddings, so the cache has the model's own scale); a mask hiding a
    // few cache slots and the future rows; a memory folded from other tokens' K/V.
    std::mt19937 rng(31);
    auto proj = [&](const std::string& wn, const std::vector<float>& x) {
        const auto& W = wv[wn + ".weight"];
        std::vector<float> y(kvd);
        for (uint32_t c = 0; c < kvd; ++c) {
            double acc = wv.count(wn + ".bias") ? wv[wn + ".bias"][c] : 0.0;
            for (uint32_t i = 0; i < D; ++i) acc += static_cast<double>(W[c * D + i]) * x[i];
            y[c] = static_cast<float>(acc);
        }
        return y;
    };
    auto normed = [&](int32_t tok) {
        std::vector<float> x(wv["token_embd.weight"].begin() + tok * D, wv["token_embd.weight"].begin() + (tok + 1) * D);
        double ss = 0;
        for (float t : x) ss += static_cast<double>(t) * t;
        const double inv = 1 / std::sqrt(ss / D + 1e-5);
        for (uint32_t i = 0; i < D; ++i) x[i] = static_cast<float>(x[i] * inv * wv["blk.0.attn_norm.weight"][i]);
        return x;
    };
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V) - 1);
    for (size_t s = 0; s < n_samples; ++s) {
        std::map<std::string, std::vector<uint8_t>> in;
        std::vector<int32_t> t(L);
        for (auto& x : t) x = tok(rng);
        in["token_ids"] = bytes_of(t);
        std::vector<float> kcache, vcache;
        for (uint32_t j = 0; j < S; ++j) {
            const auto x = normed(tok(rng));
            const auto kk = proj("blk.0.attn_k", x), vv = proj("blk.0.attn_v", x);
            kcache.insert(kcache.end(), kk.begin(), kk.end());
            vcache.insert(vcache.end(), vv.begin(), vv.end());
        }
        in["blk.0.k_cache"] = bytes_of(kcache);
        in["blk.0.v_cache"] = bytes_of(vcache);
        std::vector<float> m(static_cast<size_t>(L) * (S + L), 0.0f);
        const uint32_t hidden = static_cast<uint32_t>(s % 3);  // the oldest slots not yet written
        for (uint32_t i = 0; i < L; ++i)
            for (uint32_t j = 0; j < S + L; ++j)
                if (j < hidden || (j >= S && j - S > i)) m[i * (S + L) + j] = -1e9f;
        in["attn_mask"] = bytes_of(m);
        std::vector<float> MM(static_cast<size_t>(kvd) * kvd, 0.0f), zz(kvd, 0.0f);
        for (int j = 0; j < 12; ++j) {
            const auto x = normed(tok(rng));
            auto kk = proj("blk.0.attn_k", x);
            const auto vv = proj("blk.0.attn_v", x);
            for (float& y : kk) y = y > 0 ? y + 1 : std::exp(y);  // Elu + 1
            for (uint32_t r2 = 0; r2 < kvd; ++r2) {
                zz[r2] += kk[r2];
                for (uint32_t c = 0; c < kvd; ++c) MM[r2 * kvd + c] += kk[r2] * vv[c];
            }
        }
        in["blk.0.mem_m"] = bytes_of(MM);
        in["blk.0.mem_z"] = bytes_of(zz);
        blk.samples.push_back(in);
    }
    return blk;
}

std::vector<std::vector<float>> outputs_of(const QnnGraph& g, const Run& r) {
    std::vector<std::vector<float>> out;
    for (const Tensor& t : g.tensors)
        if (t.kind == TensorKind::AppRead) {
            const float* p = r.b.at<float>(t.id);
            out.emplace_back(p, p + t.elements());
        }
    return out;
}

GraphRunner runner(const Block& blk) {
    return [&blk](const QnnGraph& g, size_t i, NodeObserver* obs) {
        Run r;
        execute(g, blk.samples.at(i), r, obs);
        return outputs_of(g, r);
    };
}

// The logits' SQNR and top-1 agreement of graph q against the float graph on samples [from, to).
void held_out(const Block& blk, const QnnGraph& q, size_t from, size_t to, double* sqnr, double* top1) {
    double s = 0, n = 0;
    int agree = 0, rows = 0;
    for (size_t i = from; i < to; ++i) {
        Run rf, rq;
        execute(blk.g, blk.samples[i], rf);
        execute(q, blk.samples[i], rq);
        const Tensor* lt = nullptr;
        for (const Tensor& t : blk.g.tensors)
            if (t.io == IoRole::Logits) lt = &t;
        const float* a = rf.b.at<float>(lt->id);
        const float* c = rq.b.at<float>(lt->id);  // ids of the float io tensors are kept
        for (uint32_t r = 0; r < blk.L; ++r) {
            const float* ar = a + static_cast<size_t>(r) * blk.V;
            const float* cr = c + static_cast<size_t>(r) * blk.V;
            agree += (std::max_element(ar, ar + blk.V) - ar) == (std::max_element(cr, cr + blk.V) - cr);
            ++rows;
            for (uint32_t j = 0; j < blk.V; ++j) {
                s += static_cast<double>(ar[j]) * ar[j];
                n += (static_cast<double>(ar[j]) - cr[j]) * (ar[j] - cr[j]);
            }
        }
    }
    *sqnr = 10 * std::log10(s / n);
    *top1 = static_cast<double>(agree) / rows;
}

const Tensor& weight_of(const QnnGraph& g, const std::string& node) {
    for (const Node& n : g.nodes)
        if (n.name == node) return g.tensors[n.inputs[1]];
    throw std::runtime_error("no node " + node);
}

void check_block(const std::string& file) {
    const size_t n_cal = 4, n_all = 7;
    const Block blk = build_block(check::testdata(file), 6, 10, n_all);
    const GraphRunner run = runner(blk);

    // 16a8w.
    QuantConfig c8;
    c8.weight_sources["blk.0.ffn_down.weight"] = "Q4_0";  // as a caller that read a Q4_0 GGUF would say
    QuantWeightCache cache;
    const PreparedGraph p8 = prepare_quantized(blk.g, c8, run, n_cal, &cache);
    p8.graph.validate();
    double s8, t8;
    held_out(blk, p8.graph, n_cal, n_all, &s8, &t8);
    std::printf("%s 16a8w: outputs SQNR %.2f dB (calibration), held-out logits SQNR %.2f dB, top-1 %.3f, weights %llu bytes "
                "(float %llu)\n",
                file.c_str(), p8.report.output_sqnr_db, s8, t8, static_cast<unsigned long long>(p8.report.weight_bytes),
                static_cast<unsigned long long>(p8.report.float_weight_bytes));
    CHECK(p8.report.output_sqnr_db > 25);
    CHECK(s8 > 25);
    CHECK(t8 >= 0.9);
    // The host side is unchanged: float inputs and outputs, a Convert at each.
    int converts = 0, float_io = 0;
    for (const Node& n : p8.graph.nodes) converts += n.type == OpType::Convert;
    for (const Tensor& t : blk.g.tensors) float_io += (t.kind == TensorKind::AppWrite || t.kind == TensorKind::AppRead) && t.dtype == DType::Float32;
    CHECK_EQ(converts, float_io);
    for (const Tensor& t : p8.graph.tensors) {
        if (t.kind == TensorKind::AppWrite || t.kind == TensorKind::AppRead) CHECK(!dtype_quantized(t.dtype));
        if (t.kind == TensorKind::Native && t.dtype == DType::Float32) CHECK(false);  // every activation is fixed point
    }
    for (const Tensor& t : p8.graph.tensors)
        if (t.name == "blk.0.k_new.fx" || t.name == "blk.0.v_cache.fx") CHECK(t.dtype == DType::UFixed8);
    for (const char* n : {"blk.0.attn_q", "blk.0.ffn_down", "output"}) {
        CHECK(weight_of(p8.graph, n).dtype == DType::SFixed8);
        CHECK(weight_of(p8.graph, n).enc.kind == Encoding::Kind::PerChannel);
    }
    // Under 40% of float: int8 projections and head, the embedding table and norms UFixed16.
    CHECK(p8.report.weight_bytes * 5 < p8.report.float_weight_bytes * 2);
    const std::string text = p8.report.text();
    if (std::getenv("EI_HTP_PRINT_REPORT")) std::printf("%s", text.c_str());
    CHECK(text.find("weight blk.0.ffn_up.weight SFIXED_POINT_8 per-channel") != std::string::npos);
    CHECK(text.find("tensor blk.0.kq_soft UFIXED_POINT_16") != std::string::npos);
    CHECK(text.find("(against its Q4_0 source)") != std::string::npos);
    for (const TensorReport& r : p8.report.tensors)
        if (r.name == "blk.0.attn_norm") CHECK(r.sqnr_db > 40);  // 16-bit activations: far above the weights' error

    // The embedding table 8-bit: smaller, and what it costs.
    QuantConfig c8t = c8;
    c8t.tables = DType::UFixed8;
    const PreparedGraph p8t = prepare_quantized(blk.g, c8t, run, n_cal, &cache);
    double s8t, t8t;
    held_out(blk, p8t.graph, n_cal, n_all, &s8t, &t8t);
    std::printf("%s 16a8w, 8-bit embedding table: held-out logits SQNR %.2f dB, top-1 %.3f, weights %llu bytes\n", file.c_str(),
                s8t, t8t, static_cast<unsigned long long>(p8t.report.weight_bytes));
    CHECK(p8t.report.weight_bytes < p8.report.weight_bytes);
    CHECK(s8t > 20);

    // 16a4w with the most sensitive quarter of the projections kept int8.
    QuantConfig c4;
    c4.int4 = true;
    c4.sensitive_fraction = 0.25;
    const PreparedGraph p4 = prepare_quantized(blk.g, c4, run, n_cal, &cache);
    double s4, t4;
    held_out(blk, p4.graph, n_cal, n_all, &s4, &t4);
    const std::vector<std::string> cands = int4_candidates(blk.g, c4);
    CHECK_EQ(cands.size(), size_t{7});  // q, k, v, o, gate, up, down; not the head
    CHECK_EQ(p4.report.layers.size(), cands.size());
    size_t kept = 0;
    for (size_t i = 0; i < p4.report.layers.size(); ++i) {
        const LayerSensitivity& l = p4.report.layers[i];
        if (i) CHECK(p4.report.layers[i - 1].output_sqnr_db <= l.output_sqnr_db);
        kept += l.kept_8bit;
        CHECK(weight_of(p4.graph, l.node).dtype == (l.kept_8bit ? DType::SFixed8 : DType::SFixed4));
        std::printf("  int4-only %s: outputs SQNR %.2f dB%s\n", l.node.c_str(), l.output_sqnr_db, l.kept_8bit ? " (kept 8-bit)" : "");
    }
    CHECK_EQ(kept, size_t{2});  // round(0.25 * 7)
    CHECK(weight_of(p4.graph, "output").dtype == DType::SFixed8);
    // All projections int4, for comparison with the sensitivity-chosen mix.
    c4.sensitive_fraction = 0;
    const PreparedGraph pall = prepare_quantized(blk.g, c4, run, n_cal, &cache);
    double sall, tall;
    held_out(blk, pall.graph, n_cal, n_all, &sall, &tall);
    std::printf("%s 16a4w: all int4 held-out logits SQNR %.2f dB top-1 %.3f; sensitivity mix %.2f dB top-1 %.3f, weights %llu "
                "bytes\n",
                file.c_str(), sall, tall, s4, t4, static_cast<unsigned long long>(p4.report.weight_bytes));
    CHECK(s4 > 15);
    CHECK(sall > 15);
    CHECK(p4.report.output_sqnr_db >= pall.report.output_sqnr_db - 0.1);
    CHECK(pall.report.weight_bytes < p4.report.weight_bytes);
    CHECK(p4.report.weight_bytes < p8.report.weight_bytes);
    // The cache shares one quantized form of each weight between the passes.
    CHECK(weight_of(p8.graph, "output").data.get() == weight_of(pall.graph, "output").data.get());
    CHECK(weight_of(p8.graph, "blk.0.ffn_up").data.get() != weight_of(pall.graph, "blk.0.ffn_up").data.get());
}

}  // namespace

TEST(graph_pass_on_eval_model_block) { check_block("eval/evalmodel-f32.gguf"); }

TEST(graph_pass_on_qwen2_block_with_biases) { check_block("models/tiny-qwen2-f32.gguf"); }

TEST(graph_pass_refuses_uncalibrated_and_bad_config) {
    const Block blk = build_block(check::testdata("eval/evalmodel-f32.gguf"), 3, 4, 1);
    // Pinned layers and the head are not int4 candidates; a block size that does not divide
    // a layer's inputs leaves that layer int8.
    QuantConfig pin;
    pin.pin_8bit = {"blk.0.attn_v", "blk.0.ffn_"};
    const auto c = int4_candidates(blk.g, pin);
    CHECK_EQ(c.size(), size_t{3});
    CHECK(std::find(c.begin(), c.end(), "blk.0.attn_q") != c.end());
    CHECK(std::find(c.begin(), c.end(), "output") == c.end());
    pin.head_8bit = false;
    CHECK_EQ(int4_candidates(blk.g, pin).size(), size_t{4});
    RangeObserver none;
    CHECK_THROWS(quantize_graph(blk.g, none, QuantConfig{}, {}), EI_ERR_INVALID_ARGUMENT, "no calibrated range");
    QuantConfig bad;
    bad.block_size = 48;
    CHECK_THROWS(quantize_graph(blk.g, none, bad, {}), EI_ERR_INVALID_ARGUMENT, "block size 48");
    bad = QuantConfig{};
    bad.sensitive_fraction = 2;
    CHECK_THROWS(prepare_quantized(blk.g, bad, runner(blk), 1), EI_ERR_INVALID_ARGUMENT, "sensitive fraction");
    CHECK_THROWS(prepare_quantized(blk.g, QuantConfig{}, runner(blk), 0), EI_ERR_INVALID_ARGUMENT, "no calibration samples");
}
