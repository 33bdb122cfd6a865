// The r16 packed GEMM on AVX-512 with VNNI (see packed_gemm.h for layout and arithmetic).
// A tile is 16 weight rows (one ZMM of outputs) x C tokens: per 32-element block, the 8
// weight chunks are loaded (and for Q4_0 unpacked) once and serve all C tokens; each token
// adds its 8 broadcast activation words with VPDPBUSD into one integer accumulator started at
// its correction term, so after 8 instructions every lane holds a row's exact block dot.
// GCC 12 flags its own _mm512_undefined_ps() inside _mm512_cvtepi32_ps as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "cpu/packed_gemm.h"
#include "cpu/packed_gemm_impl.h"

namespace ei::cpu::avx512vnni {

namespace {

inline __m512i bcast32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// One tile: 16 rows (mask: the valid ones) x C tokens.
template <int C, bool Q4>
inline void tile(const uint8_t* wg, int64_t nb, const uint8_t* act, uint64_t act_stride, float* y, uint64_t y_stride,
                 const float* bias, bool accumulate, __mmask16 mask) {
    constexpr size_t kBlock = Q4 ? 256 : 512;
    const uint16_t* scales = reinterpret_cast<const uint16_t*>(wg + static_cast<size_t>(nb) * kBlock);
    r16::ActRow ar[C];
    for (int c = 0; c < C; ++c) ar[c] = r16::act_row(act + static_cast<uint64_t>(c) * act_stride, nb);
    __m512 facc[C];
    for (int c = 0; c < C; ++c) facc[c] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = wg + static_cast<size_t>(b) * kBlock;
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kPackRows)));
        __m512i w[8];
        if constexpr (Q4) {
            for (int p = 0; p < 4; ++p) {
                const __m512i v = _mm512_loadu_si512(blk + 64 * p);
                w[p] = _mm512_and_si512(v, m4);
                w[p + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        } else {
            for (int j = 0; j < 8; ++j) w[j] = _mm512_loadu_si512(blk + 64 * j);
        }
        __m512i isum[C];
        if constexpr (C <= 2) {
            // Few tokens: two dependency chains per token hide VPDPBUSD's latency (integer
            // sums are exact, so the split does not change the result).
            __m512i hi[C];
            for (int c = 0; c < C; ++c) {
                isum[c] = _mm512_set1_epi32(ar[c].corr[b]);
                hi[c] = _mm512_setzero_si512();
            }
            for (int j = 0; j < 4; ++j) {
                for (int c = 0; c < C; ++c) {
                    const int8_t* a = ar[c].q + b * kQK;
                    isum[c] = _mm512_dpbusd_epi32(isum[c], w[j], bcast32(a + 4 * j));
                    hi[c] = _mm512_dpbusd_epi32(hi[c], w[j + 4], bcast32(a + 16 + 4 * j));
                }
            }
            for (int c = 0; c < C; ++c) isum[c] = _mm512_add_epi32(isum[c], hi[c]);
        } else {
            for (int c = 0; c < C; ++c) isum[c] = _mm512_set1_epi32(ar[c].corr[b]);
            for (int j = 0; j < 8; ++j) {
                for (int c = 0; c < C; ++c) isum[c] = _mm512_dpbusd_epi32(isum[c], w[j], bcast32(ar[c].q + b * kQK + 4 * j));
            }
        }
        for (int c = 0; c < C; ++c) {
            const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(ar[c].d[b]));
            facc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), scale, facc[c]);
        }
    }
    for (int c = 0; c < C; ++c) {
        __m512 v = facc[c];
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
        float* out = y + static_cast<uint64_t>(c) * y_stride;
        if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        _mm512_mask_storeu_ps(out, mask, v);
    }
}

