// Opens the OpenCL ICD loader (or a vendor's libOpenCL) at run time and resolves the
// entry points of cl_api.h. Nothing links against libOpenCL, so the runtime starts on
// machines without it and reports the reason only when an OpenCL backend is asked for.
#include <dlfcn.h>

#include <mutex>

#include "opencl/cl_api.h"

namespace ei::opencl {

namespace {

struct Loaded {
    Api api{};
    bool ok = false;
    std::string error, path;
};

// Desktop Linux finds the ICD loader on the default search path; Android apps cannot
// name the vendor's library by soname alone, it sits in these folders.
constexpr const char* kCandidates[] = {
    "libOpenCL.so",
    "libOpenCL.so.1",
    "/vendor/lib64/libOpenCL.so",
    "/system/vendor/lib64/libOpenCL.so",
    "/system/lib64/libOpenCL.so",
    "/vendor/lib64/egl/libGLES_mali.so",  // Mali drivers export OpenCL from the GLES library
};

template <typename F>
bool resolve(void* lib, const char* name, F& fn, std::string& missing) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
    return fn != nullptr;
}

Loaded load() {
    Loaded l;
    std::string tried;
    void* lib = nullptr;
    for (const char* path : kCandidates) {
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (lib) {
            l.path = path;
            break;
        }
        const char* e = dlerror();
        tried += std::string(tried.empty() ? "" : "; ") + path + ": " + (e ? e : "not found");
    }
    if (!lib) {
        l.error = "no OpenCL library could be opened (tried " + tried + ")";
        return l;
    }
    // The library stays open for the life of the process: drivers do not support unloading
    // well, and every context and buffer handed out points into it.
    std::string missing;
    Api& a = l.api;
    resolve(lib, "clGetPlatformIDs", a.GetPlatformIDs, missing);
    resolve(lib, "clGetPlatformInfo", a.GetPlatformInfo, missing);
    resolve(lib, "clGetDeviceIDs", a.GetDeviceIDs, missing);
    resolve(lib, "clGetDeviceInfo", a.GetDeviceInfo, missing);
    resolve(lib, "clCreateContext", a.CreateContext, missing);
    resolve(lib, "clReleaseContext", a.ReleaseContext, missing);
    resolve(lib, "clCreateCommandQueue", a.CreateCommandQueue, missing);
    resolve(lib, "clReleaseCommandQueue", a.ReleaseCommandQueue, missing);
    resolve(lib, "clCreateBuffer", a.CreateBuffer, missing);
    resolve(lib, "clReleaseMemObject", a.ReleaseMemObject, missing);
    resolve(lib, "clCreateProgramWithSource", a.CreateProgramWithSource, missing);
    resolve(lib, "clCreateProgramWithBinary", a.CreateProgramWithBinary, missing);
    resolve(lib, "clBuildProgram", a.BuildProgram, missing);
    resolve(lib, "clGetProgramInfo", a.GetProgramInfo, missing);
    resolve(lib, "clGetProgramBuildInfo", a.GetProgramBuildInfo, missing);
    resolve(lib, "clReleaseProgram", a.ReleaseProgram, missing);
    resolve(lib, "clCreateKernel", a.CreateKernel, missing);
    resolve(lib, "clReleaseKernel", a.ReleaseKernel, missing);
    resolve(lib, "clSetKernelArg", a.SetKernelArg, missing);
    resolve(lib, "clGetKernelWorkGroupInfo", a.GetKernelWorkGroupInfo, missing);
    resolve(lib, "clEnqueueNDRangeKernel", a.EnqueueNDRangeKernel, missing);
    resolve(lib, "clEnqueueReadBuffer", a.EnqueueReadBuffer, missing);
    resolve(lib, "clEnqueueWriteBuffer", a.EnqueueWriteBuffer, missing);
    resolve(lib, "clEnqueueCopyBuffer", a.EnqueueCopyBuffer, missing);
    resolve(lib, "clEnqueueMapBuffer", a.EnqueueMapBuffer, missing);
    resolve(lib, "clEnqueueUnmapMemObject", a.EnqueueUnmapMemObject, missing);
    resolve(lib, "clFinish", a.Finish, missing);
    a.CreateImage = reinterpret_cast<decltype(a.CreateImage)>(dlsym(lib, "clCreateImage"));  // optional
    if (!missing.empty()) {
        l.error = l.path + " lacks OpenCL 1.2 entry points: " + missing;
        return l;
    }
    l.ok = true;
    return l;
}

const Loaded& loaded() {
    static const Loaded l = load();
    return l;
}

}  // namespace

const Api* api() { return loaded().ok ? &loaded().api : nullptr; }
const std::string& api_error() { return loaded().error; }
const std::string& api_path() { return loaded().path; }

std::string status_name(cl_int s) {
    const char* n = nullptr;
    switch (s) {
        case 0: n = "CL_SUCCESS"; break;
        case -1: n = "CL_DEVICE_NOT_FOUND"; break;
        case -2: n = "CL_DEVICE_NOT_AVAILABLE"; break;
        case -3: n = "CL_COMPILER_NOT_AVAILABLE"; break;
        case -4: n = "CL_MEM_OBJECT_ALLOCATION_FAILURE"; break;
        case -5: n = "CL_OUT_OF_RESOURCES"; break;
        case -6: n = "CL_OUT_OF_HOST_MEMORY"; break;
        case -11: n = "CL_BUILD_PROGRAM_FAILURE"; break;
        case -30: n = "CL_INVALID_VALUE"; break;
        case -33: n = "CL_INVALID_DEVICE"; break;
        case -34: n = "CL_INVALID_CONTEXT"; break;
        case -38: n = "CL_INVALID_MEM_OBJECT"; break;
        case -42: n = "CL_INVALID_BINARY"; break;
        case -44: n = "CL_INVALID_PROGRAM"; break;
        case -45: n = "CL_INVALID_PROGRAM_EXECUTABLE"; break;
        case -46: n = "CL_INVALID_KERNEL_NAME"; break;
        case -48: n = "CL_INVALID_KERNEL"; break;
        case -49: n = "CL_INVALID_ARG_INDEX"; break;
        case -50: n = "CL_INVALID_ARG_VALUE"; break;
        case -51: n = "CL_INVALID_ARG_SIZE"; break;
        case -52: n = "CL_INVALID_KERNEL_ARGS"; break;
        case -54: n = "CL_INVALID_WORK_GROUP_SIZE"; break;
        case -61: n = "CL_INVALID_BUFFER_SIZE"; break;
        case -1001: n = "CL_PLATFORM_NOT_FOUND_KHR"; break;
        default: break;
    }
    return std::string(n ? n : "CL error") + " (" + std::to_string(s) + ")";
}

}  // namespace ei::opencl
