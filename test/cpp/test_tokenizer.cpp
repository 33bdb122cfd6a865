// Tokenizer tests: the llama.cpp vocab test vectors (every case of the three families
// reproduced exactly), round trips, BOS and special-token handling, the end-of-generation set,
// the pre-tokenizer splitters, and error reporting for unsupported or broken metadata.
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "check.h"
#include "error.h"
#include "gguf.h"
#include "tokenizer.h"
#include "unicode.h"

// check.h's CHECK_EQ prints through std::to_string; strings need their own.
#define CHECK_STR(a, b)                                                                                  \
    do {                                                                                                 \
        const std::string sa_ = (a), sb_ = (b);                                                          \
        if (sa_ != sb_) {                                                                                \
            std::fprintf(stderr, "%s:%d: CHECK_STR failed: %s != %s ('%s' vs '%s')\n", __FILE__, __LINE__, \
                         #a, #b, sa_.c_str(), sb_.c_str());                                              \
            ++check::failures;                                                                           \
        }                                                                                                \
    } while (0)

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Texts separated by lines "__ggml_vocab_test__"; the newline before each separator line is
// not part of the text (so a text spans whole lines joined by '\n').
std::vector<std::string> read_inputs(const std::string& path) {
    const std::string all = read_file(path);
    std::vector<std::string> texts;
    std::string cur;
    bool have_line = false;
    size_t pos = 0;
    while (pos < all.size()) {
        size_t nl = all.find('\n', pos);
        if (nl == std::string::npos) nl = all.size();
        std::string line = all.substr(pos, nl - pos);
        pos = nl + 1;
        if (line == "__ggml_vocab_test__") {
            texts.push_back(cur);
            cur.clear();
            have_line = false;
        } else {
            if (have_line) cur += '\n';
            cur += line;
            have_line = true;
        }
    }
    return texts;
}

std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
    const std::string all = read_file(path);
    std::vector<std::vector<int32_t>> out;
    std::istringstream in(all);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::vector<int32_t> ids;
        long v;
        while (ls >> v) ids.push_back(static_cast<int32_t>(v));
        out.push_back(ids);
    }
    return out;
}

