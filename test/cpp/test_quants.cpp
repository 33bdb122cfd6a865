// Weight-type kernels: block decoding against hand-built blocks and against the f32 model
// the quantized test models were made from; every SIMD variant this CPU can run against
// the scalar reference; activation quantization bit-exact across variants.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/cpu_features.h"
#include "cpu/quants.h"
#include "cpu/quants_impl.h"
#include "gguf.h"

using ei::GgmlType;
using namespace ei::cpu;

namespace {

const GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0,
                           GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K};
const KernelVariant kSimd[] = {KernelVariant::Avx2, KernelVariant::Neon, KernelVariant::NeonDotprod,
                                KernelVariant::NeonI8mm};

const char* tname(GgmlType t) { return ei::type_traits(t).name; }

// Mixed sign and magnitude: each 32-element stretch has its own scale (1e-3 .. 10), with
// occasional outliers and exact zeros, like real activations.
std::vector<float> random_floats(std::mt19937& rng, int64_t n) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::uniform_real_distribution<float> ud(-3.0f, 1.0f);
    std::uniform_int_distribution<int> pick(0, 63);
    std::vector<float> v(static_cast<size_t>(n));
    float scale = 1.0f;
    for (int64_t i = 0; i < n; ++i) {
        if (i % 32 == 0) scale = std::pow(10.0f, ud(rng));
        const int p = pick(rng);
        v[i] = p == 0 ? 0.0f : nd(rng) * scale * (p == 1 ? 8.0f : 1.0f);
    }
    return v;
}

// ggml's quantize_row_q4_0_ref rule (for making test weights): the element of largest
// magnitude maps to -8, q = min(15, trunc(x/d + 8.5)).
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQK; ++j)
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < kQK / 2; ++j) {
            const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
            const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQK / 2] * id + 8.5f)));
            y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

// A weight row of type t with n elements. Q4_K/Q6_K blocks are random bytes (every bit
// pattern is a valid block) with sane f16 scales; Q8_0 gets some -128s, which ggml's
// quantizer never makes but a file may hold.
std::vector<uint8_t> random_weights(std::mt19937& rng, GgmlType t, int64_t n) {
    std::vector<uint8_t> row(row_size(t, n));
    const std::vector<float> f = random_floats(rng, n);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    switch (t) {
        case GgmlType::F32: std::memcpy(row.data(), f.data(), row.size()); break;
        case GgmlType::F16: ref::from_float_f16(f.data(), row.data(), n); break;
        case GgmlType::BF16: ref::from_float_bf16(f.data(), row.data(), n); break;
        case GgmlType::Q8_0: {
            ref::from_float_q8_0(f.data(), row.data(), n);
            auto* blk = reinterpret_cast<BlockQ8_0*>(row.data());
            for (int64_t b = 0; b < n / kQK; b += 2) blk[b].qs[b % kQK] = -128;
            break;
        }
        case GgmlType::Q4_0: quantize_q4_0(f.data(), reinterpret_cast<BlockQ4_0*>(row.data()), n); break;
        case GgmlType::Q4_K: {
            for (auto& c : row) c = static_cast<uint8_t>(byte(rng));
            auto* blk = reinterpret_cast<BlockQ4_K*>(row.data());
            for (int64_t b = 0; b < n / kQK_K; ++b) {
                blk[b].d = fp32_to_fp16(1e-3f + 2e-2f * ud(rng));
                blk[b].dmin = fp32_to_fp16(1e-2f * ud(rng));
            }
            break;
        }
        case GgmlType::Q6_K: {
            for (auto& c : row) c = static_cast<uint8_t>(byte(rng));
            auto* blk = reinterpret_cast<BlockQ6_K*>(row.data());
            for (int64_t b = 0; b < n / kQK_K; ++b) blk[b].d = fp32_to_fp16(1e-4f + 1e-2f * ud(rng));
            break;
        }
        default: break;
    }
    return row;
}

// Decode an activation row of a vec_dot_type (Q8_K has no weight-type table entry).
std::vector<float> act_to_float(GgmlType t, const void* src, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    switch (t) {
        case GgmlType::F32: ref::to_float_f32(src, out.data(), n); break;
        case GgmlType::F16: ref::to_float_f16(src, out.data(), n); break;
        case GgmlType::BF16: ref::to_float_bf16(src, out.data(), n); break;
        case GgmlType::Q8_0: ref::to_float_q8_0(src, out.data(), n); break;
        case GgmlType::Q8_K: ref::to_float_q8_K(src, out.data(), n); break;
        default: CHECK(false);
    }
    return out;
}

