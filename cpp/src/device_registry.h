// The device registry (DESIGN §4): every device a scenario can name. `cpu` is always
// present; each backend built in adds its devices (OpenCL: "opencl:N" per device of every
// platform that loads, listed once per process). The planner asks a device which ops it
// can run; the session asks it for a backend. Tests (and future plug-ins) register more.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"

namespace ei {

// What a listing shows of a device.
struct DeviceDesc {
    std::string name;          // what a scenario names: "cpu", "opencl:0"
    std::string kind;          // "cpu", "gpu", "accelerator" or "other"
    std::string description;   // the device's own name
    std::string vendor, driver;
    std::string features;      // space-separated capabilities
    uint64_t memory = 0;       // bytes (0: unknown)
    uint64_t max_alloc = 0;    // largest single buffer, bytes (0: unknown)
    int32_t compute_units = 0; // cores or compute units
};

class Device {
public:
    explicit Device(DeviceDesc desc) : desc_(std::move(desc)) {}
    virtual ~Device() = default;
    const DeviceDesc& desc() const { return desc_; }
    const std::string& name() const { return desc_.name; }
    // "" when the device runs op as planned; else why not, for the placement report. The
    // answer must match what its backend's supports(op) says.
    virtual std::string why_unsupported(const Op& op) const = 0;
    // A backend on this device for a session of the scenario (threads, cache folder).
    virtual std::unique_ptr<Backend> create(const Scenario& scenario) const = 0;

private:
    DeviceDesc desc_;
};

// Every device present, "cpu" first. Lists the OpenCL devices on first call.
std::vector<std::shared_ptr<const Device>> devices();

// The device a scenario names: a registry name, or an alias ("opencl": the default OpenCL
// device, see opencl::default_device_index). Throws EI_ERR_UNSUPPORTED naming the present
// devices when there is none of that name. "cpu" never lists the other backends' devices.
std::shared_ptr<const Device> find_device(const std::string& name);

// The CPU device (the fallback for every op another device cannot run).
std::shared_ptr<const Device> cpu_device();

// Adds a device (tests, plug-ins); a device of the same name is replaced. Returns false
// when the name is "cpu" or empty (refused).
bool register_device(std::shared_ptr<const Device> device);
void unregister_device(const std::string& name);

// The names present, for messages: "cpu, opencl:0".
std::string device_names();

}  // namespace ei
