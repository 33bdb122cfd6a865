// Fixed-point helpers of the NPU emulator (fixed_point.h: the convention and the rounding).
#include "htp/fixed_point.h"

#include <cmath>
#include <cstring>
#include <string>

#include "error.h"

namespace ei::htp::fx {

int32_t qmin(DType t) {
    switch (t) {
        case DType::UFixed16: case DType::UFixed8: return 0;
        case DType::SFixed8: return -128;
        case DType::SFixed4: return -8;
        case DType::SFixed32: case DType::Int32: return INT32_MIN;
        default: break;
    }
    fail(EI_ERR_INTERNAL, std::string("fixed point: ") + dtype_name(t) + " has no integer range");
}

int32_t qmax(DType t) {
    switch (t) {
        case DType::UFixed16: return 65535;
        case DType::UFixed8: return 255;
        case DType::SFixed8: return 127;
        case DType::SFixed4: return 7;
        case DType::SFixed32: case DType::Int32: return INT32_MAX;
        default: break;
    }
    fail(EI_ERR_INTERNAL, std::string("fixed point: ") + dtype_name(t) + " has no integer range");
}

int64_t round_half_up(double x) {
    const double r = std::floor(x + 0.5);
    if (!(r > -9.2e18 && r < 9.2e18)) return r > 0 ? INT64_MAX : INT64_MIN;  // NaN lands low
    return static_cast<int64_t>(r);
}

int32_t quantize(float x, float scale, int32_t offset, DType t) {
    const int64_t q = round_half_up(static_cast<double>(x) / static_cast<double>(scale));
    // q - offset without overflow: q is clamped first to a range wider than any type.
    const int64_t qc = saturate(q, -(int64_t{1} << 40), int64_t{1} << 40);
    return static_cast<int32_t>(saturate(qc - offset, qmin(t), qmax(t)));
}

Encoding range_encoding(float lo, float hi, DType t) {
    if (t != DType::UFixed16 && t != DType::UFixed8)
        fail(EI_ERR_INTERNAL, std::string("range_encoding: ") + dtype_name(t) + " is not an unsigned activation type");
    if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
        fail(EI_ERR_INVALID_ARGUMENT, "range_encoding: impossible range [" + std::to_string(lo) + ", " +
                                          std::to_string(hi) + "]");
    double l = std::min(0.0, static_cast<double>(lo));
    double h = std::max(0.0, static_cast<double>(hi));
    if (h - l < 1e-8) h = l + 1e-8;
    const double steps = qmax(t);
    // offset = -zero_point, rounded to an integer so that real 0 is exact; the covered
    // range then moves by under half a step (the ends of the calibrated range may clip by
    // that much, as TFLite's "nudged" ranges do).
    const double scale = (h - l) / steps;
    int32_t offset = static_cast<int32_t>(round_half_up(l / scale));
    if (offset > 0) offset = 0;
    if (offset < -qmax(t)) offset = -qmax(t);
    Encoding e;
    e.kind = Encoding::Kind::PerTensor;
    e.scale = static_cast<float>(scale);
    e.offset = offset;
    return e;
}

double Multiplier::real() const { return m == 0 ? 0.0 : std::ldexp(static_cast<double>(m), -shift); }

Multiplier make_multiplier(double real) {
    Multiplier r;
    if (!(real >= 0) || !std::isfinite(real) || real >= std::ldexp(1.0, 62))
        fail(EI_ERR_INTERNAL, "fixed point: multiplier " + std::to_string(real) + " out of range");
    if (real == 0) return r;
    int e = 0;
    const double f = std::frexp(real, &e);  // real = f * 2^e, f in [0.5, 1)
    int64_t m = std::llround(f * 2147483648.0);  // f * 2^31 in [2^30, 2^31]
    int32_t shift = 31 - e;
    if (m == (int64_t{1} << 31)) {
        m >>= 1;
        --shift;
    }
    if (shift > 62) return r;  // below 2^-31: rounds every realistic accumulator to 0
    r.m = m;
    r.shift = shift;
    return r;
}

int64_t apply(int64_t acc, const Multiplier& mul) {
    if (mul.m == 0) return 0;
    __int128 q;
    if (mul.shift <= 0) {
        // A multiplier of 2^31 or more (a wide input range onto a fine output grid): exact,
        // nothing to round; |acc| is capped so the product stays inside 128 bits.
        const int64_t a = static_cast<int64_t>(saturate(acc, -(int64_t{1} << 62), int64_t{1} << 62));
        q = static_cast<__int128>(a) * mul.m;
        const __int128 lim = static_cast<__int128>(INT64_MAX);
        for (int32_t i = 0; i < -mul.shift && q <= lim && q >= -lim; ++i) q *= 2;
    } else {
        const __int128 p = static_cast<__int128>(acc) * mul.m + (static_cast<__int128>(1) << (mul.shift - 1));
        q = p >> mul.shift;  // arithmetic: floor
    }
    if (q > INT64_MAX) return INT64_MAX;
    if (q < INT64_MIN) return INT64_MIN;
    return static_cast<int64_t>(q);
}

int32_t load_q(const uint8_t* base, DType t, uint64_t i) {
    switch (t) {
        case DType::UFixed16: { uint16_t v; std::memcpy(&v, base + 2 * i, 2); return v; }
        case DType::UFixed8: return base[i];
        case DType::SFixed8: case DType::SFixed4: return static_cast<int8_t>(base[i]);
        case DType::SFixed32: case DType::Int32: { int32_t v; std::memcpy(&v, base + 4 * i, 4); return v; }
        default: break;
    }
    fail(EI_ERR_UNSUPPORTED, std::string("fixed point: cannot load ") + dtype_name(t));
}

void store_q(uint8_t* base, DType t, uint64_t i, int32_t q) {
    switch (t) {
        case DType::UFixed16: { const uint16_t v = static_cast<uint16_t>(q); std::memcpy(base + 2 * i, &v, 2); return; }
        case DType::UFixed8: base[i] = static_cast<uint8_t>(q); return;
        case DType::SFixed8: case DType::SFixed4: base[i] = static_cast<uint8_t>(static_cast<int8_t>(q)); return;
        case DType::SFixed32: case DType::Int32: std::memcpy(base + 4 * i, &q, 4); return;
        default: break;
    }
    fail(EI_ERR_UNSUPPORTED, std::string("fixed point: cannot store ") + dtype_name(t));
}

}  // namespace ei::htp::fx