// sum |w_i * a_i| in double: the scale that float summation error is relative to.
double abs_dot(const std::vector<float>& w, const std::vector<float>& a) {
    double s = 0.0;
    for (size_t i = 0; i < w.size(); ++i) s += std::fabs(static_cast<double>(w[i]) * a[i]);
    return s;
}

double plain_dot(const std::vector<float>& w, const std::vector<float>& a) {
    double s = 0.0;
    for (size_t i = 0; i < w.size(); ++i) s += static_cast<double>(w[i]) * a[i];
    return s;
}

std::vector<float> dequant(const TypeKernels& k, const void* row, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    k.to_float(row, out.data(), n);
    return out;
}

std::vector<uint8_t> prepare(const TypeKernels& k, const std::vector<float>& f) {
    const int64_t n = static_cast<int64_t>(f.size());
    std::vector<uint8_t> act(row_size(k.vec_dot_type, n));
    k.from_float(f.data(), act.data(), n);
    return act;
}

// Element counts to try: 1, 3, 7 blocks (odd), larger, and for the float types lengths
// that leave SIMD tails.
std::vector<int64_t> sizes_for(GgmlType t) {
    const int64_t bs = ei::type_traits(t).block_size;
    if (bs == 1) return {1, 3, 7, 31, 33, 100, 1000, 4099};
    std::vector<int64_t> s;
    for (int64_t nb : {1, 3, 7, 16, 33}) s.push_back(nb * (bs == 32 ? 32 : 256));
    return s;
}

}  // namespace

TEST(quants_row_sizes) {
    CHECK_EQ(row_size(GgmlType::F32, 7), size_t(28));
    CHECK_EQ(row_size(GgmlType::F16, 7), size_t(14));
    CHECK_EQ(row_size(GgmlType::BF16, 3), size_t(6));
    CHECK_EQ(row_size(GgmlType::Q8_0, 64), size_t(68));
    CHECK_EQ(row_size(GgmlType::Q4_0, 96), size_t(54));
    CHECK_EQ(row_size(GgmlType::Q4_K, 512), size_t(288));
    CHECK_EQ(row_size(GgmlType::Q6_K, 256), size_t(210));
    CHECK_EQ(row_size(GgmlType::Q8_K, 768), size_t(876));
    CHECK_EQ(row_size(GgmlType::Q4_K, 100), size_t(0));  // not whole blocks
    CHECK_EQ(row_size(static_cast<GgmlType>(4), 32), size_t(0));  // no such type
}

TEST(quants_dispatch) {
    const CpuFeatures& f = cpu_features();
    std::printf("  cpu features: %s\n", cpu_features_string().c_str());
    const char* masked = std::getenv("EI_CPU_DISABLE");
    KernelVariant want = KernelVariant::Scalar;
#if defined(EI_HAVE_AVX2_KERNELS)
    if (f.avx2 && f.fma && f.f16c) want = KernelVariant::Avx2;
#if defined(__x86_64__)
    // An independent detector (the compiler's), so broken detection cannot hide itself
    // behind a matching fallback.
    if (!masked && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        CHECK(f.avx2 && f.fma && f.f16c);
        CHECK(want == KernelVariant::Avx2);
    }
#endif
#endif
#if defined(EI_HAVE_NEON_KERNELS)
    if (!masked) CHECK(f.neon);
    if (f.neon) want = f.dotprod ? KernelVariant::NeonDotprod : KernelVariant::Neon;
#endif
    (void)f;
    (void)masked;
    for (GgmlType t : kTypes) {
        const TypeKernels* k = kernels_for(t);
        CHECK(k != nullptr);
        if (!k) continue;
        std::printf("  %-5s -> %s (dots with %s)\n", tname(t), variant_name(k->variant), tname(k->vec_dot_type));
        // i8mm kernels exist for Q8_0 and Q4_0 only; the other types keep the dotprod ones.
        const bool i8mm_type = (t == GgmlType::Q8_0 || t == GgmlType::Q4_0) && want == KernelVariant::NeonDotprod &&
                               f.i8mm;
        CHECK(k->variant == (i8mm_type ? KernelVariant::NeonI8mm : want));
        CHECK(k->type == t);
        CHECK(k->to_float && k->from_float && k->vec_dot);
        const TypeKernels* s = kernels_for(t, KernelVariant::Scalar);
        CHECK(s != nullptr && s->variant == KernelVariant::Scalar && s->vec_dot_type == k->vec_dot_type);
    }
    CHECK(kernels_for(GgmlType::F32)->vec_dot_type == GgmlType::F32);
    CHECK(kernels_for(GgmlType::F16)->vec_dot_type == GgmlType::F16);
    CHECK(kernels_for(GgmlType::BF16)->vec_dot_type == GgmlType::BF16);
    CHECK(kernels_for(GgmlType::Q8_0)->vec_dot_type == GgmlType::Q8_0);
    CHECK(kernels_for(GgmlType::Q4_0)->vec_dot_type == GgmlType::Q8_0);
    CHECK(kernels_for(GgmlType::Q4_K)->vec_dot_type == GgmlType::Q8_K);
    CHECK(kernels_for(GgmlType::Q6_K)->vec_dot_type == GgmlType::Q8_K);
    for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q5_K, GgmlType::Q8_K, GgmlType::IQ4_XS, GgmlType::I32}) {
        CHECK(kernels_for(t) == nullptr);
        CHECK(kernels_for(t, KernelVariant::Scalar) == nullptr);
    }
