// fuzz_model_seeds OUT_DIR [MODEL.gguf...]: writes fuzz_model's seeds into a folder. Small
// generated models of every architecture, tokenizer family, weight type and gate kind the
// runtime supports, and each given model file, all cut after their tensor infos
// (fuzz_model supplies tensor data), so a seed's bytes are its metadata and shapes.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "error.h"
#include "gguf.h"
#include "tiny_model.h"

using ei_test::GgufBuilder;
using ei_test::ModelSpec;

namespace {

bool write(const std::string& path, const std::vector<uint8_t>& bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s OUTPUT_DIR [MODEL.gguf...]\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    std::vector<std::pair<std::string, GgufBuilder>> seeds;

    seeds.emplace_back("llama-spm-f32", ei_test::tiny_model(ModelSpec()));

    ModelSpec q;
    q.arch = "qwen2";
    q.bpe = true;
    q.n_head_kv = 4;
    q.weight_type = 1;  // f16
    q.gate = 2;
    GgufBuilder qb = ei_test::tiny_model(q);
    qb.str("edgeinfinite.memory.rule", "delta").str("tokenizer.chat_template", "{{ '<|im_start|>' }}");
    seeds.emplace_back("qwen2-bpe-f16-gate2", qb);

    ModelSpec q8;
    q8.weight_type = 8;
    q8.tied = true;
    q8.n_layer = 2;
    q8.gate = 1;
    GgufBuilder q8b = ei_test::tiny_model(q8);
    q8b.boolean("edgeinfinite.memory.rope", true).u32("edgeinfinite.segment_length", 8);
    seeds.emplace_back("llama-spm-q8_0-tied-gate1", q8b);

    ModelSpec q4;
    q4.weight_type = 2;
    q4.bpe = true;
    seeds.emplace_back("llama-bpe-q4_0", ei_test::tiny_model(q4));

    ModelSpec k;
    k.n_embd = 256;
    k.n_ff = 256;
    k.n_head = 8;
    k.weight_type = 12;  // q4_K
    k.output_type = 14;  // q6_K
    seeds.emplace_back("llama-spm-q4_K-q6_K", ei_test::tiny_model(k));

    ModelSpec b;
    b.weight_type = 30;  // bf16
    b.head_dim = 16;
    b.n_rot = 8;
    seeds.emplace_back("llama-spm-bf16-head16-rot8", ei_test::tiny_model(b));

    ModelSpec g;
    g.bpe = true;
    g.pre = "gpt-2";
    g.n_head_kv = 4;
    seeds.emplace_back("llama-gpt2-f32-mha", ei_test::tiny_model(g));

    int written = 0;
    for (const auto& s : seeds) {
        if (!write(dir + "/" + s.first + ".gguf", s.second.bytes(false))) {
            std::fprintf(stderr, "cannot write %s/%s.gguf\n", dir.c_str(), s.first.c_str());
            return 1;
        }
        ++written;
    }
    // One seed with its weights in the input, as real files have them.
    if (!write(dir + "/llama-spm-f32-with-data.gguf", seeds[0].second.bytes(true))) return 1;
    ++written;
    for (int i = 2; i < argc; ++i) {
        const std::string path = argv[i];
        uint64_t keep = 0;
        try {
            auto f = ei::GgufFile::open(path);
            keep = std::min(f->data_offset(), f->file_size());
        } catch (const ei::Error& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 1;
        }
        std::ifstream in(path, std::ios::binary);
        std::vector<uint8_t> head(keep);
        in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(keep));
        std::string name = path.substr(path.find_last_of('/') + 1);
        if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
        name += "-meta.gguf";
        if (!in || !write(dir + "/" + name, head)) {
            std::fprintf(stderr, "cannot cut %s\n", path.c_str());
            return 1;
        }
        ++written;
    }
    std::printf("%d seeds written to %s\n", written, dir.c_str());
    return 0;
}
