// GGUF reader: versions 2 and 3, every metadata type (nested arrays included), tensor
// infos, general.alignment. The file is mmapped; tensor data is never copied. Every
// length, count and offset is checked against the file before it is used, and a
// malformed file throws ei::Error(EI_ERR_FORMAT) naming the field and its byte offset.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "edgeinfinite/edgeinfinite.h"
#include "ggml_types.h"

// The C ABI's opaque value type is this class.
struct ei_value {
    ei_value_type type = EI_VALUE_UINT8;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num{};
    std::string_view str;                 // EI_VALUE_STRING
    ei_value_type elem_type = EI_VALUE_UINT8;  // arrays
    int64_t count = 0;                    // arrays: number of elements
    const uint8_t* raw = nullptr;         // arrays of numbers/bools: packed little-endian data
    std::vector<std::string_view> strs;   // arrays of strings
    std::vector<ei_value> items;          // arrays of arrays

    // Element i of a numeric array, converted. Caller checks i < count.
    int64_t array_int(int64_t i) const;
    uint64_t array_uint(int64_t i) const;
    double array_float(int64_t i) const;
    bool is_numeric() const;
    int64_t as_int() const;
    uint64_t as_uint() const;
    double as_float() const;
};

namespace ei {

using Value = ei_value;

struct TensorInfo {
    std::string name;
    int32_t type = 0;
    int32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // innermost first
    uint64_t offset = 0;           // relative to the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // inside the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
public:
    // Maps and parses the file; throws ei::Error on failure.
    static std::unique_ptr<GgufFile> open(const std::string& path);
    // Parses a buffer the caller keeps alive (fuzzing, in-memory tests).
    static std::unique_ptr<GgufFile> parse(const uint8_t* data, uint64_t size, std::string label);
    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    uint32_t version() const { return version_; }
    uint64_t file_size() const { return size_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }
    const std::string& path() const { return label_; }

    const std::vector<std::pair<std::string, Value>>& kvs() const { return kvs_; }
    const Value* find(std::string_view key) const;
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* tensor(std::string_view name) const;

    // Hands the mapped pages inside [p, p + n) back to the OS (they are read from the file
    // again if touched): a backend that computes from its own copy of a weight calls this
    // so the weight is not resident twice. No-op for buffers the caller owns.
    void drop_pages(const void* p, uint64_t n) const;

    // Typed lookups with defaults; a present key of the wrong type is a format error.
    std::string get_string(std::string_view key, const std::string& def = "") const;
    int64_t get_int(std::string_view key, int64_t def) const;
    double get_float(std::string_view key, double def) const;
    bool get_bool(std::string_view key, bool def) const;
    // Required keys: missing is a format error naming the key.
    int64_t require_int(std::string_view key) const;

private:
    GgufFile() = default;
    void parse_all();

    std::string label_;
    const uint8_t* base_ = nullptr;
    uint64_t size_ = 0;
    void* mapping_ = nullptr;  // non-null when we own an mmap
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kvs_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace ei
