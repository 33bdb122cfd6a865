// The OpenCL backend: enqueues one kernel (three for a fold) per graph op on an in-order
// queue. Weights live in device buffers made once per (model, device) through the model's
// WeightCache; the session's pool is a host allocation seen through ClPoolBuffer (below),
// the one place that knows the pool is host memory.
#include "opencl/opencl_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "error.h"
#include "ggml_types.h"
#include "opencl/kernel_variants.h"
#include "opencl/opencl_device.h"
#include "opencl/signal_guard.h"
#include "step_inputs.h"
#include "weight_cache.h"

namespace ei::opencl {

namespace {

// The weight types with kernels, in the order of their kernel names.
constexpr GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                     GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K};
constexpr const char* kWeightSuffix[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q5_0", "q4_k", "q6_k"};
constexpr int kTypes = 8;
constexpr int kTokenTile = 8;  // TOKEN_TILE in kernels.cl (16-lane MatMul)

int type_index(GgmlType t) {
    for (int i = 0; i < kTypes; ++i) {
        if (kWeightTypes[i] == t) return i;
    }
    return -1;
}

// A weight the kernels can read: a type with kernels, rows of whole blocks (whole 32-element
// chunks for quantized types; float rows may end anywhere).
bool weight_ok(const TensorRef& w) {
    if (!w.valid() || w.where != TensorRef::Where::Weight || type_index(w.type) < 0 || w.cols <= 0) return false;
    const TypeTraits tt = type_traits(w.type);
    if (w.cols % tt.block_size != 0) return false;
    return w.row_bytes == static_cast<uint64_t>(w.cols / tt.block_size * tt.type_size);
}

bool vector_ok(const TensorRef& r) { return !r.valid() || (r.where == TensorRef::Where::Weight && r.type == GgmlType::F32); }

struct Local {  // a __local kernel argument of this many bytes
    size_t bytes;
};

// A device buffer owned by a shared_ptr (weights in the model's WeightCache, scratch here);
// it keeps the runtime (context) alive as long as it lives.
std::shared_ptr<_cl_mem> make_buffer(const std::shared_ptr<Runtime>& rt, cl_mem_flags flags, size_t bytes, void* host,
                                     const std::string& what) {
    cl_int st = CL_SUCCESS;
    cl_mem m = rt->cl->CreateBuffer(rt->context, flags, std::max<size_t>(bytes, 4), host, &st);
    if (!m || st != CL_SUCCESS) {
        fail(st == -4 || st == -6 ? EI_ERR_OUT_OF_MEMORY : EI_ERR_INTERNAL,
             "OpenCL: cannot allocate " + std::to_string(bytes) + " bytes for " + what + " on " + rt->device.name +
                 ": " + status_name(st));
    }
    return std::shared_ptr<_cl_mem>(m, [rt](cl_mem p) { rt->cl->ReleaseMemObject(p); });
}

// The session's pool, a host allocation, as a device buffer over the same memory
// (CL_MEM_USE_HOST_PTR: zero-copy on PoCL and on unified-memory mobile GPUs). The host owns
// the memory while the buffer is mapped: between steps (synchronize() maps it back, and
// every read, write and zero of the session goes through it), and while an observer looks.
// to_device() hands it to the kernels.
// The session's pool as the kernels see it, over the host allocation Java owns, in one of
// two buffer types:
// - zero-copy (USE_HOST_PTR): the device works on the host memory itself (PoCL, unified-memory
//   mobile GPUs); the host owns it while mapped: between computes, and while an observer looks.
// - device-resident: a device allocation (discrete GPUs); the session's I/O are transfers,
//   host() is null, and the host allocation is only the staging copy an observer reads.
// EI_OPENCL_POOL=zero-copy|device picks one; by default, zero-copy where the device shares
// the host's memory. to_device() hands the pool to the kernels, finish_step() waits for them.
class ClPoolBuffer final : public PoolBuffer {
public:
    enum class Kind { ZeroCopy, Device };

    ClPoolBuffer(std::shared_ptr<Runtime> rt, cl_command_queue q, uint8_t* host, uint64_t bytes, Kind kind)
        : rt_(std::move(rt)), q_(q), host_(host), bytes_(bytes), kind_(kind) {
        if (!host) fail(EI_ERR_POOL, "pool is null");
        if (kind_ == Kind::ZeroCopy) {
            buf_ = make_buffer(rt_, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, bytes, host, "the session pool");
            to_host();
        } else {
            buf_ = make_buffer(rt_, CL_MEM_READ_WRITE, bytes, nullptr, "the session pool (device-resident)");
            transfer(false, 0, host_, bytes_);  // the pool starts as the caller's memory holds it
        }
    }
    ~ClPoolBuffer() override {
        if (buf_ && mapped_) rt_->cl->EnqueueUnmapMemObject(q_, buf_.get(), mapped_, 0, nullptr, nullptr);
        if (buf_) rt_->cl->Finish(q_);
    }

    uint64_t size() const override { return bytes_; }
    void write(uint64_t offset, const void* src, uint64_t bytes) override {
        check_range(size(), offset, bytes, "write");
        if (kind_ == Kind::Device) return transfer(false, offset, const_cast<void*>(src), bytes);
        to_host();
        if (bytes) std::memcpy(host_ + offset, src, bytes);
    }
    void read(uint64_t offset, void* dst, uint64_t bytes) const override {
        check_range(size(), offset, bytes, "read");
        if (kind_ == Kind::Device) return transfer(true, offset, dst, bytes);
        to_host();
        if (bytes) std::memcpy(dst, host_ + offset, bytes);
    }
    void zero(uint64_t offset, uint64_t bytes) override {
        check_range(size(), offset, bytes, "zero");
        if (kind_ == Kind::Device) {
            static const std::vector<uint8_t> zeros(1 << 16, 0);
            for (uint64_t at = 0; at < bytes; at += zeros.size()) {
                transfer(false, offset + at, const_cast<uint8_t*>(zeros.data()), std::min<uint64_t>(zeros.size(), bytes - at));
            }
            return;
        }
        to_host();
        std::memset(host_ + offset, 0, bytes);
    }
    void synchronize() override { finish_step(); }
    uint8_t* host() const override { return kind_ == Kind::ZeroCopy ? host_ : nullptr; }

    Kind kind() const { return kind_; }
    cl_mem mem() const { return buf_.get(); }
    const Runtime* runtime() const { return rt_.get(); }
    // The host view an observer reads after to_host(): the pool itself, or its staging copy.
    uint8_t* host_view() const { return host_; }

    void to_device() {
        if (kind_ == Kind::Device) {
            if (staged_) transfer(false, 0, host_, bytes_);
            staged_ = false;
            return;
        }
        if (!mapped_) return;
        rt_->check(rt_->cl->EnqueueUnmapMemObject(q_, buf_.get(), mapped_, 0, nullptr, nullptr), "unmapping the pool");
        mapped_ = nullptr;
    }
    // Blocking: every kernel enqueued before has finished when it returns, and host_view()
    // holds the pool (a whole-pool copy for a device-resident one: observers only).
    void to_host() const {
        if (kind_ == Kind::Device) {
            if (!staged_) transfer(true, 0, host_, bytes_);
            staged_ = true;
            return;
        }
        if (mapped_) return;
        cl_int st = CL_SUCCESS;
        void* p = rt_->cl->EnqueueMapBuffer(q_, buf_.get(), CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes_, 0, nullptr,
                                            nullptr, &st);
        rt_->check(st, "mapping the pool");
        // A USE_HOST_PTR buffer maps at its host pointer (OpenCL 1.2, 5.4.2.1): host() and
        // the logits the session hands out stay valid.
        if (p != host_) fail(EI_ERR_INTERNAL, "OpenCL: the pool mapped away from its host memory on " + rt_->device.name);
        mapped_ = p;
    }
    // The end of a step: the kernels have finished; a zero-copy pool is back on the host, a
    // device-resident one stays where it is (the session reads what it needs through read()).
    void finish_step() {
        if (kind_ == Kind::ZeroCopy) return to_host();
        if (staged_) to_device();
        rt_->check(rt_->cl->Finish(q_), "finishing the step");
    }

private:
    void transfer(bool to_host_memory, uint64_t offset, void* p, uint64_t bytes) const {
        if (!bytes) return;
        const cl_int st = to_host_memory
                              ? rt_->cl->EnqueueReadBuffer(q_, buf_.get(), CL_TRUE, offset, bytes, p, 0, nullptr, nullptr)
                              : rt_->cl->EnqueueWriteBuffer(q_, buf_.get(), CL_TRUE, offset, bytes, p, 0, nullptr, nullptr);
        rt_->check(st, to_host_memory ? "reading the pool" : "writing the pool");
    }

    std::shared_ptr<Runtime> rt_;
    cl_command_queue q_;
    uint8_t* host_;
    uint64_t bytes_;
    Kind kind_;
    std::shared_ptr<_cl_mem> buf_;
    mutable void* mapped_ = nullptr;  // zero-copy: mapping is how the host looks, even from read()
    mutable bool staged_ = false;     // device-resident: host_ holds the pool for an observer
};

// The pool buffer type of a device: EI_OPENCL_POOL, else zero-copy where memory is shared.
ClPoolBuffer::Kind pool_kind(const DeviceInfo& device) {
    const char* e = std::getenv("EI_OPENCL_POOL");
    if (!e || !*e) return device.unified_memory ? ClPoolBuffer::Kind::ZeroCopy : ClPoolBuffer::Kind::Device;
    if (std::strcmp(e, "zero-copy") == 0) return ClPoolBuffer::Kind::ZeroCopy;
    if (std::strcmp(e, "device") == 0) return ClPoolBuffer::Kind::Device;
    fail(EI_ERR_INVALID_ARGUMENT, std::string("EI_OPENCL_POOL=") + e + " is not a pool buffer type (zero-copy or device)");
}

class OpenClBackend final : public Backend {
public:
    explicit OpenClBackend(std::shared_ptr<Runtime> rt) : rt_(std::move(rt)), cl_(*rt_->cl) {
        const SignalHandlersGuard keep_handlers;
        cl_int st = CL_SUCCESS;
        q_ = cl_.CreateCommandQueue(rt_->context, rt_->device.id, 0, &st);
        rt_->check(st, "creating a command queue");
        for (int i = 0; i < kTypes; ++i) {
            get_rows_[i] = kernel(std::string("get_rows_") + kWeightSuffix[i]);
            // F32 and F16 have their 16-lane kernels below.
            if (kWeightTypes[i] != GgmlType::F32 && kWeightTypes[i] != GgmlType::F16) {
                mat_mul_[i] = kernel(std::string("mat_mul_") + kWeightSuffix[i]);
            }
        }
        quantize_q8_0_ = kernel("quantize_q8_0");
        quantize_q8_k_ = kernel("quantize_q8_k");
        mat_mul_f32_lane16_ = kernel("mat_mul_f32_lane16");
        mat_mul_f16_lane16_ = kernel("mat_mul_f16_lane16");
        rms_norm_ = kernel("rms_norm");
        rope_ = kernel("rope");
        kv_store_ = kernel("kv_store");
        swiglu_ = kernel("swiglu");
        attention_ = kernel("segment_attention");
        fold_prepare_ = kernel("fold_prepare");
        fold_delta_ = kernel("fold_delta");
        fold_update_ = kernel("fold_update");
        ls_ = 64;
        for (cl_kernel k : {rms_norm_, attention_}) {
            size_t wg = 0;
            if (cl_.GetKernelWorkGroupInfo(k, rt_->device.id, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr) ==
                    CL_SUCCESS && wg > 0) {
                while (ls_ > wg) ls_ /= 2;
            }
        }
        dummy_ = make_buffer(rt_, CL_MEM_READ_WRITE, 64, nullptr, "a placeholder argument");
        variants_ = VariantKernels::for_runtime(rt_);  // nullptr: the portable kernels only
    }

    ~OpenClBackend() override {
        for (cl_kernel k : kernels_) cl_.ReleaseKernel(k);
        if (q_) {
            cl_.Finish(q_);
            cl_.ReleaseCommandQueue(q_);
        }
    }

    const char* name() const override { return "opencl"; }
    uint64_t pool_alignment() const override { return 64; }

    bool reads_step_inputs() const override { return true; }

    bool supports(const Op& op) const override { return why_unsupported(op, rt_->device).empty(); }

    // Uploads every weight the graph reads, once per (model, device): the buffers live in
    // the model's WeightCache and every session of the model on this device shares them.
    // Also sizes the scratch this session's kernels need.
    void prepare(const Graph& g, WeightCache& cache) override {
        const std::string layout = "opencl:" + rt_->device.name + "|" + rt_->device.driver_version + "|" +
                                   rt_->device.platform;
        auto upload = [&](const TensorRef& w) {
            if (!w.valid() || w.where != TensorRef::Where::Weight || weights_.count(w.data)) return;
            const size_t bytes = static_cast<size_t>(w.row_bytes * static_cast<uint64_t>(w.rows));
            std::shared_ptr<void> obj = cache.get_object(w.data, layout, [&]() -> std::shared_ptr<void> {
                return make_buffer(rt_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, const_cast<void*>(w.data),
                                   "a weight");
            });
            weights_.emplace(w.data, std::move(obj));
            if (variants_) variants_->prepare(w, cache, layout);
        };
        auto extent = [&](const TensorRef& r) {
            if (r.valid() && r.where == TensorRef::Where::Pool) {
                pool_extent_ = std::max(pool_extent_, r.offset + r.row_bytes * static_cast<uint64_t>(r.rows));
            }
        };
        const uint64_t T = static_cast<uint64_t>(g.max_tokens);
        for (const Op& op : g.ops) {
            for (const TensorRef* r : {&op.src0, &op.src1, &op.src2, &op.gate_w, &op.gate_b}) upload(*r);
            for (const TensorRef* r : {&op.dst, &op.src0, &op.src1, &op.src2, &op.mem_m, &op.mem_z, &op.q_nope, &op.slots,
                                       &op.rope_rows, &op.positions, &op.visible, &op.logit_row}) {
                extent(*r);
            }
            if (op.kind == OpKind::SegmentAttention) {
                scores_floats_ = std::max<uint64_t>(scores_floats_, T * op.n_head * (uint64_t(op.n_sink) + op.ring));
            } else if (op.kind == OpKind::MemoryUpdate) {
                fold_floats_ = std::max<uint64_t>(fold_floats_, T * op.n_head_kv * uint64_t(op.head_dim));
            } else if (op.kind == OpKind::MatMul) {
                act_elems_ = std::max<uint64_t>(act_elems_, T * static_cast<uint64_t>(op.src0.cols));
                if (op.output_head) {
                    logits_floats_ = std::max<uint64_t>(logits_floats_, T * static_cast<uint64_t>(op.src0.rows));
                }
            }
        }
    }

    std::unique_ptr<PoolBuffer> wrap_host_pool(uint8_t* host, uint64_t size) override {
        const SignalHandlersGuard keep_handlers;
        return std::make_unique<ClPoolBuffer>(rt_, q_, host, size, pool_kind(rt_->device));
    }

    void compute(const Graph& g, const StepParams& step, PoolBuffer& buffer) override {
        auto* cl_pool = dynamic_cast<ClPoolBuffer*>(&buffer);
        if (!cl_pool || cl_pool->runtime() != rt_.get()) {
            fail(EI_ERR_INVALID_ARGUMENT, "the OpenCL backend computes only on a pool buffer it made (wrap_host_pool)");
        }
        uint8_t* pool = cl_pool->host_view();  // what an observer reads after to_host()
        if (step.n_tokens < 1 || step.n_tokens > g.max_tokens) {
            fail(EI_ERR_INVALID_ARGUMENT, "step of " + std::to_string(step.n_tokens) + " tokens for graph '" + g.name +
                                              "' of at most " + std::to_string(g.max_tokens));
        }
        if (pool_extent_ == 0) fail(EI_ERR_STATE, "OpenCL backend: compute before prepare");
        if (pool_extent_ > cl_pool->size()) {
            fail(EI_ERR_POOL, "OpenCL backend: the pool buffer of " + std::to_string(cl_pool->size()) +
                                  " bytes is smaller than the graphs need (" + std::to_string(pool_extent_) + ")");
        }
        pool_ = cl_pool;
        ensure_scratch();
        bool wants_logits = false;
        try {
            pool_->to_device();
            for (const Op& op : g.ops) {
                if (step.observer) {
                    pool_->to_host();
                    step.observer->before(g, op, step, pool);
                    pool_->to_device();
                }
                run(op, step);
                if (op.output_head && step.all_logits) wants_logits = true;
                if (step.observer) {
                    pool_->to_host();
                    step.observer->after(g, op, step, pool);
                    pool_->to_device();
                }
            }
            pool_->finish_step();  // blocking: every kernel has finished
        } catch (...) {
            try {
                pool_->finish_step();
            } catch (...) {
            }
            throw;
        }
        if (wants_logits) {
            const size_t bytes = sizeof(float) * static_cast<size_t>(step.n_tokens) * static_cast<size_t>(head_rows_);
            rt_->check(cl_.EnqueueReadBuffer(q_, logits_.get(), CL_TRUE, 0, bytes, step.logits_out, 0, nullptr, nullptr),
                       "reading the logits");
        }
    }

private:
    cl_kernel kernel(const std::string& name) {
        cl_int st = CL_SUCCESS;
        cl_kernel k = cl_.CreateKernel(rt_->program, name.c_str(), &st);
        rt_->check(st, ("creating kernel " + name).c_str());
        kernels_.push_back(k);
        return k;
    }

    void ensure_scratch() {
        auto grow = [&](std::shared_ptr<_cl_mem>& buf, uint64_t& have, uint64_t want, const char* what) {
            if (want > have || !buf) {
                buf = make_buffer(rt_, CL_MEM_READ_WRITE, static_cast<size_t>(std::max<uint64_t>(want, 1) * 4), nullptr, what);
                have = want;
            }
        };
        grow(scores_, scores_have_, scores_floats_, "attention scores");
        grow(fold_sk_, fold_have_sk_, fold_floats_, "the fold's keys");
        grow(fold_v_, fold_have_v_, fold_floats_, "the fold's values");
        grow(logits_, logits_have_, logits_floats_, "all-row logits");
        // Quantized activations: K int8 per token (as floats: a quarter of the elements),
        // a scale per 32, sums of 16 (as shorts: an eighth).
        grow(act_q_, act_q_have_, act_elems_ / 4 + 1, "quantized activations");
        grow(act_d_, act_d_have_, act_elems_ / 32 + 1, "activation scales");
        grow(act_s_, act_s_have_, act_elems_ / 32 + 1, "activation block sums");
    }

    cl_mem weight(const TensorRef& w) const {
        if (!w.valid()) return dummy_.get();
        auto it = weights_.find(w.data);
        if (it == weights_.end()) fail(EI_ERR_STATE, "OpenCL backend: a weight was not prepared");
        return static_cast<cl_mem>(it->second.get());
    }

    // Kernel arguments in order; the C++ type picks the OpenCL one (uint64_t ulong, int64_t
    // long, int32_t int, float, cl_mem a buffer, Local a __local array).
    void arg(cl_kernel k, cl_uint i, cl_mem m) { rt_->check(cl_.SetKernelArg(k, i, sizeof m, &m), "setting an argument"); }
    void arg(cl_kernel k, cl_uint i, uint64_t v) { rt_->check(cl_.SetKernelArg(k, i, sizeof v, &v), "setting an argument"); }
    void arg(cl_kernel k, cl_uint i, int64_t v) { rt_->check(cl_.SetKernelArg(k, i, sizeof v, &v), "setting an argument"); }
    void arg(cl_kernel k, cl_uint i, int32_t v) { rt_->check(cl_.SetKernelArg(k, i, sizeof v, &v), "setting an argument"); }
    void arg(cl_kernel k, cl_uint i, float v) { rt_->check(cl_.SetKernelArg(k, i, sizeof v, &v), "setting an argument"); }
    void arg(cl_kernel k, cl_uint i, Local l) { rt_->check(cl_.SetKernelArg(k, i, l.bytes, nullptr), "setting an argument"); }
    template <typename... A>
    void args(cl_kernel k, A... a) {
        cl_uint i = 0;
        (arg(k, i++, a), ...);
    }
    void launch(cl_kernel k, cl_uint dims, const size_t* global, const size_t* local, const char* what) {
        rt_->check(cl_.EnqueueNDRangeKernel(q_, k, dims, nullptr, global, local, 0, nullptr, nullptr), what);
    }

    static int32_t i32(int64_t v) { return static_cast<int32_t>(v); }

    void run(const Op& op, const StepParams& s) {
        cl_mem pool = pool_->mem();
        const int32_t nt = s.n_tokens;
        const size_t ls = ls_;
        switch (op.kind) {
            case OpKind::GetRows: {
                cl_kernel k = get_rows_[type_index(op.src0.type)];
                args(k, weight(op.src0), op.src0.row_bytes, i32(op.src0.cols), i32(op.src0.rows), pool, op.src1.offset,
                     op.dst.offset, op.dst.row_bytes);
                const size_t global[2] = {static_cast<size_t>((op.src0.cols + 31) / 32), static_cast<size_t>(nt)};
                launch(k, 2, global, nullptr, "get_rows");
                break;
            }
            case OpKind::MatMul: mat_mul(op, s); break;
            case OpKind::RmsNorm: {
                args(rms_norm_, pool, op.src0.offset, op.src0.row_bytes, op.dst.offset, op.dst.row_bytes, i32(op.dst.cols),
                     weight(op.src1), op.eps, Local{sizeof(float) * ls});
                const size_t global[1] = {static_cast<size_t>(nt) * ls}, local[1] = {ls};
                launch(rms_norm_, 1, global, local, "rms_norm");
                break;
            }
            case OpKind::Rope: {
                args(rope_, pool, op.src0.offset, op.src0.row_bytes, op.dst.offset, op.dst.row_bytes, op.head_dim,
                     op.n_rot, op.rope_rows.offset, int32_t{op.rope_mode == 1});
                const size_t global[2] = {static_cast<size_t>(op.n_head), static_cast<size_t>(nt)};
                launch(rope_, 2, global, nullptr, "rope");
                break;
            }
            case OpKind::KvStore: {
                args(kv_store_, pool, op.src0.offset, op.src1.offset, op.src0.row_bytes, op.dst.offset, op.src2.offset,
                     op.dst.row_bytes, int32_t{op.dst.type == GgmlType::F16}, op.slots.offset);
                const size_t global[2] = {static_cast<size_t>(op.src0.cols), static_cast<size_t>(nt)};
                launch(kv_store_, 2, global, nullptr, "kv_store");
                break;
            }
            case OpKind::SwiGlu: {
                args(swiglu_, pool, op.dst.offset, op.dst.row_bytes, op.src0.offset, op.src0.row_bytes);
                const size_t global[2] = {static_cast<size_t>(op.dst.cols), static_cast<size_t>(nt)};
                launch(swiglu_, 2, global, nullptr, "swiglu");
                break;
            }
            case OpKind::SegmentAttention: attention(op, s); break;
            case OpKind::MemoryUpdate: fold(op, s); break;
        }
    }

    // MatMul as the CPU computes it. F32 and F16 weights: 16-lane dots, 16 items per row,
    // several short rows per work-group. Quantized weights: the activations quantized to the
    // type the CPU dots them with (Q8_0 or Q8_K), then one item per (row, token) summing
    // blocks in order. BF16: one item per output, a double sum as the CPU's.
    void mat_mul(const Op& op, const StepParams& s) {
        cl_mem pool = pool_->mem();
        const int64_t K = op.src0.cols, N = op.src0.rows;
        const bool last_only = op.output_head && !s.all_logits;
        const bool to_logits = op.output_head && s.all_logits;
        const int32_t rows = last_only ? 1 : s.n_tokens;
        // The head's one row comes from the step's step.logit_row input.
        const uint64_t x_off = op.src1.offset;
        const int64_t sel_off = last_only ? static_cast<int64_t>(op.logit_row.offset) : int64_t{-1};
        if (to_logits) head_rows_ = N;
        cl_mem y = to_logits ? logits_.get() : pool;
        const uint64_t y_off = to_logits ? uint64_t{0} : op.dst.offset;
        const uint64_t y_stride = to_logits ? uint64_t(N) * 4 : op.dst.row_bytes;
        // One row: the device's kernel variant where it has one for this weight type.
        if (rows == 1 && variants_ && variants_->handles(op.src0)) {
            variants_->mat_vec(q_, op.src0, weight(op.src0), pool, x_off, op.src1.row_bytes, sel_off, y, y_off,
                               weight(op.src2), op.src2.valid(), op.accumulate);
            return;
        }
        const GgmlType t = op.src0.type;
        if (t == GgmlType::F32 || t == GgmlType::F16) {
            cl_kernel k = t == GgmlType::F32 ? mat_mul_f32_lane16_ : mat_mul_f16_lane16_;
            const int32_t rpg = static_cast<int32_t>(std::clamp<int64_t>(4096 / K, 1, 16));  // ~4096 MACs a group
            args(k, weight(op.src0), op.src0.row_bytes, i32(K), i32(N), rpg, pool, x_off, op.src1.row_bytes, sel_off, rows, y,
                 y_off, y_stride, weight(op.src2), int32_t{op.src2.valid()}, int32_t{op.accumulate},
                 Local{sizeof(float) * kTokenTile * 16});
            const size_t global[2] = {static_cast<size_t>((N + rpg - 1) / rpg) * 16,
                                      static_cast<size_t>((rows + kTokenTile - 1) / kTokenTile)};
            const size_t local[2] = {16, 1};
            launch(k, 2, global, local, "mat_mul");
            return;
        }
        const bool k_quant = t == GgmlType::Q4_K || t == GgmlType::Q6_K;
        if (t != GgmlType::BF16) {
            if (k_quant) {
                args(quantize_q8_k_, pool, x_off, op.src1.row_bytes, sel_off, i32(K), act_q_.get(), act_d_.get(),
                     act_s_.get());
            } else {
                args(quantize_q8_0_, pool, x_off, op.src1.row_bytes, sel_off, i32(K), act_q_.get(), act_d_.get());
            }
            const size_t g[2] = {static_cast<size_t>(K / (k_quant ? 256 : 32)), static_cast<size_t>(rows)};
            launch(k_quant ? quantize_q8_k_ : quantize_q8_0_, 2, g, nullptr, "quantizing activations");
        }
        cl_kernel k = mat_mul_[type_index(t)];
        args(k, weight(op.src0), op.src0.row_bytes, i32(K), i32(N), act_q_.get(), act_d_.get(), act_s_.get(), pool,
             x_off, op.src1.row_bytes, sel_off, y, y_off, y_stride, weight(op.src2), int32_t{op.src2.valid()},
             int32_t{op.accumulate});
        const size_t global[2] = {static_cast<size_t>(N), static_cast<size_t>(rows)};
        launch(k, 2, global, nullptr, "mat_mul");
    }

    void attention(const Op& op, const StepParams& s) {
        const int32_t D = op.head_dim, H = op.n_head;
        const int64_t sink_shift = sink_shift_of(op, s);
        const size_t ls = ls_;
        const TensorRef& qn = op.q_nope.valid() ? op.q_nope : op.src0;
        // Whether the memory is used and the sink queries rotate comes from step.visible; a
        // step that rotates them needs the step.sink_rope rows, planned where sinks follow.
        if (sink_shift > 0 && !op.rope_rows.valid()) {
            fail(EI_ERR_INTERNAL, "OpenCL backend: the sinks follow the window but the graph has no sink RoPE rows");
        }
        args(attention_, pool_->mem(), op.dst.offset, op.dst.row_bytes, op.src0.offset, op.src0.row_bytes, qn.offset,
             qn.row_bytes, op.src1.offset, op.src2.offset, op.src1.row_bytes, int32_t{op.src1.type == GgmlType::F16}, D,
             H, i32(op.n_head / op.n_head_kv), op.n_sink, op.positions.offset, op.visible.offset, op.slots.offset,
             1.0f / std::sqrt(static_cast<float>(D)), scores_.get(), i32(int64_t{op.n_sink} + op.ring),
             op.mem_m.offset, op.mem_z.offset, op.gate, weight(op.gate_w), weight(op.gate_b),
             int32_t{op.gate_b.valid()}, int32_t{op.memory_rope}, op.rope_rows.valid() ? op.rope_rows.offset : uint64_t{0},
             op.n_rot,
             int32_t{op.rope_mode == 1}, Local{sizeof(float) * ls}, Local{sizeof(float) * D}, Local{sizeof(float) * D},
             Local{sizeof(float) * D}, Local{sizeof(float) * D});
        const size_t global[2] = {static_cast<size_t>(H) * ls, static_cast<size_t>(s.n_tokens)};
        const size_t local[2] = {ls, 1};
        launch(attention_, 2, global, local, "segment_attention");
    }

    // Sinks behind the window (Op::sinks_follow): once tokens fold, a query at qp scores the
    // sink keys with its pre-RoPE query rotated for qp - shift; 0 keeps the plain path.
    static int64_t sink_shift_of(const Op& op, const StepParams& s) {
        return op.sinks_follow && op.n_sink > 0 ? s.ring_start - op.n_sink : 0;
    }

    void fold(const Op& op, const StepParams& s) {
        const int32_t D = op.head_dim, n = s.n_tokens, hkv = op.n_head_kv;
        cl_mem pool = pool_->mem();
        args(fold_prepare_, pool, op.src1.offset, op.src2.offset, op.src1.row_bytes, int32_t{op.src1.type == GgmlType::F16},
             D, op.slots.offset, n, fold_sk_.get(), fold_v_.get(), int32_t{op.memory_rope}, op.n_rot,
             op.memory_rope ? uint64_t{0} : op.rope_rows.offset, int32_t{op.rope_mode == 1});
        const size_t g1[2] = {static_cast<size_t>(n), static_cast<size_t>(hkv)};
        launch(fold_prepare_, 2, g1, nullptr, "fold_prepare");
        if (op.delta_rule) {
            args(fold_delta_, pool, op.mem_m.offset, op.mem_z.offset, D, n, fold_sk_.get(), fold_v_.get());
            const size_t g2[3] = {static_cast<size_t>(D), static_cast<size_t>(n), static_cast<size_t>(hkv)};
            launch(fold_delta_, 3, g2, nullptr, "fold_delta");
        }
        args(fold_update_, pool, op.mem_m.offset, op.mem_z.offset, D, n, fold_sk_.get(), fold_v_.get());
        const size_t g3[3] = {static_cast<size_t>(D), static_cast<size_t>(D), static_cast<size_t>(hkv)};
        launch(fold_update_, 3, g3, nullptr, "fold_update");
    }

    std::shared_ptr<Runtime> rt_;
    const Api& cl_;
    cl_command_queue q_ = nullptr;
    ClPoolBuffer* pool_ = nullptr;  // the buffer of the compute in progress
    std::vector<cl_kernel> kernels_;
    cl_kernel get_rows_[kTypes] = {}, mat_mul_[kTypes] = {};
    cl_kernel mat_mul_f32_lane16_ = nullptr, mat_mul_f16_lane16_ = nullptr;
    cl_kernel quantize_q8_0_ = nullptr, quantize_q8_k_ = nullptr;
    cl_kernel rms_norm_ = nullptr, rope_ = nullptr, kv_store_ = nullptr, swiglu_ = nullptr, attention_ = nullptr;
    cl_kernel fold_prepare_ = nullptr, fold_delta_ = nullptr, fold_update_ = nullptr;
    size_t ls_ = 64;
    std::unordered_map<const void*, std::shared_ptr<void>> weights_;  // weight data -> its device buffer
    uint64_t pool_extent_ = 0;
    uint64_t scores_floats_ = 0, fold_floats_ = 0, logits_floats_ = 0;
    uint64_t scores_have_ = 0, fold_have_sk_ = 0, fold_have_v_ = 0, logits_have_ = 0;
    uint64_t act_elems_ = 0, act_q_have_ = 0, act_d_have_ = 0, act_s_have_ = 0;
    int64_t head_rows_ = 0;
    std::shared_ptr<_cl_mem> scores_, fold_sk_, fold_v_, logits_, dummy_, act_q_, act_d_, act_s_;
    std::unique_ptr<VariantKernels> variants_;
};

}  // namespace

std::string pool_buffer_type(const DeviceInfo& device) {
    try {
        return pool_kind(device) == ClPoolBuffer::Kind::ZeroCopy ? "zero-copy" : "device";
    } catch (const Error&) {
        return "invalid EI_OPENCL_POOL";
    }
}

std::string why_unsupported(const Op& op, const DeviceInfo& device) {
    auto weight = [](const TensorRef& w) {
        return std::string("no OpenCL kernel for ") + type_traits(w.type).name + " weights of " + std::to_string(w.cols) +
               " columns";
    };
    auto vec = [](const TensorRef& r) {
        return std::string("no OpenCL kernel for a ") + type_traits(r.type).name + " norm weight, bias or gate";
    };
    auto cache = [](const TensorRef& r) { return std::string("no OpenCL kernel for a ") + type_traits(r.type).name + " KV cache"; };
    auto rot = [](const Op& o) {
        return o.head_dim >= 1 && o.n_rot >= 0 && o.n_rot <= o.head_dim && o.n_rot % 2 == 0;
    };
    auto geometry = [](const Op& o) {
        return "head size " + std::to_string(o.head_dim) + " rotating " + std::to_string(o.n_rot) +
               " dimensions has no OpenCL kernel";
    };
    // The per-step facts come from the step-input tensors in the pool (step_inputs.h).
    auto rows_ok = [&](const TensorRef& r) {
        return r.where == TensorRef::Where::Pool && r.type == GgmlType::F32 && r.cols >= op.n_rot;
    };
    auto slots_ok = [](const TensorRef& r) { return r.where == TensorRef::Where::Pool && r.type == GgmlType::I32; };
    auto no_input = [](const char* what) { return std::string("the graph gives the kernel no step-input tensor for ") + what; };
    switch (op.kind) {
        case OpKind::GetRows: return weight_ok(op.src0) ? "" : weight(op.src0);
        case OpKind::MatMul:
            if (!weight_ok(op.src0)) return weight(op.src0);
            if (op.output_head && !slots_ok(op.logit_row)) return no_input("the logit row");
            return vector_ok(op.src2) ? "" : vec(op.src2);
        case OpKind::RmsNorm: return vector_ok(op.src1) && op.src1.valid() ? "" : vec(op.src1);
        case OpKind::KvStore:
            if (!slots_ok(op.slots)) return no_input("the KV write slots");
            return op.dst.type == GgmlType::F16 || op.dst.type == GgmlType::F32 ? "" : cache(op.dst);
        case OpKind::SegmentAttention:
        case OpKind::MemoryUpdate: {
            if (op.src1.type != GgmlType::F16 && op.src1.type != GgmlType::F32) return cache(op.src1);
            if (!rot(op)) return geometry(op);
            if (op.kind == OpKind::MemoryUpdate && !slots_ok(op.slots)) return no_input("the folded slots");
            if (op.kind == OpKind::MemoryUpdate && !op.memory_rope && !rows_ok(op.rope_rows)) {
                return no_input("the fold's un-RoPE rows");
            }
            if (op.kind == OpKind::SegmentAttention &&
                (!slots_ok(op.slots) || !slots_ok(op.visible) || op.visible.cols < kVisibleInts ||
                 op.positions.where != TensorRef::Where::Pool || op.positions.type != GgmlType::I64)) {
                return no_input("the positions, slots and visibility");
            }
            if (!vector_ok(op.gate_w)) return vec(op.gate_w);
            if (!vector_ok(op.gate_b)) return vec(op.gate_b);
            // The kernels keep 4 head rows and 64 floats of reduction space in local memory.
            const uint64_t need = 4 * uint64_t(op.head_dim) + 64, have = device.local_mem / 4;
            if (need > have) {
                return "head size " + std::to_string(op.head_dim) + " needs " + std::to_string(need * 4) +
                       " bytes of local memory; " + device.name + " has " + std::to_string(device.local_mem);
            }
            return "";
        }
        case OpKind::Rope:
            if (!rot(op)) return geometry(op);
            return rows_ok(op.rope_rows) ? "" : no_input("the RoPE rows");
        case OpKind::SwiGlu: return "";
    }
    return "unknown op kind";
}

std::unique_ptr<Backend> make_opencl_backend(int device_index, const std::string* cache_dir) {
    return std::make_unique<OpenClBackend>(Runtime::get(device_index, cache_dir));
}

}  // namespace ei::opencl