std::string ids_str(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

struct VocabRun {
    int total = 0, passed = 0;
};

// Encodes every case (no BOS, special tokens not parsed) and compares with llama.cpp's ids.
VocabRun run_vocab_cases(const ei::Tokenizer& tok, const std::string& name,
                         std::vector<std::string>* texts_out = nullptr,
                         std::vector<std::vector<int32_t>>* ids_out = nullptr) {
    const std::string base = check::testdata("vocab/" + name);
    std::vector<std::string> texts = read_inputs(base + ".inp");
    std::vector<std::vector<int32_t>> want = read_outputs(base + ".out");
    CHECK_EQ(texts.size(), want.size());
    VocabRun r;
    for (size_t i = 0; i < texts.size() && i < want.size(); ++i) {
        std::vector<int32_t> got = tok.encode(texts[i], false, false);
        ++r.total;
        if (got == want[i]) {
            ++r.passed;
        } else {
            std::fprintf(stderr, "%s case %zu mismatch\n  text: '%s'\n  want: %s\n  got:  %s\n", name.c_str(), i,
                         texts[i].c_str(), ids_str(want[i]).c_str(), ids_str(got).c_str());
        }
        if (ids_out) ids_out->push_back(got);
    }
    std::printf("  %s: %d/%d cases match llama.cpp\n", name.c_str(), r.passed, r.total);
    CHECK_EQ(r.passed, r.total);
    CHECK(r.total >= 40);
    if (texts_out) *texts_out = texts;
    return r;
}

std::unique_ptr<ei::Tokenizer> load(const std::string& rel) {
    auto f = ei::GgufFile::open(check::testdata(rel));
    return ei::Tokenizer::from_gguf(*f);
}

// A minimal GGUF v3 writer (metadata only) for in-memory error and synthetic-vocab tests.
class GgufBuilder {
public:
    void str(const std::string& key, const std::string& v) {
        head(key, EI_VALUE_STRING);
        put_str(v);
    }
    void u32(const std::string& key, uint32_t v) {
        head(key, EI_VALUE_UINT32);
        put(&v, 4);
    }
    void boolean(const std::string& key, bool v) {
        head(key, EI_VALUE_BOOL);
        uint8_t b = v;
        put(&b, 1);
    }
    void strs(const std::string& key, const std::vector<std::string>& v) {
        arr_head(key, EI_VALUE_STRING, v.size());
        for (const auto& s : v) put_str(s);
    }
    void i32s(const std::string& key, const std::vector<int32_t>& v) {
        arr_head(key, EI_VALUE_INT32, v.size());
        for (int32_t x : v) put(&x, 4);
    }
    void f32s(const std::string& key, const std::vector<float>& v) {
        arr_head(key, EI_VALUE_FLOAT32, v.size());
        for (float x : v) put(&x, 4);
    }
    std::vector<uint8_t> finish() const {
        std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
        auto app = [&](const void* p, size_t n) {
            const uint8_t* b = static_cast<const uint8_t*>(p);
            out.insert(out.end(), b, b + n);
        };
        uint32_t version = 3;
        uint64_t n_tensors = 0;
        app(&version, 4);
        app(&n_tensors, 8);
        app(&n_kv_, 8);
        out.insert(out.end(), body_.begin(), body_.end());
        return out;
    }

private:
    void put(const void* p, size_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        body_.insert(body_.end(), b, b + n);
    }
    void put_str(const std::string& s) {
        uint64_t n = s.size();
        put(&n, 8);
        put(s.data(), s.size());
    }
    void head(const std::string& key, uint32_t type) {
        ++n_kv_;
        put_str(key);
        put(&type, 4);
    }
    void arr_head(const std::string& key, uint32_t elem, uint64_t count) {
        head(key, EI_VALUE_ARRAY);
        put(&elem, 4);
        put(&count, 8);
    }
    std::vector<uint8_t> body_;
    uint64_t n_kv_ = 0;
};

std::unique_ptr<ei::Tokenizer> from_bytes(const std::vector<uint8_t>& bytes) {
    auto f = ei::GgufFile::parse(bytes.data(), bytes.size(), "mem.gguf");
    return ei::Tokenizer::from_gguf(*f);
}

std::vector<uint32_t> split(ei::unicode::PreTokenizer kind, const std::string& text) {
    std::vector<uint32_t> cpts, lens;
    ei::unicode::decode_utf8(text, cpts);
    ei::unicode::pre_tokenize(kind, cpts.data(), cpts.size(), lens);
    return lens;
}

}  // namespace

TEST(tokenizer_spm_vocab_cases) {
    auto tok = load("vocab/ggml-vocab-llama-spm.gguf");
    CHECK(tok->kind() == ei::TokenizerKind::Spm);
    CHECK_EQ(tok->n_vocab(), 32000);
    CHECK_EQ(tok->bos(), 1);
    CHECK_EQ(tok->eos(), 2);
    CHECK(tok->add_bos());
    CHECK(tok->add_space_prefix());
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> ids;
    run_vocab_cases(*tok, "ggml-vocab-llama-spm.gguf", &texts, &ids);
    // Round trip: the space prefix added by encode is dropped again by decode, BOS or not.
    int round = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
        bool ok = tok->decode(ids[i]) == texts[i];
        std::vector<int32_t> with_bos = tok->encode(texts[i], true, false);
        ok = ok && tok->decode(with_bos) == texts[i];
        if (ok) ++round;
        else std::fprintf(stderr, "spm round trip failed for case %zu: '%s'\n", i, texts[i].c_str());
    }
    std::printf("  spm: %d/%zu cases round-trip\n", round, texts.size());
    CHECK_EQ(static_cast<size_t>(round), texts.size());

    CHECK_STR(tok->token_to_piece(13), std::string("\n"));  // <0x0A>
    CHECK_STR(tok->token_to_piece(29871), std::string(" "));  // "▁"
    CHECK_STR(tok->token_to_piece(15043), std::string(" Hello"));
    CHECK_STR(tok->token_to_piece(1), std::string(""));          // control
    CHECK_STR(tok->token_to_piece(1, true), std::string("<s>"));
    CHECK_STR(tok->token_text(15043), std::string("\xE2\x96\x81Hello"));
    CHECK_STR(tok->decode({1, 15043}, false), std::string(" Hello"));
    CHECK(tok->is_eog(2));
    CHECK(!tok->is_eog(1));
    // Special tokens: text only with parse_special; a space prefix follows a special token.
    std::vector<int32_t> want_special = {1, 15043};
    CHECK(tok->encode("<s>Hello", false, true) == want_special);
    CHECK(tok->encode("<s>Hello", false, false)[0] != 1);
}

