// The NPU quantization parameters file (backends/htp/npu_params.h): round trip, the model
// key, and a clear refusal of every malformed variant (each cut, each flipped byte).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "check.h"
#include "error.h"
#include "file_io.h"
#include "htp/npu_params.h"

using namespace ei;
using namespace ei::htp;

namespace {

NpuParams sample() {
    NpuParams p;
    p.model_fp = 0x0123456789abcdefull;
    p.scheme = "mixed";
    p.block_size = 32;
    p.weights = {{"blk.0.attn_q.weight", 8}, {"blk.0.ffn_down.weight", 4}, {"output.weight", 8}};
    p.ranges = {{"blk.0.attn_q", -3.5f, 4.25f}, {"blk.0.attn_scores", -20.0f, 18.0f}, {"token_embd", -0.5f, 0.5f}};
    return p;
}

// The message of the EI_ERR_FORMAT decode throws, "" when it decodes.
std::string refusal(const std::vector<uint8_t>& bytes, uint64_t fp) {
    try {
        (void)decode_npu_params(bytes.data(), bytes.size(), fp);
        return "";
    } catch (const Error& e) {
        return e.status() == EI_ERR_FORMAT ? e.what() : std::string("wrong status: ") + e.what();
    }
}

// A file with the right checksum over edited fields, so the field checks (not the checksum)
// must catch it.
std::vector<uint8_t> resealed(std::vector<uint8_t> b) {
    b.resize(b.size() - 8);
    const uint64_t h = fnv1a64(b.data(), b.size());
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(h >> (8 * i)));
    return b;
}

}  // namespace

TEST(round_trip_and_lookup) {
    const NpuParams p = sample();
    const std::vector<uint8_t> b = encode_npu_params(p);
    const NpuParams q = decode_npu_params(b.data(), b.size(), p.model_fp);
    CHECK(q.scheme == "mixed" && q.block_size == 32 && q.model_fp == p.model_fp);
    CHECK(q.weights.size() == 3 && q.ranges.size() == 3);
    CHECK(q.weight("blk.0.ffn_down.weight") && q.weight("blk.0.ffn_down.weight")->bits == 4);
    CHECK(q.range("blk.0.attn_q") && q.range("blk.0.attn_q")->max == 4.25f);
    CHECK(!q.weight("nope") && !q.range("nope"));
}

TEST(refuses_another_model_and_every_damage) {
    const NpuParams p = sample();
    const std::vector<uint8_t> b = encode_npu_params(p);
    CHECK(refusal(b, p.model_fp + 1).find("prepared for another model") != std::string::npos);
    for (size_t cut = 0; cut < b.size(); ++cut) {
        CHECK(!refusal(std::vector<uint8_t>(b.begin(), b.begin() + static_cast<long>(cut)), p.model_fp).empty());
    }
    for (size_t i = 0; i < b.size(); ++i) {
        std::vector<uint8_t> c = b;
        c[i] ^= 0x21;
        CHECK(!refusal(c, p.model_fp).empty());
    }
}

TEST(field_checks_behind_a_good_checksum) {
    NpuParams p = sample();
    p.weights[1].bits = 3;
    std::string why = refusal(resealed(encode_npu_params(p)), p.model_fp);
    CHECK(why.find("3 bits") != std::string::npos);
    p = sample();
    p.ranges[0].min = 5.0f;  // above its max
    why = refusal(resealed(encode_npu_params(p)), p.model_fp);
    CHECK(why.find("blk.0.attn_q") != std::string::npos);
    p = sample();
    p.weights.push_back(p.weights[0]);
    CHECK(refusal(encode_npu_params(p), p.model_fp).find("listed twice") != std::string::npos);
    p = sample();
    p.scheme = "fp8";
    CHECK(refusal(encode_npu_params(p), p.model_fp).find("scheme") != std::string::npos);
    p = sample();
    p.block_size = 0;  // 4-bit weights need blocks
    CHECK(refusal(encode_npu_params(p), p.model_fp).find("no block size") != std::string::npos);
    std::printf("  e.g. %s\n", why.c_str());
}

TEST(store_and_load_in_a_cache_folder) {
    char tmpl[] = "/tmp/ei-npu-params-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    CHECK(dir != nullptr);
    if (!dir) return;
    const NpuParams p = sample();
    NpuParams q;
    CHECK(!load_npu_params(dir, p.model_fp, q));  // none prepared yet
    store_npu_params(std::string(dir) + "/sub", p);
    CHECK(load_npu_params(std::string(dir) + "/sub", p.model_fp, q));
    CHECK(q.ranges.size() == p.ranges.size());
    // A damaged file is an error, never a silent unquantized run.
    const std::string path = npu_params_file(std::string(dir) + "/sub", p.model_fp);
    if (FILE* f = std::fopen(path.c_str(), "r+b")) {
        std::fseek(f, 20, SEEK_SET);
        std::fputc(0x7f, f);
        std::fclose(f);
    }
    bool threw = false;
    try {
        (void)load_npu_params(std::string(dir) + "/sub", p.model_fp, q);
    } catch (const Error& e) {
        threw = e.status() == EI_ERR_FORMAT && std::string(e.what()).find(path) != std::string::npos;
    }
    CHECK(threw);
    std::remove(path.c_str());
    rmdir((std::string(dir) + "/sub").c_str());
    rmdir(dir);
}
