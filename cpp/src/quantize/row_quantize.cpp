// Row quantizers (see row_quantize.h for what each one minimizes). Written from the block
// layouts and dequantizers of backends/cpu/quants.h: a block written here dequantizes, through
// the backend's to_float, to the values the searches measured.
#include "quantize/row_quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "cpu/quants.h"
#include "error.h"

namespace ei::quant {

using cpu::BlockQ4_0;
using cpu::BlockQ4_K;
using cpu::BlockQ5_0;
using cpu::BlockQ6_K;
using cpu::BlockQ8_0;
using cpu::fp16_to_fp32;
using cpu::fp32_to_fp16;
using cpu::kQK;
using cpu::kQK_K;

namespace {

// Round to nearest, ties to even: adding 1.5 * 2^23 leaves the rounded integer in the low
// mantissa bits (the FPU's default rounding), with no library call. Inputs are first held to
// |v| < 2^22, where the trick is exact; callers clamp the result to their level range (a NaN
// gives some integer, which the clamp bounds).
inline int nearest(float v) {
    v = std::min(4194303.0f, std::max(-4194303.0f, v));
    float t = v + 12582912.0f;
    uint32_t u;
    std::memcpy(&u, &t, 4);
    return static_cast<int>(u & 0x007fffffu) - 0x00400000;
}

// nearest() of v clamped to the integer range [lo, hi], as a float: clamping first gives the
// same level, keeps the magic-number rounding exact, and leaves the inner loops float-only, so
// they vectorize. A NaN becomes lo.
inline float round_level(float v, float lo, float hi) {
    v = std::min(hi, std::max(lo, v));
    return (v + 12582912.0f) - 12582912.0f;
}

inline float f16_round(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

// The element of largest magnitude, with its sign (the first one on ties), as ggml picks it.
inline float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

// The weights of one block: w itself, or ones when w is null or its block sums to zero
// (nothing to weigh by; the plain error is then the natural choice).
inline const float* block_weights(const float* w, int n, const float* ones) {
    if (!w) return ones;
    double s = 0;
    for (int j = 0; j < n; ++j) s += w[j];
    return s > 0 ? w : ones;
}

const float kOnes[kQK_K] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

// ---- symmetric levels: x^ = d q, q in [qmin, qmax] --------------------------------------

// The scale minimizing sum w (x - d q)^2, q = clamp(round(x / d)). Candidates put the
// largest-magnitude element at a level near either end of the range (steps of 0.1 level);
// each candidate's levels get their least-squares d (sum w x q / sum w q^2). Returns the
// float scale (0 for an all-zero block).
float search_symmetric(const float* x, const float* w, int n, int qmin, int qmax) {
    const float max = signed_absmax(x, n);
    if (max == 0.0f) return 0.0f;
    double best_err = std::numeric_limits<double>::infinity();
    float best_d = max / static_cast<float>(qmin);
    double swxx = 0;
    for (int j = 0; j < n; ++j) swxx += static_cast<double>(w[j]) * x[j] * x[j];
    const float fmin_ = static_cast<float>(qmin), fmax_ = static_cast<float>(qmax);
    for (int end = 0; end < 2; ++end) {
        const float level = static_cast<float>(end == 0 ? qmin : qmax);
        const float sign = level < 0 ? -1.0f : 1.0f;
        for (int k = -5; k <= 15; ++k) {
            // Toward the inside of the range (k > 0) the largest value clips less often than
            // others gain resolution; a little outside (k < 0) rounds it down instead.
            const float target = level - sign * 0.1f * static_cast<float>(k);
            if (std::fabs(target) < 0.5f) continue;
            const float inv = target / max;
            // Four partial sums (n is a multiple of 4), so the loop vectorizes without
            // reassociating floats; float is plenty for at most 32 terms.
            float axq[4] = {0, 0, 0, 0}, aqq[4] = {0, 0, 0, 0};
            for (int j = 0; j < n; j += 4) {
                for (int l = 0; l < 4; ++l) {
                    const float q = round_level(x[j + l] * inv, fmin_, fmax_);
                    axq[l] += w[j + l] * x[j + l] * q;
                    aqq[l] += w[j + l] * q * q;
                }
            }
            const float sxq = (axq[0] + axq[1]) + (axq[2] + axq[3]), sqq = (aqq[0] + aqq[1]) + (aqq[2] + aqq[3]);
            if (sqq <= 0) continue;
            const double err = swxx - static_cast<double>(sxq) * sxq / sqq;
            if (err < best_err) {
                best_err = err;
                best_d = sxq / sqq;
            }
        }
    }
    return best_d;
}

// Levels of x for the stored scale d: nearest, clamped (what minimizes each term once d is fixed).
inline void round_levels(const float* x, int n, float d, int qmin, int qmax, int* q) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; ++j) q[j] = std::min(qmax, std::max(qmin, nearest(x[j] * id)));
}

// ---- Q8_0, Q4_0, Q5_0 --------------------------------------------------------------------

// ggml's quantize_row_q8_0_ref: d = amax/127, q = round half away from zero of x/d.
void q8_0_reference(const float* x, BlockQ8_0& b) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) {
        // Finite input keeps |x/d| <= 127; a non-finite row gives -128 instead of undefined behaviour.
        const float q = std::round(x[j] * id);
        b.qs[j] = q >= -128.0f && q <= 127.0f ? static_cast<int8_t>(q) : int8_t{-128};
    }
}