TEST(tokenizer_encode_after) {
    // A text tokenized in pieces, each after the last token of the one before, gives the
    // whole text's tokens where the pieces meet at a special token, and never a stray space
    // prefix where they meet inside plain text.
    auto tok = load("vocab/ggml-vocab-llama-spm.gguf");
    const std::string a = "[INST] Hi there [/INST]", b = " Hello</s>", c = "[INST] And now? [/INST]";
    std::vector<int32_t> whole = tok->encode(a + b + c, false, true);
    std::vector<int32_t> pieces = tok->encode_after(-1, a, true);
    std::vector<int32_t> pb = tok->encode_after(pieces.back(), b, true);
    pieces.insert(pieces.end(), pb.begin(), pb.end());
    CHECK_EQ(pieces.back(), 2);  // </s>, special: the next piece gets the space prefix
    std::vector<int32_t> pc = tok->encode_after(pieces.back(), c, true);
    pieces.insert(pieces.end(), pc.begin(), pc.end());
    CHECK(pieces == whole);
    if (pieces != whole) std::fprintf(stderr, "  whole %s\n  pieces %s\n", ids_str(whole).c_str(), ids_str(pieces).c_str());
    // After a plain token no space prefix is added: " Hello" then "world" is not " Hello world".
    std::vector<int32_t> w = tok->encode_after(15043, "world", false);
    CHECK_STR(tok->decode(w, false), std::string("world"));
    CHECK_STR(tok->decode(tok->encode("world", false, false), false), std::string(" world"));
    CHECK(tok->encode_after(-1, "world", false) == tok->encode("world", false, false));
    CHECK(tok->is_special(2) && tok->is_special(1) && !tok->is_special(15043));
}

