// The multi-row dot kernels (AVX2 1x4 for every weight type but BF16; i8mm 2x2) must give exactly vec_dot's bits for
// every output (prefill and decode then agree bit for bit), on odd block counts.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "cpu/cpu_features.h"
#include "cpu/quants.h"

using namespace ei;
using namespace ei::cpu;

namespace {
// Offsets of the f16 scales in a block of each type that gets random bytes as weights:
// they are set to 1/16 (0x2C00) so the block's values stay finite and sane.
struct RandomBlocks {
    GgmlType type;
    int block_bytes;
    std::vector<int> scale_offsets;
};
const RandomBlocks kRandom[] = {
    {GgmlType::Q4_0, 18, {0}},
    {GgmlType::Q4_K, 144, {0, 2}},
    {GgmlType::Q6_K, 210, {208}},
};
const RandomBlocks* random_blocks(GgmlType t) {
    for (const RandomBlocks& r : kRandom)
        if (r.type == t) return &r;
    return nullptr;  // weights made by the type's own quantizer (Q8_0, F32, F16)
}
}  // namespace

TEST(x4_kernels_are_bit_identical_to_vec_dot) {
    int tested = 0;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F32, GgmlType::F16}) {
        const TypeKernels* k = kernels_for(t);
        VecDotX4 x4 = vec_dot_x4_for(t, k->variant);
        if (!x4) continue;
        const RandomBlocks* rb = random_blocks(t);
        const int bs = type_traits(t).block_size;
        std::mt19937 rng(5);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        // Odd block counts; float rows also get lengths that are not a multiple of 16 (the
        // 16-lane order's padded tail).
        const std::vector<int64_t> sizes = bs == 1 ? std::vector<int64_t>{7, 33, 224, 901}
                                                   : std::vector<int64_t>{1 * bs, 3 * bs, 7 * bs, 28 * bs};
        for (int64_t n : sizes) {
            std::vector<float> w(n), a(4 * n);
            for (auto& v : w) v = nd(rng);
            for (auto& v : a) v = nd(rng);
            std::vector<uint8_t> wrow(row_size(t, n));
            if (!rb) {
                k->from_float(w.data(), wrow.data(), n);  // vec_dot_type == type for these
            } else {
                for (auto& byte : wrow) byte = uint8_t(rng());
                for (int64_t b = 0; b < n / bs; ++b) {
                    for (int off : rb->scale_offsets) {
                        wrow[b * rb->block_bytes + off] = 0x00;
                        wrow[b * rb->block_bytes + off + 1] = 0x2C;
                    }
                }
            }
            const uint64_t stride = row_size(k->vec_dot_type, n) + 64;  // rows need not be packed
            std::vector<uint8_t> act(4 * stride);
            for (int r = 0; r < 4; ++r) k->from_float(a.data() + r * n, act.data() + r * stride, n);
            float got[4];
            x4(n, got, wrow.data(), act.data(), stride);
            for (int r = 0; r < 4; ++r) {
                float want;
                k->vec_dot(n, &want, wrow.data(), act.data() + r * stride);
                CHECK(std::isfinite(want));
                CHECK(std::memcmp(&want, &got[r], sizeof(float)) == 0);
            }
            ++tested;
        }
    }
#if defined(__x86_64__)
    CHECK(tested == 24 || std::getenv("EI_CPU_DISABLE") != nullptr);
#endif
    std::printf("%d x4 cases\n", tested);
}

TEST(i8mm_2x2_kernels_are_bit_identical_to_vec_dot) {
    int tested = 0;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
        const TypeKernels* k = kernels_for(t);
        VecDot2x2 k22 = vec_dot_2x2_for(t, k->variant);
        if (!k22) continue;
        std::mt19937 rng(9);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (int64_t n : {32, 96, 224, 896}) {
            std::vector<uint8_t> w[2];
            for (auto& row : w) {
                std::vector<float> f(n);
                for (auto& v : f) v = nd(rng);
                row.resize(row_size(t, n));
                if (t == GgmlType::Q8_0) {
                    k->from_float(f.data(), row.data(), n);
                } else {
                    for (auto& b : row) b = uint8_t(rng());
                    for (int64_t b = 0; b < n / 32; ++b) {
                        row[b * 18] = 0x00;
                        row[b * 18 + 1] = 0x2C;
                    }
                }
            }
            std::vector<uint8_t> a[2];
            for (auto& row : a) {
                std::vector<float> f(n);
                for (auto& v : f) v = nd(rng);
                row.resize(row_size(k->vec_dot_type, n));
                k->from_float(f.data(), row.data(), n);
            }
            float got[4];
            k22(n, got, w[0].data(), w[1].data(), a[0].data(), a[1].data());
            for (int i = 0; i < 4; ++i) {
                float want;
                k->vec_dot(n, &want, w[i / 2].data(), a[i % 2].data());
                CHECK(std::memcmp(&want, &got[i], sizeof(float)) == 0);
            }
            ++tested;
        }
    }
#if defined(__aarch64__)
    if (cpu_features().i8mm && cpu_features().dotprod && !std::getenv("EI_CPU_DISABLE")) CHECK(tested == 8);
#endif
    std::printf("%d 2x2 cases\n", tested);
}