// ggml's Q4_0 / Q5_0 reference rule: d = max / -2^(bits-1) with max the signed element of
// largest magnitude; level = min(2^bits - 1, trunc(x/d + 2^(bits-1) + 0.5)).
template <int kHalf>
void offset_reference(const float* x, float* d_out, uint8_t* levels) {
    const float max = signed_absmax(x, kQK);
    const float d = max / static_cast<float>(-kHalf);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = d;
    for (int j = 0; j < kQK; ++j) {
        const float v = x[j] * id + (static_cast<float>(kHalf) + 0.5f);
        // v is in [0, 2 kHalf + 0.5] for finite rows; the guard keeps NaN and inf defined.
        const int t = v >= 0.0f && v < 64.0f ? static_cast<int>(v) : 0;
        levels[j] = static_cast<uint8_t>(std::min(2 * kHalf - 1, t));
    }
}

// Weighted: searched scale, levels re-rounded to the f16 scale, stored with the offset.
template <int kHalf>
void offset_weighted(const float* x, const float* w, float* d_out, uint8_t* levels) {
    const float d = f16_round(search_symmetric(x, w, kQK, -kHalf, kHalf - 1));
    int q[kQK];
    round_levels(x, kQK, d, -kHalf, kHalf - 1, q);
    *d_out = d;
    for (int j = 0; j < kQK; ++j) levels[j] = static_cast<uint8_t>(q[j] + kHalf);
}

void quantize_q8_0(const float* x, int64_t n, const float* w, void* dst) {
    BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        if (!w) {
            q8_0_reference(x, y[b]);
            continue;
        }
        const float* wb = block_weights(w + b * kQK, kQK, kOnes);
        const float d = f16_round(search_symmetric(x, wb, kQK, -127, 127));
        int q[kQK];
        round_levels(x, kQK, d, -127, 127, q);
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(q[j]);
    }
}

void quantize_q4_0(const float* x, int64_t n, const float* w, void* dst) {
    BlockQ4_0* y = static_cast<BlockQ4_0*>(dst);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float d;
        uint8_t l[kQK];
        if (w) offset_weighted<8>(x, block_weights(w + b * kQK, kQK, kOnes), &d, l);
        else offset_reference<8>(x, &d, l);
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK / 2; ++j) y[b].qs[j] = static_cast<uint8_t>(l[j] | (l[j + kQK / 2] << 4));
    }
}

void quantize_q5_0(const float* x, int64_t n, const float* w, void* dst) {
    BlockQ5_0* y = static_cast<BlockQ5_0*>(dst);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float d;
        uint8_t l[kQK];
        if (w) offset_weighted<16>(x, block_weights(w + b * kQK, kQK, kOnes), &d, l);
        else offset_reference<16>(x, &d, l);
        y[b].d = fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            y[b].qs[j] = static_cast<uint8_t>((l[j] & 0xF) | ((l[j + kQK / 2] & 0xF) << 4));
        }
        for (int j = 0; j < kQK; ++j) qh |= static_cast<uint32_t>(l[j] >> 4) << j;
        std::memcpy(y[b].qh, &qh, 4);
    }
}

// ---- Q6_K --------------------------------------------------------------------------------

// Weighted error of a Q6_K super-block given its f16 d, 8-bit scales and levels.
double q6k_error(const float* x, const float* w, float d, const int8_t* sc, const int* q) {
    double e = 0;
    for (int j = 0; j < kQK_K; ++j) {
        const double r = x[j] - d * sc[j / 16] * q[j];
        e += w[j] * r * r;
    }
    return e;
}