TEST(tokenizer_llama_bpe_vocab_cases) {
    auto tok = load("vocab/ggml-vocab-llama-bpe.gguf");
    CHECK(tok->kind() == ei::TokenizerKind::Bpe);
    CHECK_STR(tok->pre(), std::string("llama-bpe"));
    CHECK_EQ(tok->n_vocab(), 128256);
    CHECK_EQ(tok->bos(), 128000);
    CHECK(tok->add_bos());  // llama.cpp's default for the llama3 pre-tokenizer
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> ids;
    run_vocab_cases(*tok, "ggml-vocab-llama-bpe.gguf", &texts, &ids);
    // Byte-level BPE is lossless; decode() also applies llama.cpp's clean-up of " ?", " ,",
    // " 's" ..., so only texts without those patterns come back unchanged.
    int raw = 0, clean = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
        std::string cat;
        for (int32_t id : ids[i]) cat += tok->token_to_piece(id);
        if (cat == texts[i]) ++raw;
        if (tok->decode(ids[i]) == texts[i]) {
            ++clean;
        } else {
            const std::string& t = texts[i];
            bool has_pattern = false;
            for (const char* p : {" ?", " !", " .", " ,", " '"}) has_pattern |= t.find(p) != std::string::npos;
            CHECK(has_pattern);
        }
    }
    std::printf("  llama-bpe: %d/%zu pieces concatenate back; decode() round-trips %d (rest altered by clean-up)\n",
                raw, texts.size(), clean);
    CHECK_EQ(static_cast<size_t>(raw), texts.size());
    CHECK_STR(tok->decode({128000, 9906, 11, 1917, 0}), std::string("Hello, world!"));
    CHECK_STR(tok->decode(tok->encode("Hello ,world", false, false)), std::string("Hello,world"));

    // Special tokens.
    std::vector<int32_t> a = tok->encode("<|begin_of_text|>Hello", false, true);
    CHECK_EQ(a.size(), 2u);
    CHECK_EQ(a[0], 128000);
    std::vector<int32_t> b = tok->encode("<|begin_of_text|>Hello", false, false);
    CHECK(b.size() > 2 && b[0] != 128000);
    std::vector<int32_t> c = tok->encode("Hello", tok->add_bos(), false);
    CHECK(c.size() == 2 && c[0] == 128000);
    CHECK_EQ(tok->eos(), 128001);
    CHECK_EQ(tok->eot(), 128009);
    CHECK(tok->is_eog(128001));
    CHECK(tok->is_eog(128009));
    CHECK(!tok->is_eog(128000));
    CHECK_EQ(tok->find_token("<|eot_id|>"), 128009);
    CHECK_EQ(tok->find_token("no such token here"), -1);
}

TEST(tokenizer_qwen2_vocab_cases) {
    auto t0 = std::chrono::steady_clock::now();
    auto tok = load("vocab/ggml-vocab-qwen2.gguf");
    auto t1 = std::chrono::steady_clock::now();
    std::vector<std::string> texts;
    std::vector<std::vector<int32_t>> ids;
    run_vocab_cases(*tok, "ggml-vocab-qwen2.gguf", &texts, &ids);
    auto t2 = std::chrono::steady_clock::now();
    size_t bytes = 0;
    for (const auto& t : texts) bytes += t.size();
    std::printf("  qwen2: load %.1f ms, encode %zu cases (%zu bytes) %.2f ms\n",
                std::chrono::duration<double, std::milli>(t1 - t0).count(), texts.size(), bytes,
                std::chrono::duration<double, std::milli>(t2 - t1).count());
    CHECK(std::chrono::duration<double>(t1 - t0).count() < 1.0);

    CHECK_STR(tok->pre(), std::string("qwen2"));
    CHECK(!tok->add_bos());
    int round = 0;
    for (size_t i = 0; i < texts.size(); ++i) round += tok->decode(ids[i]) == texts[i];
    std::printf("  qwen2: %d/%zu cases round-trip\n", round, texts.size());
    CHECK_EQ(static_cast<size_t>(round), texts.size());

    std::vector<int32_t> a = tok->encode("<|im_start|>user\nHi<|im_end|>\n", false, true);
    CHECK(a.size() >= 4);
    CHECK_EQ(a.front(), 151644);
    CHECK(std::find(a.begin(), a.end(), 151645) != a.end());
    std::vector<int32_t> b = tok->encode("<|im_start|>user", false, false);
    CHECK(b[0] != 151644);
    for (int32_t id : b) CHECK(id < 151643);
    CHECK_STR(tok->decode(a), std::string("user\nHi\n"));
    CHECK_STR(tok->token_to_piece(151645, true), std::string("<|im_end|>"));
    CHECK_STR(tok->token_to_piece(220), std::string(" "));
    CHECK_EQ(tok->eos(), 151643);
    CHECK_EQ(tok->eot(), 151645);
    CHECK(tok->is_eog(151643));
    CHECK(tok->is_eog(151645));
    CHECK(!tok->is_eog(151644));
    CHECK_EQ(tok->find_token("<|im_start|>"), 151644);
    // USER_DEFINED tokens are split out even without parse_special, as in llama.cpp.
    std::vector<int32_t> u = tok->encode("x[PAD151650]y", false, false);
    CHECK(std::find(u.begin(), u.end(), 151650) != u.end());
    CHECK_STR(tok->token_to_piece(151650), std::string("[PAD151650]"));
    // Malformed UTF-8 becomes U+FFFD before byte-level encoding, as llama.cpp does it.
    CHECK(tok->encode(std::string("a\xFF" "b"), false, false) == tok->encode("a\xEF\xBF\xBD" "b", false, false));
}

