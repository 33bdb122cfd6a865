#include "device_registry.h"

#include <algorithm>
#include <mutex>
#include <unistd.h>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_features.h"
#if defined(EI_BACKEND_OPENCL)
#include "opencl/kernel_variants.h"
#include "opencl/opencl_backend.h"
#include "opencl/opencl_device.h"
#endif
#include "error.h"
#include "scenario.h"
#if defined(EI_BACKEND_HTP)
#include "htp/htp_backend.h"
#include "htp/htp_emulator_backend.h"
#endif

namespace ei {

namespace {

class CpuDevice final : public Device {
public:
    CpuDevice() : Device(describe()) {}
    std::string why_unsupported(const Op& op) const override { return cpu::why_unsupported(op); }
    std::unique_ptr<Backend> create(const Scenario& sc) const override { return cpu::make_cpu_backend(sc.threads()); }

private:
    static DeviceDesc describe() {
        DeviceDesc d;
        d.name = "cpu";
        d.kind = "cpu";
        d.description = "host CPU";
#if defined(__aarch64__)
        d.description += " (aarch64)";
#elif defined(__x86_64__)
        d.description += " (x86_64)";
#endif
        d.features = cpu::cpu_features_string();  // what the kernels picked at run time
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) d.memory = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        d.compute_units = cores > 0 ? static_cast<int32_t>(cores) : 1;
        return d;
    }
};

#if defined(EI_BACKEND_OPENCL)
class OpenClDevice final : public Device {
public:
    explicit OpenClDevice(const opencl::DeviceInfo& info) : Device(describe(info)), info_(info) {}
    std::string why_unsupported(const Op& op) const override { return opencl::why_unsupported(op, info_); }
    std::unique_ptr<Backend> create(const Scenario& sc) const override {
        return opencl::make_opencl_backend(info_.index, sc.cache_dir.empty() ? nullptr : &sc.cache_dir);
    }

private:
    static DeviceDesc describe(const opencl::DeviceInfo& i) {
        DeviceDesc d;
        d.name = "opencl:" + std::to_string(i.index);
        d.kind = i.type;
        d.description = i.name;
        d.vendor = i.vendor;
        d.driver = i.platform + " " + i.driver_version;
        std::string f;
        if (i.fp16) f += " fp16";
        if (i.subgroups) f += " subgroups";
        if (i.unified_memory) f += " unified_memory";
        if (i.qcom) f += " qcom";
        f += std::string(" kernels=") + opencl::variant_name(opencl::choose_variant_or_portable(i));
        f += " pool=" + opencl::pool_buffer_type(i);
        f += " opencl_c=" + (i.opencl_c_version.rfind("OpenCL C ", 0) == 0 ? i.opencl_c_version.substr(9, 3)
                                                                            : i.opencl_c_version);
        d.features = f.substr(1);
        d.memory = i.global_mem;
        d.max_alloc = i.max_alloc;
        d.compute_units = static_cast<int32_t>(i.compute_units);
        return d;
    }
    opencl::DeviceInfo info_;
};
#endif

#if defined(EI_BACKEND_HTP)
// The Hexagon NPU path run on this CPU: graphs lowered to QNN operations, executed by the
// emulator. It takes whole graphs (no op falls back to the CPU); what it cannot lower is
// refused when the session is made.
class HtpEmulatorDevice final : public Device {
public:
    HtpEmulatorDevice() : Device(describe()) {}
    std::string why_unsupported(const Op&) const override { return ""; }
    std::unique_ptr<Backend> create(const Scenario& sc) const override { return htp::make_htp_emulator_backend(sc); }

private:
    static DeviceDesc describe() {
        DeviceDesc d;
        d.name = "htp-emulator";
        d.kind = "accelerator";
        d.description = "Hexagon NPU (HTP) emulated on the CPU: graphs lowered to QNN operations; quantized "
                        "(16a8w/16a4w) where ei npu-prepare left the model's parameters in the cache dir, else float";
        d.features = "qnn-ir float 16a8w 16a4w";
        d.compute_units = 1;
        return d;
    }
};

// The Hexagon NPU through QNN: the same lowered graphs and host side, executed by the QNN
// HTP backend the probe found (htp_backend.h).
class HtpDevice final : public Device {
public:
    explicit HtpDevice(const htp::HtpProbe& p) : Device(describe(p)), library_(p.library) {}
    std::string why_unsupported(const Op&) const override { return ""; }
    std::unique_ptr<Backend> create(const Scenario& sc) const override { return htp::make_htp_backend(sc, library_); }

private:
    static DeviceDesc describe(const htp::HtpProbe& p) {
        DeviceDesc d;
        d.name = "htp";
        d.kind = "accelerator";
        d.description = "Hexagon NPU (HTP) through QNN provider " + p.provider + ", SoC " + p.soc;
        d.vendor = "Qualcomm";
        d.driver = "QNN build " + (p.build_id.empty() ? std::string("?") : p.build_id) + ", API " + p.api_version;
        d.features = "qnn-ir float library=" + p.library;
        d.compute_units = 1;
        return d;
    }
    std::string library_;
};
#endif

struct Registry {
    std::mutex mu;
    std::vector<std::shared_ptr<const Device>> list;  // "cpu" first
    bool listed = false;  // the backends' devices were added
    std::string opencl_why;  // why no OpenCL device is listed ("" when some are)
    std::string htp_why;     // why no htp device is listed ("" when it is)
};

Registry& registry() {
    static Registry r;
    static std::once_flag once;
    std::call_once(once, [] { r.list.push_back(std::make_shared<CpuDevice>()); });
    return r;
}

// Adds the backends' devices on first need (listing OpenCL starts its driver: not for "cpu").
void list_backends(Registry& r) {
    if (r.listed) return;
    r.listed = true;
#if defined(EI_BACKEND_OPENCL)
    for (const opencl::DeviceInfo& i : opencl::present_devices(&r.opencl_why)) {
        r.list.push_back(std::make_shared<OpenClDevice>(i));
    }
#else
    r.opencl_why = "not built in";
#endif
#if defined(EI_BACKEND_HTP)
    // After the OpenCL devices, so their list positions stay opencl:N + 1.
    r.list.push_back(std::make_shared<HtpEmulatorDevice>());
    // QNN's library is probed once per process, quietly: where it is absent (CI, every
    // machine without the SDK) only the reason is kept, for a scenario that names htp.
    const htp::HtpProbe& qnn = htp::probe_htp();
    if (qnn.present) {
        r.list.push_back(std::make_shared<HtpDevice>(qnn));
    } else {
        r.htp_why = qnn.why;
    }
#else
    r.htp_why = "htp: not built in";
#endif
}

std::string names_of(const std::vector<std::shared_ptr<const Device>>& list) {
    std::string s;
    for (const auto& d : list) s += (s.empty() ? "" : ", ") + d->name();
    return s;
}

}  // namespace

