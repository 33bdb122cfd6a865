// Tokenizers built from GGUF metadata (tokenizer.ggml.*), reproducing llama.cpp's
// tokenization: SentencePiece-style ("llama": score-driven merges with <0xNN> byte fallback)
// and byte-level BPE ("gpt2": merges by rank after a pre-tokenizer split chosen by
// tokenizer.ggml.pre). Special-token splitting, BOS/EOS defaults, the end-of-generation set and
// detokenization follow llama.cpp's llama-vocab.cpp behaviour.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unicode.h"

namespace ei {

class GgufFile;

enum class TokenizerKind { Spm, Bpe };

class Tokenizer {
public:
    // Throws ei::Error: EI_ERR_UNSUPPORTED for an unknown tokenizer.ggml.model or
    // tokenizer.ggml.pre (the message names it), EI_ERR_FORMAT for missing or broken arrays.
    // The tokenizer copies what it needs; the file may be closed afterwards.
    static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& f);
    ~Tokenizer();

    // add_bos prepends bos() (when the vocab has one) unconditionally: pass add_bos() for
    // llama.cpp's add_special behaviour. parse_special turns the text of CONTROL (and UNKNOWN)
    // tokens into those tokens; USER_DEFINED tokens are always matched, as in llama.cpp.
    // No EOS is ever appended.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
    // The tokens of text that follows token prev in one sequence (prev < 0: the text starts it;
    // no BOS either way). SPM puts its space prefix only at the start and after special tokens,
    // and a special token with rstrip eats the spaces after it; this applies both rules as if
    // prev's text came just before, so a sequence built in pieces gets the whole text's tokens
    // wherever the pieces meet at a special token.
    std::vector<int32_t> encode_after(int32_t prev, std::string_view text, bool parse_special) const;

    // The vocab string as stored (an empty one reads "[EMPTY_<id>]", as llama.cpp renames it).
    const std::string& token_text(int32_t id) const;
    // The bytes this token stands for: SPM "▁" -> ' ', <0xNN> -> the byte, byte-level BPE text
    // mapped back to bytes. CONTROL/UNKNOWN tokens give "" unless special; USER_DEFINED tokens
    // give their text; UNUSED/UNDEFINED ones give "".
    std::string token_to_piece(int32_t id, bool special = false) const;
    // Concatenated pieces (special tokens rendered as ""), then llama.cpp's
    // clean_up_tokenization_spaces passes for the vocabs that use them (llama3, gpt2, default;
    // not qwen2). With remove_leading_space_after_bos and an SPM vocab that adds a space
    // prefix, one leading space is dropped from the first token after an optional leading
    // BOS, so decode(encode(t, true, false)) == t.
    std::string decode(const std::vector<int32_t>& ids, bool remove_leading_space_after_bos = true) const;

    int32_t n_vocab() const { return static_cast<int32_t>(texts_.size()); }
    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    int32_t eot() const { return eot_; }  // -1 if none
    int32_t unk() const { return unk_; }  // -1 if none
    bool add_bos() const { return add_bos_; }
    bool add_space_prefix() const { return add_space_prefix_; }
    bool is_eog(int32_t id) const;
    bool is_control(int32_t id) const;
    // Whether the id is split out of text as a whole token (control, unknown, user-defined).
    bool is_special(int32_t id) const;
    // Exact vocab lookup; -1 if absent.
    int32_t find_token(std::string_view text) const;
    TokenizerKind kind() const { return kind_; }
    const std::string& pre() const { return pre_; }

private:
    Tokenizer() = default;

    struct Fragment {
        int32_t token;  // -1: raw text [off, off+len)
        size_t off, len;
    };
    void partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
    std::vector<int32_t> encode_from(std::string_view text, bool add_bos, bool parse_special, bool after_special) const;
    void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
    void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
    void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
    int32_t merge_rank(int32_t left_id, std::string_view left, int32_t right_id, std::string_view right) const;
    int32_t lookup(std::string_view text) const;
    void clean_spaces(std::string& text) const;

    TokenizerKind kind_ = TokenizerKind::Spm;
    std::string pre_;
    unicode::PreTokenizer pre_kind_ = unicode::PreTokenizer::Default;
    bool ignore_merges_ = false;
    bool clean_spaces_ = false;
    bool add_bos_ = false;
    bool add_space_prefix_ = false;

    std::vector<std::string> texts_;
    std::vector<float> scores_;
    std::vector<uint8_t> type_;   // llama.cpp token type (1 normal, 2 unknown, 3 control, ...)
    std::vector<uint8_t> strip_;  // bit 0: lstrip, bit 1: rstrip around a special token
    // Open-addressing text -> id table (ids index texts_; a duplicated text keeps its last
    // id, as in llama.cpp). Flat tables keep loading a 150K vocab to a few allocations.
    struct IndexSlot {
        uint32_t hash;
        int32_t id;  // -1: empty
    };
    std::vector<IndexSlot> index_;
    std::vector<int32_t> special_;                          // matched before tokenization, longest first
    std::vector<int32_t> eog_;                              // sorted
    int32_t byte_token_[256] = {};                          // SPM byte fallback

    // BPE merges: (left id << 32 | right id) -> rank in an open-addressing table (key ~0 is
    // empty; the first of duplicate merges wins); merges whose halves are not both tokens are
    // kept by text in merges_text_ (length-prefixed key).
    struct MergeSlot {
        uint64_t key;
        int32_t rank;
    };
    std::vector<MergeSlot> merges_;
    std::unordered_map<std::string, int32_t> merges_text_;

    int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1;
};

}  // namespace ei
