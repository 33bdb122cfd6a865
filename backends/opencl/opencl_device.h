// OpenCL devices: discovery with capabilities (for the backend registry and listings) and
// the per-process runtime of the chosen device (context, compiled program) that every
// session and every model's device weights share.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "opencl/cl_api.h"

namespace ei::opencl {

struct DeviceInfo {
    int index = 0;                // position in list_devices(): what EI_OPENCL_DEVICE names
    std::string platform;         // platform name
    std::string platform_version;
    std::string name, vendor, driver_version, device_version, opencl_c_version, extensions;
    std::string type;             // "gpu", "cpu", "accelerator" or "other"
    uint64_t global_mem = 0, max_alloc = 0, local_mem = 0;
    uint32_t compute_units = 0;
    uint64_t max_work_group = 0;
    bool unified_memory = false;  // host and device share memory (CL_DEVICE_HOST_UNIFIED_MEMORY)
    bool fp16 = false;            // cl_khr_fp16
    bool subgroups = false;       // cl_khr_subgroups or cl_intel_subgroups or cl_qcom_reqd_sub_group_size
    bool qcom = false;            // Qualcomm extensions (cl_qcom_*): Adreno
    cl_platform_id platform_id = nullptr;
    cl_device_id id = nullptr;

    bool has_extension(const std::string& ext) const;
    std::string summary() const;  // one line: name, vendor, driver, memory, capabilities
};

// Every device of every OpenCL platform, in platform then device order. Empty when the
// library, a platform or a device is missing; *why then says which (for error messages).
// This is the function a backend registry calls to list what is present; it never throws.
std::vector<DeviceInfo> list_devices(std::string* why = nullptr);

// list_devices() of the first call, kept for the process: the indices "opencl:N" and
// Runtime::get use stay stable.
const std::vector<DeviceInfo>& present_devices(std::string* why = nullptr);

// The device "opencl" names: EI_OPENCL_DEVICE=<index> if set, else the first GPU, else the
// first accelerator, else the first device. Throws EI_ERR_INVALID_ARGUMENT for an
// EI_OPENCL_DEVICE that names no device, EI_ERR_UNSUPPORTED when devices is empty.
int default_device_index(const std::vector<DeviceInfo>& devices);

// A device's context and compiled program, shared by every backend on that device.
struct Runtime {
    const Api* cl = nullptr;
    DeviceInfo device;
    cl_context context = nullptr;
    cl_program program = nullptr;
    std::string build_options;
    double build_seconds = 0;   // compile (or cache load) time of the program
    bool program_from_cache = false;
    std::string cache_path;     // the cache entry used or written ("" when no disk cache)

    ~Runtime();
    // The process's runtime of device index of list_devices() (-1: default_device_index),
    // made on first use with the program cache in cache_dir (nullptr: from the environment,
    // see opencl::cache_dir); throws ei::Error(EI_ERR_UNSUPPORTED) naming why there is none
    // (no library, no platform, no device, a build failure).
    static std::shared_ptr<Runtime> get(int index = -1, const std::string* cache_dir = nullptr);
    // A fresh runtime for a device (tests: the cache's second load, variant builds).
    static std::shared_ptr<Runtime> create(const DeviceInfo& device, const std::string& extra_options = "",
                                           const std::string* cache_dir = nullptr);
    // Throws ei::Error(EI_ERR_INTERNAL) naming what failed when status is not CL_SUCCESS.
    void check(cl_int status, const char* what) const;
};

// The kernels' OpenCL C source (kernels.cl, embedded at build time).
const std::string& kernel_source();

}  // namespace ei::opencl
