// What the CPU we run on can execute, detected once at run time, so one binary picks the
// fastest kernels that are safe here. EI_CPU_DISABLE (a comma list of the field names
// below, or "all") masks features, so a test or a user can force the fallbacks.
#pragma once
#include <string>

namespace ei::cpu {

struct CpuFeatures {
    // x86_64 (avx2/fma/f16c are only reported when the OS saves the YMM registers)
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    // AVX-512 F + BW + VL + DQ, reported only when the OS saves the ZMM and mask registers;
    // vnni: VPDPBUSD on 512-bit registers (the packed int8 GEMM needs both).
    bool avx512 = false;
    bool avx512vnni = false;
    // aarch64
    bool neon = false;     // Advanced SIMD (always present on Linux/Android aarch64)
    bool dotprod = false;  // SDOT/UDOT (armv8.2 optional, armv8.4 mandatory)
    bool fp16 = false;     // half-precision arithmetic (FPHP and ASIMDHP)
    bool i8mm = false;     // SMMLA/USMMLA
    bool sve = false;
};

// Detected on first call (thread-safe), with EI_CPU_DISABLE applied.
const CpuFeatures& cpu_features();
// E.g. "avx2 fma f16c", or "none"; masked features are not listed.
std::string cpu_features_string();

}  // namespace ei::cpu
