// Row quantizers of `ei quantize` (cpp/src/quantize): round trips through the backend's
// dequantizers within each format's bound on non-trivial data and odd row counts; ggml's
// reference rounding on a hand-worked block; the importance-weighted searches beating the
// plain ones on the weighted error; thread count not changing a byte; bad arguments refused
// through the C ABI with a message.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/quants.h"
#include "edgeinfinite/edgeinfinite.h"
#include "quantize/row_quantize.h"

using ei::GgmlType;
using namespace ei::cpu;

namespace {

const GgmlType kQuantTypes[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K};

const char* tname(GgmlType t) { return ei::type_traits(t).name; }

// Weight-like rows: Gaussian with a per-row scale, heavy-tailed outliers, exact zeros and a
// run of one sign, so blocks see every case (positive-only, negative max, ties at zero).
std::vector<float> weights(std::mt19937& rng, int64_t rows, int64_t cols) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_int_distribution<int> pick(0, 99);
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const float scale = std::pow(10.0f, static_cast<float>(r % 5) - 3.0f);
        for (int64_t c = 0; c < cols; ++c) {
            float x = nd(rng) * scale;
            const int p = pick(rng);
            if (p == 0) x *= 12.0f;
            if (p == 1) x = 0.0f;
            if ((c / 40) % 7 == 3) x = std::fabs(x);
            v[static_cast<size_t>(r * cols + c)] = x;
        }
    }
    return v;
}

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x, int64_t rows, int64_t cols, const float* imp,
                              int threads) {
    std::vector<uint8_t> q(ei::quant::row_bytes(t, cols) * static_cast<size_t>(rows));
    ei::quant::quantize_rows(t, GgmlType::F32, x.data(), rows, cols, imp, threads, q.data());
    return q;
}

std::vector<float> dequantize(GgmlType t, const std::vector<uint8_t>& q, int64_t rows, int64_t cols) {
    std::vector<float> y(static_cast<size_t>(rows * cols));
    const TypeKernels* k = kernels_for(t, KernelVariant::Scalar);
    const size_t rb = ei::quant::row_bytes(t, cols);
    for (int64_t r = 0; r < rows; ++r) k->to_float(q.data() + r * rb, y.data() + r * cols, cols);
    return y;
}

double weighted_sse(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& w, int64_t cols) {
    double e = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        const double r = static_cast<double>(x[i]) - y[i];
        e += (w.empty() ? 1.0 : w[i % static_cast<size_t>(cols)]) * r * r;
    }
    return e;
}

// The largest block magnitude of the block holding element i (blocks of `block` values).
float block_amax(const std::vector<float>& x, size_t i, int block) {
    const size_t b0 = i / block * block;
    float a = 0;
    for (size_t j = b0; j < b0 + static_cast<size_t>(block); ++j) a = std::max(a, std::fabs(x[j]));
    return a;
}

}  // namespace

// Q8_0 / Q4_0 / Q5_0: every element within the format's rounding bound of its block.
// Q8_0: half a step (amax/127) plus the f16 rounding of the scale at the largest level;
// Q4_0 / Q5_0: the largest magnitude sits exactly on -2^(b-1) levels, so the opposite
// end clips by at most one step (amax/8, amax/16) - the reference rule's known bound.
TEST(legacy_types_round_trip_within_bound) {
    std::mt19937 rng(7);
    const int64_t rows = 13, cols = 96;  // odd rows, 3 blocks per row
    const std::vector<float> x = weights(rng, rows, cols);
    struct Case {
        GgmlType t;
        float steps;  // denominator of the step: amax / steps
        float bound;  // in steps
    };
    for (const Case& c : {Case{GgmlType::Q8_0, 127.0f, 0.5f}, Case{GgmlType::Q4_0, 8.0f, 1.0f},
                          Case{GgmlType::Q5_0, 16.0f, 1.0f}}) {
        const std::vector<float> y = dequantize(c.t, quantize(c.t, x, rows, cols, nullptr, 2), rows, cols);
        int bad = 0;
        double sse = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const float amax = block_amax(x, i, 32);
            const float step = amax / c.steps;
            // f16 scale: relative error <= 2^-11 at each of up to 2^(b-1) levels.
            const float tol = c.bound * step + amax * 1.5e-3f + 1e-30f;
            if (std::fabs(x[i] - y[i]) > tol) ++bad;
            sse += (x[i] - y[i]) * (x[i] - y[i]);
        }
        if (bad) std::fprintf(stderr, "%s: %d elements outside the bound\n", tname(c.t), bad);
        CHECK_EQ(bad, 0);
        CHECK(sse > 0);  // not trivially exact: the test can see a broken quantizer
    }
}