TEST(tokenizer_tiny_llama_spm_prompt) {
    auto tok = load("models/tiny-llama-spm-f16.gguf");
    // reference/manifest.json, case tiny-llama-spm-f16.P: llama.cpp's tokens for prompt_text.
    const std::vector<int32_t> want = {1, 9038, 2501, 263, 931, 29892, 297, 263,
                                       2319, 5720, 491, 278, 7205, 29892, 727, 10600};
    const std::string prompt = "Once upon a time, in a small village by the sea, there lived";
    std::vector<int32_t> got = tok->encode(prompt, tok->add_bos(), false);
    CHECK(got == want);
    if (got != want) std::fprintf(stderr, "  got %s\n", ids_str(got).c_str());
    CHECK_STR(tok->decode(got), prompt);
    CHECK_STR(tok->token_to_piece(10600), std::string(" lived"));
    CHECK_STR(tok->token_to_piece(24729), std::string("onnes"));  // the reference greedy continuation
}

TEST(tokenizer_tiny_llama_small_vocab) {
    auto tok = load("models/tiny-llama-f16.gguf");
    CHECK_EQ(tok->n_vocab(), 1024);
    CHECK(tok->kind() == ei::TokenizerKind::Spm);
    for (const char* text : {"Hello world", " leading space", "tabs\tand\nnewlines", "\xC3\x84pfel \xF0\x9F\xA6\x99"}) {
        std::vector<int32_t> ids = tok->encode(text, true, false);
        CHECK(!ids.empty() && ids[0] == 1);
        for (int32_t id : ids) CHECK(id >= 0 && id < 1024);
        // This random vocab has no "▁" token: the escaped spaces fall back to the bytes of
        // U+2581, which llama.cpp's detokenizer leaves as they are (a byte token is its byte).
        std::string d = tok->decode(ids);
        for (size_t p; (p = d.find("\xE2\x96\x81")) != std::string::npos;) d.replace(p, 3, " ");
        CHECK(d == std::string(text) || d == " " + std::string(text));
    }
    CHECK_STR(tok->token_to_piece(3 + 0x41), std::string("A"));  // <0x41>
}

TEST(tokenizer_pre_tokenizer_splits) {
    using P = ei::unicode::PreTokenizer;
    using V = std::vector<uint32_t>;
    CHECK(split(P::Gpt2, "Hello, world!") == (V{5, 1, 6, 1}));
    CHECK(split(P::Gpt2, "a  b") == (V{1, 1, 2}));
    CHECK(split(P::Gpt2, "I'm 123") == (V{1, 2, 4}));
    CHECK(split(P::Gpt2, "I'M") == (V{1, 1, 1}));  // case-sensitive contractions
    CHECK(split(P::Llama3, "I'M") == (V{1, 2}));
    CHECK(split(P::Llama3, "12345") == (V{3, 2}));
    CHECK(split(P::Qwen2, "12345") == (V{1, 1, 1, 1, 1}));
    CHECK(split(P::Llama3, "a\n\n  b") == (V{1, 2, 1, 2}));
    CHECK(split(P::Llama3, " !!\n\nx") == (V{5, 1}));
    // Default chain: punctuation runs, GPT-2, number runs, digit triples.
    CHECK(split(P::Default, "a+b 12345") == (V{1, 1, 1, 1, 3, 2}));
    CHECK(split(P::Default, "x , y") == (V{1, 1, 1, 2}));
    // Categories from the generated table.
    CHECK(ei::unicode::category(0x4E00) == ei::unicode::kLetter);  // CJK
    CHECK(ei::unicode::category(0x0664) == ei::unicode::kNumber);  // Arabic-Indic four
    CHECK(ei::unicode::category(0x0378) == ei::unicode::kUndefined);
    CHECK(ei::unicode::is_whitespace(0x3000));
    CHECK(!ei::unicode::is_whitespace(0x1C));
    CHECK_EQ(ei::unicode::byte_to_cpt(' '), 0x120u);  // 'Ġ'
    CHECK_EQ(ei::unicode::cpt_to_byte(0x10A), '\n');  // 'Ċ'
}

