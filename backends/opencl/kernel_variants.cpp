// Kernel variants: which one a device gets, building its program (through the program
// cache, as kernels.cl is), and launching its mat-vec. See kernel_variants.h.
#include "opencl/kernel_variants.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "error.h"
#include "ggml_types.h"
#include "opencl/kernels_variants_cl.h"
#include "opencl/program_cache.h"
#include "opencl/signal_guard.h"
#include "weight_cache.h"

namespace ei::opencl {

const char* variant_name(Variant v) {
    switch (v) {
        case Variant::Portable: return "portable";
        case Variant::Fp16: return "fp16";
        case Variant::Subgroups: return "subgroups";
        case Variant::Adreno: return "adreno";
    }
    return "?";
}

const char* variant_source(Variant v) {
    switch (v) {
        case Variant::Portable: return nullptr;
        case Variant::Fp16: return kKernelsFp16Cl;
        case Variant::Subgroups: return kKernelsSubgroupsCl;
        case Variant::Adreno: return kKernelsAdrenoCl;
    }
    return nullptr;
}

namespace {

bool has_images(const DeviceInfo& d, uint64_t* max_texels = nullptr) {
    const Api* cl = api();
    if (!cl || !cl->CreateImage || !d.id) return false;
    cl_bool images = CL_FALSE;
    size_t texels = 0;
    if (cl->GetDeviceInfo(d.id, CL_DEVICE_IMAGE_SUPPORT, sizeof images, &images, nullptr) != CL_SUCCESS || !images) {
        return false;
    }
    if (cl->GetDeviceInfo(d.id, CL_DEVICE_IMAGE_MAX_BUFFER_SIZE, sizeof texels, &texels, nullptr) != CL_SUCCESS) return false;
    if (max_texels) *max_texels = texels;
    return texels > 0;
}

}  // namespace

std::string variant_missing(Variant v, const DeviceInfo& d) {
    switch (v) {
        case Variant::Portable: return "";
        case Variant::Fp16: return d.fp16 ? "" : "no cl_khr_fp16";
        case Variant::Subgroups:
            return d.has_extension("cl_khr_subgroups") || d.has_extension("cl_intel_subgroups")
                       ? ""
                       : "neither cl_khr_subgroups nor cl_intel_subgroups";
        case Variant::Adreno:
            if (!d.qcom) return "no Qualcomm (cl_qcom_*) extensions";
            return has_images(d) ? "" : "no image1d_buffer support";
    }
    return "unknown variant";
}

Variant choose_variant(const DeviceInfo& d, std::string* why) {
    auto say = [&](const std::string& s) {
        if (why) *why = s;
    };
    const char* e = std::getenv("EI_OPENCL_VARIANT");
    if (e && *e && std::strcmp(e, "auto") != 0) {
        for (Variant v : kVariants) {
            if (std::strcmp(e, variant_name(v)) == 0) {
                say("EI_OPENCL_VARIANT");
                return v;
            }
        }
        fail(EI_ERR_INVALID_ARGUMENT,
             std::string("EI_OPENCL_VARIANT=") + e + " names no kernel variant (portable, fp16, subgroups, adreno, auto)");
    }
    for (Variant v : {Variant::Adreno, Variant::Fp16, Variant::Subgroups}) {
        if (variant_missing(v, d).empty()) {
            say(v == Variant::Adreno ? "auto: Qualcomm extensions and images"
                                     : v == Variant::Fp16 ? "auto: the device reports cl_khr_fp16"
                                                          : "auto: the device reports subgroups");
            return v;
        }
    }
    say("auto: no fp16, subgroups or Qualcomm extensions");
    return Variant::Portable;
}

Variant choose_variant_or_portable(const DeviceInfo& d) {
    try {
        return choose_variant(d);
    } catch (const Error&) {
        return Variant::Portable;
    }
}

std::string variant_description(const DeviceInfo& d) {
    try {
        std::string why;
        const Variant v = choose_variant(d, &why);
        return std::string(variant_name(v)) + " (" + why + ")";
    } catch (const Error& err) {
        return std::string("invalid: ") + err.what();
    }
}

cl_program build_variant_program(const Runtime& rt, Variant v, std::string* log) {
    const char* src = variant_source(v);
    if (!src) {
        if (log) *log = "the portable kernels are the runtime's own program";
        return nullptr;
    }
    const SignalHandlersGuard keep_handlers;
    const Api& cl = *rt.cl;
    const DeviceInfo& d = rt.device;
    // The device's own OpenCL C version when it is 2.0 or later (drivers declare the subgroup
    // builtins of cl_khr_subgroups there), else 1.2.
    std::string options = "-cl-std=CL1.2";
    const std::string& cv = d.opencl_c_version;  // "OpenCL C 3.0 ..."
    if (cv.rfind("OpenCL C ", 0) == 0 && cv.size() >= 12 && cv[9] >= '2' && cv[9] <= '9' && cv[10] == '.') {
        options = "-cl-std=CL" + cv.substr(9, 3);
    }
    const std::string source = src;
    const std::string key = make_cache_key(d.name, d.vendor, d.driver_version, d.platform_version,
                                           options + " variant=" + variant_name(v), source);
    // The folder the runtime's own program is cached in (none when it has no cache entry).
    const std::string dir = rt.cache_path.empty() ? std::string() : rt.cache_path.substr(0, rt.cache_path.rfind('/'));
    cl_int st = CL_SUCCESS;
    if (auto bin = load_cached_binary(dir, key)) {
        const unsigned char* ptr = bin->data();
        const size_t size = bin->size();
        cl_int bin_status = CL_SUCCESS;
        cl_program p = cl.CreateProgramWithBinary(rt.context, 1, &d.id, &size, &ptr, &bin_status, &st);
        if (p && st == CL_SUCCESS && bin_status == CL_SUCCESS &&
            cl.BuildProgram(p, 1, &d.id, options.c_str(), nullptr, nullptr) == CL_SUCCESS) {
            return p;
        }
        if (p) cl.ReleaseProgram(p);
    }
    const char* text = source.c_str();
    const size_t len = source.size();
    cl_program p = cl.CreateProgramWithSource(rt.context, 1, &text, &len, &st);
    if (!p || st != CL_SUCCESS) {
        if (log) *log = "cannot create the program: " + status_name(st);
        return nullptr;
    }
    st = cl.BuildProgram(p, 1, &d.id, options.c_str(), nullptr, nullptr);
    if (st != CL_SUCCESS) {
        if (log) {
            size_t n = 0;
            std::string text_log;
            if (cl.GetProgramBuildInfo(p, d.id, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) == CL_SUCCESS && n > 0) {
                text_log.resize(n);
                cl.GetProgramBuildInfo(p, d.id, CL_PROGRAM_BUILD_LOG, n, text_log.data(), nullptr);
                while (!text_log.empty() && (text_log.back() == '\0' || text_log.back() == '\n')) text_log.pop_back();
            }
            *log = status_name(st) + (text_log.empty() ? std::string() : ": " + text_log);
        }
        cl.ReleaseProgram(p);
        return nullptr;
    }
    size_t size = 0;
    if (cl.GetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr) == CL_SUCCESS && size > 0) {
        std::vector<uint8_t> bin(size);
        unsigned char* ptr = bin.data();
        if (cl.GetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr) == CL_SUCCESS) {
            store_cached_binary(dir, key, bin);
        }
    }
    return p;
}

