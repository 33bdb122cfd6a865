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
