// libFuzzer target for the model's semantic layer: hyper-parameters, tensor shapes and
// types, tokenizer metadata, planning and a few steps of a session. Any input must either
// be refused with ei::Error or load, tokenize, plan and run; ASan and UBSan (enabled by the
// fuzz build) turn any out-of-bounds access or undefined behaviour into a crash.
//
// The file the target loads is the input followed by a fixed pattern (kTail bytes): seeds
// can stop after their tensor infos (fuzz_model_seeds writes such seeds, and cuts the
// shared tiny models after their metadata), so nearly every mutation lands on metadata,
// and the tensors still have data to read. The pattern keeps every f32, f16 and bf16 value
// and every quantized scale finite.
//
// A structure-aware mutator (LLVMFuzzerCustomMutator) finds the numbers in the input's
// metadata and tensor infos (hyper-parameters, token ids and types, tensor dims and types)
// and sets one to a value near a limit; the other mutations are libFuzzer's own.
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "chat_template.h"
#include "error.h"
#include "gguf.h"
#include "model.h"
#include "plan.h"
#include "scenario.h"
#include "session.h"
#include "tokenizer.h"

namespace {

constexpr size_t kTail = size_t{16} << 20;               // room for the largest shared tiny model's weights
constexpr uint64_t kMaxPool = uint64_t{64} << 20;        // pools above this are planned, not allocated
constexpr uint64_t kSmallWeights = uint64_t{2} << 20;    // models this small also run a memory fold
const char kText[] = "Hello world! the 12 <s> </s> <|im_end|> h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC\n\t  and, the end.";

uint8_t pattern(size_t i) { return static_cast<uint8_t>(0x30 + i % 11); }  // high bytes 0x30-0x3A: small, finite

// The input followed by the pattern, in one buffer reused across runs; bytes a longer
// earlier input left behind are restored to the pattern, so a run depends on its input only.
const uint8_t* with_tail(const uint8_t* data, size_t size, size_t* total) {
    static std::vector<uint8_t> buf;
    static size_t dirty = 0;  // [0, dirty) may hold an earlier input
    if (buf.size() < size + kTail) {
        const size_t old = buf.size();
        buf.resize(size + kTail);
        for (size_t i = old; i < buf.size(); ++i) buf[i] = pattern(i);
    }
    for (size_t i = size; i < dirty; ++i) buf[i] = pattern(i);
    if (size) std::memcpy(buf.data(), data, size);
    dirty = size;
    *total = size + kTail;
    return buf.data();
}

void use_tokenizer(const ei::Tokenizer& tk) {
    for (bool special : {false, true}) {
        std::vector<int32_t> ids = tk.encode(kText, true, special);
        std::string text = tk.decode(ids);
        for (int32_t id : ids) text += tk.token_to_piece(id, special);
    }
    const int32_t n = tk.n_vocab();
    for (int32_t id : {0, 1, n / 2, n - 1, tk.bos(), tk.eos(), tk.eot(), tk.unk()}) {
        if (id < 0 || id >= n) continue;
        (void)tk.token_to_piece(id, true);
        (void)tk.is_eog(id);
        (void)tk.find_token(tk.token_text(id));
    }
}

void run_model(const std::shared_ptr<const ei::Model>& model, int32_t kv_type) {
    const ei::Tokenizer& tk = model->tokenizer();
    use_tokenizer(tk);
    // The scenario a C caller gets when it sets L, S, W, threads and the KV type: the
    // model's edgeinfinite.* keys fill in the rest (and are validated).
    ei_scenario req{};
    req.struct_size = sizeof req;
    req.n_batch = 8;
    req.n_sink = 4;
    req.n_window = 16;
    req.memory = 1;
    req.memory_rule = -1;
    req.memory_rope = -1;
    req.n_threads = 1;
    req.kv_type = kv_type;
    ei::Plan plan = ei::make_plan(model, ei::resolve_scenario(&req, model->gguf()));
    if (plan.pool.size > kMaxPool) return;
    void* pool = std::aligned_alloc(plan.pool.alignment, (plan.pool.size + plan.pool.alignment - 1) /
                                                             plan.pool.alignment * plan.pool.alignment);
    if (!pool) return;
    struct Free {
        void* p;
        ~Free() { std::free(p); }
    } free_pool{pool};
    ei::Session s(plan, static_cast<uint8_t*>(pool), plan.pool.size);

    const int32_t n_vocab = model->hparams().n_vocab;
    std::vector<int32_t> ids = tk.encode(kText, true, false);
    for (size_t i = 0; ids.size() < 40; ++i) ids.push_back(static_cast<int32_t>(i % static_cast<size_t>(n_vocab)));
    // Two tokens through the prefill graph (all logits where they are few), one through decode.
    std::vector<float> all;
    if (n_vocab <= 65536) all.resize(2 * static_cast<size_t>(n_vocab));
    s.eval(ids.data(), 2, all.empty() ? nullptr : all.data());
    const float* logits = s.eval(ids.data() + 2, 1);
    volatile float sink = logits[0] + logits[n_vocab - 1];
    (void)sink;

    // Small models go on past S + W + L = 28 tokens: a fold, then attention that reads the memory.
    uint64_t weights = 0;
    for (const ei::TensorInfo& t : model->gguf().tensors()) weights += t.n_bytes;
    if (weights <= kSmallWeights) {
        s.eval(ids.data() + 3, 30);
        (void)s.placement();
    }
}

// ---- structure-aware mutation

// A number in the input (or, count > 1, a packed array of them): where, how many bytes
// each, and whether they are floats.
struct Field {
    size_t off;
    int width;
    bool is_float;
    uint64_t count = 1;
};

// Walks a GGUF header as the reader does (bounds only, no other checks) and lists its
// numbers: scalar metadata values, elements of numeric arrays, tensor n_dims, dims and
// types. Stops quietly where the input stops making sense.
class Scanner {
public:
    Scanner(const uint8_t* d, size_t n) : d_(d), n_(n) {}

