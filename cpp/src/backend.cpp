#include "backend.h"

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

}  // namespace ei
