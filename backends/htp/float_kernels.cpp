// The emulator's float kernels (node_kernels.h): each op type the lowering emits, over
// Float32 tensors (Int32 for indices), written plainly from QNN's op definitions. They are the
// reference the lowering is checked with against the CPU backend, not a speed path: loops in
// row-major order, sums in float (RmsNorm's in double, as the CPU's).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/quants.h"
#include "error.h"
#include "htp/node_kernels.h"

namespace ei::htp {

namespace {

[[noreturn]] void refuse(const Node& n, const std::string& why) {
    fail(EI_ERR_UNSUPPORTED, std::string("htp emulator: ") + op_type_name(n.type) + " node '" + n.name + "': " + why);
}

const Tensor& in_t(const Node& n, const ExecBuffers& b, size_t i) {
    if (i >= n.inputs.size()) refuse(n, "missing input " + std::to_string(i));
    return b.tensor(n.inputs[i]);
}
const Tensor& out_t(const Node& n, const ExecBuffers& b) { return b.tensor(n.outputs.at(0)); }

void need_float(const Node& n, const Tensor& t) {
    if (t.dtype != DType::Float32) refuse(n, "tensor '" + t.name + "' is " + dtype_name(t.dtype) + ", not FLOAT_32");
}
const float* fin(const Node& n, const ExecBuffers& b, size_t i) {
    need_float(n, in_t(n, b, i));
    return b.at<float>(n.inputs[i]);
}
float* fout(const Node& n, const ExecBuffers& b) {
    need_float(n, out_t(n, b));
    return b.at<float>(n.outputs[0]);
}

double pscalar(const Node& n, const char* name, double dflt) {
    const Param* p = n.param(name);
    return p ? p->scalar : dflt;
}
std::vector<int64_t> pvalues(const Node& n, const char* name) {
    const Param* p = n.param(name);
    if (!p) refuse(n, std::string("no '") + name + "' param");
    return p->values;
}

uint64_t product(const std::vector<uint32_t>& d, size_t from, size_t to) {
    uint64_t p = 1;
    for (size_t i = from; i < to; ++i) p *= d[i];
    return p;
}
std::vector<uint64_t> strides(const std::vector<uint32_t>& d) {
    std::vector<uint64_t> s(d.size(), 1);
    for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
    return s;
}
// Steps a multi-index over dims, last dim fastest.
bool advance(std::vector<uint32_t>& idx, const std::vector<uint32_t>& d) {
    for (size_t i = d.size(); i-- > 0;) {
        if (++idx[i] < d[i]) return true;
        idx[i] = 0;
    }
    return false;
}

// Dots in 8 running lanes (i mod 8) added at the end: a fixed order (the same bits on every
// machine), which the compiler keeps in vector registers for contiguous rows.
float dot(const float* a, const float* b, int64_t n, int64_t sa, int64_t sb) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    if (sa == 1 && sb == 1) {
        for (; i + 8 <= n; i += 8) {
            for (int k = 0; k < 8; ++k) l[k] += a[i + k] * b[i + k];
        }
    } else {
        for (; i + 8 <= n; i += 8) {
            for (int k = 0; k < 8; ++k) l[k] += a[(i + k) * sa] * b[(i + k) * sb];
        }
    }
    for (; i < n; ++i) l[i % 8] += a[i * sa] * b[i * sb];
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

void fully_connected(const Node& n, const ExecBuffers& b) {
    const Tensor& x = in_t(n, b, 0);
    const Tensor& w = in_t(n, b, 1);
    if (w.dims.size() != 2 || w.dims[1] != x.dims.back()) refuse(n, "weight shape does not match the input's last dim");
    const float* xp = fin(n, b, 0);
    const float* wp = fin(n, b, 1);
    const float* bias = n.inputs.size() > 2 ? fin(n, b, 2) : nullptr;
    float* y = fout(n, b);
    const int64_t K = w.dims[1], N = w.dims[0];
    const int64_t rows = static_cast<int64_t>(x.elements() / uint64_t(K));
    if (out_t(n, b).elements() != uint64_t(rows * N)) refuse(n, "output size");
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t o = 0; o < N; ++o) {
            const float v = dot(xp + r * K, wp + o * K, K, 1, 1);
            y[r * N + o] = bias ? v + bias[o] : v;
        }
    }
}

