// The OpenCL backend: every op of the prefill, decode and fold graphs as OpenCL C 1.2
// kernels (kernels.cl), run on the device the process's opencl::Runtime chose.
#pragma once
#include <memory>
#include <string>

#include "backend.h"

namespace ei::opencl {

struct DeviceInfo;

// A backend on device device_index of list_devices() (-1: default_device_index()).
// cache_dir: the program-binary cache folder when this call first builds the device's
// program in the process (nullptr: cache_dir(), from the environment). Throws
// ei::Error(EI_ERR_UNSUPPORTED) with the reason when the device cannot be used.
std::unique_ptr<Backend> make_opencl_backend(int device_index = -1, const std::string* cache_dir = nullptr);

// The pool buffer type sessions get on device: "zero-copy" (the host allocation itself, where
// memory is shared) or "device" (device memory, I/O by transfers); EI_OPENCL_POOL overrides.
// Never throws: an EI_OPENCL_POOL that names no type reads "invalid EI_OPENCL_POOL".
std::string pool_buffer_type(const DeviceInfo& device);

// "" when the kernels run op as planned on device, else why not (the backend's supports()).
std::string why_unsupported(const Op& op, const DeviceInfo& device);

}  // namespace ei::opencl