    void scan(std::vector<Field>& scalars, std::vector<Field>& elements, std::vector<Field>& tensors) {
        uint64_t n_tensors = 0, n_kv = 0;
        if (!skip(8) || !u64(&n_tensors) || !u64(&n_kv)) return;
        for (uint64_t i = 0; i < n_kv; ++i) {
            uint32_t type = 0;
            if (!string() || !u32(&type) || !value(type, scalars, elements, 0)) return;
        }
        for (uint64_t i = 0; i < n_tensors; ++i) {
            uint32_t nd = 0;
            if (!string()) return;
            tensors.push_back({pos_, 4, false});
            if (!u32(&nd) || nd > 4) return;
            for (uint32_t d = 0; d < nd; ++d) {
                tensors.push_back({pos_, 8, false});
                if (!skip(8)) return;
            }
            tensors.push_back({pos_, 4, false});
            if (!skip(4 + 8)) return;  // type, offset
        }
    }

private:
    static int width_of(uint32_t type) {
        switch (type) {
            case EI_VALUE_UINT8: case EI_VALUE_INT8: case EI_VALUE_BOOL: return 1;
            case EI_VALUE_UINT16: case EI_VALUE_INT16: return 2;
            case EI_VALUE_UINT32: case EI_VALUE_INT32: case EI_VALUE_FLOAT32: return 4;
            case EI_VALUE_UINT64: case EI_VALUE_INT64: case EI_VALUE_FLOAT64: return 8;
            default: return 0;
        }
    }
    bool value(uint32_t type, std::vector<Field>& scalars, std::vector<Field>& elements, int depth) {
        if (type == EI_VALUE_STRING) return string();
        if (type == EI_VALUE_ARRAY) {
            uint32_t elem = 0;
            uint64_t count = 0;
            if (depth > 2 || !u32(&elem) || !u64(&count)) return false;
            const int w = width_of(elem);
            if (w > 0) {
                if (count > (n_ - pos_) / static_cast<uint64_t>(w)) return false;
                if (count > 0) elements.push_back({pos_, w, elem == EI_VALUE_FLOAT32 || elem == EI_VALUE_FLOAT64, count});
                pos_ += count * w;
                return true;
            }
            for (uint64_t i = 0; i < count; ++i)
                if (!value(elem, scalars, elements, depth + 1)) return false;
            return true;
        }
        const int w = width_of(type);
        if (w == 0) return false;
        scalars.push_back({pos_, w, type == EI_VALUE_FLOAT32 || type == EI_VALUE_FLOAT64});
        return skip(w);
    }
    bool skip(uint64_t k) {
        if (k > n_ - pos_) return false;
        pos_ += k;
        return true;
    }
    bool u32(uint32_t* v) {
        if (4 > n_ - pos_) return false;
        std::memcpy(v, d_ + pos_, 4);
        pos_ += 4;
        return true;
    }
    bool u64(uint64_t* v) {
        if (8 > n_ - pos_) return false;
        std::memcpy(v, d_ + pos_, 8);
        pos_ += 8;
        return true;
    }
    bool string() {
        uint64_t len = 0;
        return u64(&len) && skip(len);
    }