void q6k_block(const float* x, const float* w, BlockQ6_K& y) {
    float s[16];
    for (int i = 0; i < 16; ++i) s[i] = search_symmetric(x + 16 * i, w + 16 * i, 16, -32, 31);
    const float smax = signed_absmax(s, 16);
    int8_t sc[16] = {};
    int q[kQK_K] = {};
    float best_d = 0.0f;
    if (smax != 0.0f) {
        // Scales coded as sc = round(s / d) in [-128, 127] with the largest at -128.
        const float iscale = -128.0f / smax;
        for (int i = 0; i < 16; ++i) sc[i] = static_cast<int8_t>(std::min(127, nearest(iscale * s[i])));
        float d = 1.0f / iscale;
        double best_err = std::numeric_limits<double>::infinity();
        int cand[kQK_K];
        for (int round = 0; round < 4; ++round) {
            const float dd = f16_round(d);
            for (int i = 0; i < 16; ++i) round_levels(x + 16 * i, 16, dd * sc[i], -32, 31, cand + 16 * i);
            const double err = q6k_error(x, w, dd, sc, cand);
            if (err < best_err) {
                best_err = err;
                best_d = dd;
                std::copy(cand, cand + kQK_K, q);
            }
            // Refit d for these levels: d = sum w x a / sum w a^2 with a = sc q.
            double sxa = 0, saa = 0;
            for (int j = 0; j < kQK_K; ++j) {
                const double a = static_cast<double>(sc[j / 16]) * cand[j];
                sxa += w[j] * x[j] * a;
                saa += w[j] * a * a;
            }
            if (saa <= 0) break;
            d = static_cast<float>(sxa / saa);
        }
    }
    y.d = fp32_to_fp16(best_d);
    for (int i = 0; i < 16; ++i) y.scales[i] = sc[i];
    // Inverse of the backend's q6k_decode: per 128-element half, element l of quarter k
    // keeps its low 4 bits in ql[l + 32 (k & 1)] (low nibble for k < 2) and its top 2 bits
    // at bits 2k of qh[l].
    for (int h = 0; h < 2; ++h) {
        uint8_t* ql = y.ql + 64 * h;
        uint8_t* qh = y.qh + 32 * h;
        const int* u = q + 128 * h;
        for (int l = 0; l < 32; ++l) {
            const int u0 = u[l] + 32, u1 = u[l + 32] + 32, u2 = u[l + 64] + 32, u3 = u[l + 96] + 32;
            ql[l] = static_cast<uint8_t>((u0 & 0xF) | ((u2 & 0xF) << 4));
            ql[l + 32] = static_cast<uint8_t>((u1 & 0xF) | ((u3 & 0xF) << 4));
            qh[l] = static_cast<uint8_t>((u0 >> 4) | ((u1 >> 4) << 2) | ((u2 >> 4) << 4) | ((u3 >> 4) << 6));
        }
    }
}

void quantize_q6_K(const float* x, int64_t n, const float* w, void* dst) {
    BlockQ6_K* y = static_cast<BlockQ6_K*>(dst);
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        // Each sub-block of 16 falls back to unit weights on its own when its importances are all 0.
        float wb[kQK_K];
        for (int i = 0; i < 16; ++i) {
            const float* src = block_weights(w ? w + b * kQK_K + 16 * i : nullptr, 16, kOnes);
            std::copy(src, src + 16, wb + 16 * i);
        }
        q6k_block(x, wb, y[b]);
    }
}

// ---- Q4_K --------------------------------------------------------------------------------

struct Affine {
    float s = 0, m = 0;  // x^ = s q - m
    double err = std::numeric_limits<double>::infinity();
};

double affine_error(const float* x, const float* w, int n, float s, float m, const int* q) {
    double e = 0;
    for (int j = 0; j < n; ++j) {
        const double r = x[j] - (static_cast<double>(s) * q[j] - m);
        e += w[j] * r * r;
    }
    return e;
}

