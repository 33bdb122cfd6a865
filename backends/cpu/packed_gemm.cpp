// The r16 packed layout (see packed_gemm.h): packing and activation preparation shared by
// every instruction set, the scalar reference GEMM, and the dispatch.
#include "packed_gemm.h"

#include <cmath>
#include <cstring>

#include "cpu_features.h"
#include "packed_gemm_impl.h"
#include "quants.h"
#include "quants_impl.h"

namespace ei::cpu {

namespace r16 {

namespace {
int64_t groups(int64_t rows) { return (rows + kPackRows - 1) / kPackRows; }
}  // namespace

size_t quant_bytes(bool q4) { return q4 ? 256 : 512; }

size_t group_bytes(bool q4, int64_t k) {
    const size_t nb = static_cast<size_t>(k / kQK);
    return (nb * (quant_bytes(q4) + 2 * kPackRows) + 63) / 64 * 64;
}

size_t packed_size(bool q4, int64_t rows, int64_t k) { return static_cast<size_t>(groups(rows)) * group_bytes(q4, k); }

// Byte layouts (q4 false) hold Q8_0 values + 128 or Q5_0's 5-bit values (0..31) as they are.
void pack(GgmlType type, const uint8_t* w, uint64_t row_bytes, int64_t rows, int64_t k, int64_t g0, int64_t g1,
          uint8_t* out) {
    const bool q4 = type == GgmlType::Q4_0;
    const int64_t nb = k / kQK;
    const size_t qb = quant_bytes(q4);
    for (int64_t g = g0; g < g1; ++g) {
        uint8_t* group = out + static_cast<size_t>(g) * group_bytes(q4, k);
        std::memset(group, 0, group_bytes(q4, k));
        uint16_t* scales = reinterpret_cast<uint16_t*>(group + static_cast<size_t>(nb) * qb);
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* q = group + static_cast<size_t>(b) * qb;
            for (int r = 0; r < kPackRows; ++r) {
                const int64_t row = g * kPackRows + r;
                if (row >= rows) {
                    // Padding rows: scale 0 (their values do not matter; Q8_0's zero is 128).
                    if (type == GgmlType::Q8_0) {
                        for (int j = 0; j < 8; ++j) std::memset(q + 64 * j + 4 * r, 128, 4);
                    }
                    continue;
                }
                const uint8_t* src = w + static_cast<uint64_t>(row) * row_bytes;
                if (q4) {
                    const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(src)[b];
                    scales[b * kPackRows + r] = blk.d;
                    for (int p = 0; p < 4; ++p) std::memcpy(q + 64 * p + 4 * r, blk.qs + 4 * p, 4);
                } else if (type == GgmlType::Q5_0) {
                    const BlockQ5_0& blk = reinterpret_cast<const BlockQ5_0*>(src)[b];
                    scales[b * kPackRows + r] = blk.d;
                    for (int j = 0; j < 8; ++j) {
                        for (int i = 0; i < 4; ++i) q[64 * j + 4 * r + i] = static_cast<uint8_t>(q5_0_value(blk, 4 * j + i));
                    }
                } else {
                    const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(src)[b];
                    scales[b * kPackRows + r] = blk.d;
                    for (int j = 0; j < 8; ++j) {
                        for (int i = 0; i < 4; ++i) {
                            q[64 * j + 4 * r + i] = static_cast<uint8_t>(blk.qs[4 * j + i] + 128);
                        }
                    }
                }
            }
        }
    }
}

size_t act_row_size(int64_t k) { return static_cast<size_t>(k / kQK) * (kQK + 4 + 4); }

// Stores one Q8_0-quantized activation block as block b of a prepared row of nb blocks.
void finish_act(const BlockQ8_0& blk, int64_t b, int64_t nb, int32_t offset, uint8_t* out) {
    std::memcpy(out + b * kQK, blk.qs, kQK);
    const float d = fp16_to_fp32(blk.d);
    std::memcpy(out + nb * kQK + b * 4, &d, 4);
    int32_t sum = 0;
    for (int i = 0; i < kQK; ++i) sum += blk.qs[i];
    const int32_t corr = -offset * sum;
    std::memcpy(out + nb * (kQK + 4) + b * 4, &corr, 4);
}

namespace {

// Activations are ggml's Q8_0 blocks (any bit-identical quantizer) plus the correction term
// for the offset the weight type's layout adds (Q8_0 128, Q4_0 8, Q5_0 16).
template <int32_t Offset, void (*Quantize)(const float*, void*, int64_t)>
void prepare_act(const float* x, int64_t k, uint8_t* out) {
    const int64_t nb = k / kQK;
    for (int64_t b = 0; b < nb; ++b) {
        BlockQ8_0 blk;
        Quantize(x + b * kQK, &blk, kQK);
        finish_act(blk, b, nb, Offset, out);
    }
}

// Element (r, 4j + i) of a block as its unsigned layout value.
template <bool Q4>
uint8_t packed_value(const uint8_t* q, int r, int e) {
    if (!Q4) return q[64 * (e / 4) + 4 * r + e % 4];
    const int lo = e < 16 ? e : e - 16;  // position among the 16 quant bytes
    const uint8_t byte = q[64 * (lo / 4) + 4 * r + lo % 4];
    return e < 16 ? (byte & 0x0F) : (byte >> 4);
}

template <bool Q4>
void gemm_ref(const uint8_t* packed, int64_t rows, int64_t k, int64_t g0, int64_t g1, const uint8_t* act,
              uint64_t act_stride, int32_t n_tok, float* y, uint64_t y_stride, const float* bias, bool accumulate) {
    const int64_t nb = k / kQK;
    const size_t qb = quant_bytes(Q4);
    for (int64_t g = g0; g < g1; ++g) {
        const uint8_t* wg = packed + static_cast<size_t>(g) * group_bytes(Q4, k);
        const uint16_t* scales = reinterpret_cast<const uint16_t*>(wg + static_cast<size_t>(nb) * qb);
        for (int r = 0; r < kPackRows; ++r) {
            const int64_t row = g * kPackRows + r;
            if (row >= rows) break;
            for (int32_t t = 0; t < n_tok; ++t) {
                const uint8_t* a = act + static_cast<uint64_t>(t) * act_stride;
                const int8_t* aq = reinterpret_cast<const int8_t*>(a);
                float acc = 0.0f;
                for (int64_t b = 0; b < nb; ++b) {
                    const uint8_t* blk = wg + static_cast<size_t>(b) * qb;
                    const float ws = fp16_to_fp32(scales[b * kPackRows + r]);
                    float as;
                    int32_t isum;
                    std::memcpy(&as, a + nb * kQK + b * 4, 4);
                    std::memcpy(&isum, a + nb * (kQK + 4) + b * 4, 4);
                    for (int e = 0; e < kQK; ++e) isum += packed_value<Q4>(blk, r, e) * aq[b * kQK + e];
                    acc = std::fma(static_cast<float>(isum), ws * as, acc);
                }
                float v = acc;
                if (bias) v += bias[row];
                float& out = y[static_cast<uint64_t>(t) * y_stride + static_cast<uint64_t>(row)];
                out = accumulate ? out + v : v;
            }
        }
    }
}

template <GgmlType T>
size_t packed_size_t(int64_t rows, int64_t k) {
    return packed_size(T == GgmlType::Q4_0, rows, k);
}
template <GgmlType T>
void pack_t(const uint8_t* w, uint64_t row_bytes, int64_t rows, int64_t k, int64_t g0, int64_t g1, uint8_t* out) {
    pack(T, w, row_bytes, rows, k, g0, g1, out);
}

}  // namespace
}  // namespace r16

