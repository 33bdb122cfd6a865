// What every file the runtime writes or caches needs: a checksum that catches corruption and
// mismatched inputs (FNV-1a, 64 bit: no dependency; it is not a defence against tampering,
// so readers still check every field), folders made on demand, whole-file reads with a size
// cap, and writes that never leave a half-written file under the final name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ei {

inline constexpr uint64_t kFnvOffset = 1469598103934665603ull;

inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

// An FNV-1a hash fed piece by piece (fingerprints of models and scenarios).
struct Fnv {
    uint64_t h = kFnvOffset;
    void add(const void* p, size_t n) { h = fnv1a64(p, n, h); }
    template <typename T>
    void add(const T& v) {
        add(&v, sizeof(T));
    }
};

// mkdir -p; true when dir exists afterwards.
bool make_dirs(const std::string& dir);

// The file's bytes; false when it cannot be opened or is larger than max_bytes (then it is
// not one of ours: the caller never allocates for a hostile size).
bool read_file(const std::string& path, uint64_t max_bytes, std::vector<uint8_t>& out);

// Writes bytes to a per-process temporary file beside path and renames it over path, so
// readers (other processes included) see the old file or the new one, never a part; false
// on any failure, with the temporary removed.
bool write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace ei
