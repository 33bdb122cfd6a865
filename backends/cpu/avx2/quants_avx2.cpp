// AVX2 + FMA + F16C kernels. This file alone is built with -mavx2 -mfma -mf16c; the
// dispatch in quants.cpp reaches it only when cpu_features() reports all three. Helpers
// are file-local (anonymous namespace) and no std templates are instantiated here, so
// no AVX2-compiled copy of a shared inline function can leak into the scalar code.
//
// Integer dots use the usual 8-bit tricks: maddubs multiplies unsigned by signed bytes
// into saturating int16 pair sums (safe here: at most 2*128*127 or 2*63*127), madd folds
// pairs into int32 (and multiplies by sub-block scales while at it).
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

#include "cpu/quants.h"
#include "cpu/quants_impl.h"

namespace ei::cpu::avx2 {
namespace {

inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline __m256 abs_ps(__m256 v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))); }

// bf16 x8 -> f32 x8: the bf16 bits are the top half of the float.
inline __m256 load_bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Four int32x8 (already in int8 range) -> 32 int8 in element order. The packs work per
// 128-bit lane, so the dwords come out as a0 b0 c0 d0 a1 b1 c1 d1 and are put back.
inline __m256i pack_i32x4_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b);
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// roundf() for |v| < 2^23: trunc, then step away from zero when the dropped part is >= .5
// (exact, since v - trunc(v) is representable). _mm256_round_ps has no ties-away mode.
inline __m256 round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs_ps(_mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

// Sum of signed x*y over 32 bytes, as 8 int32. x may be -128; y never is (our quantizers
// produce -127..127), which the sign trick needs.
inline __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Shuffle control that broadcasts int16 element k of each 128-bit lane.
inline __m256i bcast16(int k) { return _mm256_set1_epi16(static_cast<short>(((2 * k + 1) << 8) | (2 * k))); }

}  // namespace

// ---- conversions -----------------------------------------------------------------------

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* x = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(x + i));
    for (; i < n; ++i) dst[i] = h2f(x[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* x = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16(x + i));
    for (; i < n; ++i) dst[i] = bf16_to_fp32(x[i]);
}

void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* y = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; ++i) y[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Same integer rule as fp32_to_bf16: (u + 0x7fff + lsb) >> 16, NaN -> (u >> 16) | 0x40.
void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* y = static_cast<uint16_t*>(dst);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i bias = _mm256_set1_epi32(0x7fff);
    const __m256i quiet = _mm256_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; ++h) {
            const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i + 8 * h));
            const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
            const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
            r[h] = _mm256_blendv_epi8(rounded, qnan, nan);
        }
        // Values are 0..65535, so the unsigned-saturating pack is exact; it works per lane.
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), packed);
    }
    for (; i < n; ++i) y[i] = fp32_to_bf16(src[i]);
}

// Bit-identical to ref::from_float_q8_0 (same d, same 1/d, roundf ties away from zero).
void from_float_q8_0(const float* src, void* dst, int64_t n) {
    BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t b = 0; b < n / kQK; ++b, src += kQK) {
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(src + 8 * k);
            m = _mm256_max_ps(m, abs_ps(v[k]));
        }
        const float amax = hmax_ps(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[k], vid)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), pack_i32x4_to_i8(q[0], q[1], q[2], q[3]));
    }
}

// Bit-identical to ref::from_float_q8_K: the first element of largest magnitude gives the
// scale; nearest_int is round-to-nearest-even, which is _mm256_round_ps's nearest mode.
void from_float_q8_K(const float* src, void* dst, int64_t n) {
    BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
    for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < kQK_K; k += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(src + k)));
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            std::memset(&y[b], 0, sizeof(BlockQ8_K));
            continue;
        }
        const __m256 vamax = _mm256_set1_ps(amax);
        float max = amax;
        for (int k = 0; k < kQK_K; k += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(src + k)), vamax, _CMP_EQ_OQ));
            if (hit) {
                max = src[k + __builtin_ctz(static_cast<unsigned>(hit))];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int k = 0; k < kQK_K; k += 32) {
            __m256i q[4];
            for (int j = 0; j < 4; ++j) {
                const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(src + k + 8 * j), vis);
                const __m256 r = _mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[j] = _mm256_min_epi32(_mm256_cvtps_epi32(r), lim);
            }
            y[b].bsums[k / 16] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[0], q[1])));
            y[b].bsums[k / 16 + 1] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[2], q[3])));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + k), pack_i32x4_to_i8(q[0], q[1], q[2], q[3]));
        }
        y[b].d = 1.0f / iscale;
    }
}