// Weighted least squares for x ~ s q + b with b <= 0 (m = -b >= 0: the format has no
// negative mins), for given levels q. Returns false when the levels are all equal.
bool affine_fit(const float* x, const float* w, int n, const int* q, float* s, float* m) {
    double sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int j = 0; j < n; ++j) {
        sw += w[j];
        sq += w[j] * q[j];
        sqq += static_cast<double>(w[j]) * q[j] * q[j];
        sx += w[j] * x[j];
        sxq += static_cast<double>(w[j]) * x[j] * q[j];
    }
    const double det = sw * sqq - sq * sq;
    if (det <= 0 || sqq <= 0) return false;
    double a = (sw * sxq - sq * sx) / det, b = (sqq * sx - sq * sxq) / det;
    if (b > 0) {
        b = 0;
        a = sxq / sqq;
    }
    if (!(a > 0)) return false;
    *s = static_cast<float>(a);
    *m = static_cast<float>(-b);
    return true;
}

// Sub-block scale and min: candidate scales map [min(x, 0), max(x)] onto 14..16 levels
// wide (21 steps), each refit by affine_fit; then two rounds of re-rounding to the best fit.
Affine q4k_subblock(const float* x, const float* w, int n) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; ++j) {
        lo = std::min(lo, x[j]);
        hi = std::max(hi, x[j]);
    }
    lo = std::min(lo, 0.0f);
    Affine best;
    if (hi <= lo) {  // constant block (<= 0): all at the min
        best.s = 0;
        best.m = -lo;
        best.err = 0;
        return best;
    }
    int q[32];
    for (int k = 0; k <= 20; ++k) {
        const float iscale = (14.0f + 0.1f * static_cast<float>(k)) / (hi - lo);
        // Per candidate: its levels, their least-squares (s, b) from one pass of sums, then
        // the levels re-rounded to that fit and its error (the ranking uses the re-rounded
        // error, which is what the fit would be stored with).
        float sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
        for (int j = 0; j < n; ++j) {
            const float l = round_level(iscale * (x[j] - lo), 0.0f, 15.0f);
            const float wj = w[j];
            sw += wj;
            sq += wj * l;
            sqq += wj * l * l;
            sx += wj * x[j];
            sxq += wj * x[j] * l;
        }
        const double det = static_cast<double>(sw) * sqq - static_cast<double>(sq) * sq;
        if (det <= 0 || sqq <= 0) continue;
        double a = (static_cast<double>(sw) * sxq - static_cast<double>(sq) * sx) / det;
        double b = (static_cast<double>(sqq) * sx - static_cast<double>(sq) * sxq) / det;
        if (b > 0) {
            b = 0;
            a = sxq / static_cast<double>(sqq);
        }
        if (!(a > 0)) continue;
        const float fs = static_cast<float>(a), fm = static_cast<float>(-b), inv = 1.0f / fs;
        float e = 0;
        for (int j = 0; j < n; ++j) {
            const float l = round_level((x[j] + fm) * inv, 0.0f, 15.0f);
            const float r = x[j] - (fs * l - fm);
            e += w[j] * r * r;
        }
        if (e < best.err) {
            best.err = e;
            best.s = fs;
            best.m = fm;
        }
    }
    if (best.s > 0) {  // the best fit's own error with its levels re-rounded (never larger)
        const float inv = 1.0f / best.s;
        for (int j = 0; j < n; ++j) q[j] = std::min(15, std::max(0, nearest((x[j] + best.m) * inv)));
        best.err = affine_error(x, w, n, best.s, best.m, q);
    }
    for (int r = 0; r < 2 && best.s > 0; ++r) {
        float s, m;
        if (!affine_fit(x, w, n, q, &s, &m)) break;
        int q2[32];
        const float inv = 1.0f / s;
        for (int j = 0; j < n; ++j) q2[j] = std::min(15, std::max(0, nearest((x[j] + m) * inv)));
        const double e = affine_error(x, w, n, s, m, q2);
        if (!(e < best.err)) break;
        best.err = e;
        best.s = s;
        best.m = m;
        std::copy(q2, q2 + n, q);
    }
    if (best.s == 0) {  // every fit degenerate: a plain range split
        best.s = (hi - lo) / 15.0f;
        best.m = -lo;
    }
    return best;
}

// Levels of a Q4_K super-block for f16-rounded d, dmin and the 6-bit codes, and their error.
double q4k_levels(const float* x, const float* w, float d, float dmin, const uint8_t* sc, const uint8_t* mn, int* q) {
    double e = 0;
    for (int i = 0; i < 8; ++i) {
        const float s = d * sc[i], m = dmin * mn[i];
        const float inv = s > 0 ? 1.0f / s : 0.0f;
        for (int j = 32 * i; j < 32 * i + 32; ++j) {
            q[j] = std::min(15, std::max(0, nearest((x[j] + m) * inv)));
            const double r = x[j] - (static_cast<double>(s) * q[j] - m);
            e += w[j] * r * r;
        }
    }
    return e;
}

