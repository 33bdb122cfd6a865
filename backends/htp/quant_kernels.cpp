// The emulator's fixed-point kernels (node_kernels.h: quant_kernel). Activations are
// per-tensor UFixed16 (or UFixed8 for the KV cache), weights SFixed8 per channel or SFixed4
// block-wise, biases SFixed32; every requantization goes through fixed_point.h (one
// rounding, ties up, then saturation).
//
// What is integer and what is not, and why:
//  - FullyConnected, MatMul, ReduceSum, ElementWiseAdd/Subtract/Multiply/Neg and every data
//    movement with a change of encoding are integer end to end: exact products of
//    (q + offset) terms, exact accumulation, one requantization.
//    Accumulator width: a uint16 x int8 product needs 24 bits, so a 32-bit accumulator
//    overflows after ~256 worst-case terms, and K is in the thousands. HVX has no 16x8
//    multiply-accumulate; a 16-bit activation is consumed as two byte planes (hi * 256 +
//    lo), each through the 8x8 -> 32 reduce-multiply (vrmpy) with its own 32-bit
//    accumulator, and the planes are combined in wider precision before requantization.
//    Each plane's partial sum is bounded by 255 * 128 * K, which fits 32 bits for K <
//    65 793 (16x16 MatMul: 255 * 255 * K, K < 33 025), so within that bound the planes are
//    exact and their combination equals the exact sum: we compute that exact sum in 64 bits
//    and refuse K beyond the bound (EI_ERR_UNSUPPORTED) instead of emulating a wrap the
//    hardware would not do either. The offsets' terms are part of the same exact sum.
//    For the block-wise int4 weights each block's sum is scaled by its integer multiplier
//    (an exact integer product) before the channel's sum.
//  - Softmax, RmsNorm's normalization, Sigmoid, Elu and ElementWiseDivide take their
//    integer inputs (RmsNorm's sum of squares is an exact integer) and evaluate the
//    non-linear part in double, rounded once to the output grid. On the HTP these are table
//    lookups and fixed-point iterations whose internals are not public; over a 16-bit input
//    a table has one entry per code, which is what computing each code's value exactly
//    gives. So the emulator measures the error of the encodings at every boundary, not of
//    the HTP's internal approximations.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "error.h"
#include "htp/fixed_point.h"
#include "htp/node_kernels.h"