namespace {

// One program per (runtime, variant), built on first use and shared by the runtime's backends.
std::shared_ptr<_cl_program> shared_program(const std::shared_ptr<Runtime>& rt, Variant v, std::string* log) {
    struct Entry {
        std::weak_ptr<Runtime> rt;
        std::shared_ptr<_cl_program> program;
    };
    static std::mutex mu;
    static std::map<std::pair<const Runtime*, Variant>, Entry> made;
    std::lock_guard<std::mutex> lock(mu);
    Entry& e = made[{rt.get(), v}];
    if (e.program && e.rt.lock() == rt) return e.program;
    cl_program p = build_variant_program(*rt, v, log);
    if (!p) return nullptr;
    const Api* cl = rt->cl;
    e.rt = rt;
    e.program = std::shared_ptr<_cl_program>(p, [cl](cl_program q) { cl->ReleaseProgram(q); });
    return e.program;
}

std::shared_ptr<_cl_mem> buffer(const Runtime& rt, size_t bytes, void* host, const char* what) {
    cl_int st = CL_SUCCESS;
    cl_mem m = rt.cl->CreateBuffer(rt.context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, std::max<size_t>(bytes, 4), host,
                                   &st);
    if (!m || st != CL_SUCCESS) {
        fail(st == -4 || st == -6 ? EI_ERR_OUT_OF_MEMORY : EI_ERR_INTERNAL,
             std::string("OpenCL: cannot allocate ") + std::to_string(bytes) + " bytes for " + what + " on " +
                 rt.device.name + ": " + status_name(st));
    }
    const Api* cl = rt.cl;
    return std::shared_ptr<_cl_mem>(m, [cl](cl_mem p) { cl->ReleaseMemObject(p); });
}

}  // namespace