void q4k_block(const float* x, const float* w, BlockQ4_K& y) {
    float s[8], m[8];
    float smax = 0, mmax = 0;
    for (int i = 0; i < 8; ++i) {
        const Affine a = q4k_subblock(x + 32 * i, w + 32 * i, 32);
        s[i] = a.s;
        m[i] = a.m;
        smax = std::max(smax, s[i]);
        mmax = std::max(mmax, m[i]);
    }
    float d = smax / 63.0f, dmin = mmax / 63.0f;
    uint8_t sc[8], mn[8];
    for (int i = 0; i < 8; ++i) {
        sc[i] = static_cast<uint8_t>(d > 0 ? std::min(63, std::max(0, nearest(s[i] / d))) : 0);
        mn[i] = static_cast<uint8_t>(dmin > 0 ? std::min(63, std::max(0, nearest(m[i] / dmin))) : 0);
    }
    int q[kQK_K], cand[kQK_K];
    double best_err = std::numeric_limits<double>::infinity();
    float best_d = 0, best_dmin = 0;
    for (int round = 0; round < 4; ++round) {
        const float dd = f16_round(d), dm = f16_round(dmin);
        const double e = q4k_levels(x, w, dd, dm, sc, mn, cand);
        if (e < best_err) {
            best_err = e;
            best_d = dd;
            best_dmin = dm;
            std::copy(cand, cand + kQK_K, q);
        }
        // Joint least squares for (d, dmin) with the codes and levels fixed:
        // x ~ d a - dmin b, a = sc q, b = mn.
        double aa = 0, ab = 0, bb = 0, xa = 0, xb = 0;
        for (int j = 0; j < kQK_K; ++j) {
            const double a = static_cast<double>(sc[j / 32]) * cand[j], b = mn[j / 32];
            aa += w[j] * a * a;
            ab += w[j] * a * b;
            bb += w[j] * b * b;
            xa += w[j] * x[j] * a;
            xb += w[j] * x[j] * b;
        }
        const double det = aa * bb - ab * ab;
        double nd, ndm;
        if (bb > 0 && det > 1e-12 * aa * bb) {
            nd = (xa * bb - ab * xb) / det;
            ndm = (ab * xa - aa * xb) / det;
        } else {
            nd = aa > 0 ? xa / aa : 0;
            ndm = 0;
        }
        if (ndm < 0) {
            ndm = 0;
            nd = aa > 0 ? xa / aa : 0;
        }
        if (!(nd > 0)) break;
        d = static_cast<float>(nd);
        dmin = static_cast<float>(ndm);
    }
    y.d = fp32_to_fp16(best_d);
    y.dmin = fp32_to_fp16(best_dmin);
    // ggml's 6-bit packing (the inverse of q4k_scale_min): sub-blocks 0..3 in the low 6 bits
    // of bytes j (scale) and j+4 (min); 4..7 split between byte j+4's nibbles and the top
    // 2 bits of bytes j-4 and j.
    std::memset(y.scales, 0, sizeof(y.scales));
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            y.scales[j] = sc[j];
            y.scales[j + 4] = mn[j];
        } else {
            y.scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
            y.scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
            y.scales[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
        }
    }
    // 64-element chunks: 32 bytes, low nibbles sub-block 2c, high nibbles sub-block 2c+1.
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            y.qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
        }
    }
}

void quantize_q4_K(const float* x, int64_t n, const float* w, void* dst) {
    BlockQ4_K* y = static_cast<BlockQ4_K*>(dst);
    for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
        float wb[kQK_K];
        for (int i = 0; i < 8; ++i) {
            const float* src = block_weights(w ? w + b * kQK_K + 32 * i : nullptr, 32, kOnes);
            std::copy(src, src + 32, wb + 32 * i);
        }
        q4k_block(x, wb, y[b]);
    }
}

}  // namespace

bool can_write(GgmlType t) {
    switch (t) {
        case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0:
        case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q4_K: case GgmlType::Q6_K:
            return true;
        default:
            return false;
    }
}

size_t row_bytes(GgmlType t, int64_t n) {
    const TypeTraits tr = type_traits(t);
    if (!tr.name || n <= 0 || n % tr.block_size != 0) return 0;
    return static_cast<size_t>(n / tr.block_size * tr.type_size);
}

