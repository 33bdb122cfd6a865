// libFuzzer target for the OpenCL program cache's file format (backends/opencl/
// program_cache.h): a cached device binary is untrusted input, so any bytes must decode to
// a payload or to nothing, never crash. The key is the real one's shape; the first input
// byte picks whether the input is taken whole or behind a valid header for that key (so the
// fuzzer also explores payloads and truncations past a good header).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "opencl/program_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string key = ei::opencl::make_cache_key("pthread-device", "vendor", "3.1", "OpenCL 3.0",
                                                               "-cl-std=CL1.2", "kernel source text");
    if (size == 0) return 0;
    if (data[0] & 1) {
        (void)ei::opencl::decode_cached_binary(data + 1, size - 1, key);
    } else {
        // A well-formed entry whose tail the fuzzer rewrites: payload bytes and a cut.
        std::vector<uint8_t> payload(data + 1, data + size);
        if (payload.empty()) payload.push_back(0);
        std::vector<uint8_t> file = ei::opencl::encode_cached_binary(key, payload);
        auto back = ei::opencl::decode_cached_binary(file.data(), file.size(), key);
        if (!back || *back != payload) __builtin_trap();  // a good entry must round-trip
        const size_t cut = data[0] % file.size();
        (void)ei::opencl::decode_cached_binary(file.data(), cut, key);
    }
    return 0;
}