namespace ei::htp {
namespace {

using fx::Multiplier;

[[noreturn]] void unsupported(const Node& n, const std::string& what) {
    fail(EI_ERR_UNSUPPORTED, "htp emulator: node '" + n.name + "' (" + op_type_name(n.type) + "): " + what);
}

// A per-tensor fixed-point view of a tensor: its integer values and their encoding.
struct QView {
    const Tensor* t;
    const uint8_t* p;
    float scale;
    int32_t offset;
    int32_t get(uint64_t i) const { return fx::load_q(p, t->dtype, i); }
    double real(uint64_t i) const { return static_cast<double>(scale) * (get(i) + offset); }
};

bool is_activation(DType d) { return d == DType::UFixed16 || d == DType::UFixed8; }

QView qin(const Node& n, const ExecBuffers& b, size_t k) {
    if (k >= n.inputs.size()) unsupported(n, "missing input " + std::to_string(k));
    const Tensor& t = b.tensor(n.inputs[k]);
    if (!dtype_quantized(t.dtype) || t.enc.kind != Encoding::Kind::PerTensor)
        unsupported(n, "input '" + t.name + "' is " + dtype_name(t.dtype) + " without a per-tensor encoding");
    return {&t, b.ptr[t.id], t.enc.scale, t.enc.offset};
}

struct QOut {
    const Tensor* t;
    uint8_t* p;
    float scale;
    int32_t offset;
    void set(uint64_t i, int32_t q) const { fx::store_q(p, t->dtype, i, q); }
    // Rounds a real value onto the output grid.
    void set_real(uint64_t i, double x) const { set(i, fx::quantize(static_cast<float>(x), scale, offset, t->dtype)); }
};

QOut qout(const Node& n, const ExecBuffers& b, size_t k = 0) {
    if (k >= n.outputs.size()) unsupported(n, "missing output " + std::to_string(k));
    const Tensor& t = b.tensor(n.outputs[k]);
    if (!is_activation(t.dtype) || t.enc.kind != Encoding::Kind::PerTensor)
        unsupported(n, "output '" + t.name + "' is " + dtype_name(t.dtype) + ", not UFixed16/UFixed8 per tensor");
    return {&t, b.ptr[t.id], t.enc.scale, t.enc.offset};
}

int64_t rounding_shift(int64_t v, int s) { return (v + (int64_t{1} << (s - 1))) >> s; }

int32_t axis_param(const Node& n, size_t rank, int32_t dflt) {
    const Param* p = n.param("axis");
    int64_t a = p ? static_cast<int64_t>(p->scalar) : dflt;
    if (a < 0) a += static_cast<int64_t>(rank);
    if (a < 0 || a >= static_cast<int64_t>(rank)) unsupported(n, "axis " + std::to_string(a) + " outside rank " + std::to_string(rank));
    return static_cast<int32_t>(a);
}

std::vector<uint64_t> strides_of(const std::vector<uint32_t>& d) {
    std::vector<uint64_t> s(d.size(), 1);
    for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
    return s;
}

// For each output element, the element of `in` that numpy broadcasting reads.
std::vector<uint64_t> broadcast_map(const Node& n, const std::vector<uint32_t>& out, const std::vector<uint32_t>& in) {
    if (in.size() > out.size()) unsupported(n, "input of higher rank than the output");
    const size_t lead = out.size() - in.size();
    std::vector<uint64_t> istr(out.size(), 0);
    const std::vector<uint64_t> s = strides_of(in);
    for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] != out[lead + i] && in[i] != 1) unsupported(n, "shapes do not broadcast");
        istr[lead + i] = in[i] == 1 ? 0 : s[i];
    }
    uint64_t total = 1;
    for (uint32_t d : out) total *= d;
    std::vector<uint64_t> m(total);
    std::vector<uint32_t> idx(out.size(), 0);
    uint64_t off = 0;
    for (uint64_t e = 0; e < total; ++e) {
        m[e] = off;
        for (size_t k = out.size(); k-- > 0;) {
            ++idx[k];
            off += istr[k];
            if (idx[k] < out[k]) break;
            off -= istr[k] * idx[k];
            idx[k] = 0;
        }
    }
    return m;
}

// q_in (with its offset) onto another per-tensor grid.
struct Requant {
    Multiplier mul;
    int32_t in_offset, out_offset;
    DType out;
    bool identity;
    Requant(float s_in, int32_t o_in, DType in_t, float s_out, int32_t o_out, DType out_t)
        : mul(fx::make_multiplier(static_cast<double>(s_in) / s_out)), in_offset(o_in), out_offset(o_out), out(out_t),
          identity(s_in == s_out && o_in == o_out && in_t == out_t) {}
    int32_t operator()(int32_t q) const { return identity ? q : fx::requantize(int64_t{q} + in_offset, mul, out_offset, out); }
};

// ---- matrix products ----

// The longest reduction whose byte-plane partial sums stay exact in 32 bits (see the top):
// each plane multiplies one byte of each operand, at most 255 for an unsigned plane, 128
// for int8 and 8 for int4, so K * |a byte| * |b byte| < 2^31.
int64_t max_exact_k(DType a, DType b) {
    auto byte_max = [](DType t) -> int64_t { return t == DType::SFixed4 ? 8 : (t == DType::SFixed8 ? 128 : 255); };
    return INT32_MAX / (byte_max(a) * byte_max(b));
}

