#include "tokenizer.h"

#include <algorithm>
#include <cctype>
#include <queue>

#include "error.h"
#include "gguf.h"

namespace ei {

namespace {

// llama.cpp token types (tokenizer.ggml.token_type).
enum : uint8_t {
    kTypeUndefined = 0,
    kTypeNormal = 1,
    kTypeUnknown = 2,
    kTypeControl = 3,
    kTypeUserDefined = 4,
    kTypeUnused = 5,
    kTypeByte = 6,
};
enum : uint8_t { kLStrip = 1, kRStrip = 2 };

const char kSpmSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

bool ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

const Value& require_array(const GgufFile& f, const char* key, ei_value_type elem, bool numeric) {
    const Value* v = f.find(key);
    if (!v) fail(EI_ERR_FORMAT, f.path() + ": missing " + key);
    bool ok = v->type == EI_VALUE_ARRAY &&
              (numeric ? (v->elem_type != EI_VALUE_STRING && v->elem_type != EI_VALUE_ARRAY) : v->elem_type == elem);
    if (!ok) fail(EI_ERR_FORMAT, f.path() + ": " + key + " is not an array of " + (numeric ? "numbers" : "strings"));
    return *v;
}

size_t table_size(size_t n) {  // power of two, at most half full
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    return cap;
}

inline uint32_t text_hash(std::string_view s) { return static_cast<uint32_t>(std::hash<std::string_view>()(s)); }

inline size_t key_slot(uint64_t key, size_t mask) {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

constexpr uint64_t kEmptyKey = ~0ull;

bool one_of(std::string_view s, std::initializer_list<const char*> names) {
    for (const char* n : names)
        if (s == n) return true;
    return false;
}

}  // namespace

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
    const std::string& label = f.path();
    const Value* model_v = f.find("tokenizer.ggml.model");
    if (!model_v) fail(EI_ERR_FORMAT, label + ": missing tokenizer.ggml.model");
    const std::string model = f.get_string("tokenizer.ggml.model");
    const std::string pre = f.get_string("tokenizer.ggml.pre", "");

    std::unique_ptr<Tokenizer> t(new Tokenizer());
    // Defaults per model family, as llama.cpp sets them before reading the optional keys.
    if (model == "llama") {
        t->kind_ = TokenizerKind::Spm;
        t->bos_ = 1;
        t->eos_ = 2;
        t->unk_ = 0;
        t->add_bos_ = true;
        t->add_space_prefix_ = true;
        t->pre_ = pre.empty() ? "default" : pre;  // SPM has no pre-tokenizer; the key is ignored
    } else if (model == "gpt2") {
        t->kind_ = TokenizerKind::Bpe;
        t->bos_ = 11;
        t->eos_ = 11;
        t->clean_spaces_ = true;
        t->pre_ = pre.empty() ? "default" : pre;
        using P = unicode::PreTokenizer;
        if (pre.empty() || pre == "default") {
            t->pre_kind_ = P::Default;
        } else if (one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
            t->pre_kind_ = P::Llama3;
            t->ignore_merges_ = true;
            t->add_bos_ = true;
        } else if (one_of(pre, {"dbrx", "smaug-bpe"})) {
            t->pre_kind_ = P::Llama3;
        } else if (one_of(pre, {"qwen2", "deepseek-r1-qwen"})) {
            t->pre_kind_ = P::Qwen2;
            t->clean_spaces_ = false;
        } else if (one_of(pre, {"megrez", "stablelm2"})) {
            t->pre_kind_ = P::Qwen2;
        } else if (one_of(pre, {"gpt-2", "phi-2", "roberta-bpe", "gigachat", "mpt", "olmo", "jais"})) {
            t->pre_kind_ = P::Gpt2;
        } else {
            fail(EI_ERR_UNSUPPORTED, label + ": unsupported tokenizer.ggml.pre '" + pre + "'");
        }
    } else {
        fail(EI_ERR_UNSUPPORTED, label + ": unsupported tokenizer.ggml.model '" + model + "'");
    }
    t->add_space_prefix_ = f.get_bool("tokenizer.ggml.add_space_prefix", t->add_space_prefix_);
    t->add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", t->add_bos_);