// ---- dot products ----------------------------------------------------------------------

namespace {
// R dots of one weight row with R activation rows in the 16-lane order of float_math.h
// (lanes 0-7 in lo, 8-15 in hi); the weight vectors are loaded once for all R rows.
template <int R, typename T, typename Load>
inline void lane16_dots(int64_t n, const T* w, const T* const* a, float* out, Load load) {
    __m256 lo[R], hi[R];
    for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = load(w + i), w1 = load(w + i + 8);
        for (int r = 0; r < R; ++r) {
            lo[r] = _mm256_fmadd_ps(w0, load(a[r] + i), lo[r]);
            hi[r] = _mm256_fmadd_ps(w1, load(a[r] + i + 8), hi[r]);
        }
    }
    if (i < n) {  // the tail as one more step over zero-padded copies
        T wt[16] = {}, at[16];
        std::copy(w + i, w + n, wt);
        const __m256 w0 = load(wt), w1 = load(wt + 8);
        for (int r = 0; r < R; ++r) {
            std::fill(at, at + 16, T{});
            std::copy(a[r] + i, a[r] + n, at);
            lo[r] = _mm256_fmadd_ps(w0, load(at), lo[r]);
            hi[r] = _mm256_fmadd_ps(w1, load(at + 8), hi[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum_ps(_mm256_add_ps(lo[r], hi[r]));
}

const auto load_f32 = [](const float* p) { return _mm256_loadu_ps(p); };

template <typename T>
const T* row_at(const void* a, int r, uint64_t stride) {
    return reinterpret_cast<const T*>(static_cast<const uint8_t*>(a) + r * stride);
}
}  // namespace

void vec_dot_f32(int64_t n, float* out, const void* w, const void* a) {
    const float* rows[1] = {static_cast<const float*>(a)};
    lane16_dots<1>(n, static_cast<const float*>(w), rows, out, load_f32);
}

void vec_dot_f16(int64_t n, float* out, const void* w, const void* a) {
    const uint16_t* rows[1] = {static_cast<const uint16_t*>(a)};
    lane16_dots<1>(n, static_cast<const uint16_t*>(w), rows, out, load_f16);
}

void vec_dot_x4_f32(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride) {
    const float* rows[4];
    for (int r = 0; r < 4; ++r) rows[r] = row_at<float>(a, r, act_stride);
    lane16_dots<4>(n, static_cast<const float*>(w), rows, out4, load_f32);
}

void vec_dot_x4_f16(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride) {
    const uint16_t* rows[4];
    for (int r = 0; r < 4; ++r) rows[r] = row_at<uint16_t>(a, r, act_stride);
    lane16_dots<4>(n, static_cast<const uint16_t*>(w), rows, out4, load_f16);
}

void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a) {
    const uint16_t* x = static_cast<const uint16_t*>(w);
    const uint16_t* y = static_cast<const uint16_t*>(a);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_bf16(x + i), load_bf16(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16(x + i + 8), load_bf16(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_bf16(x + i + 16), load_bf16(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_bf16(x + i + 24), load_bf16(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_bf16(x + i), load_bf16(y + i), acc0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; ++i) s += bf16_to_fp32(x[i]) * bf16_to_fp32(y[i]);
    *out = s;
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    const int64_t nb = n / kQK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i p0 = dot_i8(loadu256(x[b].qs), loadu256(y[b].qs));
        const __m256i p1 = dot_i8(loadu256(x[b + 1].qs), loadu256(y[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b + 1].d) * h2f(y[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; ++b) {
        const __m256i p = dot_i8(loadu256(x[b].qs), loadu256(y[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), _mm256_cvtepi32_ps(p), acc0);
    }
    *out = hsum_ps(_mm256_add_ps(acc0, acc1));
}

namespace {
// 16 packed nibbles -> 32 signed bytes (q - 8) in element order: low nibbles are elements
// 0..15, high nibbles 16..31.
inline __m256i unpack_q4_0(const uint8_t* qs) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}
}  // namespace

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
    const int64_t nb = n / kQK;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i p0 = dot_i8(unpack_q4_0(x[b].qs), loadu256(y[b].qs));
        const __m256i p1 = dot_i8(unpack_q4_0(x[b + 1].qs), loadu256(y[b + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b + 1].d) * h2f(y[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; ++b) {
        const __m256i p = dot_i8(unpack_q4_0(x[b].qs), loadu256(y[b].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), _mm256_cvtepi32_ps(p), acc0);
    }
    *out = hsum_ps(_mm256_add_ps(acc0, acc1));
}

namespace {
// One weight row against 4 activation rows. Each row's accumulators follow vec_dot's
// exactly (even blocks in acc0, odd in acc1, then one horizontal sum), so every result is
// bit-identical to vec_dot's; only the weight block's load and unpacking are shared.
template <typename Block, typename Unpack>
void dot_x4(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride, Unpack unpack) {
    const Block* x = static_cast<const Block*>(w);
    const BlockQ8_0* y[4];
    for (int r = 0; r < 4; ++r) y[r] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + r * act_stride);
    const int64_t nb = n / kQK;
    __m256 acc[4][2];
    for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const __m256i xq = unpack(x[b]);
        const float dx = h2f(x[b].d);
        const int slot = static_cast<int>(b & 1);  // vec_dot: odd blocks always go to acc1
        for (int r = 0; r < 4; ++r) {
            const __m256i p = dot_i8(xq, loadu256(y[r][b].qs));
            acc[r][slot] = _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f(y[r][b].d)), _mm256_cvtepi32_ps(p), acc[r][slot]);
        }
    }
    for (int r = 0; r < 4; ++r) out4[r] = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
}
}  // namespace

void vec_dot_x4_q8_0_q8_0(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride) {
    dot_x4<BlockQ8_0>(n, out4, w, a, act_stride, [](const BlockQ8_0& blk) { return loadu256(blk.qs); });
}

void vec_dot_x4_q4_0_q8_0(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride) {
    dot_x4<BlockQ4_0>(n, out4, w, a, act_stride, [](const BlockQ4_0& blk) { return unpack_q4_0(blk.qs); });
}

namespace {
// Activation row r of R, act_stride bytes apart.
template <int R>
void rows_of(const void* a, uint64_t act_stride, const BlockQ8_K* y[R]) {
    for (int r = 0; r < R; ++r) y[r] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + r * act_stride);
}

// One Q4_K weight row against R Q8_K activation rows. The weight block's nibbles and scales
// are unpacked once for all R rows; each row's arithmetic is the same whatever R is, so
// the 4-row kernel gives exactly vec_dot's bits.
template <int R>
void q4_K_dots(int64_t n, const BlockQ4_K* x, const BlockQ8_K* const* y, float* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        alignas(16) uint8_t sm[16];
        q4k_unpack_scales(x[b].scales, sm);
        const __m128i scm = _mm_load_si128(reinterpret_cast<const __m128i*>(sm));
        // Scales as int16, the same 8 in both lanes, for per-sub-block broadcasts.
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scm));
        // Mins: m_j times the two Q8_K group sums of sub-block j, in one madd.
        const __m128i mins8 = _mm_srli_si128(scm, 8);
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins8, mins8));
        __m256i lo[4], hi[4], sa[4], sb[4];
        for (int c = 0; c < 4; ++c) {
            const __m256i q = loadu256(x[b].qs + 32 * c);
            lo[c] = _mm256_and_si256(q, m4);
            hi[c] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            sa[c] = _mm256_shuffle_epi8(sc16, bcast16(2 * c));
            sb[c] = _mm256_shuffle_epi8(sc16, bcast16(2 * c + 1));
        }
        const float xd = h2f(x[b].d), xdmin = h2f(x[b].dmin);
        for (int r = 0; r < R; ++r) {
            const BlockQ8_K& yb = y[r][b];
            const __m256i msum = _mm256_madd_epi16(loadu256(yb.bsums), mins16);
            __m256i sumi = _mm256_setzero_si256();
            for (int c = 0; c < 4; ++c) {
                const __m256i pa = _mm256_maddubs_epi16(lo[c], loadu256(yb.qs + 64 * c));
                const __m256i pb = _mm256_maddubs_epi16(hi[c], loadu256(yb.qs + 64 * c + 32));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_madd_epi16(pa, sa[c]), _mm256_madd_epi16(pb, sb[c])));
            }
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xd * yb.d), _mm256_cvtepi32_ps(sumi), acc[r]);
            acc[r] = _mm256_fnmadd_ps(_mm256_set1_ps(xdmin * yb.d), _mm256_cvtepi32_ps(msum), acc[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum_ps(acc[r]);
}

// One Q6_K weight row against R Q8_K activation rows, the 6-bit values assembled once per
// weight block. q6 stays unsigned (0..63) for maddubs; the -32 offset is applied once per
// block through Q8_K's group sums: sum sc*(q-32)*y = sum sc*q*y - 32 * sum sc*bsum.
template <int R>
void q6_K_dots(int64_t n, const BlockQ6_K* x, const BlockQ8_K* const* y, float* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    // Quarter k of a half covers groups 2k (low lane) and 2k+1 (high lane).
    const __m256i sel[4] = {
        _mm256_set_m128i(_mm256_castsi256_si128(bcast16(1)), _mm256_castsi256_si128(bcast16(0))),
        _mm256_set_m128i(_mm256_castsi256_si128(bcast16(3)), _mm256_castsi256_si128(bcast16(2))),
        _mm256_set_m128i(_mm256_castsi256_si128(bcast16(5)), _mm256_castsi256_si128(bcast16(4))),
        _mm256_set_m128i(_mm256_castsi256_si128(bcast16(7)), _mm256_castsi256_si128(bcast16(6))),
    };
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / kQK_K; ++b) {
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
        __m256i q[2][4], s[2][4];
        for (int h = 0; h < 2; ++h) {
            const __m256i s16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_srli_si128(sc, 8) : sc));
            const __m256i ql0 = loadu256(x[b].ql + 64 * h);
            const __m256i ql1 = loadu256(x[b].ql + 64 * h + 32);
            const __m256i qh = loadu256(x[b].qh + 32 * h);
            // 16-bit shifts spill bits across bytes; the masks drop them.
            q[h][0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            q[h][1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            q[h][2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
            q[h][3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                      _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            for (int k = 0; k < 4; ++k) s[h][k] = _mm256_shuffle_epi8(s16, sel[k]);
        }
        const float xd = h2f(x[b].d);
        for (int r = 0; r < R; ++r) {
            const BlockQ8_K& yb = y[r][b];
            const __m256i corr = _mm256_madd_epi16(sc16, loadu256(yb.bsums));
            __m256i sumi = _mm256_setzero_si256();
            for (int h = 0; h < 2; ++h) {
                for (int k = 0; k < 4; ++k) {
                    const __m256i p = _mm256_maddubs_epi16(q[h][k], loadu256(yb.qs + 128 * h + 32 * k));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s[h][k]));
                }
            }
            sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xd * yb.d), _mm256_cvtepi32_ps(sumi), acc[r]);
        }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum_ps(acc[r]);
}
}  // namespace

void vec_dot_q4_K_q8_K(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ8_K* y[1];
    rows_of<1>(a, 0, y);
    q4_K_dots<1>(n, static_cast<const BlockQ4_K*>(w), y, out);
}

void vec_dot_x4_q4_K_q8_K(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride) {
    const BlockQ8_K* y[4];
    rows_of<4>(a, act_stride, y);
    q4_K_dots<4>(n, static_cast<const BlockQ4_K*>(w), y, out4);
}

void vec_dot_q6_K_q8_K(int64_t n, float* out, const void* w, const void* a) {
    const BlockQ8_K* y[1];
    rows_of<1>(a, 0, y);
    q6_K_dots<1>(n, static_cast<const BlockQ6_K*>(w), y, out);
}

void vec_dot_x4_q6_K_q8_K(int64_t n, float* out4, const void* w, const void* a, uint64_t act_stride) {
    const BlockQ8_K* y[4];
    rows_of<4>(a, act_stride, y);
    q6_K_dots<4>(n, static_cast<const BlockQ6_K*>(w), y, out4);
}

}  // namespace ei::cpu::avx2
#endif  // __x86_64__