void fully_connected(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0);
    if (n.inputs.size() < 2) unsupported(n, "no weight");
    const Tensor& w = b.tensor(n.inputs[1]);
    const QOut y = qout(n, b);
    if (w.dims.size() != 2) unsupported(n, "weight is not 2-D");
    const int64_t N = w.dims[0], K = w.dims[1];
    if (x.t->dims.back() != K || y.t->dims.back() != N) unsupported(n, "shapes do not match the weight");
    if (K > max_exact_k(x.t->dtype, w.dtype))
        unsupported(n, std::to_string(K) + " inputs exceed the exact 32-bit byte-plane accumulation");
    const bool block = w.enc.kind == Encoding::Kind::BlockwiseExpansion;
    if (!((w.dtype == DType::SFixed8 && w.enc.kind == Encoding::Kind::PerChannel) ||
          (w.dtype == DType::SFixed4 && block) || (w.dtype == DType::SFixed8 && block)))
        unsupported(n, std::string("weight of ") + dtype_name(w.dtype) + " needs a per-channel or block-wise encoding");
    for (int32_t o : w.enc.offsets)
        if (o != 0) unsupported(n, "weights must be symmetric (offset 0)");
    const uint64_t rows = x.t->elements() / static_cast<uint64_t>(K);
    const int64_t bs = block ? w.enc.block_size : K;
    const int64_t nb = K / bs;
    const uint8_t* wp = b.ptr[w.id];
    // Per channel: the requantization multiplier and the bias in accumulator units.
    std::vector<Multiplier> mul(static_cast<size_t>(N));
    std::vector<int64_t> bias(static_cast<size_t>(N), 0);
    const Tensor* bt = n.inputs.size() > 2 ? &b.tensor(n.inputs[2]) : nullptr;
    for (int64_t c = 0; c < N; ++c) {
        const double acc_scale = static_cast<double>(x.scale) * w.enc.scales[static_cast<size_t>(c)];
        mul[static_cast<size_t>(c)] = fx::make_multiplier(acc_scale / y.scale);
        if (bt) {
            if (bt->dtype != DType::SFixed32 || bt->elements() != static_cast<uint64_t>(N))
                unsupported(n, "bias must be SFixed32 [N]");
            const int32_t qb = fx::load_q(b.ptr[bt->id], DType::SFixed32, static_cast<uint64_t>(c));
            const double sb = bt->enc.kind == Encoding::Kind::PerChannel ? bt->enc.scales[static_cast<size_t>(c)] : bt->enc.scale;
            // A bias made for this accumulator's scale (the usual case) adds exactly.
            bias[static_cast<size_t>(c)] = std::fabs(sb / acc_scale - 1) < 1e-6
                                               ? qb
                                               : fx::apply(qb, fx::make_multiplier(sb / acc_scale));
        }
    }
    // sum (q + o) w = sum q w + o sum w: the weights' block sums are constants, and the
    // q w products are summed in int32 over chunks of at most 256 (65535 * 128 * 256 <
    // 2^31), the way one byte-plane accumulator would hold them, then widened. The result
    // is the same exact integer as summing (q + o) w in 64 bits; this form vectorizes.
    constexpr int64_t kChunk = 256;
    std::vector<int64_t> wsum(static_cast<size_t>(N * nb), 0);
    for (int64_t c = 0; c < N; ++c)
        for (int64_t k = 0; k < K; ++k)
            wsum[static_cast<size_t>(c * nb + k / bs)] += reinterpret_cast<const int8_t*>(wp)[c * K + k];
    std::vector<int32_t> xr(static_cast<size_t>(K));
    for (uint64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < K; ++k) xr[static_cast<size_t>(k)] = x.get(r * K + k);
        const int32_t* xp = xr.data();
        for (int64_t c = 0; c < N; ++c) {
            const int8_t* wr = reinterpret_cast<const int8_t*>(wp) + c * K;
            int64_t acc = 0;
            for (int64_t blk = 0; blk < nb; ++blk) {
                int64_t part = int64_t{x.offset} * wsum[static_cast<size_t>(c * nb + blk)];
                for (int64_t k0 = blk * bs; k0 < (blk + 1) * bs; k0 += kChunk) {
                    const int64_t k1 = std::min((blk + 1) * bs, k0 + kChunk);
                    int32_t s32 = 0;
                    for (int64_t k = k0; k < k1; ++k) s32 += xp[k] * wr[k];
                    part += s32;
                }
                acc += block ? part * w.enc.block_scales[static_cast<size_t>(c * nb + blk)] : part;
            }
            acc += bias[static_cast<size_t>(c)];
            y.set(r * static_cast<uint64_t>(N) + static_cast<uint64_t>(c),
                  fx::requantize(acc, mul[static_cast<size_t>(c)], y.offset, y.t->dtype));
        }
    }
}

