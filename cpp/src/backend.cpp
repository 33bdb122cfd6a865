#include "backend.h"

#include "cpu/cpu_backend.h"
#if defined(EI_BACKEND_OPENCL)
#include "opencl/opencl_backend.h"
#endif
#include "error.h"
#include "scenario.h"

namespace ei {

const char* op_name(OpKind k) {
    switch (k) {
        case OpKind::GetRows: return "get_rows";
        case OpKind::RmsNorm: return "rms_norm";
        case OpKind::MatMul: return "mat_mul";
        case OpKind::Rope: return "rope";
        case OpKind::KvStore: return "kv_store";
        case OpKind::SegmentAttention: return "segment_attention";
        case OpKind::MemoryUpdate: return "memory_update";
        case OpKind::SwiGlu: return "swiglu";
    }
    return "?";
}

std::unique_ptr<Backend> make_backend(const Scenario& sc) {
    if (sc.backend == "cpu") return cpu::make_cpu_backend(sc.threads());
#if defined(EI_BACKEND_OPENCL)
    // Throws EI_ERR_UNSUPPORTED naming what is missing (library, platform, device).
    if (sc.backend == "opencl") return opencl::make_opencl_backend();
#endif
    fail(EI_ERR_UNSUPPORTED, "backend '" + sc.backend + "' is not available in this build (available: " +
                                 std::string(kBuiltBackends) + ")");
}

void check_supported(const Backend& backend, const Graph& graph) {
    for (const Op& op : graph.ops) {
        if (!backend.supports(op)) {
            std::string where = op.layer >= 0 ? " in layer " + std::to_string(op.layer) : "";
            // The loader and Scenario::validate check every limit first: reaching this is a bug.
            std::string geometry = op.head_dim > 0 ? ", head size " + std::to_string(op.head_dim) : "";
            fail(EI_ERR_UNSUPPORTED, std::string("backend '") + backend.name() + "' cannot run op " + op_name(op.kind) +
                                         where + " (operand type " + type_traits(op.src0.type).name + geometry + ")");
        }
    }
}

}  // namespace ei