#if !defined(EI_HAVE_AVX2_KERNELS)
    CHECK(kernels_for(GgmlType::F32, KernelVariant::Avx2) == nullptr);
#endif
#if !defined(EI_HAVE_NEON_KERNELS)
    CHECK(kernels_for(GgmlType::F32, KernelVariant::Neon) == nullptr);
    CHECK(kernels_for(GgmlType::F32, KernelVariant::NeonDotprod) == nullptr);
#endif
}

TEST(quants_half_conversions) {
    CHECK_EQ(fp32_to_fp16(1.0f), 0x3c00);
    CHECK_EQ(fp32_to_fp16(-2.0f), 0xc000);
    CHECK_EQ(fp32_to_fp16(0.1f), 0x2e66);
    CHECK_EQ(fp32_to_fp16(65504.0f), 0x7bff);
    CHECK_EQ(fp32_to_fp16(65519.99f), 0x7bff);
    CHECK_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // the tie rounds to even: infinity
    CHECK_EQ(fp32_to_fp16(-INFINITY), 0xfc00);
    CHECK_EQ(fp32_to_fp16(-0.0f), 0x8000);
    CHECK_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
    CHECK_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);       // tie to even
    CHECK_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);       // tie to even
    CHECK_EQ(fp32_to_fp16(std::ldexp(1023.5f, -24)), 0x0400);    // rounds up into the normals
    CHECK_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie to even
    CHECK_EQ(fp32_to_fp16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
    CHECK_EQ(fp32_to_fp16(NAN) & 0x7e00, 0x7e00);
    CHECK(fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(fp16_to_fp32(0xc000) == -2.0f);
    CHECK(fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));
    CHECK(fp16_to_fp32(0x03ff) == std::ldexp(1023.0f, -24));
    CHECK(fp16_to_fp32(0x7bff) == 65504.0f);
    CHECK(std::isinf(fp16_to_fp32(0x7c00)));
    CHECK(std::isnan(fp16_to_fp32(0x7e00)));
    // Every finite half survives half -> float -> half.
    for (uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7c00) == 0x7c00) continue;
        if (fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))) != h) {
            CHECK(false);
            break;
        }
    }
    CHECK_EQ(fp32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ(fp32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie, even stays
    CHECK_EQ(fp32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    CHECK_EQ(fp32_to_bf16(f32_from_bits(0x3f808001u)), 0x3f81);
    CHECK_EQ(fp32_to_bf16(f32_from_bits(0x7f800001u)), 0x7fc0);  // NaN made quiet
    CHECK_EQ(fp32_to_bf16(f32_from_bits(0x00000001u)), 0x0000);  // subnormals kept (rounded)
    CHECK_EQ(fp32_to_bf16(f32_from_bits(0x00018000u)), 0x0002);
    CHECK(bf16_to_fp32(0xc040) == -3.0f);
}

TEST(quants_known_blocks) {
    // Q8_0: d = 0.5, q = j - 16.
    {
        BlockQ8_0 b{};
        b.d = 0x3800;
        for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j - 16);
        float y[32];
        kernels_for(GgmlType::Q8_0, KernelVariant::Scalar)->to_float(&b, y, 32);
        CHECK(y[5] == -5.5f);
        CHECK(y[16] == 0.0f);
        CHECK(y[31] == 7.5f);
    }
    // Q4_0: d = 2, x = 2*(q - 8); element j is the low nibble of qs[j], j+16 the high one.
    {
        BlockQ4_0 b{};
        b.d = 0x4000;
        std::memset(b.qs, 0x88, sizeof b.qs);
        b.qs[0] = 0x1F;
        b.qs[3] = 0x80;
        float y[32];
        kernels_for(GgmlType::Q4_0, KernelVariant::Scalar)->to_float(&b, y, 32);
        CHECK(y[0] == 14.0f);
        CHECK(y[16] == -14.0f);
        CHECK(y[3] == -16.0f);
        CHECK(y[19] == 0.0f);
        CHECK(y[7] == 0.0f);
    }
    // Q4_K: d = 1, dmin = 0.5; 6-bit scales/mins packed as ggml does.
    {
        const uint8_t sc[8] = {1, 2, 3, 4, 33, 50, 17, 63};
        const uint8_t mn[8] = {0, 5, 10, 63, 20, 37, 1, 48};
        BlockQ4_K b{};
        b.d = 0x3c00;
        b.dmin = 0x3800;
        for (int j = 0; j < 4; ++j) {
            b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
            b.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
            b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
        }
        uint8_t packed[16];
        q4k_unpack_scales(b.scales, packed);
        for (int j = 0; j < 8; ++j) {
            uint8_t s, m;
            q4k_scale_min(j, b.scales, &s, &m);
            CHECK(s == sc[j] && m == mn[j]);
            CHECK(packed[j] == sc[j] && packed[8 + j] == mn[j]);
        }
        b.qs[0] = 0x5A;   // element 0 (sub-block 0) = 10, element 32 (sub-block 1) = 5
        b.qs[71] = 0xF3;  // chunk 2, l=7: element 135 (sb 4) = 3, element 167 (sb 5) = 15
        b.qs[127] = 0x0F; // chunk 3, l=31: element 223 (sb 6) = 15, element 255 (sb 7) = 0
        float y[256];
        kernels_for(GgmlType::Q4_K, KernelVariant::Scalar)->to_float(&b, y, 256);
        CHECK(y[0] == 10.0f);             // 1*1*10 - 0.5*0
        CHECK(y[32] == 7.5f);             // 1*2*5 - 0.5*5
        CHECK(y[1] == 0.0f);              // q=0, min 0
        CHECK(y[33] == -2.5f);            // q=0, min 5
        CHECK(y[135] == 89.0f);           // 33*3 - 0.5*20
        CHECK(y[167] == 731.5f);          // 50*15 - 0.5*37
        CHECK(y[223] == 254.5f);          // 17*15 - 0.5*1
        CHECK(y[255] == -24.0f);          // 63*0 - 0.5*48
    }
    // Q6_K: d = 0.25, x = d * scale[e/16] * (q - 32); q = 4 bits of ql + 2 bits of qh.
    {
        BlockQ6_K b{};
        b.d = 0x3400;
        std::memset(b.ql, 0, sizeof b.ql);
        std::memset(b.qh, 0xAA, sizeof b.qh);  // high bits 2 everywhere: q = 32 -> 0
        b.scales[0] = 3;
        b.scales[2] = 1;
        b.scales[5] = -7;
        b.scales[9] = -128;
        b.scales[15] = 127;
        b.ql[0] = 0x05;   // element 0: low nibble of ql[0], bits 0-1 of qh[0]
        b.qh[0] = 0xA8 | 0x2;
        b.ql[33] = 0x07;  // element 33: low nibble of ql[32+1], bits 2-3 of qh[1]
        b.qh[1] = 0xA2 | (1 << 2);
        b.ql[16] = 0xC0;  // element 80: high nibble of ql[16], bits 4-5 of qh[16]
        b.qh[16] = 0x8A | (3 << 4);
        b.ql[86] = 0x00;  // element 150: low nibble of ql[64+22], bits 0-1 of qh[32+22]
        b.qh[54] = 0xA8;
        b.ql[127] = 0xF0; // element 255: high nibble of ql[64+63], bits 6-7 of qh[32+31]
        b.qh[63] = 0x2A | (3 << 6);
        float y[256];
        kernels_for(GgmlType::Q6_K, KernelVariant::Scalar)->to_float(&b, y, 256);
        CHECK(y[0] == 3.75f);     // 0.25 * 3 * (37-32)
        CHECK(y[33] == -2.25f);   // 0.25 * 1 * (23-32)
        CHECK(y[80] == -49.0f);   // 0.25 * -7 * (60-32)
        CHECK(y[150] == 1024.0f); // 0.25 * -128 * (0-32)
        CHECK(y[255] == 984.25f); // 0.25 * 127 * (63-32)
        CHECK(y[1] == 0.0f);
    }
    // F16 / BF16 rows.
    {
        const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
        float y[4];
        kernels_for(GgmlType::F16, KernelVariant::Scalar)->to_float(h, y, 4);
        CHECK(y[0] == 1.0f && y[1] == -2.0f && y[2] == std::ldexp(1.0f, -24) && y[3] == 65504.0f);
        const uint16_t bh[2] = {0x3f80, 0xc040};
        kernels_for(GgmlType::BF16, KernelVariant::Scalar)->to_float(bh, y, 2);
        CHECK(y[0] == 1.0f && y[1] == -3.0f);
    }
}

TEST(quants_activation_rules) {
    // Q8_0: amax 127 gives d = 1, so q = roundf(x): ties go away from zero.
    {
        float x[32] = {};
        x[0] = 127.0f;
        x[1] = 2.5f;
        x[2] = -2.5f;
        x[3] = 0.5f;
        x[4] = -0.5f;
        x[5] = 1.49f;
        x[6] = -126.6f;
        x[7] = 0.49999997f;
        BlockQ8_0 y;
        ref::from_float_q8_0(x, &y, 32);
        CHECK_EQ(y.d, 0x3c00);
        CHECK_EQ(int(y.qs[0]), 127);
        CHECK_EQ(int(y.qs[1]), 3);
        CHECK_EQ(int(y.qs[2]), -3);
        CHECK_EQ(int(y.qs[3]), 1);
        CHECK_EQ(int(y.qs[4]), -1);
        CHECK_EQ(int(y.qs[5]), 1);
        CHECK_EQ(int(y.qs[6]), -127);
        CHECK_EQ(int(y.qs[7]), 0);
        float z[32] = {};
        ref::from_float_q8_0(z, &y, 32);
        CHECK_EQ(y.d, 0);
        CHECK_EQ(int(y.qs[9]), 0);
    }
    // Q8_K: the first largest-magnitude element (-127 here, before +127) sets iscale = 1;
    // nearest_int rounds ties to even.
    {
        std::vector<float> x(256, 0.0f);
        x[10] = -127.0f;
        x[20] = 127.0f;
        x[1] = 2.5f;
        x[2] = 3.5f;
        x[3] = -2.5f;
        x[17] = 5.0f;
        BlockQ8_K y;
        ref::from_float_q8_K(x.data(), &y, 256);
        CHECK(y.d == 1.0f);
        CHECK_EQ(int(y.qs[10]), -127);
        CHECK_EQ(int(y.qs[20]), 127);
        CHECK_EQ(int(y.qs[1]), 2);
        CHECK_EQ(int(y.qs[2]), 4);
        CHECK_EQ(int(y.qs[3]), -2);
        CHECK_EQ(int(y.bsums[0]), 2 + 4 - 2 - 127);
        CHECK_EQ(int(y.bsums[1]), 5 + 127);
        CHECK_EQ(int(y.bsums[2]), 0);
        // The sign of the first maximum decides the sign of d.
        x[10] = 127.0f;
        x[20] = -127.0f;
        ref::from_float_q8_K(x.data(), &y, 256);
        CHECK(y.d == -1.0f);
        CHECK_EQ(int(y.qs[10]), -127);
        CHECK_EQ(int(y.qs[1]), -2);
        std::vector<float> z(256, 0.0f);
        ref::from_float_q8_K(z.data(), &y, 256);
        CHECK(y.d == 0.0f);
        CHECK_EQ(int(y.bsums[5]), 0);
    }
}

// Non-finite activations (a corrupt state's NaN in the KV cache, an overflow) must stay
// defined behaviour in the scalar quantizer: each such element becomes -128, as on AVX2.
TEST(quants_q8_0_non_finite_activations) {
    float x[96];
    for (int j = 0; j < 32; ++j) x[j] = float(j - 16);  // a NaN among finite values
    x[5] = std::numeric_limits<float>::quiet_NaN();
    for (int j = 32; j < 64; ++j) x[j] = j % 2 ? std::numeric_limits<float>::infinity() : 1.0f;
    for (int j = 64; j < 96; ++j) x[j] = 1e-39f;  // subnormal: 1/d overflows to inf
    BlockQ8_0 y[3];
    ref::from_float_q8_0(x, y, 96);
    CHECK_EQ(int(y[0].qs[5]), -128);
    CHECK_EQ(int(y[0].qs[0]), -127);  // the finite elements keep their scale (amax 16)
    CHECK_EQ(int(y[0].qs[24]), 64);
    for (int j = 0; j < 32; ++j) CHECK_EQ(int(y[1].qs[j]), j % 2 ? -128 : 0);  // amax inf: id 0
    for (int j = 0; j < 32; ++j) CHECK_EQ(int(y[2].qs[j]), -128);
}

// (a) quantize then dequantize stays close, per the types' resolution.
TEST(quants_roundtrip) {
    std::mt19937 rng(1234);
    const int64_t n = 7 * 256;
    const std::vector<float> x = random_floats(rng, n);
    for (GgmlType t : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_K}) {
        std::vector<uint8_t> q(row_size(t, n));
        switch (t) {
            case GgmlType::F16: ref::from_float_f16(x.data(), q.data(), n); break;
            case GgmlType::BF16: ref::from_float_bf16(x.data(), q.data(), n); break;
            case GgmlType::Q8_0: ref::from_float_q8_0(x.data(), q.data(), n); break;
            default: ref::from_float_q8_K(x.data(), q.data(), n); break;
        }
        const std::vector<float> y = act_to_float(t, q.data(), n);
        const int64_t bs = t == GgmlType::Q8_0 ? 32 : 256;
        bool ok = true;
        for (int64_t b = 0; b < n / bs && ok; ++b) {
            float amax = 0.0f;
            for (int64_t j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(x[b * bs + j]));
            for (int64_t j = 0; j < bs; ++j) {
                const float xv = x[b * bs + j], yv = y[b * bs + j];
                float tol;
                if (t == GgmlType::F16) tol = std::fabs(xv) * std::ldexp(1.0f, -11) + std::ldexp(1.0f, -25);
                else if (t == GgmlType::BF16) tol = std::fabs(xv) * std::ldexp(1.0f, -8);
                else tol = amax / 127.0f * 0.57f;  // half a step, plus Q8_0's f16 rounding of d
                if (!(std::fabs(xv - yv) <= tol)) ok = false;
            }
        }
        if (!ok) std::fprintf(stderr, "  roundtrip too coarse for %s\n", tname(t));
        CHECK(ok);
    }
    // Q4_0 by ggml's reference quantizer: at most one step (|d|) per element.
    std::vector<BlockQ4_0> q4(n / 32);
    quantize_q4_0(x.data(), q4.data(), n);
    const std::vector<float> y = dequant(*kernels_for(GgmlType::Q4_0, KernelVariant::Scalar), q4.data(), n);
    int64_t coarse = 0;
    double err2 = 0.0, x2 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double e = x[i] - y[i];
        if (!(std::fabs(e) <= std::fabs(fp16_to_fp32(q4[i / 32].d)) * 1.01)) ++coarse;
        err2 += e * e;
        x2 += double(x[i]) * x[i];
    }
    CHECK_EQ(coarse, int64_t(0));
    // ~0.16 here: blocks dominated by the generator's 8x outliers get a coarse step.
    CHECK(std::sqrt(err2 / x2) < 0.2);
}