// Decode (one token): G groups of 16 rows at once, so G independent dependency chains
// overlap (one group alone is a serial chain of VPDPBUSD and FMA latencies), and the
// token's 8 broadcast activation words are shared by all G groups.
template <int G, bool Q4>
inline void rows_x1(const uint8_t* wg, size_t group, int64_t nb, const uint8_t* act, float* y, const float* bias,
                    bool accumulate, int64_t rows_left) {
    constexpr size_t kBlock = Q4 ? 256 : 512;
    const r16::ActRow ar = r16::act_row(act, nb);
    __m512 facc[G];
    for (int g = 0; g < G; ++g) facc[g] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m4hi = _mm512_set1_epi8(static_cast<char>(0xF0));
    for (int64_t b = 0; b < nb; ++b) {
        __m512i a[8];
        for (int j = 0; j < 8; ++j) a[j] = bcast32(ar.q + b * kQK + 4 * j);
        const __m512i corr = _mm512_set1_epi32(ar.corr[b]);
        const __m512 da = _mm512_set1_ps(ar.d[b]);
        __m512i lo[G], hi[G];
        for (int g = 0; g < G; ++g) {
            lo[g] = corr;
            hi[g] = _mm512_setzero_si512();
        }
        for (int j = 0; j < 4; ++j) {
            for (int g = 0; g < G; ++g) {
                const uint8_t* blk = wg + static_cast<size_t>(g) * group + static_cast<size_t>(b) * kBlock;
                __m512i w0, w1;
                if constexpr (Q4) {
                    // The high nibbles stay in place (16 x their value): hi sums 16 x the
                    // exact dot, shifted back once per block rather than each chunk shifted.
                    const __m512i v = _mm512_loadu_si512(blk + 64 * j);
                    w0 = _mm512_and_si512(v, m4);
                    w1 = _mm512_and_si512(v, m4hi);
                } else {
                    w0 = _mm512_loadu_si512(blk + 64 * j);
                    w1 = _mm512_loadu_si512(blk + 64 * (j + 4));
                }
                lo[g] = _mm512_dpbusd_epi32(lo[g], w0, a[j]);
                hi[g] = _mm512_dpbusd_epi32(hi[g], w1, a[j + 4]);
            }
        }
        for (int g = 0; g < G; ++g) {
            const uint16_t* scales = reinterpret_cast<const uint16_t*>(wg + static_cast<size_t>(g) * group +
                                                                       static_cast<size_t>(nb) * kBlock);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kPackRows)));
            const __m512i isum = _mm512_add_epi32(lo[g], Q4 ? _mm512_srai_epi32(hi[g], 4) : hi[g]);
            facc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, da), facc[g]);
        }
    }
    for (int g = 0; g < G; ++g) {
        const int64_t valid = rows_left - int64_t{g} * kPackRows;
        const __mmask16 mask = valid >= kPackRows ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
        __m512 v = facc[g];
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias + g * kPackRows));
        float* out = y + g * kPackRows;
        if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        _mm512_mask_storeu_ps(out, mask, v);
    }
}

template <bool Q4>
void gemm(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
          uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    const int64_t nb = k / kQK;
    const size_t group = r16::group_bytes(Q4, k);
    if (n_tok == 1) {
        int64_t g = g0;
        auto run = [&](auto G) {
            constexpr int kG = decltype(G)::value;
            const int64_t r0 = g * kPackRows;
            rows_x1<kG, Q4>(packed + static_cast<size_t>(g) * group, group, nb, act, y + r0, bias ? bias + r0 : nullptr,
                            accumulate, rows - r0);
            g += kG;
        };
        while (g + 4 <= g1) run(std::integral_constant<int, 4>{});
        if (g + 2 <= g1) run(std::integral_constant<int, 2>{});
        if (g < g1) run(std::integral_constant<int, 1>{});
        return;
    }
    for (int64_t g = g0; g < g1; ++g) {
        const int64_t r0 = g * kPackRows;
        const int64_t valid = rows - r0;
        const __mmask16 mask = valid >= kPackRows ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
        const uint8_t* wg = packed + static_cast<size_t>(g) * group;
        const float* bg = bias ? bias + r0 : nullptr;
        int32_t t = 0;
        auto at = [&](int32_t tok) { return act + static_cast<uint64_t>(tok) * act_stride; };
        auto out = [&](int32_t tok) { return y + static_cast<uint64_t>(tok) * y_stride + static_cast<uint64_t>(r0); };
        for (; t + 8 <= n_tok; t += 8) tile<8, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask);
        switch (n_tok - t) {
            case 7: tile<7, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            case 6: tile<6, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            case 5: tile<5, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            case 4: tile<4, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            case 3: tile<3, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            case 2: tile<2, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            case 1: tile<1, Q4>(wg, nb, at(t), act_stride, out(t), y_stride, bg, accumulate, mask); break;
            default: break;
        }
    }
}

}  // namespace

void gemm_q8_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    gemm<false>(packed, rows, k, g0, g1, act, act_stride, n_tok, y, y_stride, bias, accumulate);
}

void gemm_q4_0(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
               uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    gemm<true>(packed, rows, k, g0, g1, act, act_stride, n_tok, y, y_stride, bias, accumulate);
}

}  // namespace ei::cpu::avx512vnni