void mat_mul(const Node& n, const ExecBuffers& b) {
    const Tensor& ta = in_t(n, b, 0);
    const Tensor& tb = in_t(n, b, 1);
    const bool t0 = pscalar(n, "transpose_in0", 0) != 0, t1 = pscalar(n, "transpose_in1", 0) != 0;
    const size_t r = ta.dims.size();
    if (r < 2 || tb.dims.size() != r) refuse(n, "inputs of different ranks");
    for (size_t i = 0; i + 2 < r; ++i) {
        if (ta.dims[i] != tb.dims[i]) refuse(n, "leading dims differ (no broadcast)");
    }
    const int64_t M = t0 ? ta.dims[r - 1] : ta.dims[r - 2], K = t0 ? ta.dims[r - 2] : ta.dims[r - 1];
    const int64_t Kb = t1 ? tb.dims[r - 1] : tb.dims[r - 2], N = t1 ? tb.dims[r - 2] : tb.dims[r - 1];
    if (K != Kb) refuse(n, "inner dims differ");
    const int64_t batch = static_cast<int64_t>(product(ta.dims, 0, r - 2));
    const float* A = fin(n, b, 0);
    const float* B = fin(n, b, 1);
    float* C = fout(n, b);
    for (int64_t bt = 0; bt < batch; ++bt) {
        const float* a = A + bt * M * K;
        const float* bb = B + bt * K * N;
        float* c = C + bt * M * N;
        for (int64_t i = 0; i < M; ++i) {
            for (int64_t j = 0; j < N; ++j) {
                // a[i][k]: t0 ? a[k * M + i] : a[i * K + k]; b[k][j]: t1 ? b[j * K + k] : b[k * N + j]
                c[i * N + j] = dot(t0 ? a + i : a + i * K, t1 ? bb + j * K : bb + j, K, t0 ? M : 1, t1 ? 1 : N);
            }
        }
    }
}

void rms_norm(const Node& n, const ExecBuffers& b) {
    const Tensor& x = in_t(n, b, 0);
    const int64_t C = x.dims.back();
    const float* xp = fin(n, b, 0);
    const float* g = fin(n, b, 1);
    const float* be = fin(n, b, 2);
    float* y = fout(n, b);
    const float eps = static_cast<float>(pscalar(n, "epsilon", 1e-6));
    const int64_t rows = static_cast<int64_t>(x.elements() / uint64_t(C));
    for (int64_t r = 0; r < rows; ++r) {
        const float* v = xp + r * C;
        double sum = 0;
        for (int64_t i = 0; i < C; ++i) sum += double(v[i] * v[i]);
        const float scale = 1.0f / std::sqrt(static_cast<float>(sum / double(C)) + eps);
        for (int64_t i = 0; i < C; ++i) y[r * C + i] = v[i] * scale * g[i] + be[i];
    }
}

void softmax(const Node& n, const ExecBuffers& b) {
    const Tensor& x = in_t(n, b, 0);
    const uint32_t axis = static_cast<uint32_t>(pscalar(n, "axis", double(x.dims.size() - 1)));
    if (axis != x.dims.size() - 1) refuse(n, "softmax along a dim other than the last");
    const float beta = static_cast<float>(pscalar(n, "beta", 1.0));
    const int64_t C = x.dims.back(), rows = static_cast<int64_t>(x.elements() / uint64_t(C));
    const float* xp = fin(n, b, 0);
    float* y = fout(n, b);
    for (int64_t r = 0; r < rows; ++r) {
        const float* v = xp + r * C;
        float* o = y + r * C;
        float mx = -INFINITY;
        for (int64_t i = 0; i < C; ++i) mx = std::max(mx, v[i]);
        double sum = 0;
        for (int64_t i = 0; i < C; ++i) sum += o[i] = std::exp(beta * (v[i] - mx));
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t i = 0; i < C; ++i) o[i] *= inv;
    }
}

