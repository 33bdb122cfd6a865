#include "opencl/opencl_device.h"

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>

#include "error.h"
#include "opencl/kernel_variants.h"
#include "opencl/kernels_cl.h"
#include "opencl/program_cache.h"
#include "opencl/signal_guard.h"

namespace ei::opencl {

namespace {

std::string platform_string(const Api& cl, cl_platform_id p, cl_platform_info what) {
    size_t n = 0;
    if (cl.GetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
    std::string s(n, '\0');
    if (cl.GetPlatformInfo(p, what, n, s.data(), nullptr) != CL_SUCCESS) return {};
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
}

std::string device_string(const Api& cl, cl_device_id d, cl_device_info what) {
    size_t n = 0;
    if (cl.GetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
    std::string s(n, '\0');
    if (cl.GetDeviceInfo(d, what, n, s.data(), nullptr) != CL_SUCCESS) return {};
    while (!s.empty() && s.back() == '\0') s.pop_back();
    return s;
}

template <typename T>
T device_value(const Api& cl, cl_device_id d, cl_device_info what) {
    T v{};
    if (cl.GetDeviceInfo(d, what, sizeof v, &v, nullptr) != CL_SUCCESS) return T{};
    return v;
}

}  // namespace

bool DeviceInfo::has_extension(const std::string& ext) const {
    size_t pos = 0;
    while ((pos = extensions.find(ext, pos)) != std::string::npos) {
        const size_t end = pos + ext.size();
        if ((pos == 0 || extensions[pos - 1] == ' ') && (end == extensions.size() || extensions[end] == ' ')) return true;
        pos = end;
    }
    return false;
}

std::string DeviceInfo::summary() const {
    std::string caps;
    auto add = [&](bool on, const char* what) {
        if (on) caps += std::string(caps.empty() ? "" : ", ") + what;
    };
    add(fp16, "fp16");
    add(subgroups, "subgroups");
    add(qcom, "qcom");
    add(unified_memory, "unified memory");
    return "#" + std::to_string(index) + " " + name + " (" + type + ", " + vendor + ", " + platform + ", driver " +
           driver_version + ", " + opencl_c_version + ", " + std::to_string(global_mem >> 20) + " MiB, " +
           std::to_string(compute_units) + " compute units" + (caps.empty() ? "" : ", " + caps) +
           ", kernels " + variant_description(*this) + ")";
}

std::vector<DeviceInfo> list_devices(std::string* why) {
    const SignalHandlersGuard keep_handlers;
    std::vector<DeviceInfo> out;
    auto say = [&](const std::string& s) {
        if (why) *why = s;
    };
    const Api* cl = api();
    if (!cl) {
        say(api_error());
        return out;
    }
    cl_uint n_platforms = 0;
    cl_int st = cl->GetPlatformIDs(0, nullptr, &n_platforms);
    if (st != CL_SUCCESS || n_platforms == 0) {
        say("no OpenCL platform (" + api_path() + " loaded; clGetPlatformIDs: " +
            (st != CL_SUCCESS ? status_name(st) : std::string("0 platforms")) +
            "; an ICD such as pocl-opencl-icd or a GPU driver provides one)");
        return out;
    }
    std::vector<cl_platform_id> platforms(n_platforms);
    cl->GetPlatformIDs(n_platforms, platforms.data(), nullptr);
    for (cl_platform_id p : platforms) {
        cl_uint n_dev = 0;
        if (cl->GetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &n_dev) != CL_SUCCESS || n_dev == 0) continue;
        std::vector<cl_device_id> devs(n_dev);
        if (cl->GetDeviceIDs(p, CL_DEVICE_TYPE_ALL, n_dev, devs.data(), nullptr) != CL_SUCCESS) continue;
        for (cl_device_id d : devs) {
            DeviceInfo i;
            i.index = static_cast<int>(out.size());
            i.platform_id = p;
            i.id = d;
            i.platform = platform_string(*cl, p, CL_PLATFORM_NAME);
            i.platform_version = platform_string(*cl, p, CL_PLATFORM_VERSION);
            i.name = device_string(*cl, d, CL_DEVICE_NAME);
            i.vendor = device_string(*cl, d, CL_DEVICE_VENDOR);
            i.driver_version = device_string(*cl, d, CL_DRIVER_VERSION);
            i.device_version = device_string(*cl, d, CL_DEVICE_VERSION);
            i.opencl_c_version = device_string(*cl, d, CL_DEVICE_OPENCL_C_VERSION);
            i.extensions = device_string(*cl, d, CL_DEVICE_EXTENSIONS);
            const cl_device_type t = device_value<cl_device_type>(*cl, d, CL_DEVICE_TYPE);
            i.type = (t & CL_DEVICE_TYPE_GPU) ? "gpu" : (t & CL_DEVICE_TYPE_CPU) ? "cpu"
                     : (t & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator" : "other";
            i.global_mem = device_value<cl_ulong>(*cl, d, CL_DEVICE_GLOBAL_MEM_SIZE);
            i.max_alloc = device_value<cl_ulong>(*cl, d, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
            i.local_mem = device_value<cl_ulong>(*cl, d, CL_DEVICE_LOCAL_MEM_SIZE);
            i.compute_units = device_value<cl_uint>(*cl, d, CL_DEVICE_MAX_COMPUTE_UNITS);
            i.max_work_group = device_value<size_t>(*cl, d, CL_DEVICE_MAX_WORK_GROUP_SIZE);
            i.unified_memory = device_value<cl_bool>(*cl, d, CL_DEVICE_HOST_UNIFIED_MEMORY) != 0;
            i.fp16 = i.has_extension("cl_khr_fp16");
            i.subgroups = i.has_extension("cl_khr_subgroups") || i.has_extension("cl_intel_subgroups") ||
                          i.has_extension("cl_qcom_reqd_sub_group_size");
            i.qcom = i.extensions.find("cl_qcom_") != std::string::npos;
            out.push_back(std::move(i));
        }
    }
    if (out.empty()) say("OpenCL platforms were found but no device (" + api_path() + ")");
    return out;
}

Runtime::~Runtime() {
    if (program) cl->ReleaseProgram(program);
    if (context) cl->ReleaseContext(context);
}

void Runtime::check(cl_int status, const char* what) const {
    if (status != CL_SUCCESS) {
        fail(EI_ERR_INTERNAL, std::string("OpenCL: ") + what + " failed on " + device.name + ": " + status_name(status));
    }
}

namespace {

std::string build_log(const Api& cl, cl_program p, cl_device_id d) {
    size_t n = 0;
    if (cl.GetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
    std::string s(n, '\0');
    cl.GetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, n, s.data(), nullptr);
    while (!s.empty() && s.back() == '\0') s.pop_back();
    if (s.size() > 4000) s = s.substr(0, 4000) + "...";
    return s;
}

// The binary of a built program for its one device ({} when the driver gives none).
std::vector<uint8_t> program_binary(const Api& cl, cl_program p) {
    size_t size = 0;
    if (cl.GetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr) != CL_SUCCESS || size == 0) return {};
    std::vector<uint8_t> bin(size);
    unsigned char* ptr = bin.data();
    if (cl.GetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr) != CL_SUCCESS) return {};
    return bin;
}

}  // namespace

std::shared_ptr<Runtime> Runtime::create(const DeviceInfo& device, const std::string& extra_options,
                                         const std::string* chosen_cache_dir) {
    const SignalHandlersGuard keep_handlers;
    auto rt = std::make_shared<Runtime>();
    rt->cl = api();
    if (!rt->cl) fail(EI_ERR_UNSUPPORTED, "OpenCL backend: " + api_error());
    const Api& cl = *rt->cl;
    rt->device = device;
    cl_int st = CL_SUCCESS;
    const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(device.platform_id), 0};
    rt->context = cl.CreateContext(props, 1, &device.id, nullptr, nullptr, &st);
    if (!rt->context || st != CL_SUCCESS) {
        fail(EI_ERR_UNSUPPORTED, "OpenCL backend: cannot create a context on " + device.summary() + ": " + status_name(st));
    }
    // -cl-fp32-correctly-rounded-divide-sqrt keeps 1/x and sqrt as exact as the CPU's.
    rt->build_options = "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt" +
                        (extra_options.empty() ? std::string() : " " + extra_options);
    const std::string& src = kernel_source();
    const std::string key = make_cache_key(device.name, device.vendor, device.driver_version, device.platform_version,
                                           rt->build_options, src);
    const std::string dir = cache_dir(chosen_cache_dir);
    const auto t0 = std::chrono::steady_clock::now();
    // A cached binary first; any mismatch, load or build failure falls back to the source.
    if (auto bin = load_cached_binary(dir, key)) {
        const unsigned char* ptr = bin->data();
        const size_t size = bin->size();
        cl_int bin_status = CL_SUCCESS;
        cl_program p = cl.CreateProgramWithBinary(rt->context, 1, &device.id, &size, &ptr, &bin_status, &st);
        if (p && st == CL_SUCCESS && bin_status == CL_SUCCESS &&
            cl.BuildProgram(p, 1, &device.id, rt->build_options.c_str(), nullptr, nullptr) == CL_SUCCESS) {
            rt->program = p;
            rt->program_from_cache = true;
            rt->cache_path = cache_file(dir, key);
        } else if (p) {
            cl.ReleaseProgram(p);
        }
    }
    if (!rt->program) {
        const char* text = src.c_str();
        const size_t len = src.size();
        cl_program p = cl.CreateProgramWithSource(rt->context, 1, &text, &len, &st);
        if (!p || st != CL_SUCCESS) fail(EI_ERR_UNSUPPORTED, "OpenCL backend: cannot create the program: " + status_name(st));
        st = cl.BuildProgram(p, 1, &device.id, rt->build_options.c_str(), nullptr, nullptr);
        if (st != CL_SUCCESS) {
            const std::string log = build_log(cl, p, device.id);
            cl.ReleaseProgram(p);
            fail(EI_ERR_UNSUPPORTED, "OpenCL backend: the kernels do not build on " + device.name + " (" +
                                         status_name(st) + "):\n" + log);
        }
        rt->program = p;
        if (store_cached_binary(dir, key, program_binary(cl, p))) rt->cache_path = cache_file(dir, key);
    }
    rt->build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rt;
}

const std::vector<DeviceInfo>& present_devices(std::string* why) {
    static std::string reason;
    static const std::vector<DeviceInfo> devices = list_devices(&reason);  // thread-safe static init
    if (why) *why = reason;
    return devices;
}

int default_device_index(const std::vector<DeviceInfo>& devices) {
    if (devices.empty()) fail(EI_ERR_UNSUPPORTED, "no OpenCL device");
    if (const char* e = std::getenv("EI_OPENCL_DEVICE"); e && *e) {
        char* end = nullptr;
        const long i = std::strtol(e, &end, 10);
        if (*end != '\0' || i < 0 || i >= static_cast<long>(devices.size())) {
            fail(EI_ERR_INVALID_ARGUMENT, std::string("EI_OPENCL_DEVICE=") + e + " names no device (there are " +
                                              std::to_string(devices.size()) + ")");
        }
        return static_cast<int>(i);
    }
    for (const char* type : {"gpu", "accelerator"}) {
        for (const DeviceInfo& d : devices) {
            if (d.type == type) return d.index;
        }
    }
    return devices.front().index;
}

std::shared_ptr<Runtime> Runtime::get(int index, const std::string* cache_dir) {
    static std::mutex mu;
    static std::map<int, std::shared_ptr<Runtime>> made;  // by device index
    std::lock_guard<std::mutex> lock(mu);
    std::string why;
    const std::vector<DeviceInfo>& devices = present_devices(&why);
    if (devices.empty()) fail(EI_ERR_UNSUPPORTED, "device 'opencl': " + (why.empty() ? std::string("no OpenCL device") : why));
    if (index < 0) index = default_device_index(devices);
    if (index >= static_cast<int>(devices.size())) {
        fail(EI_ERR_UNSUPPORTED, "device 'opencl:" + std::to_string(index) + "' is not present (there are " +
                                     std::to_string(devices.size()) + " OpenCL devices)");
    }
    std::shared_ptr<Runtime>& rt = made[index];
    if (!rt) rt = create(devices[static_cast<size_t>(index)], "", cache_dir);
    return rt;
}

const std::string& kernel_source() {
    static const std::string s = kKernelsCl;
    return s;
}

}  // namespace ei::opencl
