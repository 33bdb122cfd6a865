// What the OpenCL tests share: the skip when no device exists, and the 64-byte aligned
// memory their pools and weights live in.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "opencl/opencl_device.h"

namespace check {

// True when an OpenCL device is present; else prints why `test` is skipped.
inline bool have_opencl(const char* test) {
    std::string why;
    if (!ei::opencl::list_devices(&why).empty()) return true;
    std::printf("  %s skipped: no OpenCL device (%s)\n", test, why.c_str());
    return false;
}

// 64-byte aligned, zeroed host memory; copies copy the bytes.
struct AlignedBuf {
    uint8_t* p = nullptr;
    size_t size = 0;
    explicit AlignedBuf(size_t n) : size((n + 63) / 64 * 64) {
        p = static_cast<uint8_t*>(std::aligned_alloc(64, size));
        std::memset(p, 0, size);
    }
    AlignedBuf(const AlignedBuf& o) : AlignedBuf(o.size) { std::memcpy(p, o.p, size); }
    AlignedBuf& operator=(const AlignedBuf&) = delete;
    ~AlignedBuf() { std::free(p); }
};

}  // namespace check
