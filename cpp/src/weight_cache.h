// Backend-specific forms of a model's weights (e.g. the CPU's repacked GEMM layouts), made
// once per model and shared by every session on it, so a second session costs no packing
// and no memory. Owned by the model and freed with it; the GGUF mapping stays valid (the
// release callback only lets the model drop a replaced source's resident pages).
// Prepared copies are carved out of a few large slabs, 2 MiB aligned and (on Linux) marked
// for transparent huge pages: decode streams every weight once per token, and fewer TLB
// misses made it 3-16% faster here (README, "Speed against llama.cpp").
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ei {

class WeightCache {
public:
    // Called with (source, source_bytes) once a prepared copy replaces a source, so the
    // model can release the source's mapped pages.
    using Release = std::function<void(const void*, size_t)>;
    void set_release(Release release) { release_ = std::move(release); }

    // The prepared form of `source` (source_bytes long) under `layout`, `bytes` bytes
    // aligned to 64, made by fill(buffer) on the first request. Thread-safe: concurrent
    // sessions wait for one fill.
    const uint8_t* get(const void* source, size_t source_bytes, const std::string& layout, size_t bytes,
                       const std::function<void(uint8_t*)>& fill);
    // Bytes held, for reports.
    size_t bytes() const;

    // A device-side form of `source` under `layout` (e.g. an OpenCL buffer; the layout names
    // the device), made by make() on the first request and held until the model is freed,
    // so every session of the model on that device shares one upload. Thread-safe as get().
    std::shared_ptr<void> get_object(const void* source, const std::string& layout,
                                     const std::function<std::shared_ptr<void>()>& make);

private:
    struct Free {
        void operator()(uint8_t* p) const;
    };
    // Bytes from the current slab (a new one when it is full), 64-byte aligned.
    uint8_t* carve(size_t bytes, const std::string& layout);
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<uint8_t, Free>> slabs_;
    size_t slab_used_ = 0, slab_size_ = 0;
    std::map<std::pair<const void*, std::string>, const uint8_t*> entries_;
    size_t bytes_ = 0;
    Release release_;
    std::map<std::pair<const void*, std::string>, std::shared_ptr<void>> objects_;
};

}  // namespace ei