    // Vocabulary.
    const Value& toks = require_array(f, "tokenizer.ggml.tokens", EI_VALUE_STRING, false);
    const size_t n = toks.strs.size();
    if (n == 0) fail(EI_ERR_FORMAT, label + ": tokenizer.ggml.tokens is empty");
    if (n > 0x7FFFFFFF) fail(EI_ERR_FORMAT, label + ": tokenizer.ggml.tokens is too large");
    t->texts_.resize(n);
    for (size_t i = 0; i < n; ++i) {
        // llama.cpp renames empty tokens so that none can match empty text.
        t->texts_[i] = toks.strs[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : std::string(toks.strs[i]);
    }
    t->scores_.assign(n, 0.0f);
    if (f.find("tokenizer.ggml.scores")) {
        const Value& sc = require_array(f, "tokenizer.ggml.scores", EI_VALUE_FLOAT32, true);
        if (static_cast<size_t>(sc.count) != n) fail(EI_ERR_FORMAT, label + ": tokenizer.ggml.scores has " +
                                                                   std::to_string(sc.count) + " entries for " +
                                                                   std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; ++i) t->scores_[i] = static_cast<float>(sc.array_float(static_cast<int64_t>(i)));
    }
    t->type_.assign(n, kTypeNormal);
    if (f.find("tokenizer.ggml.token_type")) {
        const Value& ty = require_array(f, "tokenizer.ggml.token_type", EI_VALUE_INT32, true);
        if (static_cast<size_t>(ty.count) != n) fail(EI_ERR_FORMAT, label + ": tokenizer.ggml.token_type has " +
                                                                   std::to_string(ty.count) + " entries for " +
                                                                   std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; ++i) {
            int64_t v = ty.array_int(static_cast<int64_t>(i));
            t->type_[i] = (v >= kTypeNormal && v <= kTypeByte) ? static_cast<uint8_t>(v) : static_cast<uint8_t>(kTypeUndefined);
        }
    }
    t->strip_.assign(n, 0);
    t->index_.assign(table_size(n), IndexSlot{0, -1});
    const size_t imask = t->index_.size() - 1;
    for (size_t i = 0; i < n; ++i) {
        const std::string& text = t->texts_[i];
        const uint32_t h = text_hash(text);
        for (size_t s = h & imask;; s = (s + 1) & imask) {
            IndexSlot& slot = t->index_[s];
            if (slot.id < 0 || (slot.hash == h && t->texts_[slot.id] == text)) {
                slot = {h, static_cast<int32_t>(i)};  // a duplicated text keeps its last id
                break;
            }
        }
    }

    // Special ids from the file override the defaults when in range.
    const auto read_id = [&](const char* key, int32_t& id) {
        if (!f.find(key)) return;
        int64_t v = f.get_int(key, -1);
        if (v >= 0 && v < static_cast<int64_t>(n)) id = static_cast<int32_t>(v);
    };
    read_id("tokenizer.ggml.bos_token_id", t->bos_);
    read_id("tokenizer.ggml.eos_token_id", t->eos_);
    read_id("tokenizer.ggml.eot_token_id", t->eot_);
    read_id("tokenizer.ggml.eom_token_id", t->eom_);
    read_id("tokenizer.ggml.unknown_token_id", t->unk_);
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
    read_id("tokenizer.ggml.prefix_token_id", fim_pre);  // deprecated spellings first
    read_id("tokenizer.ggml.suffix_token_id", fim_suf);
    read_id("tokenizer.ggml.middle_token_id", fim_mid);
    read_id("tokenizer.ggml.fim_pre_token_id", fim_pre);
    read_id("tokenizer.ggml.fim_suf_token_id", fim_suf);
    read_id("tokenizer.ggml.fim_mid_token_id", fim_mid);
    read_id("tokenizer.ggml.fim_pad_token_id", fim_pad);
    read_id("tokenizer.ggml.fim_rep_token_id", fim_rep);
    read_id("tokenizer.ggml.fim_sep_token_id", fim_sep);
    for (int32_t* id : {&t->bos_, &t->eos_, &t->unk_})
        if (*id >= static_cast<int32_t>(n)) *id = -1;  // a family default past a tiny vocab

    // llama.cpp finds chat/FIM markers by text when the file does not name them, and forces
    // such tokens to CONTROL (so they are not matched in text unless parse_special).
    Tokenizer& tk = *t;
    const auto detect = [&tk](int32_t& id, std::initializer_list<const char*> names) {
        for (const char* name : names) {
            int32_t found = tk.lookup(name);
            if (found < 0) continue;
            if (id < 0) id = found;
            if (found == id) tk.type_[found] = kTypeControl;
            return;
        }
    };
    if (t->eot_ < 0)
        detect(t->eot_, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>",
                         "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>"});
    if (t->eom_ < 0) detect(t->eom_, {"<|eom_id|>"});
    if (fim_pre < 0)
        detect(fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>"});
    if (fim_suf < 0)
        detect(fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>"});
    if (fim_mid < 0)
        detect(fim_mid, {"<|fim_middle|>", "<fim-middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>"});
    if (fim_pad < 0) detect(fim_pad, {"<|fim_pad|>", "<fim-pad>", "<PAD>"});
    if (fim_rep < 0) detect(fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"});
    if (fim_sep < 0) detect(fim_sep, {"<|file_sep|>"});

    // End-of-generation set: FIM pad/repo/sep, every token whose text marks an end of turn or
    // text, and eos/eot/eom.
    for (int32_t id : {fim_pad, fim_rep, fim_sep, t->eos_, t->eot_, t->eom_})
        if (id >= 0) t->eog_.push_back(id);
    for (const char* name : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
                             "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>",
                             "<end_of_utterance>"}) {
        int32_t id = t->lookup(name);
        if (id < 0) continue;
        t->eog_.push_back(id);
        t->type_[id] = kTypeControl;
    }
    std::sort(t->eog_.begin(), t->eog_.end());
    t->eog_.erase(std::unique(t->eog_.begin(), t->eog_.end()), t->eog_.end());

    // Tokens split out of the text before tokenization, longest first.
    for (size_t i = 0; i < n; ++i) {
        uint8_t ty = t->type_[i];
        if (ty == kTypeControl || ty == kTypeUserDefined || ty == kTypeUnknown)
            t->special_.push_back(static_cast<int32_t>(i));
    }
    std::stable_sort(t->special_.begin(), t->special_.end(),
                     [&](int32_t a, int32_t b) { return tk.texts_[a].size() > tk.texts_[b].size(); });

    // llama.cpp's per-model attribute fix-up that matters for supported vocabs: Phi-3 strips
    // whitespace after its special tokens.
    std::string name = f.get_string("general.name", "");
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        for (int32_t id : t->special_) t->strip_[id] |= kRStrip;
        if (int32_t id = t->lookup("</s>"); id >= 0) t->strip_[id] |= kRStrip;
        for (const char* s : {"<unk>", "<s>", "<|endoftext|>"})
            if (int32_t id = t->lookup(s); id >= 0) t->strip_[id] &= static_cast<uint8_t>(~kRStrip);
    }

    if (t->kind_ == TokenizerKind::Spm) {
        // Byte fallback: <0xNN> (upper-case hex), else the byte itself as a token.
        static const char* hex = "0123456789ABCDEF";
        for (int b = 0; b < 256; ++b) {
            const char name_buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            int32_t id = t->lookup(std::string_view(name_buf, 6));
            if (id < 0) {
                const char c = static_cast<char>(b);
                id = t->lookup(std::string_view(&c, 1));
            }
            t->byte_token_[b] = id >= 0 ? id : t->unk_;
        }
    } else {
        const Value& merges = require_array(f, "tokenizer.ggml.merges", EI_VALUE_STRING, false);
        if (merges.strs.size() > 0x7FFFFFFF) fail(EI_ERR_FORMAT, label + ": tokenizer.ggml.merges is too large");  // ranks are int32
        t->merges_.assign(table_size(merges.strs.size()), MergeSlot{kEmptyKey, -1});
        const size_t mmask = t->merges_.size() - 1;
        for (size_t i = 0; i < merges.strs.size(); ++i) {
            std::string_view m = merges.strs[i];
            // Split at the first space after the first byte, as llama.cpp does.
            size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
            if (sp == std::string_view::npos) continue;
            std::string_view left = m.substr(0, sp), right = m.substr(sp + 1);
            int32_t l = t->lookup(left), r = t->lookup(right);
            const int32_t rank = static_cast<int32_t>(i);
            if (l >= 0 && r >= 0) {
                const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
                for (size_t s = key_slot(key, mmask);; s = (s + 1) & mmask) {
                    MergeSlot& slot = t->merges_[s];
                    if (slot.key == key) break;  // duplicate merge: the first rank stands
                    if (slot.key == kEmptyKey) {
                        slot = {key, rank};
                        break;
                    }
                }
            } else {
                std::string key = std::to_string(left.size()) + ':';
                key.append(left).append(right);
                t->merges_text_.emplace(std::move(key), rank);
            }
        }
    }
    return t;
}

int32_t Tokenizer::lookup(std::string_view text) const {
    const uint32_t h = text_hash(text);
    const size_t mask = index_.size() - 1;
    for (size_t s = h & mask;; s = (s + 1) & mask) {
        const IndexSlot& slot = index_[s];
        if (slot.id < 0) return -1;
        if (slot.hash == h && texts_[slot.id] == text) return slot.id;
    }
}

// ------------------------------------------------------------------------ encode

void Tokenizer::partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
    out.clear();
    if (text.empty()) return;
    out.push_back({-1, 0, text.size()});
    std::vector<Fragment> next;
    for (int32_t id : special_) {
        const uint8_t ty = type_[id];
        if (!parse_special && (ty == kTypeControl || ty == kTypeUnknown)) continue;
        const std::string& tok = texts_[id];
        // Cheap reject: most special tokens never occur.
        if (text.find(tok) == std::string_view::npos) continue;
        next.clear();
        for (const Fragment& fr : out) {
            if (fr.token >= 0) {
                next.push_back(fr);
                continue;
            }
            const size_t end = fr.off + fr.len;
            const std::string_view window = text.substr(0, end);
            size_t cur = fr.off;
            size_t m;
            while (cur < end && (m = window.find(tok, cur)) != std::string_view::npos) {
                size_t left_end = m;
                if (strip_[id] & kLStrip)
                    while (left_end > cur && ascii_space(text[left_end - 1])) --left_end;
                if (left_end > cur) next.push_back({-1, cur, left_end - cur});
                next.push_back({id, 0, 0});
                cur = m + tok.size();
                if (strip_[id] & kRStrip)
                    while (cur < end && ascii_space(text[cur])) ++cur;
            }
            if (cur < end) next.push_back({-1, cur, end - cur});
        }
        out.swap(next);
    }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    return encode_from(text, add_bos, parse_special, true);
}

std::vector<int32_t> Tokenizer::encode_after(int32_t prev, std::string_view text, bool parse_special) const {
    const bool after_special = prev < 0 || is_special(prev);
    if (prev >= 0 && after_special && (strip_[prev] & kRStrip)) {
        while (!text.empty() && ascii_space(text.front())) text.remove_prefix(1);
    }
    return encode_from(text, false, parse_special, after_special);
}

std::vector<int32_t> Tokenizer::encode_from(std::string_view text, bool add_bos, bool parse_special,
                                            bool after_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    std::vector<Fragment> frags;
    partition(text, parse_special, frags);
    if (kind_ == TokenizerKind::Spm) {
        // A space prefix goes before text at the start and after every special token.
        bool prev_special = after_special;
        std::string buf;
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                out.push_back(fr.token);
                prev_special = true;
                continue;
            }
            buf.clear();
            if (add_space_prefix_ && prev_special) buf += kSpmSpace;
            for (char c : text.substr(fr.off, fr.len)) {
                if (c == ' ')
                    buf += kSpmSpace;
                else
                    buf += c;
            }
            encode_spm(buf, out);
            prev_special = false;
        }
    } else {
        for (const Fragment& fr : frags) {
            if (fr.token >= 0)
                out.push_back(fr.token);
            else
                encode_bpe(text.substr(fr.off, fr.len), out);
        }
    }
    return out;
}

