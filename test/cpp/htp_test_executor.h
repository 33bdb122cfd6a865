// TEST-ONLY: a small executor for lowered graphs (qnn_ir.h) and float reference kernels
// for the op types the quantization tests use. The real float kernels and the emulator are
// wt-lower's (float_kernels.cpp, emulator.h); once they are merged, test_htp_quant should
// run its graphs through the emulator and this file should go. The float kernels here are
// also the reference the fixed-point kernels are checked against (on dequantized inputs).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.h"
#include "htp/fixed_point.h"
#include "htp/node_kernels.h"
#include "htp/qnn_ir.h"

namespace htp_test {

using namespace ei::htp;

inline std::vector<uint64_t> strides(const std::vector<uint32_t>& d) {
    std::vector<uint64_t> s(d.size(), 1);
    for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
    return s;
}

// Multi-index of element e of dims d.
inline std::vector<uint64_t> unravel(uint64_t e, const std::vector<uint32_t>& d) {
    std::vector<uint64_t> idx(d.size());
    for (size_t i = d.size(); i-- > 0;) {
        idx[i] = e % d[i];
        e /= d[i];
    }
    return idx;
}

inline uint64_t bcast_index(const std::vector<uint64_t>& oi, const std::vector<uint32_t>& in) {
    if (in.size() > oi.size()) ei::fail(EI_ERR_UNSUPPORTED, "htp_test: shapes do not broadcast");
    const size_t lead = oi.size() - in.size();
    for (size_t i = 0; i < in.size(); ++i)
        if (in[i] != 1 && oi[lead + i] >= in[i]) ei::fail(EI_ERR_UNSUPPORTED, "htp_test: shapes do not broadcast");
    uint64_t off = 0;
    const auto s = strides(in);
    for (size_t i = 0; i < in.size(); ++i) off += (in[i] == 1 ? 0 : oi[lead + i]) * s[i];
    return off;
}

inline double pscalar(const Node& n, const char* name, double d) {
    const Param* p = n.param(name);
    return p ? p->scalar : d;
}

// The float reference of one node (all tensors Float32, indices Int32).
inline void float_ref(const Node& n, const ExecBuffers& b) {
    auto F = [&](size_t k) { return b.at<float>(n.inputs[k]); };
    auto T = [&](uint32_t id) -> const Tensor& { return b.tensor(id); };
    const Tensor& yt = T(n.outputs[0]);
    float* y = b.at<float>(yt.id);
    const uint64_t ny = yt.elements();
    switch (n.type) {
        case OpType::FullyConnected: {
            const Tensor& w = T(n.inputs[1]);
            const uint64_t N = w.dims[0], K = w.dims[1], rows = T(n.inputs[0]).elements() / K;
            for (uint64_t r = 0; r < rows; ++r)
                for (uint64_t c = 0; c < N; ++c) {
                    double acc = n.inputs.size() > 2 ? F(2)[c] : 0.0;
                    for (uint64_t k = 0; k < K; ++k) acc += static_cast<double>(F(0)[r * K + k]) * F(1)[c * K + k];
                    y[r * N + c] = static_cast<float>(acc);
                }
            return;
        }
        case OpType::MatMul: {
            const bool ta = pscalar(n, "transpose_in0", 0) != 0, tb = pscalar(n, "transpose_in1", 0) != 0;
            const auto& ad = T(n.inputs[0]).dims;
            const auto& bd = T(n.inputs[1]).dims;
            const size_t r = ad.size();
            const uint64_t M = ta ? ad[r - 1] : ad[r - 2], K = ta ? ad[r - 2] : ad[r - 1], N = tb ? bd[r - 2] : bd[r - 1];
            const uint64_t batch = T(n.inputs[0]).elements() / (M * K);
            for (uint64_t bi = 0; bi < batch; ++bi)
                for (uint64_t i = 0; i < M; ++i)
                    for (uint64_t j = 0; j < N; ++j) {
                        double acc = 0;
                        for (uint64_t k = 0; k < K; ++k)
                            acc += static_cast<double>(F(0)[bi * M * K + (ta ? k * M + i : i * K + k)]) *
                                   F(1)[bi * K * N + (tb ? j * K + k : k * N + j)];
                        y[bi * M * N + i * N + j] = static_cast<float>(acc);
                    }
            return;
        }
        case OpType::RmsNorm: {
            const uint64_t C = yt.dims.back();
            const double eps = pscalar(n, "epsilon", 1e-6);
            for (uint64_t r = 0; r < ny / C; ++r) {
                double ss = 0;
                for (uint64_t i = 0; i < C; ++i) ss += static_cast<double>(F(0)[r * C + i]) * F(0)[r * C + i];
                const double inv = 1 / std::sqrt(ss / C + eps);
                for (uint64_t i = 0; i < C; ++i) {
                    double v = F(0)[r * C + i] * inv;
                    if (n.inputs.size() > 1) v *= F(1)[i];
                    if (n.inputs.size() > 2) v += F(2)[i];
                    y[r * C + i] = static_cast<float>(v);
                }
            }
            return;
        }
        case OpType::Softmax: {
            const uint64_t C = yt.dims.back();
            const double beta = pscalar(n, "beta", 1.0);
            for (uint64_t r = 0; r < ny / C; ++r) {
                double m = -1e300, s = 0;
                for (uint64_t i = 0; i < C; ++i) m = std::max(m, static_cast<double>(F(0)[r * C + i]));
                for (uint64_t i = 0; i < C; ++i) s += std::exp(beta * (F(0)[r * C + i] - m));
                for (uint64_t i = 0; i < C; ++i) y[r * C + i] = static_cast<float>(std::exp(beta * (F(0)[r * C + i] - m)) / s);
            }
            return;
        }
        case OpType::ElementWiseAdd: case OpType::ElementWiseSubtract: case OpType::ElementWiseMultiply:
        case OpType::ElementWiseDivide: {
            for (uint64_t e = 0; e < ny; ++e) {
                const auto oi = unravel(e, yt.dims);
                const double a = F(0)[bcast_index(oi, T(n.inputs[0]).dims)], c = F(1)[bcast_index(oi, T(n.inputs[1]).dims)];
                double v = n.type == OpType::ElementWiseAdd ? a + c
                           : n.type == OpType::ElementWiseSubtract ? a - c
                           : n.type == OpType::ElementWiseMultiply ? a * c
                                                                   : a / c;
                y[e] = static_cast<float>(v);
            }
            return;
        }
        case OpType::ElementWiseNeg: for (uint64_t e = 0; e < ny; ++e) y[e] = -F(0)[e]; return;
        case OpType::Sigmoid: for (uint64_t e = 0; e < ny; ++e) y[e] = static_cast<float>(1 / (1 + std::exp(-static_cast<double>(F(0)[e])))); return;
        case OpType::Elu: {
            const double al = pscalar(n, "alpha", 1.0);
            for (uint64_t e = 0; e < ny; ++e) y[e] = F(0)[e] > 0 ? F(0)[e] : static_cast<float>(al * std::expm1(F(0)[e]));
            return;
        }
        case OpType::Reshape: std::memcpy(y, F(0), ny * 4); return;
        case OpType::Transpose: {
            const Param* p = n.param("perm");
            const auto& xd = T(n.inputs[0]).dims;
            const auto xs = strides(xd);
            for (uint64_t e = 0; e < ny; ++e) {
                const auto oi = unravel(e, yt.dims);
                uint64_t off = 0;
                for (size_t i = 0; i < oi.size(); ++i) off += oi[i] * xs[static_cast<size_t>(p->values[i])];
                y[e] = F(0)[off];
            }
            return;
        }
        case OpType::StridedSlice: {
            const Param* p = n.param("ranges");
            const auto xs = strides(T(n.inputs[0]).dims);
            for (uint64_t e = 0; e < ny; ++e) {
                const auto oi = unravel(e, yt.dims);
                uint64_t off = 0;
                for (size_t i = 0; i < oi.size(); ++i) off += (p->values[i * 3] + oi[i] * p->values[i * 3 + 2]) * xs[i];
                y[e] = F(0)[off];
            }
            return;
        }
        case OpType::Concat: {
            const size_t ax = static_cast<size_t>(pscalar(n, "axis", 0));
            for (uint64_t e = 0; e < ny; ++e) {
                auto oi = unravel(e, yt.dims);
                size_t k = 0;
                while (oi[ax] >= T(n.inputs[k]).dims[ax]) oi[ax] -= T(n.inputs[k++]).dims[ax];
                const auto s = strides(T(n.inputs[k]).dims);
                uint64_t off = 0;
                for (size_t i = 0; i < oi.size(); ++i) off += oi[i] * s[i];
                y[e] = F(k)[off];
            }
            return;
        }
        case OpType::Gather: {
            const auto& xd = T(n.inputs[0]).dims;
            const size_t ax = static_cast<size_t>(pscalar(n, "axis", 0));
            const uint64_t inner = strides(xd)[ax], dim = xd[ax], ni = T(n.inputs[1]).elements();
            const int32_t* idx = b.at<int32_t>(n.inputs[1]);
            for (uint64_t i = 0; i < ni; ++i)
                if (idx[i] < 0 || static_cast<uint64_t>(idx[i]) >= dim)
                    ei::fail(EI_ERR_UNSUPPORTED, "htp_test: index " + std::to_string(idx[i]) + " outside the data");
            for (uint64_t e = 0; e < ny; ++e) {
                const uint64_t in = e % inner, i = (e / inner) % ni, o = e / inner / ni;
                y[e] = F(0)[(o * dim + static_cast<uint64_t>(idx[i])) * inner + in];
            }
            return;
        }
        case OpType::ReduceSum: {
            const Param* p = n.param("axes");
            const auto& xd = T(n.inputs[0]).dims;
            std::vector<uint32_t> od = xd;
            for (int64_t a : p->values) od[static_cast<size_t>(a)] = 1;
            std::fill(y, y + ny, 0.0f);
            std::vector<double> acc(ny, 0);
            const auto os = strides(od);
            for (uint64_t e = 0; e < T(n.inputs[0]).elements(); ++e) {
                const auto xi = unravel(e, xd);
                uint64_t off = 0;
                for (size_t i = 0; i < xi.size(); ++i) off += (od[i] == 1 ? 0 : xi[i]) * os[i];
                acc[off] += F(0)[e];
            }
            for (uint64_t e = 0; e < ny; ++e) y[e] = static_cast<float>(acc[e]);
            return;
        }
        case OpType::Convert: break;
    }
    throw std::runtime_error(std::string("htp_test: no float reference for ") + op_type_name(n.type));
}

// Runs a graph: the float reference for nodes whose tensors are all Float32/Int32, the
// fixed-point kernels otherwise; AppWrite tensors bound from `inputs` by name (Float32 as
// floats, Int32 as int32 values in floats' place... see bind below). Returns the AppRead
// tensors' bytes by id.
struct Run {
    std::vector<std::vector<uint8_t>> store;
    ExecBuffers b;
};

inline bool node_quantized(const QnnGraph& g, const Node& n) {
    for (uint32_t id : n.inputs) if (dtype_quantized(g.tensors[id].dtype)) return true;
    for (uint32_t id : n.outputs) if (dtype_quantized(g.tensors[id].dtype)) return true;
    return false;
}

// inputs: per AppWrite tensor name, its raw bytes in the tensor's dtype.
inline void execute(const QnnGraph& g, const std::map<std::string, std::vector<uint8_t>>& inputs, Run& r,
                    NodeObserver* obs = nullptr) {
    r.store.assign(g.tensors.size(), {});
    r.b.graph = &g;
    r.b.ptr.assign(g.tensors.size(), nullptr);
    for (const Tensor& t : g.tensors) {
        if (t.kind == TensorKind::Static) {
            r.b.ptr[t.id] = const_cast<uint8_t*>(t.data->data());
            continue;
        }
        r.store[t.id].assign(t.bytes(), 0);
        if (t.kind == TensorKind::AppWrite) {
            auto it = inputs.find(t.name);
            if (it == inputs.end() || it->second.size() != t.bytes())
                throw std::runtime_error("htp_test: no input bytes for " + t.name);
            r.store[t.id] = it->second;
        }
        r.b.ptr[t.id] = r.store[t.id].data();
    }
    for (const Node& n : g.nodes) {
        if (node_quantized(g, n)) {
            NodeKernel k = quant_kernel(n.type);
            if (!k) throw std::runtime_error("htp_test: no quant kernel");
            k(n, r.b);
        } else {
            float_ref(n, r.b);
        }
        if (obs) obs->after(n, r.b);
    }
}

// Builds graphs tensor by tensor.
struct Builder {
    QnnGraph g;
    uint32_t add(const std::string& name, TensorKind kind, DType dt, std::vector<uint32_t> dims, IoRole io = IoRole::None) {
        Tensor t;
        t.id = static_cast<uint32_t>(g.tensors.size());
        t.name = name;
        t.kind = kind;
        t.dtype = dt;
        t.dims = std::move(dims);
        t.io = io;
        g.tensors.push_back(t);
        return t.id;
    }
    uint32_t constant(const std::string& name, std::vector<uint32_t> dims, const std::vector<float>& v) {
        const uint32_t id = add(name, TensorKind::Static, DType::Float32, std::move(dims));
        auto d = std::make_shared<std::vector<uint8_t>>(v.size() * 4);
        std::memcpy(d->data(), v.data(), d->size());
        g.tensors[id].data = d;
        return id;
    }
    uint32_t native(const std::string& name, std::vector<uint32_t> dims) {
        return add(name, TensorKind::Native, DType::Float32, std::move(dims));
    }
    Node& node(const std::string& name, OpType t, std::vector<uint32_t> in, std::vector<uint32_t> out) {
        Node n;
        n.name = name;
        n.type = t;
        n.inputs = std::move(in);
        n.outputs = std::move(out);
        g.nodes.push_back(n);
        return g.nodes.back();
    }
};

inline Param scalar_param(const std::string& name, Param::Kind k, double v) {
    Param p;
    p.name = name;
    p.kind = k;
    p.scalar = v;
    return p;
}
inline Param tensor_param(const std::string& name, std::vector<int64_t> v, std::vector<uint32_t> dims) {
    Param p;
    p.name = name;
    p.kind = Param::Kind::TensorInt32;
    p.values = std::move(v);
    p.dims = std::move(dims);
    return p;
}

inline std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}
inline std::vector<uint8_t> bytes_of(const std::vector<int32_t>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

}  // namespace htp_test
