#include "opencl/program_cache.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "file_io.h"

namespace ei::opencl {

namespace {
constexpr char kMagic[8] = {'E', 'I', 'O', 'C', 'L', 'B', 'I', 'N'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kMaxPayload = uint64_t{1} << 31;  // no device binary of ours comes near 2 GiB

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t get_le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    return v;
}

}  // namespace

std::string make_cache_key(const std::string& device_name, const std::string& device_vendor,
                           const std::string& driver_version, const std::string& platform_version,
                           const std::string& build_options, const std::string& source) {
    char src_hash[17];
    std::snprintf(src_hash, sizeof src_hash, "%016llx",
                  static_cast<unsigned long long>(fnv1a64(source.data(), source.size())));
    return "device=" + device_name + "\nvendor=" + device_vendor + "\ndriver=" + driver_version +
           "\nplatform=" + platform_version + "\noptions=" + build_options + "\nsource=" + src_hash +
           "\nsource_bytes=" + std::to_string(source.size());
}

std::string cache_dir(const std::string* chosen) {
    if (chosen) return *chosen == "off" ? std::string() : *chosen;
    if (const char* d = std::getenv("EI_OPENCL_CACHE_DIR")) {
        return std::strcmp(d, "off") == 0 ? std::string() : std::string(d);
    }
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/edgeinfinite/opencl";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/edgeinfinite/opencl";
    return {};
}

std::string cache_file(const std::string& dir, const std::string& key) {
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.bin", static_cast<unsigned long long>(fnv1a64(key.data(), key.size())));
    return dir + "/" + name;
}

std::vector<uint8_t> encode_cached_binary(const std::string& key, const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> out(kMagic, kMagic + 8);
    put_u32(out, kVersion);
    put_u32(out, static_cast<uint32_t>(key.size()));
    out.insert(out.end(), key.begin(), key.end());
    put_u64(out, payload.size());
    put_u64(out, fnv1a64(payload.data(), payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

std::optional<std::vector<uint8_t>> decode_cached_binary(const uint8_t* data, size_t size, const std::string& key) {
    // Every field is checked against what remains before it is read.
    if (!data || size < 16 || std::memcmp(data, kMagic, 8) != 0) return std::nullopt;
    if (get_le(data + 8, 4) != kVersion) return std::nullopt;
    const uint64_t key_len = get_le(data + 12, 4);
    size_t at = 16;
    if (key_len != key.size() || size - at < key_len) return std::nullopt;
    if (std::memcmp(data + at, key.data(), key_len) != 0) return std::nullopt;
    at += key_len;
    if (size - at < 16) return std::nullopt;
    const uint64_t n = get_le(data + at, 8), hash = get_le(data + at + 8, 8);
    at += 16;
    if (n == 0 || n > kMaxPayload || size - at != n) return std::nullopt;
    if (fnv1a64(data + at, n) != hash) return std::nullopt;
    return std::vector<uint8_t>(data + at, data + at + n);
}

std::optional<std::vector<uint8_t>> load_cached_binary(const std::string& dir, const std::string& key) {
    if (dir.empty()) return std::nullopt;
    std::vector<uint8_t> bytes;
    if (!read_file(cache_file(dir, key), kMaxPayload + 64 + key.size(), bytes)) return std::nullopt;
    return decode_cached_binary(bytes.data(), bytes.size(), key);
}

bool store_cached_binary(const std::string& dir, const std::string& key, const std::vector<uint8_t>& payload) {
    if (dir.empty() || payload.empty() || !make_dirs(dir)) return false;
    const std::vector<uint8_t> bytes = encode_cached_binary(key, payload);
    return write_file_atomic(cache_file(dir, key), bytes.data(), bytes.size());
}

}  // namespace ei::opencl