// SentencePiece BPE as llama.cpp runs it: start from UTF-8 characters, repeatedly merge the
// adjacent pair whose concatenation is the highest-scoring token (leftmost on ties), then
// emit each final symbol as a token or, failing that, as byte tokens.
void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
    struct Sym {
        uint32_t start, n;
        int32_t prev, next;
    };
    struct Bigram {
        float score;
        int32_t left, right;
        uint32_t size;
    };
    struct Lower {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        }
    };
    if (text.empty()) return;
    std::vector<Sym> sym;
    sym.reserve(text.size());
    for (size_t off = 0; off < text.size();) {
        size_t len = std::min(unicode::utf8_seq_len(static_cast<uint8_t>(text[off])), text.size() - off);
        int32_t idx = static_cast<int32_t>(sym.size());
        sym.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), idx - 1,
                       off + len == text.size() ? -1 : idx + 1});
        off += len;
    }
    std::vector<Bigram> storage;
    storage.reserve(sym.size());
    std::priority_queue<Bigram, std::vector<Bigram>, Lower> queue(Lower(), std::move(storage));
    const auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t size = sym[l].n + sym[r].n;
        int32_t id = lookup(text.substr(sym[l].start, size));
        if (id < 0) return;
        queue.push({scores_[id], l, r, size});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Sym& l = sym[b.left];
        Sym& r = sym[b.right];
        if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = b.left;
        try_add(l.prev, b.left);
        try_add(b.left, l.next);
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        std::string_view piece = text.substr(sym[i].start, sym[i].n);
        int32_t id = lookup(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        for (char c : piece) {
            int32_t bt = byte_token_[static_cast<uint8_t>(c)];
            if (bt >= 0) out.push_back(bt);
        }
    }
}