bool flag(const Node& n, const char* name) {
    const Param* p = n.param(name);
    return p && p->scalar != 0;
}

void matmul(const Node& n, const ExecBuffers& b) {
    const QView a = qin(n, b, 0), c = qin(n, b, 1);
    const QOut y = qout(n, b);
    const bool ta = flag(n, "transpose_in0"), tb = flag(n, "transpose_in1");
    const auto& ad = a.t->dims;
    const auto& bd = c.t->dims;
    if (ad.size() < 2 || ad.size() != bd.size()) unsupported(n, "operands of different or too small rank");
    const size_t r = ad.size();
    const uint64_t M = ta ? ad[r - 1] : ad[r - 2], K = ta ? ad[r - 2] : ad[r - 1];
    const uint64_t K2 = tb ? bd[r - 1] : bd[r - 2], N = tb ? bd[r - 2] : bd[r - 1];
    if (K != K2) unsupported(n, "inner dimensions differ");
    if (K > static_cast<uint64_t>(max_exact_k(a.t->dtype, c.t->dtype)))
        unsupported(n, std::to_string(K) + " inner dimension exceeds the exact 32-bit byte-plane accumulation");
    const uint64_t batch = a.t->elements() / (M * K);
    if (batch * K * N != c.t->elements() || y.t->elements() != batch * M * N) unsupported(n, "batch shapes differ");
    const Multiplier mul = fx::make_multiplier(static_cast<double>(a.scale) * c.scale / y.scale);
    for (uint64_t bi = 0; bi < batch; ++bi)
        for (uint64_t i = 0; i < M; ++i)
            for (uint64_t j = 0; j < N; ++j) {
                int64_t acc = 0;
                for (uint64_t k = 0; k < K; ++k) {
                    const uint64_t ia = bi * M * K + (ta ? k * M + i : i * K + k);
                    const uint64_t ib = bi * K * N + (tb ? j * K + k : k * N + j);
                    acc += int64_t{a.get(ia) + a.offset} * (c.get(ib) + c.offset);
                }
                y.set(bi * M * N + i * N + j, fx::requantize(acc, mul, y.offset, y.t->dtype));
            }
}

// ---- element-wise ----

// Add / Subtract: each operand is brought onto the output grid refined by 2^kFine (one
// rounding each), summed, and rounded once more to the output grid; the refinement keeps
// the two intermediate roundings far below the output's step.
constexpr int kFine = 20;

void add_sub(const Node& n, const ExecBuffers& b, bool sub) {
    const QView x = qin(n, b, 0), z = qin(n, b, 1);
    const QOut y = qout(n, b);
    const auto mx = broadcast_map(n, y.t->dims, x.t->dims), mz = broadcast_map(n, y.t->dims, z.t->dims);
    const Multiplier ax = fx::make_multiplier(static_cast<double>(x.scale) / y.scale);
    const Multiplier az = fx::make_multiplier(static_cast<double>(z.scale) / y.scale);
    const int32_t lo = fx::qmin(y.t->dtype), hi = fx::qmax(y.t->dtype);
    for (uint64_t e = 0; e < mx.size(); ++e) {
        const int64_t tx = fx::apply((int64_t{x.get(mx[e])} + x.offset) * (int64_t{1} << kFine), ax);
        const int64_t tz = fx::apply((int64_t{z.get(mz[e])} + z.offset) * (int64_t{1} << kFine), az);
        // An extreme operand (an additive mask's -1e9 against a small output step) saturates
        // here, as it would in the hardware's wide intermediate, instead of overflowing.
        const int64_t lim = int64_t{1} << 61;
        const int64_t s = rounding_shift(fx::saturate(tx, -lim, lim) + (sub ? -1 : 1) * fx::saturate(tz, -lim, lim), kFine);
        y.set(e, static_cast<int32_t>(fx::saturate(s - y.offset, lo, hi)));
    }
}

void ew_add(const Node& n, const ExecBuffers& b) { add_sub(n, b, false); }
void ew_sub(const Node& n, const ExecBuffers& b) { add_sub(n, b, true); }

