// Fixed-point arithmetic of the NPU emulator: QNN's encoding convention, the choice of an
// encoding from a real range, and the requantization of integer accumulators.
//
// Convention (QNN's Qnn_ScaleOffset_t): real = scale * (q + offset); offset is the negated
// zero point, so for unsigned activations offset <= 0.
//
// Requantization. A kernel accumulates exact integer products of (q + offset) terms and
// must bring the sum to the output's integer grid: q_out = round(acc * M) - offset_out with
// the real multiplier M = s_in * s_w / s_out. M is held as a 31-bit mantissa m (2^30 <= m
// < 2^31) and a right shift s, M ~= m * 2^-s, as every integer NN runtime does (TFLite's
// quantization spec, Hexagon NN's requantize). Qualcomm does not publish the HTP's internal
// requantization; what is public is the HVX instruction set whose narrowing shifts the
// kernels use: vasr(..):rnd:sat adds 2^(s-1) before the arithmetic right shift and then
// saturates to the narrower type. So we emulate ONE rounding step, (acc * m + 2^(s-1)) >> s,
// ties toward +infinity (not TFLite's older two-step "doubling high mul then rounding
// divide", which rounds ties away from zero and can differ by one in the last place), then
// saturation to the output type. The same rule (floor(x + 1/2)) quantizes floats, so a
// float that lies exactly between two steps goes up, whether it came from the host
// (Convert) or from an accumulator.
#pragma once
#include <cstdint>

#include "htp/qnn_ir.h"

namespace ei::htp::fx {

// The integer range of a fixed-point type (SFixed4: -8..7 in its one byte per value).
int32_t qmin(DType t);
int32_t qmax(DType t);

// Clamp to [lo, hi].
inline int64_t saturate(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// floor(x + 1/2): the rounding of the whole emulator (see above).
int64_t round_half_up(double x);

// q = round(x / scale) - offset, saturated to the type's range.
int32_t quantize(float x, float scale, int32_t offset, DType t);
inline float dequantize(int32_t q, float scale, int32_t offset) { return scale * static_cast<float>(q + offset); }

// The per-tensor encoding that covers [lo, hi] on an unsigned type (UFixed16/UFixed8): the
// range is widened to include 0 and the offset rounded so that 0 is exactly representable
// (zero padding, masked rows and ReLU-like zeros stay exact). A degenerate range gets a
// tiny positive span so scale is never 0.
Encoding range_encoding(float lo, float hi, DType t);

// A non-negative real multiplier as m * 2^-shift with 2^30 <= m < 2^31 and shift in
// [-31, 62] (a multiplier below 2^-31 becomes 0; one of 2^62 or more is refused).
struct Multiplier {
    int64_t m = 0;
    int32_t shift = 0;
    double real() const;
};
Multiplier make_multiplier(double real);

// round(acc * M) with the single rounding above; exact for |acc| < 2^62 / 2^31 (the
// product is formed in 128 bits).
int64_t apply(int64_t acc, const Multiplier& mul);

// Requantize acc (in units of the product scale) to an output of (offset_out, type):
// saturate(apply(acc, mul) - offset_out).
inline int32_t requantize(int64_t acc, const Multiplier& mul, int32_t offset_out, DType out) {
    return static_cast<int32_t>(saturate(apply(acc, mul) - offset_out, qmin(out), qmax(out)));
}

// Reads element i of a fixed-point (or Int32) buffer as an integer / writes one, in the
// storage the IR uses for the type (qnn_ir.h: SFixed4 one value per byte).
int32_t load_q(const uint8_t* base, DType t, uint64_t i);
void store_q(uint8_t* base, DType t, uint64_t i, int32_t q);

}  // namespace ei::htp::fx
