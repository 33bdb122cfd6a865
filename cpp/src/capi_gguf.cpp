// C ABI: library information and GGUF inspection.
#include <cstring>

#include "capi_common.h"
#include "cpu/cpu_features.h"
#include "gguf.h"

struct ei_gguf {
    std::unique_ptr<ei::GgufFile> file;
};

namespace ei::capi {
namespace {
thread_local std::string last_error;
}
void set_error(const std::string& msg) { last_error = msg; }
void clear_error() { last_error.clear(); }
}  // namespace ei::capi

using ei::capi::guard;
using ei::capi::require;

extern "C" {

const char* ei_last_error(void) { return ei::capi::last_error.c_str(); }

const char* ei_status_name(ei_status s) {
    switch (s) {
        case EI_OK: return "ok";
        case EI_ERR_INVALID_ARGUMENT: return "invalid argument";
        case EI_ERR_IO: return "i/o error";
        case EI_ERR_FORMAT: return "format error";
        case EI_ERR_UNSUPPORTED: return "unsupported";
        case EI_ERR_OUT_OF_MEMORY: return "out of memory";
        case EI_ERR_POOL: return "pool error";
        case EI_ERR_STATE: return "state error";
        case EI_ERR_CANCELLED: return "cancelled";
        case EI_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char* ei_version(void) { return EI_VERSION_STRING; }
int32_t ei_abi_version(void) { return EI_ABI_VERSION; }

const char* ei_cpu_features(void) {
    static const std::string s = ei::cpu::cpu_features_string();
    return s.c_str();
}

ei_status ei_gguf_open(const char* path, ei_gguf** out) {
    return guard([&] {
        require(path, "path");
        require(out, "out");
        *out = nullptr;
        auto g = std::make_unique<ei_gguf>();
        g->file = ei::GgufFile::open(path);
        *out = g.release();
    });
}

void ei_gguf_close(ei_gguf* gguf) { delete gguf; }

uint32_t ei_gguf_version(const ei_gguf* g) { return g ? g->file->version() : 0; }
uint64_t ei_gguf_file_size(const ei_gguf* g) { return g ? g->file->file_size() : 0; }
uint64_t ei_gguf_alignment(const ei_gguf* g) { return g ? g->file->alignment() : 0; }
uint64_t ei_gguf_data_offset(const ei_gguf* g) { return g ? g->file->data_offset() : 0; }
int64_t ei_gguf_kv_count(const ei_gguf* g) { return g ? static_cast<int64_t>(g->file->kvs().size()) : 0; }

ei_status ei_gguf_kv(const ei_gguf* g, int64_t index, const char** key, const ei_value** value) {
    return guard([&] {
        require(g, "gguf");
        const auto& kvs = g->file->kvs();
        if (index < 0 || index >= static_cast<int64_t>(kvs.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "metadata index " + std::to_string(index) + " out of range");
        }
        if (key) *key = kvs[index].first.c_str();
        if (value) *value = &kvs[index].second;
    });
}

ei_value_type ei_value_get_type(const ei_value* v) { return v ? v->type : EI_VALUE_UINT8; }
ei_value_type ei_value_array_type(const ei_value* v) { return v ? v->elem_type : EI_VALUE_UINT8; }
int64_t ei_value_array_len(const ei_value* v) { return v && v->type == EI_VALUE_ARRAY ? v->count : 0; }

}  // extern "C"

// C++ helpers (clang warns about C linkage for functions returning references).
namespace {
const ei_value& scalar(const ei_value* v) {
    require(v, "value");
    if (!v->is_numeric()) ei::fail(EI_ERR_INVALID_ARGUMENT, "value is not a number");
    return *v;
}
const ei_value& array_of_numbers(const ei_value* v, int64_t i) {
    require(v, "value");
    if (v->type != EI_VALUE_ARRAY || !v->raw) ei::fail(EI_ERR_INVALID_ARGUMENT, "value is not an array of numbers");
    if (i < 0 || i >= v->count) ei::fail(EI_ERR_INVALID_ARGUMENT, "array index " + std::to_string(i) + " out of range");
    return *v;
}
}  // namespace

extern "C" {

ei_status ei_value_int(const ei_value* v, int64_t* out) {
    return guard([&] { *require(out, "out") = scalar(v).as_int(); });
}
ei_status ei_value_uint(const ei_value* v, uint64_t* out) {
    return guard([&] { *require(out, "out") = scalar(v).as_uint(); });
}
ei_status ei_value_float(const ei_value* v, double* out) {
    return guard([&] { *require(out, "out") = scalar(v).as_float(); });
}
ei_status ei_value_string(const ei_value* v, const char** data, uint64_t* len) {
    return guard([&] {
        require(v, "value");
        if (v->type != EI_VALUE_STRING) ei::fail(EI_ERR_INVALID_ARGUMENT, "value is not a string");
        *require(data, "data") = v->str.data();
        *require(len, "len") = v->str.size();
    });
}
ei_status ei_value_array_int(const ei_value* v, int64_t i, int64_t* out) {
    return guard([&] { *require(out, "out") = array_of_numbers(v, i).array_int(i); });
}
ei_status ei_value_array_uint(const ei_value* v, int64_t i, uint64_t* out) {
    return guard([&] { *require(out, "out") = array_of_numbers(v, i).array_uint(i); });
}
ei_status ei_value_array_float(const ei_value* v, int64_t i, double* out) {
    return guard([&] { *require(out, "out") = array_of_numbers(v, i).array_float(i); });
}
ei_status ei_value_array_string(const ei_value* v, int64_t i, const char** data, uint64_t* len) {
    return guard([&] {
        require(v, "value");
        if (v->type != EI_VALUE_ARRAY || v->elem_type != EI_VALUE_STRING) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "value is not an array of strings");
        }
        if (i < 0 || i >= v->count) ei::fail(EI_ERR_INVALID_ARGUMENT, "array index " + std::to_string(i) + " out of range");
        *require(data, "data") = v->strs[i].data();
        *require(len, "len") = v->strs[i].size();
    });
}
ei_status ei_value_array_at(const ei_value* v, int64_t i, const ei_value** out) {
    return guard([&] {
        require(v, "value");
        if (v->type != EI_VALUE_ARRAY || v->elem_type != EI_VALUE_ARRAY) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "value is not an array of arrays");
        }
        if (i < 0 || i >= v->count) ei::fail(EI_ERR_INVALID_ARGUMENT, "array index " + std::to_string(i) + " out of range");
        *require(out, "out") = &v->items[i];
    });
}

int64_t ei_gguf_tensor_count(const ei_gguf* g) { return g ? static_cast<int64_t>(g->file->tensors().size()) : 0; }

ei_status ei_gguf_tensor(const ei_gguf* g, int64_t index, const char** name, int32_t* type, int32_t* n_dims,
                         int64_t dims[4], uint64_t* offset, uint64_t* n_bytes) {
    return guard([&] {
        require(g, "gguf");
        const auto& ts = g->file->tensors();
        if (index < 0 || index >= static_cast<int64_t>(ts.size())) {
            ei::fail(EI_ERR_INVALID_ARGUMENT, "tensor index " + std::to_string(index) + " out of range");
        }
        const ei::TensorInfo& t = ts[index];
        if (name) *name = t.name.c_str();
        if (type) *type = t.type;
        if (n_dims) *n_dims = t.n_dims;
        if (dims) std::memcpy(dims, t.ne, sizeof(t.ne));
        if (offset) *offset = t.offset;
        if (n_bytes) *n_bytes = t.n_bytes;
    });
}

const char* ei_tensor_type_name(int32_t type) { return ei::type_traits(type).name; }

}  // extern "C"