void ew_mul(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0), z = qin(n, b, 1);
    const QOut y = qout(n, b);
    const auto mx = broadcast_map(n, y.t->dims, x.t->dims), mz = broadcast_map(n, y.t->dims, z.t->dims);
    const Multiplier m = fx::make_multiplier(static_cast<double>(x.scale) * z.scale / y.scale);
    for (uint64_t e = 0; e < mx.size(); ++e)
        y.set(e, fx::requantize((int64_t{x.get(mx[e])} + x.offset) * (int64_t{z.get(mz[e])} + z.offset), m, y.offset,
                                y.t->dtype));
}

void ew_div(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0), z = qin(n, b, 1);
    const QOut y = qout(n, b);
    const auto mx = broadcast_map(n, y.t->dims, x.t->dims), mz = broadcast_map(n, y.t->dims, z.t->dims);
    for (uint64_t e = 0; e < mx.size(); ++e) {
        const double d = z.real(mz[e]);
        // x / 0 saturates to the end of the output range of x's sign, as a fixed-point
        // reciprocal does; 0 / 0 is 0.
        const double num = x.real(mx[e]);
        const double v = d != 0 ? num / d : (num > 0 ? 1e30 : (num < 0 ? -1e30 : 0.0));
        y.set_real(e, v);
    }
}

void ew_neg(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0);
    const QOut y = qout(n, b);
    const Multiplier m = fx::make_multiplier(static_cast<double>(x.scale) / y.scale);
    for (uint64_t e = 0; e < y.t->elements(); ++e) y.set(e, fx::requantize(-(int64_t{x.get(e)} + x.offset), m, y.offset, y.t->dtype));
}

template <class F>
void unary_real(const Node& n, const ExecBuffers& b, F f) {
    const QView x = qin(n, b, 0);
    const QOut y = qout(n, b);
    if (x.t->elements() != y.t->elements()) unsupported(n, "input and output sizes differ");
    for (uint64_t e = 0; e < y.t->elements(); ++e) y.set_real(e, f(x.real(e)));
}

void sigmoid(const Node& n, const ExecBuffers& b) {
    unary_real(n, b, [](double v) { return 1.0 / (1.0 + std::exp(-v)); });
}

void elu(const Node& n, const ExecBuffers& b) {
    const Param* p = n.param("alpha");
    const double alpha = p ? p->scalar : 1.0;
    unary_real(n, b, [alpha](double v) { return v > 0 ? v : alpha * std::expm1(v); });
}

// ---- normalizations ----

void softmax(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0);
    const QOut y = qout(n, b);
    if (axis_param(n, x.t->dims.size(), -1) != static_cast<int32_t>(x.t->dims.size()) - 1)
        unsupported(n, "softmax over an axis other than the last");
    const Param* bp = n.param("beta");
    const double beta = bp ? bp->scalar : 1.0;
    const uint64_t C = x.t->dims.back(), rows = x.t->elements() / C;
    std::vector<double> e(C);
    for (uint64_t r = 0; r < rows; ++r) {
        // The largest code, then each exp of a code difference: exact multiples of the
        // input step, the entries of the HTP's exp table.
        int32_t qm = INT32_MIN;
        for (uint64_t i = 0; i < C; ++i) qm = std::max(qm, x.get(r * C + i));
        double sum = 0;
        for (uint64_t i = 0; i < C; ++i) {
            e[i] = std::exp(beta * x.scale * (x.get(r * C + i) - qm));
            sum += e[i];
        }
        for (uint64_t i = 0; i < C; ++i) y.set_real(r * C + i, e[i] / sum);
    }
}