template <class F>
void binary(const Node& n, const ExecBuffers& b, F f) {
    const Tensor& ta = in_t(n, b, 0);
    const Tensor& tb = in_t(n, b, 1);
    const Tensor& to = out_t(n, b);
    const float* A = fin(n, b, 0);
    const float* B = fin(n, b, 1);
    float* Y = fout(n, b);
    const uint64_t count = to.elements();
    if (ta.elements() == count && tb.elements() == count) {
        for (uint64_t i = 0; i < count; ++i) Y[i] = f(A[i], B[i]);
        return;
    }
    if (ta.elements() == count && tb.elements() == 1) {
        for (uint64_t i = 0; i < count; ++i) Y[i] = f(A[i], B[0]);
        return;
    }
    if (tb.elements() == count && ta.elements() == 1) {
        for (uint64_t i = 0; i < count; ++i) Y[i] = f(A[0], B[i]);
        return;
    }
    // One operand equal to the output's trailing dims (the mask over every head): it repeats
    // with its own size as the period.
    auto trailing = [&](const Tensor& t) {
        if (t.dims.size() > to.dims.size()) return false;
        for (size_t i = 0; i < t.dims.size(); ++i) {
            if (t.dims[i] != to.dims[to.dims.size() - t.dims.size() + i]) return false;
        }
        return true;
    };
    if (ta.elements() == count && trailing(tb)) {
        const uint64_t p = tb.elements();
        for (uint64_t i = 0; i < count; ++i) Y[i] = f(A[i], B[i % p]);
        return;
    }
    // Numpy broadcasting: align trailing dims; a dim of 1 repeats.
    const size_t r = to.dims.size();
    auto bstrides = [&](const Tensor& t) {
        std::vector<uint64_t> s(r, 0);
        const std::vector<uint64_t> own = strides(t.dims);
        for (size_t i = 0; i < t.dims.size(); ++i) {
            const size_t oi = r - t.dims.size() + i;
            if (t.dims[i] == to.dims[oi]) {
                s[oi] = own[i];
            } else if (t.dims[i] != 1) {
                refuse(n, "shapes do not broadcast");
            }
        }
        return s;
    };
    const std::vector<uint64_t> sa = bstrides(ta), sb = bstrides(tb);
    std::vector<uint32_t> idx(r, 0);
    uint64_t i = 0;
    do {
        uint64_t ia = 0, ib = 0;
        for (size_t d = 0; d < r; ++d) {
            ia += idx[d] * sa[d];
            ib += idx[d] * sb[d];
        }
        Y[i++] = f(A[ia], B[ib]);
    } while (advance(idx, to.dims));
}

template <class F>
void unary(const Node& n, const ExecBuffers& b, F f) {
    const float* A = fin(n, b, 0);
    float* Y = fout(n, b);
    const uint64_t count = out_t(n, b).elements();
    for (uint64_t i = 0; i < count; ++i) Y[i] = f(A[i]);
}

void add(const Node& n, const ExecBuffers& b) { binary(n, b, [](float x, float y) { return x + y; }); }
void sub(const Node& n, const ExecBuffers& b) { binary(n, b, [](float x, float y) { return x - y; }); }
void mul(const Node& n, const ExecBuffers& b) { binary(n, b, [](float x, float y) { return x * y; }); }
void div(const Node& n, const ExecBuffers& b) { binary(n, b, [](float x, float y) { return x / y; }); }
void neg(const Node& n, const ExecBuffers& b) { unary(n, b, [](float x) { return -x; }); }
void sigmoid(const Node& n, const ExecBuffers& b) { unary(n, b, [](float x) { return 1.0f / (1.0f + std::exp(-x)); }); }
void elu(const Node& n, const ExecBuffers& b) {
    const float alpha = static_cast<float>(pscalar(n, "alpha", 1.0));
    unary(n, b, [alpha](float x) { return x > 0 ? x : alpha * std::expm1(x); });
}

// Bytes per element of a tensor a data-movement op copies (float, half or int32 alike).
uint64_t elem(const Node& n, const Tensor& t) {
    if (t.dtype == DType::Float16) return 2;
    if (t.dtype != DType::Float32 && t.dtype != DType::Int32) refuse(n, "tensor '" + t.name + "' is " + dtype_name(t.dtype));
    return 4;
}