namespace {

using GT = ei::GgmlType;

constexpr PackedGemm kReference[] = {
    {GT::Q8_0, "scalar", r16::packed_size_t<GT::Q8_0>, r16::pack_t<GT::Q8_0>, r16::act_row_size,
     r16::prepare_act<128, ref::from_float_q8_0>, r16::gemm_ref<false>},
    {GT::Q4_0, "scalar", r16::packed_size_t<GT::Q4_0>, r16::pack_t<GT::Q4_0>, r16::act_row_size,
     r16::prepare_act<8, ref::from_float_q8_0>, r16::gemm_ref<true>},
    {GT::Q5_0, "scalar", r16::packed_size_t<GT::Q5_0>, r16::pack_t<GT::Q5_0>, r16::act_row_size,
     r16::prepare_act<16, ref::from_float_q8_0>, r16::gemm_ref<false>},
};

#if defined(EI_HAVE_AVX512_KERNELS)
// Q5_0 is held as bytes (0..31), so the byte kernel serves it with its own correction term.
constexpr PackedGemm kAvx512Vnni[] = {
    {GT::Q8_0, "avx512vnni", r16::packed_size_t<GT::Q8_0>, r16::pack_t<GT::Q8_0>, r16::act_row_size,
     r16::prepare_act<128, avx2::from_float_q8_0>, avx512vnni::gemm_q8_0},
    {GT::Q4_0, "avx512vnni", r16::packed_size_t<GT::Q4_0>, r16::pack_t<GT::Q4_0>, r16::act_row_size,
     r16::prepare_act<8, avx2::from_float_q8_0>, avx512vnni::gemm_q4_0},
    {GT::Q5_0, "avx512vnni", r16::packed_size_t<GT::Q5_0>, r16::pack_t<GT::Q5_0>, r16::act_row_size,
     r16::prepare_act<16, avx2::from_float_q8_0>, avx512vnni::gemm_q8_0},
};
#endif

#if defined(EI_HAVE_NEON_KERNELS)
// The same layout on NEON with SDOT; activations quantized by the NEON Q8_0 quantizer (ggml's
// bits, as every from_float_q8_0 variant).
constexpr PackedGemm kNeonDotprod[] = {
    {GT::Q8_0, "neon-dotprod", r16::packed_size_t<GT::Q8_0>, r16::pack_t<GT::Q8_0>, r16::act_row_size,
     r16::prepare_act<128, neon::from_float_q8_0>, neon_dotprod::gemm_q8_0},
    {GT::Q4_0, "neon-dotprod", r16::packed_size_t<GT::Q4_0>, r16::pack_t<GT::Q4_0>, r16::act_row_size,
     r16::prepare_act<8, neon::from_float_q8_0>, neon_dotprod::gemm_q4_0},
    {GT::Q5_0, "neon-dotprod", r16::packed_size_t<GT::Q5_0>, r16::pack_t<GT::Q5_0>, r16::act_row_size,
     r16::prepare_act<16, neon::from_float_q8_0>, neon_dotprod::gemm_q5_0},
};
#endif

template <size_t N>
const PackedGemm* find(const PackedGemm (&table)[N], GT t) {
    for (const PackedGemm& g : table)
        if (g.type == t) return &g;
    return nullptr;
}

}  // namespace

std::vector<const PackedGemm*> packed_gemm_all(GT t) {
    std::vector<const PackedGemm*> all;
    const CpuFeatures& f = cpu_features();
    (void)f;
#if defined(EI_HAVE_AVX512_KERNELS)
    if (f.avx512vnni && f.avx2 && f.fma && f.f16c && find(kAvx512Vnni, t)) all.push_back(find(kAvx512Vnni, t));
#endif
#if defined(EI_HAVE_NEON_KERNELS)
    if (f.dotprod && find(kNeonDotprod, t)) all.push_back(find(kNeonDotprod, t));
#endif
    return all;
}

const PackedGemm* packed_gemm_for(GT t) {
#if defined(EI_HAVE_NEON_KERNELS)
    if (cpu_features().i8mm) return nullptr;  // the SMMLA row-pair kernels (see packed_gemm.h)
#endif
    const std::vector<const PackedGemm*> all = packed_gemm_all(t);
    return all.empty() ? nullptr : all.front();
}

const PackedGemm* packed_gemm_reference(GT t) { return find(kReference, t); }

}  // namespace ei::cpu