void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
    std::vector<uint32_t> cpts;
    unicode::decode_utf8(text, cpts);
    std::vector<uint32_t> lengths;
    unicode::pre_tokenize(pre_kind_, cpts.data(), cpts.size(), lengths);
    std::string word, utf8;
    size_t start = 0;
    for (uint32_t len : lengths) {
        // Byte-level: each UTF-8 byte of the word becomes its GPT-2 alphabet character.
        word.clear();
        for (size_t i = start; i < start + len; ++i) {
            utf8.clear();
            unicode::append_utf8(utf8, cpts[i]);
            for (char c : utf8) word += unicode::byte_to_utf8(static_cast<uint8_t>(c));
        }
        start += len;
        bpe_word(word, out);
    }
}

int32_t Tokenizer::merge_rank(int32_t left_id, std::string_view left, int32_t right_id, std::string_view right) const {
    if (left_id >= 0 && right_id >= 0) {
        const uint64_t key = (static_cast<uint64_t>(left_id) << 32) | static_cast<uint32_t>(right_id);
        const size_t mask = merges_.size() - 1;
        for (size_t s = key_slot(key, mask);; s = (s + 1) & mask) {
            const MergeSlot& slot = merges_[s];
            if (slot.key == key) return slot.rank;
            if (slot.key == kEmptyKey) return -1;
        }
    }
    if (merges_text_.empty()) return -1;
    std::string key = std::to_string(left.size()) + ':';
    key.append(left).append(right);
    auto it = merges_text_.find(key);
    return it == merges_text_.end() ? -1 : it->second;
}

