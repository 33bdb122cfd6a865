#include "weight_cache.h"

#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "error.h"

namespace ei {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kSlab = size_t{64} << 20;  // few slabs per model, little tail left unused
}  // namespace

void WeightCache::Free::operator()(uint8_t* p) const { std::free(p); }

uint8_t* WeightCache::carve(size_t bytes, const std::string& layout) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) fail(EI_ERR_OUT_OF_MEMORY, "prepared weight of " + std::to_string(bytes) + " bytes");
    if (slabs_.empty() || slab_size_ - slab_used_ < rounded) {
        // A weight larger than a slab gets a slab of its own size. Untouched pages of a
        // slab's tail are never backed, so the unused rest costs address space only.
        size_t size = rounded > kSlab ? rounded : kSlab;
        size = (size + kHugePage - 1) / kHugePage * kHugePage;
        if (size < rounded) fail(EI_ERR_OUT_OF_MEMORY, "prepared weight of " + std::to_string(bytes) + " bytes");
        std::unique_ptr<uint8_t, Free> slab(static_cast<uint8_t*>(std::aligned_alloc(kHugePage, size)));
        if (!slab) {
            fail(EI_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(size) + " bytes for a '" + layout +
                                           "' copy of a weight");
        }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        madvise(slab.get(), size, MADV_HUGEPAGE);  // advice only: without THP nothing changes
#endif
        slabs_.push_back(std::move(slab));
        slab_size_ = size;
        slab_used_ = 0;
    }
    uint8_t* p = slabs_.back().get() + slab_used_;
    slab_used_ += rounded;
    bytes_ += rounded;
    return p;
}

const uint8_t* WeightCache::get(const void* source, size_t source_bytes, const std::string& layout, size_t bytes,
                                const std::function<void(uint8_t*)>& fill) {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_pair(source, layout);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second;
    uint8_t* p = carve(bytes ? bytes : 1, layout);
    fill(p);
    if (release_) release_(source, source_bytes);
    entries_.emplace(key, p);
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