// (b) every SIMD variant's vec_dot matches the scalar one (F32, F16: bit for bit); (c) its from_float is
// bit-identical to the scalar rule.
TEST(quants_variants_match_scalar) {
    std::mt19937 rng(42);
    int compared = 0;
    for (GgmlType t : kTypes) {
        const TypeKernels* s = kernels_for(t, KernelVariant::Scalar);
        for (KernelVariant v : kSimd) {
            const TypeKernels* k = kernels_for(t, v);
            if (!k) continue;
            CHECK(k->variant == v && k->type == t && k->vec_dot_type == s->vec_dot_type);
            double worst = 0.0;
            for (int64_t n : sizes_for(t)) {
                const std::vector<uint8_t> w = random_weights(rng, t, n);
                const std::vector<float> xf = random_floats(rng, n);
                const std::vector<uint8_t> act = prepare(*s, xf);
                const std::vector<uint8_t> act_v = prepare(*k, xf);
                if (act != act_v) {
                    std::fprintf(stderr, "  %s/%s from_float differs from scalar (n=%lld)\n", tname(t),
                                 variant_name(v), (long long)n);
                    CHECK(false);
                }
                float ref_out = 0.0f, out = 0.0f;
                s->vec_dot(n, &ref_out, w.data(), act.data());
                k->vec_dot(n, &out, w.data(), act.data());
                const double scale = abs_dot(dequant(*s, w.data(), n), act_to_float(s->vec_dot_type, act.data(), n));
                worst = std::max(worst, std::fabs(double(out) - ref_out) / scale);
                // F32 and F16 follow the 16-lane order of float_math.h: the same bits everywhere.
                const bool exact = t == GgmlType::F32 || t == GgmlType::F16;
                if (exact ? std::memcmp(&out, &ref_out, 4) != 0 : !(std::fabs(double(out) - ref_out) <= 2e-6 * scale + 1e-30)) {
                    std::fprintf(stderr, "  %s/%s n=%lld: %.9g vs scalar %.9g (|dot| scale %.6g)\n", tname(t),
                                 variant_name(v), (long long)n, out, ref_out, scale);
                    CHECK(false);
                }
                std::vector<float> y = dequant(*k, w.data(), n), ys = dequant(*s, w.data(), n);
                CHECK(std::memcmp(y.data(), ys.data(), y.size() * 4) == 0);
                ++compared;
            }
            std::printf("  %-5s %-12s worst |dot - scalar| / sum|w*a| = %.2g\n", tname(t), variant_name(v), worst);
        }
    }
    std::printf("  %d variant/type/size combinations compared\n", compared);
}