// Byte-level BPE on one pre-tokenized word: merge the adjacent pair with the lowest merge rank
// (leftmost on ties) until none applies.
void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {  // Llama 3: a word that is itself a token is taken whole
        int32_t id = lookup(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    struct Sym {
        uint32_t start, n;
        int32_t prev, next;
        int32_t id;  // token of the current text, -1 if none
    };
    struct Pair {
        int32_t rank;
        int32_t left, right;
        uint32_t size;
    };
    struct Lower {
        bool operator()(const Pair& a, const Pair& b) const {
            return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
        }
    };
    std::vector<Sym> sym;
    sym.reserve(word.size());
    for (size_t off = 0; off < word.size();) {
        size_t len = std::min(unicode::utf8_seq_len(static_cast<uint8_t>(word[off])), word.size() - off);
        int32_t idx = static_cast<int32_t>(sym.size());
        sym.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), idx - 1,
                       off + len == word.size() ? -1 : idx + 1, lookup(word.substr(off, len))});
        off += len;
    }
    std::priority_queue<Pair, std::vector<Pair>, Lower> queue;
    const auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const Sym& a = sym[l];
        const Sym& b = sym[r];
        int32_t rank = merge_rank(a.id, word.substr(a.start, a.n), b.id, word.substr(b.start, b.n));
        if (rank >= 0) queue.push({rank, l, r, a.n + b.n});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
    while (!queue.empty()) {
        const Pair p = queue.top();
        queue.pop();
        Sym& l = sym[p.left];
        Sym& r = sym[p.right];
        if (l.n == 0 || r.n == 0 || l.n + r.n != p.size) continue;  // stale
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = p.left;
        l.id = lookup(word.substr(l.start, l.n));
        try_add(l.prev, p.left);
        try_add(p.left, l.next);
    }
    for (const Sym& s : sym) {
        if (s.n == 0) continue;
        if (s.id >= 0) {
            out.push_back(s.id);
            continue;
        }
        // No token for the symbol: llama.cpp emits whichever of its single bytes are tokens.
        for (size_t i = s.start; i < s.start + s.n; ++i) {
            int32_t id = lookup(word.substr(i, 1));
            if (id >= 0) out.push_back(id);
        }
    }
}

