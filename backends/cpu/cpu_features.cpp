#include "cpu/cpu_features.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && (defined(__linux__) || defined(__ANDROID__))
#include <sys/auxv.h>
#endif

namespace ei::cpu {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
// xgetbv without -mxsave: the instruction is only reached after CPUID says OSXSAVE.
uint64_t read_xcr0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

void detect(CpuFeatures& f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = (c >> 27) & 1;
    const bool avx = (c >> 28) & 1;
    // The CPU may have AVX while the OS does not save YMM state on context switches;
    // XCR0 bits 1 (SSE) and 2 (AVX) must both be set for 256-bit code to be safe.
    const bool ymm_ok = osxsave && avx && (read_xcr0() & 6) == 6;
    if (!ymm_ok) return;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    // XCR0 bits 5-7: opmask, upper halves of ZMM0-15, ZMM16-31.
    const bool zmm_ok = (read_xcr0() & 0xE6) == 0xE6;
    if (__get_cpuid_max(0, nullptr) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = (b >> 5) & 1;
        const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
        f.avx512 = zmm_ok && f512 && dq && bw && vl;
        f.avx512vnni = f.avx512 && ((c >> 11) & 1);
    }
}
#elif defined(__aarch64__)
void detect(CpuFeatures& f) {
    f.neon = true;  // mandatory in AArch64 for every OS we target
#if defined(__linux__) || defined(__ANDROID__)
    // Bit numbers from the Linux uapi <asm/hwcap.h>; spelled out because older libc
    // headers lack the newer names.
    const unsigned long hw = getauxval(AT_HWCAP);
    const unsigned long hw2 = getauxval(AT_HWCAP2);
    constexpr unsigned long kAsimd = 1ul << 1, kFphp = 1ul << 9, kAsimdhp = 1ul << 10, kAsimddp = 1ul << 20,
                            kSve = 1ul << 22, kI8mm2 = 1ul << 13;
    f.neon = (hw & kAsimd) != 0;
    f.fp16 = (hw & kFphp) && (hw & kAsimdhp);
    f.dotprod = (hw & kAsimddp) != 0;
    f.sve = (hw & kSve) != 0;
    f.i8mm = (hw2 & kI8mm2) != 0;
#endif
}
#else
void detect(CpuFeatures&) {}
#endif

// EI_CPU_DISABLE=avx2,dotprod: clear the named features (unknown names are ignored).
void apply_mask(CpuFeatures& f, const char* list) {
    if (!list) return;
    std::string name;
    for (const char* p = list;; ++p) {
        if (*p == ',' || *p == '\0') {
            const bool all = name == "all";
            if (all || name == "avx2") f.avx2 = false;
            if (all || name == "fma") f.fma = false;
            if (all || name == "f16c") f.f16c = false;
            if (all || name == "avx512") f.avx512 = f.avx512vnni = false;
            if (all || name == "avx512vnni") f.avx512vnni = false;
            if (all || name == "neon") f.neon = false;
            if (all || name == "dotprod") f.dotprod = false;
            if (all || name == "fp16") f.fp16 = false;
            if (all || name == "i8mm") f.i8mm = false;
            if (all || name == "sve") f.sve = false;
            name.clear();
            if (*p == '\0') break;
        } else if (!std::isspace(static_cast<unsigned char>(*p))) {
            name += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
        }
    }
}

CpuFeatures make_features() {
    CpuFeatures f;
    detect(f);
    apply_mask(f, std::getenv("EI_CPU_DISABLE"));
    return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = make_features();
    return f;
}

std::string cpu_features_string() {
    const CpuFeatures& f = cpu_features();
    std::string s;
    auto add = [&s](bool on, const char* name) {
        if (!on) return;
        if (!s.empty()) s += ' ';
        s += name;
    };
    add(f.avx2, "avx2");
    add(f.fma, "fma");
    add(f.f16c, "f16c");
    add(f.avx512, "avx512");
    add(f.avx512vnni, "avx512vnni");
    add(f.neon, "neon");
    add(f.dotprod, "dotprod");
    add(f.fp16, "fp16");
    add(f.i8mm, "i8mm");
    add(f.sve, "sve");
    return s.empty() ? "none" : s;
}

}  // namespace ei::cpu