// (c) the exact rules on awkward inputs: every f16 bit pattern, float bit patterns across
// all exponents (NaN, inf, subnormals), and rounding ties for Q8_0 / Q8_K.
TEST(quants_variants_conversions_exact) {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
    std::mt19937 rng(7);
    std::vector<float> bits(1 << 16);
    for (auto& f : bits) f = f32_from_bits(static_cast<uint32_t>(rng()));
    // Values on and around the f16 rounding boundaries.
    for (size_t i = 0; i < 4096; ++i) bits[i] = f32_from_bits(0x38000000u + static_cast<uint32_t>(i) * 0x1000u + (i & 1 ? 0 : 0x1000u / 2));
    for (size_t i = 4096; i < 8192; ++i) bits[i] = f32_from_bits(0x33000000u + static_cast<uint32_t>(i - 4096) * 0x800u);

    std::vector<float> ties(512);
    for (int b = 0; b < 16; ++b) {
        ties[32 * b] = b % 2 ? -127.0f : 127.0f;  // d = 1
        for (int j = 1; j < 32; ++j) ties[32 * b + j] = static_cast<float>((j * 7 + b) % 120 - 60) + 0.5f;
    }
    for (KernelVariant v : kSimd) {
        for (GgmlType t : {GgmlType::F16, GgmlType::BF16}) {
            const TypeKernels* k = kernels_for(t, v);
            const TypeKernels* s = kernels_for(t, KernelVariant::Scalar);
            if (!k) continue;
            std::vector<float> a(65536), b(65536);
            k->to_float(all.data(), a.data(), 65536);
            s->to_float(all.data(), b.data(), 65536);
            CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
            std::vector<uint16_t> ha(bits.size()), hb(bits.size());
            k->from_float(bits.data(), ha.data(), static_cast<int64_t>(bits.size()));
            s->from_float(bits.data(), hb.data(), static_cast<int64_t>(bits.size()));
            size_t bad = 0;
            for (size_t i = 0; i < ha.size(); ++i)
                if (ha[i] != hb[i] && bad++ < 3)
                    std::fprintf(stderr, "  %s/%s: %08x -> %04x vs scalar %04x\n", tname(t), variant_name(v),
                                 f32_bits(bits[i]), ha[i], hb[i]);
            CHECK_EQ(bad, size_t(0));
        }
        for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_K}) {
            const TypeKernels* k = kernels_for(t, v);
            const TypeKernels* s = kernels_for(t, KernelVariant::Scalar);
            if (!k) continue;
            // Q8_K (Q4_K's activations): the first maximum, +-127, makes iscale -+1.
            const std::vector<float>& x = ties;
            std::vector<uint8_t> qa(row_size(k->vec_dot_type, 512)), qb(qa.size());
            k->from_float(x.data(), qa.data(), 512);
            s->from_float(x.data(), qb.data(), 512);
            CHECK(qa == qb);
        }
    }
}