// ------------------------------------------------------------------------ decode

const std::string& Tokenizer::token_text(int32_t id) const {
    if (id < 0 || id >= n_vocab()) fail(EI_ERR_INVALID_ARGUMENT, "token id " + std::to_string(id) + " out of range");
    return texts_[id];
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
    const std::string& text = token_text(id);
    const uint8_t ty = type_[id];
    if (ty == kTypeControl || ty == kTypeUnknown) return special ? text : std::string();
    if (ty == kTypeUserDefined) return text;
    std::string out;
    if (kind_ == TokenizerKind::Spm) {
        if (ty == kTypeNormal) {
            out.reserve(text.size());
            for (size_t i = 0; i < text.size();) {
                if (text.compare(i, 3, kSpmSpace) == 0) {
                    out += ' ';
                    i += 3;
                } else {
                    out += text[i++];
                }
            }
        } else if (ty == kTypeByte) {
            // "<0xNN>": the two hex digits after "<0x" (strtol-like: stops at a non-digit).
            int v = 0;
            for (size_t i = 3; i < 5 && i < text.size() && std::isxdigit(static_cast<unsigned char>(text[i])); ++i)
                v = v * 16 + (std::isdigit(static_cast<unsigned char>(text[i])) ? text[i] - '0'
                                                                                : (std::tolower(text[i]) - 'a' + 10));
            out.push_back(static_cast<char>(v));
        }
        return out;
    }
    if (ty != kTypeNormal) return out;
    std::vector<uint32_t> cpts;
    unicode::decode_utf8(text, cpts);
    for (uint32_t cp : cpts) {
        int b = unicode::cpt_to_byte(cp);
        if (b >= 0) {
            out.push_back(static_cast<char>(b));
            continue;
        }
        // Outside the byte alphabet: llama.cpp's marker, reproduced as it writes it.
        std::string utf8;
        unicode::append_utf8(utf8, cp);
        static const char* hex = "0123456789abcdef";
        out += "[UNK_BYTE_0x";
        for (char c : utf8) {
            out += hex[static_cast<uint8_t>(c) >> 4];
            out += hex[static_cast<uint8_t>(c) & 15];
        }
        out += text;
        out += ']';
    }
    return out;
}

// llama.cpp's clean_up_tokenization_spaces, pass for pass (including its quirks).
void Tokenizer::clean_spaces(std::string& s) const {
    if (s.empty()) return;
    // " ?", " !", " .", " ,": drop the space.
    size_t n = s.size(), total = 1;
    for (size_t i = 1; i < n; ++i) {
        const char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
        s[total++] = x;
    }
    // " ' ": drop both spaces.
    n = total;
    total = 1;
    for (size_t i = 1; i < n; ++i) {
        const char x = s[i];
        if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            --total;
            s[++i] = '\0';
        }
        s[total++] = x;
    }
    // " 's", " 'm", " 're", " 've": drop the space (not before 't, 'd, 'll).
    n = total;
    total = 1;
    for (size_t i = 1; i < n; ++i) {
        const char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            const char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm') {
                --total;
            } else if (i + 2 < n) {
                const char x2 = s[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
            }
        }
        s[total++] = x;
    }
    s.resize(total);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool remove_leading_space_after_bos) const {
    std::string out;
    const size_t first = (!ids.empty() && bos_ >= 0 && ids[0] == bos_) ? 1 : 0;
    const bool strip = add_space_prefix_ && remove_leading_space_after_bos;
    for (size_t i = 0; i < ids.size(); ++i) {
        std::string piece = token_to_piece(ids[i], false);
        if (strip && i == first && !piece.empty() && piece[0] == ' ')
            out.append(piece, 1, std::string::npos);
        else
            out += piece;
    }
    if (clean_spaces_) clean_spaces(out);
    return out;
}

bool Tokenizer::is_eog(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

bool Tokenizer::is_control(int32_t id) const { return id >= 0 && id < n_vocab() && type_[id] == kTypeControl; }

bool Tokenizer::is_special(int32_t id) const {
    if (id < 0 || id >= n_vocab()) return false;
    const uint8_t ty = type_[id];
    return ty == kTypeControl || ty == kTypeUnknown || ty == kTypeUserDefined;
}

int32_t Tokenizer::find_token(std::string_view text) const { return lookup(text); }

}  // namespace ei
