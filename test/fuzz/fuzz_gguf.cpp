// libFuzzer target for the GGUF reader: any input must parse or throw ei::Error; ASan and
// UBSan (enabled by the fuzz build) turn any out-of-bounds read or overflow into a crash.
#include <cstddef>
#include <cstdint>

#include "error.h"
#include "gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = ei::GgufFile::parse(data, size, "fuzz");
        // Touch what a loader would: every tensor's first and last data byte.
        volatile uint8_t sink = 0;
        for (const auto& t : f->tensors()) {
            if (t.n_bytes > 0) sink = sink ^ t.data[0] ^ t.data[t.n_bytes - 1];
        }
        for (const auto& kv : f->kvs()) {
            if (kv.second.type == EI_VALUE_ARRAY && kv.second.raw && kv.second.count > 0) {
                sink = sink ^ static_cast<uint8_t>(kv.second.array_int(kv.second.count - 1));
            }
        }
        (void)sink;
    } catch (const ei::Error&) {
    }
    return 0;
}