std::vector<std::shared_ptr<const Device>> devices() {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    list_backends(r);
    return r.list;
}

std::shared_ptr<const Device> cpu_device() {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    return r.list.front();
}

std::shared_ptr<const Device> find_device(const std::string& wanted) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    const std::string name = wanted.empty() ? "cpu" : wanted;
    for (const auto& d : r.list) {
        if (d->name() == name) return d;
    }
    list_backends(r);
    for (const auto& d : r.list) {
        if (d->name() == name) return d;
    }
#if defined(EI_BACKEND_OPENCL)
    if (name == "opencl" && !opencl::present_devices().empty()) {
        const std::string alias = "opencl:" + std::to_string(opencl::default_device_index(opencl::present_devices()));
        for (const auto& d : r.list) {
            if (d->name() == alias) return d;
        }
    }
#endif
    std::string msg = "device '" + name + "' is not present (devices: " + names_of(r.list) + ")";
    if ((name == "opencl" || name.rfind("opencl:", 0) == 0) && !r.opencl_why.empty()) {
        msg += "; OpenCL: " + r.opencl_why;
    }
    if (name == "htp" && !r.htp_why.empty()) msg += "; " + r.htp_why;
    fail(EI_ERR_UNSUPPORTED, msg);
}

bool register_device(std::shared_ptr<const Device> device) {
    if (!device || device->name().empty() || device->name() == "cpu") return false;
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (auto& d : r.list) {
        if (d->name() == device->name()) {
            d = std::move(device);
            return true;
        }
    }
    r.list.push_back(std::move(device));
    return true;
}

void unregister_device(const std::string& name) {
    if (name == "cpu") return;
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.list.erase(std::remove_if(r.list.begin(), r.list.end(), [&](const auto& d) { return d->name() == name; }),
                 r.list.end());
}

std::string device_names() { return names_of(devices()); }

}  // namespace ei