    const uint8_t* d_;
    size_t n_;
    size_t pos_ = 0;
};

// Sets one field to a value at or near a limit the loader, the planner or the kernels care
// about (or a nearby value of the one there).
void mutate_field(uint8_t* data, const Field& f, std::minstd_rand& rng) {
    if (f.is_float) {
        static const double kFloats[] = {0.0, -0.0, 1.0, -1.0, 1e-5, 1e-30, 1e-45, 1e-300, 1e6, 1e30, 3.5e38, 1e300,
                                         std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                                         std::numeric_limits<double>::quiet_NaN()};
        const double v = kFloats[rng() % (sizeof kFloats / sizeof kFloats[0])];
        if (f.width == 4) {
            const float x = static_cast<float>(v);  // out-of-range values become +-inf (IEEE)
            std::memcpy(data + f.off, &x, 4);
        } else {
            std::memcpy(data + f.off, &v, 8);
        }
        return;
    }
    uint64_t cur = 0;
    std::memcpy(&cur, data + f.off, static_cast<size_t>(f.width));
    static const uint64_t kInts[] = {0, 1, 2, 3, 4, 7, 8, 9, 16, 31, 32, 33, 64, 255, 256, 257, 1023, 1024, 1025, 2048,
                                     4096, 65535, 65536, uint64_t{1} << 24, uint64_t{1} << 30, (uint64_t{1} << 30) + 1,
                                     0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, uint64_t{1} << 32, uint64_t{1} << 62,
                                     ~uint64_t{0}};
    uint64_t v;
    switch (rng() % 4) {
        case 0: v = cur + 1; break;
        case 1: v = cur - 1; break;
        case 2: v = cur * 2; break;
        default: v = kInts[rng() % (sizeof kInts / sizeof kInts[0])]; break;
    }
    std::memcpy(data + f.off, &v, static_cast<size_t>(f.width));  // little-endian: the low bytes
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
    std::minstd_rand rng(seed);
    if (rng() % 2 == 0) {
        std::vector<Field> scalars, elements, tensors;
        Scanner(data, size).scan(scalars, elements, tensors);
        // Metadata scalars most often, then tensor dims and types, then array elements.
        const unsigned pick = rng() % 10;
        const std::vector<Field>& from = pick < 5 ? scalars : pick < 8 ? tensors : elements;
        if (!from.empty()) {
            Field f = from[rng() % from.size()];
            f.off += static_cast<size_t>(rng() % f.count) * static_cast<size_t>(f.width);
            mutate_field(data, f, rng);
            return size;
        }
    }
    return LLVMFuzzerMutate(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    size_t total = 0;
    const uint8_t* file = with_tail(data, size, &total);
    try {
        auto gguf = ei::GgufFile::parse(file, total, "fuzz");
        try {  // the chat format, as ei_model_load detects it
            (void)ei::detect_chat_format(gguf->get_string("tokenizer.chat_template"));
        } catch (const ei::Error&) {
        }
        if (gguf->tensors().empty()) {  // a vocabulary file: the tokenizer alone
            use_tokenizer(ei::Model::vocab_from_gguf(std::move(gguf))->tokenizer());
        } else {
            run_model(ei::Model::from_gguf(std::move(gguf)), static_cast<int32_t>(size % 2));  // f16 or f32 cache
        }
    } catch (const ei::Error&) {
    }
    return 0;
}