void gather(const Node& n, const ExecBuffers& b) {
    const Tensor& data = in_t(n, b, 0);
    const Tensor& ind = in_t(n, b, 1);
    if (pscalar(n, "axis", 0) != 0) refuse(n, "gather along a dim other than the first");
    if (ind.dtype != DType::Int32) refuse(n, "indices are not INT_32");
    const uint64_t e = elem(n, data);
    const uint64_t row = product(data.dims, 1, data.dims.size()) * e;
    const int32_t* idx = b.at<int32_t>(n.inputs[1]);
    const uint8_t* src = b.ptr[n.inputs[0]];
    uint8_t* dst = b.ptr[n.outputs[0]];
    for (uint64_t i = 0; i < ind.elements(); ++i) {
        if (idx[i] < 0 || uint32_t(idx[i]) >= data.dims[0]) {
            fail(EI_ERR_INVALID_ARGUMENT, "htp emulator: Gather node '" + n.name + "': index " + std::to_string(idx[i]) +
                                              " outside [0, " + std::to_string(data.dims[0]) + ")");
        }
        std::memcpy(dst + i * row, src + uint64_t(idx[i]) * row, row);
    }
}

void concat(const Node& n, const ExecBuffers& b) {
    const Tensor& to = out_t(n, b);
    const uint32_t axis = static_cast<uint32_t>(pscalar(n, "axis", 0));
    const uint64_t e = elem(n, to);
    const uint64_t outer = product(to.dims, 0, axis), inner = product(to.dims, axis + 1, to.dims.size()) * e;
    uint8_t* dst = b.ptr[n.outputs[0]];
    uint64_t at = 0;  // bytes into each outer row of the output
    const uint64_t out_row = uint64_t(to.dims[axis]) * inner;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
        const Tensor& t = in_t(n, b, k);
        const uint64_t row = uint64_t(t.dims[axis]) * inner;
        const uint8_t* src = b.ptr[n.inputs[k]];
        for (uint64_t o = 0; o < outer; ++o) std::memcpy(dst + o * out_row + at, src + o * row, row);
        at += row;
    }
}

void strided_slice(const Node& n, const ExecBuffers& b) {
    const Tensor& ta = in_t(n, b, 0);
    const Tensor& to = out_t(n, b);
    const std::vector<int64_t> rg = pvalues(n, "ranges");
    const size_t r = ta.dims.size();
    if (rg.size() != r * 3) refuse(n, "ranges of the wrong size");
    const uint64_t e = elem(n, ta);
    const std::vector<uint64_t> s = strides(ta.dims);
    const uint8_t* src = b.ptr[n.inputs[0]];
    uint8_t* dst = b.ptr[n.outputs[0]];
    for (size_t d = 0; d < r; ++d) {
        if (rg[3 * d + 2] <= 0 || rg[3 * d] < 0 || rg[3 * d + 1] > int64_t(ta.dims[d])) refuse(n, "range outside the input");
    }
    std::vector<uint32_t> idx(r, 0);
    uint64_t i = 0;
    do {
        uint64_t off = 0;
        for (size_t d = 0; d < r; ++d) off += uint64_t(rg[3 * d] + int64_t(idx[d]) * rg[3 * d + 2]) * s[d];
        std::memcpy(dst + i * e, src + off * e, e);
        ++i;
    } while (advance(idx, to.dims));
}

void transpose(const Node& n, const ExecBuffers& b) {
    const Tensor& ta = in_t(n, b, 0);
    const Tensor& to = out_t(n, b);
    const std::vector<int64_t> perm = pvalues(n, "perm");
    if (perm.size() != ta.dims.size()) refuse(n, "perm of the wrong rank");
    const uint64_t e = elem(n, ta);
    const std::vector<uint64_t> s = strides(ta.dims);
    const uint8_t* src = b.ptr[n.inputs[0]];
    uint8_t* dst = b.ptr[n.outputs[0]];
    // Where the last dim stays last, whole rows move: walk the outer dims only.
    const size_t r = perm.size();
    const bool rows = r > 1 && perm[r - 1] == int64_t(r - 1);
    const uint64_t run = rows ? to.dims[r - 1] : 1;
    std::vector<uint32_t> outer(to.dims.begin(), to.dims.end() - (rows ? 1 : 0));
    std::vector<uint32_t> idx(outer.size(), 0);
    uint64_t i = 0;
    do {
        uint64_t off = 0;
        for (size_t d = 0; d < idx.size(); ++d) off += uint64_t(idx[d]) * s[size_t(perm[d])];
        std::memcpy(dst + i * e * run, src + off * e, e * run);
        ++i;
    } while (!outer.empty() && advance(idx, outer));
}