TEST(tokenizer_synthetic_bpe) {
    // Merge order by rank: "a b" (0) before "ab c" (1) before "Ġ a" (2).
    GgufBuilder g;
    g.str("tokenizer.ggml.model", "gpt2");
    g.str("tokenizer.ggml.pre", "gpt-2");
    g.strs("tokenizer.ggml.tokens", {"a", "b", "c", "\xC4\xA0", "ab", "abc", "\xC4\xA0" "a", "<|end|>"});
    g.strs("tokenizer.ggml.merges", {"a b", "ab c", "\xC4\xA0 a"});
    g.u32("tokenizer.ggml.eos_token_id", 7);
    std::vector<uint8_t> bytes = g.finish();
    auto tok = from_bytes(bytes);
    std::vector<int32_t> want = {5, 3, 5};
    CHECK(tok->encode("abc abc", false, false) == want);
    CHECK_STR(tok->decode(want), std::string("abc abc"));
    CHECK(tok->is_eog(7));
    CHECK(!tok->add_bos());
    // "<|end|>" was NORMAL in the file; like llama.cpp it becomes CONTROL (an end-of-turn marker).
    CHECK(tok->is_control(7));
    CHECK_EQ(tok->eot(), 7);
}

TEST(tokenizer_synthetic_spm) {
    // Score-driven merges: the best-scoring adjacent pair first, leftmost on ties.
    const std::vector<std::string> toks = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b",
                                           "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"};
    const std::vector<float> scores = {0, 0, 0, -1, -2, -3, -1.5f, -0.5f, -0.2f};
    const std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
    for (bool prefix : {true, false}) {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "llama");
        g.strs("tokenizer.ggml.tokens", toks);
        g.f32s("tokenizer.ggml.scores", scores);
        g.i32s("tokenizer.ggml.token_type", types);
        if (!prefix) g.boolean("tokenizer.ggml.add_space_prefix", false);
        std::vector<uint8_t> bytes = g.finish();
        auto tok = from_bytes(bytes);
        CHECK_EQ(tok->add_space_prefix(), prefix);
        std::vector<int32_t> want = prefix ? std::vector<int32_t>{8, 8} : std::vector<int32_t>{7, 8};
        CHECK(tok->encode("ab ab", false, false) == want);
        CHECK_STR(tok->decode(want), std::string("ab ab"));
        // No byte tokens in this vocab: an unknown character falls back to <unk>.
        std::vector<int32_t> c = tok->encode("c", true, false);
        std::vector<int32_t> want_c = prefix ? std::vector<int32_t>{1, 3, 0} : std::vector<int32_t>{1, 0};
        CHECK(c == want_c);
        // A special token in the text resets the space prefix, as in llama.cpp.
        std::vector<int32_t> sp = tok->encode("ab</s>ab", false, true);
        std::vector<int32_t> want_sp = prefix ? std::vector<int32_t>{8, 2, 8} : std::vector<int32_t>{7, 2, 7};
        CHECK(sp == want_sp);
    }
}

