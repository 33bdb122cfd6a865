// The packed GEMM (packed_gemm.h): every instruction-set kernel gives its scalar
// reference's bits for every output (prefill tiles and decode agree bit for bit), on row
// counts that leave a padded group, odd block counts, every tile width, with bias and
// accumulation; rows past the matrix are never written; and the reference itself is the
// plain dot product of the GGUF blocks (checked in double, independently of the kernels).
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/cpu_features.h"
#include "cpu/packed_gemm.h"
#include "cpu/quants.h"

using namespace ei;
using namespace ei::cpu;

namespace {

struct Problem {
    GgmlType type;
    int64_t rows, k;
    int32_t n_tok;
    std::vector<uint8_t> w;   // GGUF rows
    std::vector<float> x;     // n_tok x k activations
    std::vector<float> bias;  // rows
};

Problem make(GgmlType type, int64_t rows, int64_t k, int32_t n_tok, uint32_t seed) {
    Problem p{type, rows, k, n_tok, {}, {}, {}};
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const size_t rb = row_size(type, k);
    p.w.resize(rb * static_cast<size_t>(rows));
    const TypeKernels* ref = kernels_for(type, KernelVariant::Scalar);
    if (type == GgmlType::Q8_0) {
        std::vector<float> row(static_cast<size_t>(k));
        for (int64_t r = 0; r < rows; ++r) {
            for (auto& v : row) v = nd(rng) * (1.0f + static_cast<float>(r % 5));
            ref->from_float(row.data(), p.w.data() + rb * static_cast<size_t>(r), k);
        }
    } else {  // Q4_0, Q5_0: random quant bits, sane scales (the f16 d leads every block)
        const size_t block = static_cast<size_t>(type_traits(type).type_size);
        for (auto& b : p.w) b = static_cast<uint8_t>(rng());
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t b = 0; b < k / kQK; ++b) {
                const uint16_t d = fp32_to_fp16(0.01f + 0.001f * static_cast<float>((r + b) % 17));
                std::memcpy(p.w.data() + rb * static_cast<size_t>(r) + static_cast<size_t>(b) * block, &d, 2);
            }
        }
    }
    p.x.resize(static_cast<size_t>(n_tok * k));
    for (auto& v : p.x) v = nd(rng);
    p.x[3] = 0.0f;  // an all-zero block somewhere would be nice too: zero the first token's first block
    for (int i = 0; i < kQK; ++i) p.x[static_cast<size_t>(i)] = 0.0f;
    p.bias.resize(static_cast<size_t>(rows));
    for (auto& v : p.bias) v = nd(rng);
    return p;
}

// y (n_tok x stride, sentinel-filled past rows) computed by one implementation.
std::vector<float> run(const PackedGemm& g, const Problem& p, bool bias, bool accumulate, uint64_t stride,
                       int64_t split) {
    std::vector<uint8_t> packed(g.packed_size(p.rows, p.k));
    const int64_t groups = (p.rows + kPackRows - 1) / kPackRows;
    // Pack in two halves, as threads would.
    g.pack(p.w.data(), row_size(p.type, p.k), p.rows, p.k, 0, std::min(split, groups), packed.data());
    g.pack(p.w.data(), row_size(p.type, p.k), p.rows, p.k, std::min(split, groups), groups, packed.data());
    const uint64_t as = g.act_row_size(p.k);
    std::vector<uint8_t> act(as * static_cast<size_t>(p.n_tok));
    for (int32_t t = 0; t < p.n_tok; ++t) g.prepare_act(p.x.data() + t * p.k, p.k, act.data() + as * t);
    std::vector<float> y(stride * static_cast<size_t>(p.n_tok), 0.0f);
    for (size_t i = 0; i < y.size(); ++i) y[i] = (i % stride) < static_cast<size_t>(p.rows) ? 0.25f * float(i % 7) : 12345.0f;
    g.gemm(packed.data(), p.rows, p.k, 0, std::min(split, groups), act.data(), as, p.n_tok, y.data(), stride,
           bias ? p.bias.data() : nullptr, accumulate);
    g.gemm(packed.data(), p.rows, p.k, std::min(split, groups), groups, act.data(), as, p.n_tok, y.data(), stride,
           bias ? p.bias.data() : nullptr, accumulate);
    return y;
}

double dequant(const Problem& p, int64_t r, int64_t i) {
    const uint8_t* row = p.w.data() + row_size(p.type, p.k) * static_cast<size_t>(r);
    const int64_t b = i / kQK, e = i % kQK;
    if (p.type == GgmlType::Q8_0) {
        const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
        return double(fp16_to_fp32(blk->d)) * blk->qs[e];
    }
    if (p.type == GgmlType::Q5_0) {  // ggml's layout spelled out here, not q5_0_value()
        const uint8_t* blk = row + b * 22;
        uint16_t d;
        uint32_t qh;
        std::memcpy(&d, blk, 2);
        std::memcpy(&qh, blk + 2, 4);
        const int lo = e < 16 ? (blk[6 + e] & 0xF) : (blk[6 + e - 16] >> 4);
        return double(fp16_to_fp32(d)) * ((lo | int((qh >> e) & 1) << 4) - 16);
    }
    const BlockQ4_0* blk = reinterpret_cast<const BlockQ4_0*>(row) + b;
    const int q = e < 16 ? (blk->qs[e] & 0xF) : (blk->qs[e - 16] >> 4);
    return double(fp16_to_fp32(blk->d)) * (q - 8);
}

}  // namespace