// K-quants: relative RMS error within the format's resolution on Gaussian-like rows
// (4 bits with an affine fit: ~0.09 of the spread, 6 bits: ~0.02), every element within a
// few steps of its sub-block (no wrong nibble, scale or min packing goes unnoticed), and the
// search never worse than plain min/max scaling of the same sub-blocks.
TEST(k_quants_round_trip_within_bound) {
    std::mt19937 rng(11);
    const int64_t rows = 9, cols = 768;  // odd rows, 3 super-blocks per row
    const std::vector<float> x = weights(rng, rows, cols);
    struct Case {
        GgmlType t;
        int sub;        // sub-block length
        double rel;     // bound on the relative RMS error per row
        float steps;    // sub-block range / steps = one level
    };
    for (const Case& c : {Case{GgmlType::Q4_K, 32, 0.12, 15.0f}, Case{GgmlType::Q6_K, 16, 0.04, 63.0f}}) {
        const std::vector<float> y = dequantize(c.t, quantize(c.t, x, rows, cols, nullptr, 3), rows, cols);
        for (int64_t r = 0; r < rows; ++r) {
            double e = 0, s = 0;
            for (int64_t j = 0; j < cols; ++j) {
                const size_t i = static_cast<size_t>(r * cols + j);
                e += (x[i] - y[i]) * (x[i] - y[i]);
                s += static_cast<double>(x[i]) * x[i];
            }
            const double rel = std::sqrt(e / s);
            if (!(rel < c.rel)) std::fprintf(stderr, "%s row %lld: relative RMS error %.4f\n", tname(c.t), (long long)r, rel);
            CHECK(rel < c.rel);
            CHECK(rel > 0);
        }
        int bad = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const size_t b0 = i / c.sub * c.sub;
            float lo = 0, hi = 0;
            for (size_t j = b0; j < b0 + static_cast<size_t>(c.sub); ++j) {
                lo = std::min(lo, x[j]);
                hi = std::max(hi, x[j]);
            }
            // A level is (range / steps); clipping costs at most a few. The sub-block scales
            // (and mins) are coded in 6 or 8 bits against the super-block's largest, which
            // adds up to about 1/64 of the super-block's largest magnitude.
            const float sb_amax = block_amax(x, i, 256);
            if (std::fabs(x[i] - y[i]) > 3.0f * (hi - lo) / c.steps + sb_amax / 50.0f + 1e-30f) ++bad;
        }
        if (bad) std::fprintf(stderr, "%s: %d elements outside 3 levels of their sub-block\n", tname(c.t), bad);
        CHECK_EQ(bad, 0);
    }
}

