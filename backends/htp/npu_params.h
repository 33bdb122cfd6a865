// The quantization `ei npu-prepare` chose for one model, kept in the cache folder so every
// later session on an NPU device (the emulator here, QNN on a phone) quantizes the same way
// without calibrating again: the weight precision of each weight tensor (chosen per layer by
// measured sensitivity) and the calibrated range of each lowered tensor (qnn_ir.h names), from
// which the encodings follow. Keyed by Model::fingerprint; any scenario of that model uses it
// (tensor names do not depend on L, S or W).
//
// File: <dir>/htp-<16 hex digits of the model fingerprint>.params, little endian:
//   magic "EINPUPRM" | u32 version (1) | u64 model fingerprint | u32 block size |
//   str scheme | u32 weight count | weight count x (str name, u32 bits) |
//   u32 range count | range count x (str name, f32 min, f32 max) |
//   u64 FNV-1a hash of every byte before it
// where str is u32 length + bytes. The file is untrusted input: decode checks every field.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ei::htp {

struct NpuParams {
    uint64_t model_fp = 0;
    std::string scheme;          // what was asked for: "16a8w", "16a4w" or "mixed"
    int32_t block_size = 0;      // int4 weights: 32 or 64; 0 when every weight is 8-bit
    struct WeightBits {
        std::string name;        // GGUF weight name ("blk.3.ffn_down.weight")
        int32_t bits = 8;        // 8 (per channel) or 4 (block-wise)
    };
    struct Range {
        std::string name;        // lowered tensor name ("blk.3.attn_q")
        float min = 0, max = 0;  // calibrated, min <= max, both finite
    };
    std::vector<WeightBits> weights;
    std::vector<Range> ranges;

    const WeightBits* weight(const std::string& name) const;  // null when absent
    const Range* range(const std::string& name) const;
};

// Limits a well-formed file stays within (a reader never allocates beyond them).
constexpr uint32_t kNpuParamsMaxName = 256;
constexpr uint32_t kNpuParamsMaxEntries = 1u << 20;

std::vector<uint8_t> encode_npu_params(const NpuParams& p);
// Throws ei::Error (EI_ERR_FORMAT) naming the first thing wrong; also when the file was
// prepared for another model than expect_model_fp.
NpuParams decode_npu_params(const uint8_t* data, size_t size, uint64_t expect_model_fp);

std::string npu_params_file(const std::string& dir, uint64_t model_fp);
// Writes atomically; throws EI_ERR_IO when the folder or file cannot be written.
void store_npu_params(const std::string& dir, const NpuParams& p);
// False when there is no file for this model in dir; throws EI_ERR_FORMAT when there is one
// and it is malformed (a prepared model must not silently run unquantized).
bool load_npu_params(const std::string& dir, uint64_t model_fp, NpuParams& out);

}  // namespace ei::htp