// (d) the scalar quantized dots equal the dot of the dequantized rows.
TEST(quants_dot_equals_dequantized_dot) {
    std::mt19937 rng(99);
    for (GgmlType t : kTypes) {
        const TypeKernels* s = kernels_for(t, KernelVariant::Scalar);
        for (int64_t n : sizes_for(t)) {
            const std::vector<uint8_t> w = random_weights(rng, t, n);
            const std::vector<uint8_t> act = prepare(*s, random_floats(rng, n));
            const std::vector<float> wf = dequant(*s, w.data(), n);
            const std::vector<float> af = act_to_float(s->vec_dot_type, act.data(), n);
            float out = 0.0f;
            s->vec_dot(n, &out, w.data(), act.data());
            const double want = plain_dot(wf, af);
            if (!(std::fabs(out - want) <= 2e-6 * abs_dot(wf, af) + 1e-30)) {
                std::fprintf(stderr, "  %s n=%lld: %.9g vs dequantized %.9g\n", tname(t), (long long)n, out, want);
                CHECK(false);
            }
        }
    }
}

// (f) the test models: each quantized tensor was made from the f32 model, so its
// dequantized rows must sit close to the f32 rows; and the dots, by every variant, on
// real weights and activations agree.
TEST(quants_real_models) {
    auto f32 = ei::GgufFile::open(check::testdata("models/tiny-llama-f32.gguf"));
    struct Case {
        const char* file;
        const char* tensor;
        GgmlType type;
        double max_rel_rmse;
    };
    const Case cases[] = {
        {"models/tiny-llama-q4_k_m.gguf", "blk.0.attn_q.weight", GgmlType::Q4_K, 0.1},
        {"models/tiny-llama-q4_k_m.gguf", "output.weight", GgmlType::Q6_K, 0.03},
        {"models/tiny-llama-q4_0.gguf", "blk.0.attn_q.weight", GgmlType::Q4_0, 0.15},
        {"models/tiny-llama-q8_0.gguf", "blk.0.attn_q.weight", GgmlType::Q8_0, 0.01},
        {"models/tiny-llama-q8_0.gguf", "output.weight", GgmlType::Q8_0, 0.01},
        {"models/tiny-llama-f16.gguf", "blk.0.ffn_up.weight", GgmlType::F16, 1e-3},
    };
    const ei::TensorInfo* act_src = f32->tensor("token_embd.weight");
    CHECK(act_src && act_src->type == 0);
    if (!act_src) return;
    for (const Case& c : cases) {
        auto q = ei::GgufFile::open(check::testdata(c.file));
        const ei::TensorInfo* tq = q->tensor(c.tensor);
        const ei::TensorInfo* tf = f32->tensor(c.tensor);
        CHECK(tq && tf);
        if (!tq || !tf) continue;
        CHECK(tq->type == static_cast<int32_t>(c.type));
        CHECK(tf->type == 0);
        CHECK(tq->ne[0] == tf->ne[0] && tq->ne[1] == tf->ne[1]);
        const int64_t n = tq->ne[0];
        const size_t rs = row_size(c.type, n);
        CHECK(rs * static_cast<size_t>(tq->rows()) == tq->n_bytes);
        const TypeKernels* s = kernels_for(c.type, KernelVariant::Scalar);
        const int64_t rows = std::min<int64_t>(16, tq->rows());
        double err2 = 0.0, ref2 = 0.0;
        for (int64_t r = 0; r < rows; ++r) {
            const std::vector<float> y = dequant(*s, tq->data + r * rs, n);
            const float* x = reinterpret_cast<const float*>(tf->data) + r * n;
            for (int64_t i = 0; i < n; ++i) {
                err2 += double(y[i] - x[i]) * (y[i] - x[i]);
                ref2 += double(x[i]) * x[i];
            }
            // Real activations: an embedding row (its width matches n for these tensors).
            if (act_src->ne[0] != n) continue;
            const std::vector<float> a(reinterpret_cast<const float*>(act_src->data) + (r * 37 % act_src->rows()) * n,
                                       reinterpret_cast<const float*>(act_src->data) + (r * 37 % act_src->rows() + 1) * n);
            const std::vector<uint8_t> act = prepare(*s, a);
            float ref_out = 0.0f;
            s->vec_dot(n, &ref_out, tq->data + r * rs, act.data());
            const std::vector<float> af = act_to_float(s->vec_dot_type, act.data(), n);
            const double scale = abs_dot(y, af);
            CHECK(std::fabs(ref_out - plain_dot(y, af)) <= 2e-6 * scale);
            for (KernelVariant v : kSimd) {
                const TypeKernels* k = kernels_for(c.type, v);
                if (!k) continue;
                CHECK(prepare(*k, a) == act);
                float out = 0.0f;
                k->vec_dot(n, &out, tq->data + r * rs, act.data());
                CHECK(std::fabs(out - ref_out) <= 2e-6 * scale);
            }
        }
        const double rel = std::sqrt(err2 / ref2);
        std::printf("  %-5s %-22s rmse/rms = %.5f (limit %.3g)\n", tname(c.type), c.tensor, rel, c.max_rel_rmse);
        CHECK(rel < c.max_rel_rmse);
    }
}
