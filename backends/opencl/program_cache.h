// Compiled OpenCL programs cached on disk, so a second session (or process) on the same
// device starts without recompiling. A file holds one device binary behind a header that
// names what it was built from; it is untrusted input: anything that does not match, to the
// last byte, makes the caller rebuild from source.
//
// File: <dir>/<16 hex digits of the key hash>.bin
//   magic "EIOCLBIN" | u32 format version | u32 key length | key bytes |
//   u64 payload size | u64 FNV-1a hash of the payload | payload (the device binary)
// The key is the device, its driver and platform versions, the build options and the
// source's hash (see make_key), so a driver update or a kernel change never loads a stale binary.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ei::opencl {

std::string make_cache_key(const std::string& device_name, const std::string& device_vendor,
                           const std::string& driver_version, const std::string& platform_version,
                           const std::string& build_options, const std::string& source);

// The cache folder: *chosen when given (the scenario's cache_dir), else $EI_OPENCL_CACHE_DIR,
// else $XDG_CACHE_HOME/edgeinfinite/opencl, else $HOME/.cache/edgeinfinite/opencl; "" (no
// disk cache) when none is set or the value is "off".
std::string cache_dir(const std::string* chosen = nullptr);

// The file's bytes for a payload under key.
std::vector<uint8_t> encode_cached_binary(const std::string& key, const std::vector<uint8_t>& payload);
// The payload of a cached file's bytes if they are a well-formed entry for exactly this key.
std::optional<std::vector<uint8_t>> decode_cached_binary(const uint8_t* data, size_t size, const std::string& key);

// Reads the entry for key from dir (nullopt when absent or not valid for key).
std::optional<std::vector<uint8_t>> load_cached_binary(const std::string& dir, const std::string& key);
// Writes it atomically (a temporary file renamed over the entry); false when the folder
// cannot be created or written (the cache is an optimization: callers go on without it).
bool store_cached_binary(const std::string& dir, const std::string& key, const std::vector<uint8_t>& payload);
std::string cache_file(const std::string& dir, const std::string& key);

}  // namespace ei::opencl