// ggml's reference rule on a hand-worked block: x_j = j - 16. Q4_0: the largest magnitude
// is -16 (j = 0), d = -16 / -8 = 2, level = min(15, trunc(x/2 + 8.5)). Q8_0: d = 16/127,
// q = round(x * 127/16) half away from zero.
TEST(reference_rounding_hand_block) {
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
    BlockQ4_0 b4;
    ei::quant::quantize_row(GgmlType::Q4_0, x.data(), 32, nullptr, &b4);
    CHECK_EQ(fp16_to_fp32(b4.d), 2.0f);
    for (int j = 0; j < 32; ++j) {
        const int level = std::min(15, static_cast<int>(static_cast<float>(j - 16) / 2.0f + 8.5f));
        const int got = j < 16 ? (b4.qs[j] & 0xF) : (b4.qs[j - 16] >> 4);
        CHECK_EQ(got, level);
    }
    BlockQ8_0 b8;
    ei::quant::quantize_row(GgmlType::Q8_0, x.data(), 32, nullptr, &b8);
    CHECK_EQ(b8.d, fp32_to_fp16(16.0f / 127.0f));
    for (int j = 0; j < 32; ++j) CHECK_EQ(static_cast<int>(b8.qs[j]), static_cast<int>(std::round((j - 16) * (1.0f / (16.0f / 127.0f)))));
    CHECK_EQ(static_cast<int>(b8.qs[0]), -127);
}

// With importances, every type's search gives a lower importance-weighted error than the
// unweighted quantizer on the same rows (importances spread over 4 decades, like mean
// squared activations).
TEST(weighted_search_lowers_weighted_error) {
    std::mt19937 rng(23);
    const int64_t rows = 17, cols = 512;
    const std::vector<float> x = weights(rng, rows, cols);
    std::vector<float> imp(static_cast<size_t>(cols));
    std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
    for (float& v : imp) v = std::pow(10.0f, ud(rng));
    for (GgmlType t : kQuantTypes) {
        const std::vector<float> yw = dequantize(t, quantize(t, x, rows, cols, imp.data(), 2), rows, cols);
        const std::vector<float> yu = dequantize(t, quantize(t, x, rows, cols, nullptr, 2), rows, cols);
        const double ew = weighted_sse(x, yw, imp, cols), eu = weighted_sse(x, yu, imp, cols);
        std::printf("%s: weighted error %.4g with importance, %.4g without (%.1f%% lower)\n", tname(t), ew, eu,
                    100.0 * (1.0 - ew / eu));
        CHECK(ew < eu);
        // The plain error also stays sane with weights (no level wildly off).
        CHECK(weighted_sse(x, yw, {}, cols) < 4.0 * weighted_sse(x, yu, {}, cols));
    }
}

// A block of zero importances falls back to unit weights: same bytes as with all-ones.
TEST(zero_importance_block_is_unweighted) {
    std::mt19937 rng(3);
    const int64_t rows = 3, cols = 256;
    const std::vector<float> x = weights(rng, rows, cols);
    std::vector<float> zero(static_cast<size_t>(cols), 0.0f), ones(static_cast<size_t>(cols), 1.0f);
    for (GgmlType t : kQuantTypes) {
        CHECK(quantize(t, x, rows, cols, zero.data(), 1) == quantize(t, x, rows, cols, ones.data(), 1));
    }
}

// Zero and constant rows come back exactly (a min-only Q4_K sub-block, an all-zero block).
TEST(zero_and_constant_rows) {
    const int64_t cols = 256;
    std::vector<float> x(static_cast<size_t>(2 * cols), 0.0f);
    for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>(cols + j)] = -0.5f;
    for (GgmlType t : kQuantTypes) {
        const std::vector<float> y = dequantize(t, quantize(t, x, 2, cols, nullptr, 1), 2, cols);
        for (int64_t j = 0; j < cols; ++j) CHECK_EQ(y[static_cast<size_t>(j)], 0.0f);
        for (int64_t j = cols; j < 2 * cols; ++j) CHECK(std::fabs(y[static_cast<size_t>(j)] + 0.5f) < 1e-3f);
    }
}

