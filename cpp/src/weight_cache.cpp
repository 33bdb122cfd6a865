#include "weight_cache.h"

#include <cstdlib>

#include "error.h"

namespace ei {

void WeightCache::Free::operator()(uint8_t* p) const { std::free(p); }

const uint8_t* WeightCache::get(const void* source, size_t source_bytes, const std::string& layout, size_t bytes,
                                const std::function<void(uint8_t*)>& fill) {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_pair(source, layout);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second.get();
    const size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) fail(EI_ERR_OUT_OF_MEMORY, "prepared weight of " + std::to_string(bytes) + " bytes");
    std::unique_ptr<uint8_t, Free> buf(static_cast<uint8_t*>(std::aligned_alloc(64, rounded ? rounded : 64)));
    if (!buf) {
        fail(EI_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes for a '" + layout +
                                       "' copy of a weight");
    }
    fill(buf.get());
    if (release_) release_(source, source_bytes);
    const uint8_t* p = buf.get();
    entries_.emplace(key, std::move(buf));
    bytes_ += rounded;
    return p;
}

std::shared_ptr<void> WeightCache::get_object(const void* source, const std::string& layout,
                                              const std::function<std::shared_ptr<void>()>& make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_pair(source, layout);
    auto it = objects_.find(key);
    if (it != objects_.end()) return it->second;
    std::shared_ptr<void> obj = make();
    objects_.emplace(key, obj);
    return obj;
}

size_t WeightCache::bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
}

}  // namespace ei
