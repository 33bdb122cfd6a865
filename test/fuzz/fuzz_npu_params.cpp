// libFuzzer target for the NPU quantization parameters file (backends/htp/npu_params.h): any
// bytes decode to parameters or to an ei::Error, never a crash. The first input byte picks
// whether the rest is taken whole or resealed with a valid checksum (so the fuzzer reaches
// the field checks behind it).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "error.h"
#include "file_io.h"
#include "htp/npu_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::vector<uint8_t> b(data + 1, data + size);
    if (data[0] & 1) {
        const uint64_t h = ei::fnv1a64(b.data(), b.size());
        for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(h >> (8 * i)));
    }
    try {
        ei::htp::NpuParams p = ei::htp::decode_npu_params(b.data(), b.size(), 0x0123456789abcdefull);
        // What decodes must encode back to the same bytes.
        if (ei::htp::encode_npu_params(p) != b) __builtin_trap();
    } catch (const ei::Error&) {
    }
    return 0;
}