// Q4_0 split for the Adreno kernel: quants (16 bytes a block, one RGBA uint32 texel) as an
// image1d_buffer over their buffer, scales (a half a block) as a buffer.
struct VariantKernels::Split {
    std::shared_ptr<_cl_mem> quants, scales, image;
};

VariantKernels::VariantKernels(std::shared_ptr<Runtime> rt, Variant v) : rt_(std::move(rt)), variant_(v) {
    if (v == Variant::Portable) fail(EI_ERR_INVALID_ARGUMENT, "the portable kernels are not a variant program");
    std::string log;
    program_ = shared_program(rt_, v, &log);
    if (!program_) {
        fail(EI_ERR_UNSUPPORTED, std::string("OpenCL: the ") + variant_name(v) + " kernel variant does not build on " +
                                     rt_->device.name + ": " + log);
    }
    const SignalHandlersGuard keep_handlers;
    auto make = [&](const char* name) -> cl_kernel {
        cl_int st = CL_SUCCESS;
        cl_kernel k = rt_->cl->CreateKernel(program_.get(), name, &st);
        return st == CL_SUCCESS ? k : nullptr;  // a variant has only some of the kernels
    };
    if (v == Variant::Adreno) {
        q4_0_split_ = make("mat_vec_q4_0_split");
        has_images(rt_->device, &max_texels_);
    } else {
        f16_ = make("mat_vec_f16");
        q8_0_ = make("mat_vec_q8_0");
        q4_0_ = make("mat_vec_q4_0");
    }
    // One work-group of ls_ items per row: 64 (Adreno's "half" subgroup), less where a
    // kernel allows fewer.
    for (cl_kernel k : {f16_, q8_0_, q4_0_, q4_0_split_}) {
        size_t wg = 0;
        if (k && rt_->cl->GetKernelWorkGroupInfo(k, rt_->device.id, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr) ==
                     CL_SUCCESS && wg > 0) {
            while (ls_ > wg) ls_ /= 2;
        }
    }
}

VariantKernels::~VariantKernels() {
    for (cl_kernel k : {f16_, q8_0_, q4_0_, q4_0_split_}) {
        if (k) rt_->cl->ReleaseKernel(k);
    }
}

std::unique_ptr<VariantKernels> VariantKernels::for_runtime(const std::shared_ptr<Runtime>& rt) {
    const bool forced = std::getenv("EI_OPENCL_VARIANT") && *std::getenv("EI_OPENCL_VARIANT");
    const Variant v = choose_variant(rt->device);
    if (v == Variant::Portable) return nullptr;
    // Asked for by name: built whatever the device reports (a compiler refusal is an error).
    if (forced) return std::make_unique<VariantKernels>(rt, v);
    try {
        return std::make_unique<VariantKernels>(rt, v);
    } catch (const Error&) {
        return nullptr;  // chosen automatically and refused by the compiler: the portable kernels
    }
}

bool VariantKernels::handles(const TensorRef& w) const {
    if (w.type != GgmlType::F16 && w.cols % 32 != 0) return false;  // F16 rows may end anywhere
    switch (w.type) {
        case GgmlType::F16: return f16_ != nullptr;
        case GgmlType::Q8_0: return q8_0_ != nullptr;
        case GgmlType::Q4_0:
            if (q4_0_) return true;
            return q4_0_split_ && uint64_t(w.rows) * uint64_t(w.cols / 32) <= max_texels_;
        default: return false;
    }
}

