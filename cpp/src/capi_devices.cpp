// C ABI: the device registry (ei devices).
#include "capi_common.h"
#include "device_registry.h"

using ei::capi::guard;

namespace {

// The registry's devices as listed once: the strings handed out live as long as the process.
const std::vector<std::shared_ptr<const ei::Device>>& listed() {
    static const std::vector<std::shared_ptr<const ei::Device>> list = ei::devices();
    return list;
}

}  // namespace

extern "C" {

int32_t ei_device_count(void) {
    int32_t n = 0;
    guard([&] { n = static_cast<int32_t>(listed().size()); });
    return n;
}

ei_status ei_device_get(int32_t index, const char** name, const char** kind, const char** description,
                        const char** vendor, const char** driver, const char** features, uint64_t* memory,
                        uint64_t* max_alloc, int32_t* compute_units) {
    return guard([&] {
        const auto& list = listed();
        if (index < 0 || index >= static_cast<int32_t>(list.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "device index " + std::to_string(index) + " out of range (" +
                                                  std::to_string(list.size()) + " devices)");
        }
        const ei::DeviceDesc& d = list[static_cast<size_t>(index)]->desc();
        if (name) *name = d.name.c_str();
        if (kind) *kind = d.kind.c_str();
        if (description) *description = d.description.c_str();
        if (vendor) *vendor = d.vendor.c_str();
        if (driver) *driver = d.driver.c_str();
        if (features) *features = d.features.c_str();
        if (memory) *memory = d.memory;
        if (max_alloc) *max_alloc = d.max_alloc;
        if (compute_units) *compute_units = d.compute_units;
    });
}

}  // extern "C"