void rms_norm(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0);
    const QOut y = qout(n, b);
    const uint64_t C = x.t->dims.back(), rows = x.t->elements() / C;
    const Param* ep = n.param("epsilon");
    const double eps = ep ? ep->scalar : 1e-6;
    const bool has_g = n.inputs.size() > 1, has_b = n.inputs.size() > 2;
    QView g{}, bb{};
    if (has_g) g = qin(n, b, 1);
    if (has_b) bb = qin(n, b, 2);
    if ((has_g && g.t->elements() != C) || (has_b && bb.t->elements() != C)) unsupported(n, "gamma/beta not sized [C]");
    for (uint64_t r = 0; r < rows; ++r) {
        int64_t ss = 0;  // exact: (2^16)^2 * C fits 64 bits for any C a model has
        for (uint64_t i = 0; i < C; ++i) {
            const int64_t v = int64_t{x.get(r * C + i)} + x.offset;
            ss += v * v;
        }
        const double inv = 1.0 / std::sqrt(static_cast<double>(x.scale) * x.scale * static_cast<double>(ss) / C + eps);
        for (uint64_t i = 0; i < C; ++i) {
            double v = x.real(r * C + i) * inv;
            if (has_g) v *= g.real(i);
            if (has_b) v += bb.real(i);
            y.set_real(r * C + i, v);
        }
    }
}

void reduce_sum(const Node& n, const ExecBuffers& b) {
    const QView x = qin(n, b, 0);
    const QOut y = qout(n, b);
    const Param* ap = n.param("axes");
    const size_t rank = x.t->dims.size();
    std::vector<uint8_t> red(rank, 0);
    if (!ap || ap->values.empty()) unsupported(n, "no axes");
    for (int64_t a : ap->values) {
        if (a < 0) a += static_cast<int64_t>(rank);
        if (a < 0 || a >= static_cast<int64_t>(rank)) unsupported(n, "axis outside the rank");
        red[static_cast<size_t>(a)] = 1;
    }
    // Output index of each input element: the input index with reduced axes set to 0.
    const auto is = strides_of(x.t->dims);
    std::vector<uint32_t> od;
    for (size_t i = 0; i < rank; ++i) od.push_back(red[i] ? 1 : x.t->dims[i]);
    const auto os = strides_of(od);
    uint64_t out_n = 1;
    for (uint32_t d : od) out_n *= d;
    if (out_n != y.t->elements()) unsupported(n, "output size does not match the reduction");
    std::vector<int64_t> acc(out_n, 0);
    for (uint64_t e = 0; e < x.t->elements(); ++e) {
        uint64_t o = 0;
        for (size_t i = 0; i < rank; ++i)
            if (!red[i]) o += (e / is[i]) % x.t->dims[i] * os[i];
        acc[o] += int64_t{x.get(e)} + x.offset;
    }
    const Multiplier m = fx::make_multiplier(static_cast<double>(x.scale) / y.scale);
    for (uint64_t o = 0; o < out_n; ++o) y.set(o, fx::requantize(acc[o], m, y.offset, y.t->dtype));
}

// ---- data movement (requantizing where the encodings differ) ----

// Copies out[e] = in_k[src[e]] for a map built by the caller.
void move(const Node& n, const ExecBuffers& b, size_t k, const std::vector<uint64_t>& src, uint64_t out_base) {
    const QView x = qin(n, b, k);
    const Tensor& yt = b.tensor(n.outputs[0]);
    if (!dtype_quantized(yt.dtype) || yt.enc.kind != Encoding::Kind::PerTensor)
        unsupported(n, "output is not fixed point per tensor");
    const Requant rq(x.scale, x.offset, x.t->dtype, yt.enc.scale, yt.enc.offset, yt.dtype);
    uint8_t* yp = b.ptr[yt.id];
    for (uint64_t e = 0; e < src.size(); ++e) fx::store_q(yp, yt.dtype, out_base + e, rq(x.get(src[e])));
}

void reshape(const Node& n, const ExecBuffers& b) {
    const uint64_t count = b.tensor(n.inputs.at(0)).elements();
    if (count != b.tensor(n.outputs.at(0)).elements()) unsupported(n, "element counts differ");
    std::vector<uint64_t> m(count);
    for (uint64_t e = 0; e < count; ++e) m[e] = e;
    move(n, b, 0, m, 0);
}

// For each element of an output of dims `od`, the input offset sum_i idx_i * step_i + base.
std::vector<uint64_t> strided_map(const std::vector<uint32_t>& od, const std::vector<int64_t>& step, int64_t base) {
    uint64_t total = 1;
    for (uint32_t d : od) total *= d;
    std::vector<uint64_t> m(total);
    std::vector<uint32_t> idx(od.size(), 0);
    int64_t off = base;
    for (uint64_t e = 0; e < total; ++e) {
        m[e] = static_cast<uint64_t>(off);
        for (size_t k = od.size(); k-- > 0;) {
            ++idx[k];
            off += step[k];
            if (idx[k] < od[k]) break;
            off -= step[k] * idx[k];
            idx[k] = 0;
        }
    }
    return m;
}

