// Kernel variants of the OpenCL backend: the decode mat-vec (one token) for F16, Q8_0 and
// Q4_0 weights, in kernels written for what a device reports, each its own program beside
// the portable kernels.cl (which stay the reference and the default where a device reports
// none of these):
//   fp16       kernels_fp16.cl       cl_khr_fp16: half loads and half dequantization
//   subgroups  kernels_subgroups.cl  cl_khr_subgroups / cl_intel_subgroups: sub_group_reduce_add
//   adreno     kernels_adreno.cl     Qualcomm (cl_qcom_*): Q4_0 split at upload into quants read
//                                    through an image1d_buffer_t and a scale array
// Chosen per device (choose_variant); EI_OPENCL_VARIANT=portable|fp16|subgroups|adreno|auto
// overrides the choice (tests, users). A variant is within the MatMul bound of the CPU
// (nMSE 5e-4), not bit-identical: so devices that report none of these (PoCL) keep the
// portable kernels' bits.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "graph.h"
#include "opencl/opencl_device.h"

namespace ei {
class WeightCache;
}

namespace ei::opencl {

enum class Variant { Portable, Fp16, Subgroups, Adreno };
constexpr Variant kVariants[] = {Variant::Portable, Variant::Fp16, Variant::Subgroups, Variant::Adreno};

const char* variant_name(Variant v);
// The variant's OpenCL C source (nullptr for Portable: that is kernels.cl).
const char* variant_source(Variant v);
// What the device lacks that the variant needs ("" when it reports all of it).
std::string variant_missing(Variant v, const DeviceInfo& d);
// The variant for a device: EI_OPENCL_VARIANT when set ("auto" or unset: adreno on Qualcomm
// devices with images, else fp16, else subgroups, else portable). *why says how it was chosen.
// Throws EI_ERR_INVALID_ARGUMENT for an unknown EI_OPENCL_VARIANT.
Variant choose_variant(const DeviceInfo& d, std::string* why = nullptr);
// choose_variant without the throw (listings): Portable for an unknown EI_OPENCL_VARIANT, which
// then fails where a backend is made.
Variant choose_variant_or_portable(const DeviceInfo& d);

// Builds a variant's program on rt's device (from the program cache when it holds it).
// nullptr and *log set (the compiler's words) when the device's compiler refuses it.
cl_program build_variant_program(const Runtime& rt, Variant v, std::string* log);

// A variant's kernels for one backend (kernels hold arguments, so each backend has its own;
// the program is built once per runtime and shared), and its weight layouts (the Adreno split)
// kept in the model's WeightCache.
class VariantKernels {
public:
    // The variant choose_variant picks for rt's device; nullptr for Portable. A variant the
    // device's compiler refuses throws EI_ERR_UNSUPPORTED with the log when EI_OPENCL_VARIANT
    // asked for it, and gives nullptr (portable) when it was chosen automatically.
    static std::unique_ptr<VariantKernels> for_runtime(const std::shared_ptr<Runtime>& rt);
    // Variant v on rt (tests): throws EI_ERR_UNSUPPORTED with the compiler's log on failure.
    VariantKernels(std::shared_ptr<Runtime> rt, Variant v);
    ~VariantKernels();
    VariantKernels(const VariantKernels&) = delete;
    VariantKernels& operator=(const VariantKernels&) = delete;

    Variant variant() const { return variant_; }
    // Whether a one-token MatMul with this weight runs here (else: the portable kernel).
    bool handles(const TensorRef& w) const;
    // Makes the variant's own layout of w (the Adreno split of Q4_0) once per (model, device)
    // in cache, for the backend's prepare.
    void prepare(const TensorRef& w, WeightCache& cache, const std::string& layout);
    // Enqueues y[0..N) (=|+=) W x + bias for one token; w_buf is w's upload in GGUF layout.
    // x is the row at x_off, or, when sel_off >= 0, row i of the rows of x_stride bytes from
    // x_off, i the int32 at xbuf + sel_off (the output head's step.logit_row).
    void mat_vec(cl_command_queue q, const TensorRef& w, cl_mem w_buf, cl_mem xbuf, uint64_t x_off, uint64_t x_stride,
                 int64_t sel_off, cl_mem ybuf, uint64_t y_off, cl_mem bias, bool has_bias, bool accumulate);

private:
    struct Split;
    std::shared_ptr<Runtime> rt_;
    Variant variant_;
    std::shared_ptr<_cl_program> program_;
    cl_kernel f16_ = nullptr, q8_0_ = nullptr, q4_0_ = nullptr, q4_0_split_ = nullptr;
    size_t ls_ = 64;
    uint64_t max_texels_ = 0;  // CL_DEVICE_IMAGE_MAX_BUFFER_SIZE (0: no images)
    std::map<const void*, std::shared_ptr<void>> splits_;  // weight data -> its Split (Adreno)
};

// "fp16 (auto: the device reports cl_khr_fp16)", for the runtime's description and `ei devices`.
std::string variant_description(const DeviceInfo& d);

}  // namespace ei::opencl
