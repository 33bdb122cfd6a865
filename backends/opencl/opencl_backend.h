// The OpenCL backend: every op of the prefill, decode and fold graphs as OpenCL C 1.2
// kernels (kernels.cl), run on the device the process's opencl::Runtime chose.
#pragma once
#include <memory>

#include "backend.h"

namespace ei::opencl {

// Throws ei::Error(EI_ERR_UNSUPPORTED) with the reason when no OpenCL device can be used.
std::unique_ptr<Backend> make_opencl_backend();

}  // namespace ei::opencl