void VariantKernels::prepare(const TensorRef& w, WeightCache& cache, const std::string& layout) {
    if (!q4_0_split_ || w.type != GgmlType::Q4_0 || !handles(w) || splits_.count(w.data)) return;
    std::shared_ptr<void> obj = cache.get_object(w.data, layout + "|q4_0 split", [&]() -> std::shared_ptr<void> {
        const uint64_t blocks = uint64_t(w.rows) * uint64_t(w.cols / 32);
        std::vector<uint8_t> quants(blocks * 16);
        std::vector<uint16_t> scales(blocks);
        const uint8_t* src = static_cast<const uint8_t*>(w.data);
        for (int64_t r = 0; r < w.rows; ++r) {
            const uint8_t* row = src + uint64_t(r) * w.row_bytes;
            for (int64_t b = 0; b < w.cols / 32; ++b) {
                const uint64_t i = uint64_t(r) * uint64_t(w.cols / 32) + uint64_t(b);
                std::memcpy(&scales[i], row + b * 18, 2);
                std::memcpy(&quants[i * 16], row + b * 18 + 2, 16);
            }
        }
        auto s = std::make_shared<Split>();
        s->quants = buffer(*rt_, quants.size(), quants.data(), "Q4_0 quants");
        s->scales = buffer(*rt_, scales.size() * 2, scales.data(), "Q4_0 scales");
        const cl_image_format fmt{CL_RGBA, CL_UNSIGNED_INT32};
        cl_image_desc desc{};
        desc.image_type = CL_MEM_OBJECT_IMAGE1D_BUFFER;
        desc.image_width = static_cast<size_t>(blocks);
        desc.buffer = s->quants.get();
        cl_int st = CL_SUCCESS;
        cl_mem img = rt_->cl->CreateImage(rt_->context, CL_MEM_READ_ONLY, &fmt, &desc, nullptr, &st);
        if (!img || st != CL_SUCCESS) {
            fail(EI_ERR_INTERNAL, "OpenCL: cannot make an image1d_buffer of " + std::to_string(blocks) +
                                      " texels for Q4_0 quants on " + rt_->device.name + ": " + status_name(st));
        }
        const Api* cl = rt_->cl;
        s->image = std::shared_ptr<_cl_mem>(img, [cl](cl_mem p) { cl->ReleaseMemObject(p); });
        return s;
    });
    splits_.emplace(w.data, std::move(obj));
}

void VariantKernels::mat_vec(cl_command_queue q, const TensorRef& w, cl_mem w_buf, cl_mem xbuf, uint64_t x_off,
                             uint64_t x_stride, int64_t sel_off, cl_mem ybuf, uint64_t y_off, cl_mem bias, bool has_bias,
                             bool accumulate) {
    if (!handles(w)) fail(EI_ERR_STATE, "OpenCL: no kernel variant for this weight");
    const Api& cl = *rt_->cl;
    const int32_t K = static_cast<int32_t>(w.cols), N = static_cast<int32_t>(w.rows);
    const int32_t hb = has_bias, acc = accumulate;
    cl_kernel k = nullptr;
    cl_uint i = 0;
    auto set = [&](size_t size, const void* v) { rt_->check(cl.SetKernelArg(k, i++, size, v), "setting an argument"); };
    if (w.type == GgmlType::Q4_0 && !q4_0_) {
        auto it = splits_.find(w.data);
        if (it == splits_.end()) fail(EI_ERR_STATE, "OpenCL: a Q4_0 weight was not split for the Adreno kernel");
        const Split& s = *static_cast<const Split*>(it->second.get());
        k = q4_0_split_;
        cl_mem img = s.image.get(), sc = s.scales.get();
        set(sizeof img, &img);
        set(sizeof sc, &sc);
    } else {
        k = w.type == GgmlType::F16 ? f16_ : w.type == GgmlType::Q8_0 ? q8_0_ : q4_0_;
        const uint64_t rb = w.row_bytes;
        set(sizeof w_buf, &w_buf);
        set(sizeof rb, &rb);
    }
    set(sizeof K, &K);
    set(sizeof N, &N);
    set(sizeof xbuf, &xbuf);
    set(sizeof x_off, &x_off);
    set(sizeof x_stride, &x_stride);
    set(sizeof sel_off, &sel_off);
    set(sizeof ybuf, &ybuf);
    set(sizeof y_off, &y_off);
    set(sizeof bias, &bias);
    set(sizeof hb, &hb);
    set(sizeof acc, &acc);
    set(sizeof(float) * ls_, nullptr);
    const size_t global[1] = {static_cast<size_t>(N) * ls_}, local[1] = {ls_};
    rt_->check(cl.EnqueueNDRangeKernel(q, k, 1, nullptr, global, local, 0, nullptr, nullptr), "a variant mat-vec");
}

}  // namespace ei::opencl