// Threads split rows only: 1 and 3 threads write the same bytes.
TEST(threads_do_not_change_bytes) {
    std::mt19937 rng(5);
    const int64_t rows = 37, cols = 512;
    const std::vector<float> x = weights(rng, rows, cols);
    std::vector<float> imp(static_cast<size_t>(cols), 0.0f);
    for (size_t j = 0; j < imp.size(); ++j) imp[j] = 0.1f + static_cast<float>(j % 7);
    for (GgmlType t : kQuantTypes) {
        CHECK(quantize(t, x, rows, cols, nullptr, 1) == quantize(t, x, rows, cols, nullptr, 3));
        CHECK(quantize(t, x, rows, cols, imp.data(), 1) == quantize(t, x, rows, cols, imp.data(), 3));
    }
}

// F16 and BF16 sources, and requantizing (Q8_0 source), quantize their exact f32 values.
TEST(sources_are_dequantized_exactly) {
    std::mt19937 rng(9);
    const int64_t rows = 5, cols = 256;
    const std::vector<float> x = weights(rng, rows, cols);
    for (GgmlType src : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0}) {
        std::vector<uint8_t> s(ei::quant::row_bytes(src, cols) * rows);
        ei::quant::quantize_rows(src, GgmlType::F32, x.data(), rows, cols, nullptr, 1, s.data());
        const std::vector<float> xs = dequantize(src, s, rows, cols);
        for (GgmlType t : kQuantTypes) {
            std::vector<uint8_t> a(ei::quant::row_bytes(t, cols) * rows);
            ei::quant::quantize_rows(t, src, s.data(), rows, cols, nullptr, 2, a.data());
            CHECK(a == quantize(t, xs, rows, cols, nullptr, 1));
        }
    }
}

// Through the C ABI: bad types, shapes, sizes and importances are refused with a message.
TEST(capi_refuses_bad_arguments) {
    std::vector<float> x(64, 1.0f);
    std::vector<uint8_t> q(4 * 34);
    CHECK_EQ(ei_tensor_row_size(8, 64), 68u);
    CHECK_EQ(ei_tensor_row_size(12, 64), 0u);  // not a multiple of 256
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 256, 1, 64, nullptr, 1, q.data(), 68), EI_OK);
    CHECK_EQ(ei_quantize_rows(12, 0, x.data(), 256, 1, 64, nullptr, 1, q.data(), 68), EI_ERR_INVALID_ARGUMENT);
    CHECK(std::string(ei_last_error()).find("not a multiple") != std::string::npos);
    CHECK_EQ(ei_quantize_rows(3, 0, x.data(), 256, 1, 64, nullptr, 1, q.data(), 68), EI_ERR_UNSUPPORTED);  // Q4_1
    CHECK_EQ(ei_quantize_rows(99, 0, x.data(), 256, 1, 64, nullptr, 1, q.data(), 68), EI_ERR_UNSUPPORTED);
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 255, 1, 64, nullptr, 1, q.data(), 68), EI_ERR_INVALID_ARGUMENT);
    CHECK(std::string(ei_last_error()).find("src_size") != std::string::npos);
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 256, 1, 64, nullptr, 1, q.data(), 67), EI_ERR_INVALID_ARGUMENT);
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 256, 1, 64, nullptr, 1, nullptr, 68), EI_ERR_INVALID_ARGUMENT);
    std::vector<float> imp(64, 1.0f);
    imp[5] = std::nanf("");
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 256, 1, 64, imp.data(), 1, q.data(), 68), EI_ERR_INVALID_ARGUMENT);
    CHECK(std::string(ei_last_error()).find("column 5") != std::string::npos);
    imp[5] = -1.0f;
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 256, 1, 64, imp.data(), 1, q.data(), 68), EI_ERR_INVALID_ARGUMENT);
    // Sizes whose product would overflow are refused, not wrapped.
    CHECK_EQ(ei_quantize_rows(8, 0, x.data(), 256, int64_t(1) << 62, 64, nullptr, 1, q.data(), 68),
             EI_ERR_INVALID_ARGUMENT);
}