TEST(tokenizer_random_input) {
    // Arbitrary bytes (malformed UTF-8, control characters, special-token fragments) must
    // encode without fault and give in-range ids; byte-level vocabs must round-trip valid UTF-8.
    const char* names[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-llama-bpe.gguf",
                           "vocab/ggml-vocab-qwen2.gguf"};
    uint64_t state = 0x243F6A8885A308D3ull;
    auto next = [&]() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    const char* pieces[] = {"<|im_start|>", "<|eot_id|>", "<s>", " ", "  ", "\n", "\r\n", "'s", "'LL", "123456",
                            "\xC3\xA9", "\xE4\xBD\xA0\xE5\xA5\xBD", "\xF0\x9F\xA6\x99", "\xE2\x80\x83", "!!", "a"};
    for (const char* name : names) {
        auto tok = load(name);
        for (int iter = 0; iter < 200; ++iter) {
            std::string text;
            const int parts = static_cast<int>(next() % 12);
            for (int p = 0; p < parts; ++p) {
                if (next() % 3 == 0) {
                    text += static_cast<char>(next() & 0xFF);
                } else {
                    text += pieces[next() % (sizeof(pieces) / sizeof(pieces[0]))];
                }
            }
            for (bool special : {false, true}) {
                std::vector<int32_t> ids = tok->encode(text, iter % 2 == 0, special);
                bool in_range = true;
                for (int32_t id : ids) in_range &= id >= 0 && id < tok->n_vocab();
                CHECK(in_range);
                (void)tok->decode(ids);
            }
        }
        // Valid UTF-8 without special-token text survives byte-level BPE unchanged.
        if (tok->kind() == ei::TokenizerKind::Bpe) {
            const std::string t = "x\xC3\xA9\t\xE4\xBD\xA0  \r\n\xF0\x9F\xA6\x99 9999 'll";
            std::string cat;
            for (int32_t id : tok->encode(t, false, false)) cat += tok->token_to_piece(id);
            CHECK_STR(cat, t);
        }
    }
}

TEST(tokenizer_errors) {
    {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "t5x");
        g.strs("tokenizer.ggml.tokens", {"a"});
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_UNSUPPORTED, "t5x");
    }
    {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "gpt2");
        g.str("tokenizer.ggml.pre", "tekken");
        g.strs("tokenizer.ggml.tokens", {"a"});
        g.strs("tokenizer.ggml.merges", {});
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_UNSUPPORTED, "tekken");
    }
    {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "llama");
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_FORMAT, "tokenizer.ggml.tokens");
    }
    {
        GgufBuilder g;
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_FORMAT, "tokenizer.ggml.model");
    }
    {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "gpt2");
        g.str("tokenizer.ggml.pre", "qwen2");
        g.strs("tokenizer.ggml.tokens", {"a", "b"});
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_FORMAT, "tokenizer.ggml.merges");
    }
    {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "llama");
        g.strs("tokenizer.ggml.tokens", {"a", "b"});
        g.f32s("tokenizer.ggml.scores", {0.0f});
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_FORMAT, "tokenizer.ggml.scores");
    }
    {
        GgufBuilder g;
        g.str("tokenizer.ggml.model", "llama");
        g.strs("tokenizer.ggml.tokens", {"a", "b"});
        g.i32s("tokenizer.ggml.token_type", {1, 1, 1});
        std::vector<uint8_t> bytes = g.finish();
        CHECK_THROWS(from_bytes(bytes), EI_ERR_FORMAT, "tokenizer.ggml.token_type");
    }
    auto tok = load("vocab/ggml-vocab-llama-spm.gguf");
    CHECK_THROWS(tok->token_text(32000), EI_ERR_INVALID_ARGUMENT, "out of range");
    CHECK_THROWS(tok->token_to_piece(-1), EI_ERR_INVALID_ARGUMENT, "");
}