void transpose(const Node& n, const ExecBuffers& b) {
    const Tensor& x = b.tensor(n.inputs.at(0));
    const Tensor& y = b.tensor(n.outputs.at(0));
    const Param* p = n.param("perm");
    const size_t r = x.dims.size();
    if (!p || p->values.size() != r || y.dims.size() != r) unsupported(n, "perm does not match the rank");
    const auto is = strides_of(x.dims);
    std::vector<int64_t> step(r);
    std::vector<uint8_t> seen(r, 0);
    for (size_t i = 0; i < r; ++i) {
        const int64_t a = p->values[i];
        if (a < 0 || a >= static_cast<int64_t>(r) || seen[static_cast<size_t>(a)]) unsupported(n, "perm is not a permutation");
        seen[static_cast<size_t>(a)] = 1;
        if (y.dims[i] != x.dims[static_cast<size_t>(a)]) unsupported(n, "output dims do not follow perm");
        step[i] = static_cast<int64_t>(is[static_cast<size_t>(a)]);
    }
    move(n, b, 0, strided_map(y.dims, step, 0), 0);
}

void strided_slice(const Node& n, const ExecBuffers& b) {
    const Tensor& x = b.tensor(n.inputs.at(0));
    const Tensor& y = b.tensor(n.outputs.at(0));
    const Param* p = n.param("ranges");
    const size_t r = x.dims.size();
    if (!p || p->values.size() != r * 3 || y.dims.size() != r) unsupported(n, "ranges is not [rank, 3]");
    const auto is = strides_of(x.dims);
    std::vector<int64_t> step(r);
    int64_t base = 0;
    for (size_t i = 0; i < r; ++i) {
        int64_t beg = p->values[i * 3], end = p->values[i * 3 + 1];
        const int64_t st = p->values[i * 3 + 2];
        const int64_t d = x.dims[i];
        if (beg < 0) beg += d;
        if (end < 0) end += d;
        if (st <= 0 || beg < 0 || beg >= d || end > d || end <= beg) unsupported(n, "range outside the input");
        if ((end - beg + st - 1) / st != y.dims[i]) unsupported(n, "output dims do not follow ranges");
        base += beg * static_cast<int64_t>(is[i]);
        step[i] = st * static_cast<int64_t>(is[i]);
    }
    move(n, b, 0, strided_map(y.dims, step, base), 0);
}

void concat(const Node& n, const ExecBuffers& b) {
    const Tensor& y = b.tensor(n.outputs.at(0));
    const int32_t ax = axis_param(n, y.dims.size(), static_cast<int32_t>(y.dims.size()) - 1);
    const auto ys = strides_of(y.dims);
    uint64_t at = 0;  // position along the axis
    const uint64_t outer = y.elements() / (ys[static_cast<size_t>(ax)] * y.dims[static_cast<size_t>(ax)]);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
        const Tensor& x = b.tensor(n.inputs[k]);
        if (x.dims.size() != y.dims.size()) unsupported(n, "inputs of different rank");
        const uint64_t inner = x.elements() / outer;  // elements of one outer slice
        // Copy slice by slice: the input's slice o goes to the output at o, offset `at`.
        for (uint64_t o = 0; o < outer; ++o) {
            std::vector<uint64_t> m(inner);
            for (uint64_t e = 0; e < inner; ++e) m[e] = o * inner + e;
            move(n, b, k, m, o * ys[static_cast<size_t>(ax)] * y.dims[static_cast<size_t>(ax)] + at * ys[static_cast<size_t>(ax)]);
        }
        at += x.dims[static_cast<size_t>(ax)];
    }
    if (at != y.dims[static_cast<size_t>(ax)]) unsupported(n, "inputs do not fill the output along the axis");
}