void quantize_row(GgmlType t, const float* x, int64_t n, const float* w, void* dst) {
    switch (t) {
        case GgmlType::F32: std::memcpy(dst, x, static_cast<size_t>(n) * 4); break;
        case GgmlType::F16: {
            uint16_t* y = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
            break;
        }
        case GgmlType::BF16: {
            uint16_t* y = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = cpu::fp32_to_bf16(x[i]);
            break;
        }
        case GgmlType::Q8_0: quantize_q8_0(x, n, w, dst); break;
        case GgmlType::Q4_0: quantize_q4_0(x, n, w, dst); break;
        case GgmlType::Q5_0: quantize_q5_0(x, n, w, dst); break;
        case GgmlType::Q4_K: quantize_q4_K(x, n, w, dst); break;
        case GgmlType::Q6_K: quantize_q6_K(x, n, w, dst); break;
        default: fail(EI_ERR_UNSUPPORTED, std::string("cannot quantize to type ") + (type_traits(t).name ? type_traits(t).name : "?"));
    }
}

double weighted_error(GgmlType t, const void* q, const float* x, int64_t n, const float* w) {
    const cpu::TypeKernels* k = cpu::kernels_for(t, cpu::KernelVariant::Scalar);
    if (!k) fail(EI_ERR_UNSUPPORTED, "no dequantizer for this type");
    std::vector<float> y(static_cast<size_t>(n));
    k->to_float(q, y.data(), n);
    double e = 0;
    for (int64_t j = 0; j < n; ++j) {
        const double r = static_cast<double>(x[j]) - y[static_cast<size_t>(j)];
        e += (w ? w[j] : 1.0f) * r * r;
    }
    return e;
}

void quantize_rows(GgmlType dst_t, GgmlType src_t, const void* src, int64_t rows, int64_t cols,
                   const float* importance, int n_threads, void* dst) {
    const char* dname = type_traits(dst_t).name;
    const char* sname = type_traits(src_t).name;
    if (!can_write(dst_t)) {
        fail(EI_ERR_UNSUPPORTED, std::string("cannot quantize to type ") + (dname ? dname : std::to_string(static_cast<int>(dst_t))));
    }
    const cpu::TypeKernels* from = cpu::kernels_for(src_t, cpu::KernelVariant::Scalar);
    if (!from) {
        fail(EI_ERR_UNSUPPORTED, std::string("cannot read source type ") + (sname ? sname : std::to_string(static_cast<int>(src_t))));
    }
    if (rows < 0 || cols <= 0) fail(EI_ERR_INVALID_ARGUMENT, "bad shape: " + std::to_string(rows) + " rows of " + std::to_string(cols));
    const size_t src_row = row_bytes(src_t, cols), dst_row = row_bytes(dst_t, cols);
    if (src_row == 0) fail(EI_ERR_INVALID_ARGUMENT, "row length " + std::to_string(cols) + " is not a multiple of " + sname + "'s block");
    if (dst_row == 0) fail(EI_ERR_INVALID_ARGUMENT, "row length " + std::to_string(cols) + " is not a multiple of " + dname + "'s block");
    if (importance) {
        for (int64_t j = 0; j < cols; ++j) {
            if (!(importance[j] >= 0.0f) || !std::isfinite(importance[j])) {
                fail(EI_ERR_INVALID_ARGUMENT, "importance of column " + std::to_string(j) + " is not a finite non-negative number");
            }
        }
    }
    if (rows == 0) return;
    int nt = n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    nt = static_cast<int>(std::min<int64_t>(nt, rows));
    // Rows are claimed in small batches, so threads finish together whatever each row costs.
    const int64_t batch = std::max<int64_t>(1, std::min<int64_t>(16, rows / (8 * nt)));
    std::atomic<int64_t> next{0};
    auto work = [&] {
        std::vector<float> buf(static_cast<size_t>(cols));
        for (;;) {
            const int64_t r0 = next.fetch_add(batch);
            if (r0 >= rows) return;
            const int64_t r1 = std::min(rows, r0 + batch);
            for (int64_t r = r0; r < r1; ++r) {
                from->to_float(static_cast<const uint8_t*>(src) + static_cast<size_t>(r) * src_row, buf.data(), cols);
                quantize_row(dst_t, buf.data(), cols, importance, static_cast<uint8_t*>(dst) + static_cast<size_t>(r) * dst_row);
            }
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(nt - 1));
    for (int t = 1; t < nt; ++t) threads.emplace_back(work);
    work();
    for (std::thread& t : threads) t.join();
}

}  // namespace ei::quant
