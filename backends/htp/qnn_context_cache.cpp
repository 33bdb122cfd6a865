// The QNN context binary cache file (qnn_context_cache.h): encoding, and a decoder that
// checks every length against the bytes left before it reads or allocates.
#include "htp/qnn_context_cache.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "error.h"

namespace ei::htp {

namespace {

constexpr char kMagic[8] = {'E', 'I', 'Q', 'N', 'N', 'C', 'T', 'X'};
constexpr uint32_t kFormatVersion = 1;

void put32(std::vector<uint8_t>& o, uint32_t v) {
    for (int i = 0; i < 4; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put64(std::vector<uint8_t>& o, uint64_t v) {
    for (int i = 0; i < 8; ++i) o.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_str(std::vector<uint8_t>& o, const std::string& s) {
    put32(o, static_cast<uint32_t>(s.size()));
    o.insert(o.end(), s.begin(), s.end());
}

[[noreturn]] void bad(const std::string& what) { fail(EI_ERR_FORMAT, "QNN context cache: " + what); }

// A bounds-checked reader over the file's bytes.
struct Reader {
    const uint8_t* p;
    size_t left;

    void need(size_t n, const char* what) {
        if (n > left) bad(std::string("truncated in ") + what);
    }
    uint32_t u32(const char* what) {
        need(4, what);
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
        p += 4;
        left -= 4;
        return v;
    }
    uint64_t u64(const char* what) {
        need(8, what);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
        p += 8;
        left -= 8;
        return v;
    }
    std::string str(uint32_t max, const char* what) {
        const uint32_t n = u32(what);
        if (n > max) bad(std::string(what) + " of " + std::to_string(n) + " bytes (at most " + std::to_string(max) + ")");
        need(n, what);
        std::string s(reinterpret_cast<const char*>(p), n);
        p += n;
        left -= n;
        return s;
    }
};

}  // namespace

uint64_t cache_fnv1a64(const void* data, size_t n, uint64_t h) {
    const uint8_t* b = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

std::string make_context_cache_key(const std::string& provider, const std::string& build_id,
                                   const std::string& api_version, const std::string& soc,
                                   uint64_t graphs_signature) {
    char sig[17];
    std::snprintf(sig, sizeof sig, "%016llx", static_cast<unsigned long long>(graphs_signature));
    return "provider=" + provider + ";build=" + build_id + ";api=" + api_version + ";soc=" + soc + ";graphs=" + sig;
}

std::vector<uint8_t> encode_context_cache(const ContextCache& c) {
    if (c.key.size() > kCacheMaxKey) fail(EI_ERR_INVALID_ARGUMENT, "QNN context cache: key too long");
    if (c.graphs.empty() || c.graphs.size() > kCacheMaxGraphs) {
        fail(EI_ERR_INVALID_ARGUMENT, "QNN context cache: " + std::to_string(c.graphs.size()) + " graphs (1 to " +
                                          std::to_string(kCacheMaxGraphs) + ")");
    }
    std::vector<uint8_t> o(kMagic, kMagic + sizeof kMagic);
    put32(o, kFormatVersion);
    put_str(o, c.key);
    put32(o, static_cast<uint32_t>(c.graphs.size()));
    for (const CachedGraph& g : c.graphs) {
        if (g.name.empty() || g.name.size() > kCacheMaxName) fail(EI_ERR_INVALID_ARGUMENT, "QNN context cache: bad graph name");
        put_str(o, g.name);
        put64(o, g.signature);
        put32(o, static_cast<uint32_t>(g.io_ids.size()));
        for (const auto& [ir, qnn] : g.io_ids) {
            put32(o, ir);
            put32(o, qnn);
        }
    }
    put64(o, c.binary.size());
    o.insert(o.end(), c.binary.begin(), c.binary.end());
    put64(o, cache_fnv1a64(o.data(), o.size()));
    return o;
}

ContextCache decode_context_cache(const uint8_t* data, size_t size) {
    if (size < sizeof kMagic + 8 || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
        bad("not a context cache file (no EIQNNCTX header)");
    }
    // The hash first: a file altered anywhere is refused as a whole before any field is used.
    Reader tail{data + size - 8, 8};
    const uint64_t want = tail.u64("hash");
    if (cache_fnv1a64(data, size - 8) != want) bad("checksum mismatch (the file is corrupt or was altered)");

    Reader r{data + sizeof kMagic, size - sizeof kMagic - 8};
    const uint32_t version = r.u32("format version");
    if (version != kFormatVersion) {
        bad("format version " + std::to_string(version) + " (this build reads " + std::to_string(kFormatVersion) + ")");
    }
    ContextCache c;
    c.key = r.str(kCacheMaxKey, "key");
    const uint32_t n_graphs = r.u32("graph count");
    if (n_graphs == 0 || n_graphs > kCacheMaxGraphs) bad(std::to_string(n_graphs) + " graphs (1 to " + std::to_string(kCacheMaxGraphs) + ")");
    for (uint32_t gi = 0; gi < n_graphs; ++gi) {
        CachedGraph g;
        g.name = r.str(kCacheMaxName, "graph name");
        if (g.name.empty()) bad("graph " + std::to_string(gi) + " has no name");
        for (const CachedGraph& other : c.graphs) {
            if (other.name == g.name) bad("graph '" + g.name + "' appears twice");
        }
        g.signature = r.u64("graph signature");
        const uint32_t n_io = r.u32("io count");
        // Each entry is 8 bytes: a count the rest of the file cannot hold is refused before
        // anything is allocated for it.
        if (static_cast<uint64_t>(n_io) * 8 > r.left) bad("graph '" + g.name + "' claims " + std::to_string(n_io) + " io tensors, more than the file holds");
        g.io_ids.reserve(n_io);
        for (uint32_t i = 0; i < n_io; ++i) {
            const uint32_t ir = r.u32("io ids");
            const uint32_t qnn = r.u32("io ids");
            for (const auto& e : g.io_ids) {
                if (e.first == ir) bad("graph '" + g.name + "' lists io tensor " + std::to_string(ir) + " twice");
            }
            g.io_ids.emplace_back(ir, qnn);
        }
        c.graphs.push_back(std::move(g));
    }
    const uint64_t n_bin = r.u64("binary size");
    if (n_bin != r.left) {
        bad("binary of " + std::to_string(n_bin) + " bytes where " + std::to_string(r.left) + " remain");
    }
    if (n_bin == 0) bad("empty context binary");
    c.binary.assign(r.p, r.p + n_bin);
    return c;
}

void write_context_cache_file(const std::string& path, const ContextCache& c) {
    const std::vector<uint8_t> bytes = encode_context_cache(c);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) fail(EI_ERR_IO, "QNN context cache: cannot write " + tmp);
        f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (!f) fail(EI_ERR_IO, "QNN context cache: cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail(EI_ERR_IO, "QNN context cache: cannot rename " + tmp + " to " + path);
    }
}

ContextCache read_context_cache_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(EI_ERR_IO, "QNN context cache: cannot open " + path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    try {
        return decode_context_cache(bytes.data(), bytes.size());
    } catch (const Error& e) {
        fail(e.status(), std::string(e.what()) + " (" + path + ")");
    }
}

}  // namespace ei::htp
