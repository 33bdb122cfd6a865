// The on-disk cache of a QNN context binary (DESIGN §4, htp): QNN's finalize compiles a
// graph for the NPU, which takes long enough that a prepared model keeps the compiled
// context (prefill, decode and fold in one context binary, their weights shared) in a file,
// per device, SoC and model (the key). The file is untrusted input: anything malformed,
// truncated, altered or built for another key is refused with a clear error, never loaded.
//
// QNN's context binary alone does not say which graph tensor ids QNN gave the graph inputs
// and outputs (libQnnSystem's binary-info call would); this header records them, so a
// loaded context executes without the system library.
//
// File (little endian):
//   magic "EIQNNCTX" | u32 format version (1) | u32 key length | key bytes |
//   u32 graph count | per graph: u32 name length | name | u64 io signature |
//                                u32 io count | io count x (u32 IR tensor id, u32 QNN tensor id) |
//   u64 binary size | binary (QNN's context binary) | u64 FNV-1a hash of every byte before it
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ei::htp {

struct CachedGraph {
    std::string name;          // the QnnGraph's name ("prefill", "decode", "fold")
    uint64_t signature = 0;    // qnn_graph_signature() of the IR graph it was built from
    std::vector<std::pair<uint32_t, uint32_t>> io_ids;  // (IR tensor id, QNN tensor id) of each io tensor
};

struct ContextCache {
    std::string key;                 // make_context_cache_key()
    std::vector<CachedGraph> graphs;
    std::vector<uint8_t> binary;     // QnnContext_getBinary's bytes
};

// Limits a well-formed file stays within (a reader allocates nothing larger than the file).
constexpr uint32_t kCacheMaxKey = 4096;
constexpr uint32_t kCacheMaxGraphs = 64;
constexpr uint32_t kCacheMaxName = 256;

uint64_t cache_fnv1a64(const void* data, size_t n, uint64_t h = 1469598103934665603ull);

// The key of a context binary: the provider and its build (QNN versions compile differently),
// its API versions, the SoC the binary was compiled for, and the model's graphs.
std::string make_context_cache_key(const std::string& provider, const std::string& build_id,
                                   const std::string& api_version, const std::string& soc,
                                   uint64_t graphs_signature);

std::vector<uint8_t> encode_context_cache(const ContextCache& c);
// Decodes a file's bytes; throws ei::Error (EI_ERR_FORMAT) naming what is wrong.
ContextCache decode_context_cache(const uint8_t* data, size_t size);

// Writes the file atomically (temporary file renamed over it); throws EI_ERR_IO.
void write_context_cache_file(const std::string& path, const ContextCache& c);
// Reads and decodes it; EI_ERR_IO when it cannot be read, EI_ERR_FORMAT when malformed.
ContextCache read_context_cache_file(const std::string& path);

}  // namespace ei::htp