void gather(const Node& n, const ExecBuffers& b) {
    const Tensor& x = b.tensor(n.inputs.at(0));
    const Tensor& ix = b.tensor(n.inputs.at(1));
    const Tensor& y = b.tensor(n.outputs.at(0));
    if (ix.dtype != DType::Int32) unsupported(n, "indices are not Int32");
    const int32_t ax = axis_param(n, x.dims.size(), 0);
    const auto xs = strides_of(x.dims);
    const uint64_t inner = xs[static_cast<size_t>(ax)];
    const uint64_t dim = x.dims[static_cast<size_t>(ax)];
    const uint64_t outer = x.elements() / (inner * dim);
    const uint64_t ni = ix.elements();
    if (y.elements() != outer * ni * inner) unsupported(n, "output size does not match the gather");
    const int32_t* idx = b.at<int32_t>(ix.id);
    std::vector<uint64_t> m;
    m.reserve(y.elements());
    for (uint64_t o = 0; o < outer; ++o)
        for (uint64_t i = 0; i < ni; ++i) {
            const int64_t v = idx[i];
            if (v < 0 || static_cast<uint64_t>(v) >= dim)
                unsupported(n, "index " + std::to_string(v) + " outside [0, " + std::to_string(dim) + ")");
            for (uint64_t e = 0; e < inner; ++e) m.push_back((o * dim + static_cast<uint64_t>(v)) * inner + e);
        }
    move(n, b, 0, m, 0);
}

// ---- Convert ----

void convert(const Node& n, const ExecBuffers& b) {
    const Tensor& x = b.tensor(n.inputs.at(0));
    const Tensor& y = b.tensor(n.outputs.at(0));
    if (x.elements() != y.elements()) unsupported(n, "element counts differ");
    const uint64_t count = x.elements();
    const bool xq = dtype_quantized(x.dtype), yq = dtype_quantized(y.dtype);
    if ((xq && x.enc.kind != Encoding::Kind::PerTensor) || (yq && y.enc.kind != Encoding::Kind::PerTensor))
        unsupported(n, "only per-tensor encodings convert");
    if (!xq && x.dtype != DType::Float32) unsupported(n, std::string("cannot convert from ") + dtype_name(x.dtype));
    if (!yq && y.dtype != DType::Float32) unsupported(n, std::string("cannot convert to ") + dtype_name(y.dtype));
    const uint8_t* xp = b.ptr[x.id];
    uint8_t* yp = b.ptr[y.id];
    if (!xq && yq) {
        const float* f = reinterpret_cast<const float*>(xp);
        for (uint64_t e = 0; e < count; ++e) fx::store_q(yp, y.dtype, e, fx::quantize(f[e], y.enc.scale, y.enc.offset, y.dtype));
    } else if (xq && !yq) {
        float* f = reinterpret_cast<float*>(yp);
        for (uint64_t e = 0; e < count; ++e) f[e] = fx::dequantize(fx::load_q(xp, x.dtype, e), x.enc.scale, x.enc.offset);
    } else if (xq && yq) {
        std::vector<uint64_t> m(count);
        for (uint64_t e = 0; e < count; ++e) m[e] = e;
        move(n, b, 0, m, 0);
    } else {
        std::memcpy(yp, xp, count * 4);
    }
}

}  // namespace

NodeKernel quant_kernel(OpType t) {
    switch (t) {
        case OpType::FullyConnected: return fully_connected;
        case OpType::MatMul: return matmul;
        case OpType::RmsNorm: return rms_norm;
        case OpType::Softmax: return softmax;
        case OpType::ElementWiseAdd: return ew_add;
        case OpType::ElementWiseSubtract: return ew_sub;
        case OpType::ElementWiseMultiply: return ew_mul;
        case OpType::ElementWiseDivide: return ew_div;
        case OpType::ElementWiseNeg: return ew_neg;
        case OpType::Sigmoid: return sigmoid;
        case OpType::Elu: return elu;
        case OpType::Gather: return gather;
        case OpType::Concat: return concat;
        case OpType::StridedSlice: return strided_slice;
        case OpType::Transpose: return transpose;
        case OpType::Reshape: return reshape;
        case OpType::ReduceSum: return reduce_sum;
        case OpType::Convert: return convert;
    }
    return nullptr;
}

}  // namespace ei::htp