TEST(packed_kernels_match_their_reference_bit_for_bit) {
    int compared = 0;
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0}) {
        const PackedGemm* ref = packed_gemm_reference(type);
        CHECK(ref != nullptr);
        const PackedGemm* chosen = packed_gemm_for(type);
        const std::vector<const PackedGemm*> all = packed_gemm_all(type);
        if (all.empty()) {
            std::printf("%s: no packed kernel on this CPU (%s); reference only\n", type_traits(type).name,
                        cpu_features_string().c_str());
        }
        CHECK(chosen == nullptr || (!all.empty() && chosen == all.front()));
        // Every kernel this CPU can run, the one the backend chose or not.
        for (const PackedGemm* fast : all) {
            std::printf("%s: packed kernel %s (%s)\n", type_traits(type).name, fast->name,
                        fast == chosen ? "chosen" : "not chosen on this CPU");
            struct Shape {
                int64_t rows, k;
                int32_t n_tok;
            };
            for (Shape s : {Shape{37, 96, 19}, Shape{16, 32, 1}, Shape{33, 224, 8}, Shape{128, 896, 13}, Shape{5, 64, 2},
                            Shape{48, 4864 / 4, 3},
                            // decode: groups taken 4, 2 and 1 at a time, the last one partial
                            Shape{100, 96, 1}, Shape{37, 160, 1}, Shape{128, 64, 1}}) {
                const Problem p = make(type, s.rows, s.k, s.n_tok, static_cast<uint32_t>(s.rows * 31 + s.n_tok));
                for (int mode = 0; mode < 4; ++mode) {
                    const bool bias = mode & 1, acc = mode & 2;
                    const uint64_t stride = static_cast<uint64_t>(s.rows) + 5;
                    const auto a = run(*ref, p, bias, acc, stride, 1);
                    const auto b = run(*fast, p, bias, acc, stride, 2);
                    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
                    for (size_t i = 0; i < b.size(); ++i) {
                        if (i % stride >= static_cast<size_t>(s.rows)) CHECK(b[i] == 12345.0f);  // never written
                    }
                    ++compared;
                }
            }
        }
    }
    std::printf("%d shape/mode combinations compared\n", compared);
}

TEST(packed_reference_is_the_dot_product_of_the_gguf_rows) {
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0}) {
        const PackedGemm* ref = packed_gemm_reference(type);
        const Problem p = make(type, 21, 160, 5, 9);
        const auto y = run(*ref, p, true, false, 21, 1);
        // Independent: dequantized weights against the activations as the reference
        // quantizes them (ggml's Q8_0), summed in double.
        const TypeKernels* k = kernels_for(type, KernelVariant::Scalar);
        double worst = 0;
        for (int32_t t = 0; t < p.n_tok; ++t) {
            std::vector<BlockQ8_0> q(static_cast<size_t>(p.k / kQK));
            k->from_float(p.x.data() + t * p.k, q.data(), p.k);
            for (int64_t r = 0; r < p.rows; ++r) {
                double s = 0, mag = 0;
                for (int64_t i = 0; i < p.k; ++i) {
                    const double a = double(fp16_to_fp32(q[i / kQK].d)) * q[i / kQK].qs[i % kQK];
                    s += dequant(p, r, i) * a;
                    mag += std::fabs(dequant(p, r, i) * a);
                }
                s += p.bias[r];
                const double err = std::fabs(double(y[t * 21 + r]) - s) / (mag + 1e-6);
                worst = std::max(worst, err);
            }
        }
        std::printf("%s: worst relative error of the packed reference vs double %.3g\n", type_traits(type).name, worst);
        CHECK(worst < 1e-5);
    }
}

// Q5_0 (read since this runtime met llama.cpp's Q4_K_M of 896-wide models): the scalar row
// kernels against the same independent dequantization.
TEST(q5_0_row_kernels_match_the_gguf_layout) {
    const Problem p = make(GgmlType::Q5_0, 3, 96, 2, 17);
    const TypeKernels* k = kernels_for(GgmlType::Q5_0);
    CHECK(k != nullptr && k->vec_dot_type == GgmlType::Q8_0);
    std::vector<float> row(96);
    for (int64_t r = 0; r < p.rows; ++r) {
        k->to_float(p.w.data() + row_size(GgmlType::Q5_0, 96) * static_cast<size_t>(r), row.data(), 96);
        for (int64_t i = 0; i < 96; ++i) CHECK(double(row[i]) == dequant(p, r, i));
        std::vector<BlockQ8_0> q(3);
        k->from_float(p.x.data(), q.data(), 96);
        float got;
        k->vec_dot(96, &got, p.w.data() + row_size(GgmlType::Q5_0, 96) * static_cast<size_t>(r), q.data());
        double want = 0;
        for (int64_t i = 0; i < 96; ++i) want += dequant(p, r, i) * fp16_to_fp32(q[i / 32].d) * q[i / 32].qs[i % 32];
        CHECK(std::fabs(got - want) <= 1e-5 * (std::fabs(want) + 1));
    }
}
