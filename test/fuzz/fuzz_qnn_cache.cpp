// libFuzzer target for the QNN context cache file (backends/htp/qnn_context_cache.h): a
// cached context binary is untrusted input, so any bytes must decode or be refused with
// ei::Error (EI_ERR_FORMAT), never crash or allocate beyond the input. The first input byte
// picks whether the input is taken whole or as the parts of a well-formed file (so the fuzzer
// also gets past the checksum and explores the fields behind it).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "error.h"
#include "htp/qnn_context_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace ei::htp;
    if (size == 0) return 0;
    try {
        if (data[0] & 1) {
            (void)decode_context_cache(data + 1, size - 1);
            return 0;
        }
        // A well-formed file made from the input: a key, graphs with io ids, a binary. It must
        // round-trip, and each of its truncations must be refused.
        ContextCache c;
        const size_t n = size - 1;
        const uint8_t* p = data + 1;
        c.key.assign(reinterpret_cast<const char*>(p), n < 64 ? n : 64);
        const uint32_t n_graphs = 1 + (n ? p[0] % 3 : 0);
        for (uint32_t g = 0; g < n_graphs; ++g) {
            CachedGraph cg;
            cg.name = "graph" + std::to_string(g);
            cg.signature = n > g ? p[g] : 0;
            for (uint32_t i = 0; i < (n > g + 1 ? p[g + 1] % 5 : 0); ++i) cg.io_ids.emplace_back(i, i * 7 + g);
            c.graphs.push_back(cg);
        }
        c.binary.assign(p, p + n);
        if (c.binary.empty()) c.binary.push_back(0);
        const std::vector<uint8_t> file = encode_context_cache(c);
        const ContextCache back = decode_context_cache(file.data(), file.size());
        if (back.key != c.key || back.binary != c.binary || back.graphs.size() != c.graphs.size()) __builtin_trap();
        const size_t cut = data[0] % file.size();
        try {
            (void)decode_context_cache(file.data(), cut);
            __builtin_trap();  // a truncated file must not decode
        } catch (const ei::Error&) {
        }
    } catch (const ei::Error& e) {
        if (e.status() != EI_ERR_FORMAT) __builtin_trap();
    }
    return 0;
}