void reshape(const Node& n, const ExecBuffers& b) {
    const Tensor& ta = in_t(n, b, 0);
    const Tensor& to = out_t(n, b);
    if (ta.bytes() != to.bytes() || ta.dtype != to.dtype) refuse(n, "reshape changes the size or type");
    if (b.ptr[n.outputs[0]] != b.ptr[n.inputs[0]]) std::memmove(b.ptr[n.outputs[0]], b.ptr[n.inputs[0]], ta.bytes());
}

void convert(const Node& n, const ExecBuffers& b) {
    // The float table converts between equal plain types and between FLOAT_32 and FLOAT_16
    // (round to nearest even, as the CPU's f16 cache stores); fixed-point conversions are
    // quant_kernel's.
    const Tensor& ta = in_t(n, b, 0);
    const Tensor& to = out_t(n, b);
    if (ta.elements() != to.elements()) refuse(n, "conversion changes the element count");
    const uint64_t count = ta.elements();
    if (ta.dtype == DType::Float32 && to.dtype == DType::Float16) {
        const float* x = b.at<float>(n.inputs[0]);
        uint16_t* y = b.at<uint16_t>(n.outputs[0]);
        for (uint64_t i = 0; i < count; ++i) y[i] = cpu::fp32_to_fp16(x[i]);
        return;
    }
    if (ta.dtype == DType::Float16 && to.dtype == DType::Float32) {
        const uint16_t* x = b.at<uint16_t>(n.inputs[0]);
        float* y = b.at<float>(n.outputs[0]);
        for (uint64_t i = 0; i < count; ++i) y[i] = cpu::fp16_to_fp32(x[i]);
        return;
    }
    if (ta.dtype != to.dtype || (ta.dtype != DType::Float32 && ta.dtype != DType::Int32 && ta.dtype != DType::Float16)) {
        refuse(n, std::string("conversion ") + dtype_name(ta.dtype) + " -> " + dtype_name(to.dtype) + " has no float kernel");
    }
    std::memcpy(b.ptr[n.outputs[0]], b.ptr[n.inputs[0]], ta.bytes());
}

void reduce_sum(const Node& n, const ExecBuffers& b) {
    const Tensor& ta = in_t(n, b, 0);
    const std::vector<int64_t> axes = pvalues(n, "axes");
    const float* A = fin(n, b, 0);
    float* Y = fout(n, b);
    const size_t r = ta.dims.size();
    std::vector<bool> reduced(r, false);
    for (int64_t a : axes) {
        if (a < 0 || size_t(a) >= r) refuse(n, "axis out of range");
        reduced[size_t(a)] = true;
    }
    // The output index of an input element: the kept dims, row-major (keep_dims or not,
    // the order of the kept dims is the same).
    std::vector<uint64_t> os(r, 0);
    uint64_t st = 1;
    for (size_t d = r; d-- > 0;) {
        if (reduced[d]) continue;
        os[d] = st;
        st *= ta.dims[d];
    }
    std::fill(Y, Y + out_t(n, b).elements(), 0.0f);
    std::vector<uint32_t> idx(r, 0);
    uint64_t i = 0;
    do {
        uint64_t o = 0;
        for (size_t d = 0; d < r; ++d) o += idx[d] * os[d];
        Y[o] += A[i++];
    } while (advance(idx, ta.dims));
}

}  // namespace

NodeKernel float_kernel(OpType t) {
    switch (t) {
        case OpType::FullyConnected: return fully_connected;
        case OpType::MatMul: return mat_mul;
        case OpType::RmsNorm: return rms_norm;
        case OpType::Softmax: return softmax;
        case OpType::ElementWiseAdd: return add;
        case OpType::ElementWiseSubtract: return sub;
        case OpType::ElementWiseMultiply: return mul;
        case OpType::ElementWiseDivide: return div;
        case OpType::ElementWiseNeg: return neg;
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
