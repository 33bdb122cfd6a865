#include "unicode.h"

#include <algorithm>
#include <array>

namespace ei {
namespace unicode {

namespace {

Category lookup_category(uint32_t cp) {
    if (cp > 0x10FFFF) return kUndefined;
    // Last range whose first codepoint is <= cp; the table starts at 0, so there is one.
    const uint32_t* begin = kCategoryRanges;
    const uint32_t* end = kCategoryRanges + kCategoryRangeCount;
    const uint32_t key = (cp << 3) | 7u;
    const uint32_t* it = std::upper_bound(begin, end, key);
    return static_cast<Category>(*(it - 1) & 7u);
}

uint8_t compute_flags(uint32_t cp) {
    uint8_t f = kFlagAny;
    switch (lookup_category(cp)) {
        case kLetter: f |= kFlagLetter; break;
        case kNumber: f |= kFlagNumber; break;
        case kPunctuation: f |= kFlagPunct; break;
        default: break;
    }
    if (is_whitespace(cp)) f |= kFlagSpace;
    return f;
}

// Most text is ASCII or Latin-1: those codepoints skip the binary search.
struct Latin1Flags {
    std::array<uint8_t, 256> f{};
    Latin1Flags() {
        for (uint32_t cp = 0; cp < 256; ++cp) f[cp] = compute_flags(cp);
    }
};
const Latin1Flags& latin1_flags() {
    static const Latin1Flags t;
    return t;
}

struct ByteAlphabet {
    std::array<uint32_t, 256> to_cpt{};
    std::array<std::string, 256> to_utf8;
    std::array<int16_t, 512> from_cpt{};  // every codepoint of the alphabet is below 512
    ByteAlphabet() {
        // Printable bytes stand for themselves; the rest take 256, 257, ... in byte order.
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cpt[b] = printable ? b : next++;
        }
        from_cpt.fill(-1);
        for (uint32_t b = 0; b < 256; ++b) {
            from_cpt[to_cpt[b]] = static_cast<int16_t>(b);
            append_utf8(to_utf8[b], to_cpt[b]);
        }
    }
};
const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet t;
    return t;
}

constexpr uint32_t kNone = 0xFFFFFFFFu;  // "past the end" for the splitters

inline bool is_other(uint8_t f) {  // [^\s\p{L}\p{N}], and inside the text
    return f != 0 && (f & (kFlagSpace | kFlagLetter | kFlagNumber)) == 0;
}

inline uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// A view of one piece [ini, end) of the text; reads past end give 0 flags / kNone, which is
// how the patterns' lookaheads see the end of the piece.
struct Piece {
    const uint32_t* cp;
    const uint8_t* fl;
    size_t ini, end;
    uint8_t f(size_t p) const { return p < end ? fl[p] : 0; }
    uint32_t c(size_t p) const { return p < end ? cp[p] : kNone; }
};

// Emits words of a piece as consecutive lengths, skipping empty ones.
struct Emitter {
    std::vector<uint32_t>& out;
    size_t prev;
    void to(size_t e) {
        if (e > prev) out.push_back(static_cast<uint32_t>(e - prev));
        prev = e;
    }
};

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Piece& t, std::vector<uint32_t>& out) {
    Emitter em{out, t.ini};
    size_t pos = t.ini;
    while (pos < t.end) {
        const uint32_t c = t.cp[pos];
        // Contractions are case-sensitive in this pattern.
        if (c == '\'' && pos + 1 < t.end) {
            const uint32_t n1 = t.cp[pos + 1];
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                em.to(pos += 2);
                continue;
            }
            if (pos + 2 < t.end) {
                const uint32_t n2 = t.cp[pos + 2];
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
                    em.to(pos += 3);
                    continue;
                }
            }
        }
        // An optional leading space, then a run of one class.
        const uint8_t f2 = c == ' ' ? t.f(pos + 1) : t.fl[pos];
        if (f2 & kFlagLetter) {
            pos += (c == ' ');
            while (t.f(pos) & kFlagLetter) ++pos;
            em.to(pos);
            continue;
        }
        if (f2 & kFlagNumber) {
            pos += (c == ' ');
            while (t.f(pos) & kFlagNumber) ++pos;
            em.to(pos);
            continue;
        }
        if (is_other(f2)) {
            pos += (c == ' ');
            while (is_other(t.f(pos))) ++pos;
            em.to(pos);
            continue;
        }
        size_t nws = 0;
        while (t.f(pos + nws) & kFlagSpace) ++nws;
        if (nws > 1 && pos + nws < t.end) {  // \s+(?!\S): leave the last space to the next word
            em.to(pos += nws - 1);
            continue;
        }
        if (nws > 0) {
            em.to(pos += nws);
            continue;
        }
        em.to(++pos);  // unreachable for valid flags; keeps the loop finite
    }
    em.to(t.end);
}

// Llama 3 (max_digits 3) and Qwen2 (max_digits 1).
void split_llama3(const Piece& t, size_t max_digits, std::vector<uint32_t>& out) {
    Emitter em{out, t.ini};
    size_t pos = t.ini;
    while (pos < t.end) {
        const uint32_t c = t.cp[pos];
        const uint8_t f = t.fl[pos];
        // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]); no non-ASCII codepoint
        // lowercases to one of these letters, so ASCII folding is exact.
        if (c == '\'' && pos + 1 < t.end) {
            const uint32_t n1 = ascii_lower(t.cp[pos + 1]);
            if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
                em.to(pos += 2);
                continue;
            }
            if (pos + 2 < t.end) {
                const uint32_t n2 = ascii_lower(t.cp[pos + 2]);
                if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
                    em.to(pos += 3);
                    continue;
                }
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (!(c == '\r' || c == '\n' || (f & kFlagNumber))) {
            if ((f & kFlagLetter) || (t.f(pos + 1) & kFlagLetter)) {
                ++pos;
                while (t.f(pos) & kFlagLetter) ++pos;
                em.to(pos);
                continue;
            }
        }
        // \p{N}{1,max_digits}
        if (f & kFlagNumber) {
            size_t start = pos;
            while (t.f(pos) & kFlagNumber) {
                if (++pos - start >= max_digits) {
                    em.to(pos);
                    start = pos;
                }
            }
            em.to(pos);
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        const uint8_t f2 = c == ' ' ? t.f(pos + 1) : f;
        if (is_other(f2)) {
            pos += (c == ' ');
            while (is_other(t.f(pos))) ++pos;
            while (t.c(pos) == '\r' || t.c(pos) == '\n') ++pos;
            em.to(pos);
            continue;
        }
        size_t nws = 0;
        size_t after_last_newline = 0;
        while (t.f(pos + nws) & kFlagSpace) {
            const uint32_t c2 = t.cp[pos + nws];
            if (c2 == '\r' || c2 == '\n') after_last_newline = pos + nws + 1;
            ++nws;
        }
        if (after_last_newline > 0) {  // \s*[\r\n]+
            em.to(pos = after_last_newline);
            continue;
        }
        if (nws > 1 && pos + nws < t.end) {  // \s+(?!\S)
            em.to(pos += nws - 1);
            continue;
        }
        if (nws > 0) {  // \s+
            em.to(pos += nws);
            continue;
        }
        em.to(++pos);
    }
    em.to(t.end);
}

// Regex "[class]+" split as llama.cpp's std::regex fallback does it: each maximal run of the
// class is a word, and so is each stretch between runs.
template <typename Pred>
void split_runs(const Piece& t, Pred in_class, std::vector<uint32_t>& out) {
    Emitter em{out, t.ini};
    size_t i = t.ini;
    while (i < t.end) {
        if (!in_class(i)) {
            ++i;
            continue;
        }
        em.to(i);
        while (i < t.end && in_class(i)) ++i;
        em.to(i);
    }
    em.to(t.end);
}

// "[0-9][0-9][0-9]": leftmost non-overlapping triples of ASCII digits.
void split_digit_triples(const Piece& t, std::vector<uint32_t>& out) {
    Emitter em{out, t.ini};
    auto digit = [&](size_t p) { return t.cp[p] >= '0' && t.cp[p] <= '9'; };
    size_t i = t.ini;
    while (i + 3 <= t.end) {
        if (digit(i) && digit(i + 1) && digit(i + 2)) {
            em.to(i);
            em.to(i += 3);
        } else {
            ++i;
        }
    }
    em.to(t.end);
}

// Applies split to every current word and replaces the list with the refined one.
template <typename Split>
void refine(const uint32_t* cpts, const uint8_t* fl, std::vector<uint32_t>& lengths, std::vector<uint32_t>& scratch,
            Split split) {
    scratch.clear();
    size_t start = 0;
    for (uint32_t len : lengths) {
        split(Piece{cpts, fl, start, start + len}, scratch);
        start += len;
    }
    lengths.swap(scratch);
}

}  // namespace

Category category(uint32_t cp) { return lookup_category(cp); }

bool is_whitespace(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return false;
    switch (cp) {
        case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
            return true;
        default:
            return cp >= 0x2000 && cp <= 0x200A;
    }
}

uint8_t flags(uint32_t cp) { return cp < 256 ? latin1_flags().f[cp] : compute_flags(cp); }

uint32_t decode_utf8(std::string_view s, size_t& pos) {
    const size_t n = s.size();
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
    const auto cont = [&](size_t i) { return (byte(i) & 0xC0) == 0x80; };
    const uint8_t b0 = byte(pos);
    if (b0 < 0x80) {
        pos += 1;
        return b0;
    }
    uint32_t cp = 0;
    size_t len = 0;
    if ((b0 & 0xE0) == 0xC0) {
        if (pos + 1 < n && cont(pos + 1)) {
            cp = ((b0 & 0x1Fu) << 6) | (byte(pos + 1) & 0x3Fu);
            len = 2;
        }
    } else if ((b0 & 0xF0) == 0xE0) {
        if (pos + 2 < n && cont(pos + 1) && cont(pos + 2)) {
            cp = ((b0 & 0x0Fu) << 12) | ((byte(pos + 1) & 0x3Fu) << 6) | (byte(pos + 2) & 0x3Fu);
            len = 3;
        }
    } else if ((b0 & 0xF8) == 0xF0) {
        if (pos + 3 < n && cont(pos + 1) && cont(pos + 2) && cont(pos + 3)) {
            cp = ((b0 & 0x07u) << 18) | ((byte(pos + 1) & 0x3Fu) << 12) | ((byte(pos + 2) & 0x3Fu) << 6) |
                 (byte(pos + 3) & 0x3Fu);
            len = cp <= 0x10FFFF ? 4 : 0;
        }
    }
    if (len == 0) {  // continuation byte, 0xF8..0xFF, truncated or broken sequence
        pos += 1;
        return kReplacement;
    }
    pos += len;
    return cp;
}

void decode_utf8(std::string_view s, std::vector<uint32_t>& out) {
    out.clear();
    out.reserve(s.size());
    size_t pos = 0;
    while (pos < s.size()) out.push_back(decode_utf8(s, pos));
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | ((cp >> 18) & 0x07)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

uint32_t byte_to_cpt(uint8_t b) { return byte_alphabet().to_cpt[b]; }
const std::string& byte_to_utf8(uint8_t b) { return byte_alphabet().to_utf8[b]; }
int cpt_to_byte(uint32_t cp) { return cp < 512 ? byte_alphabet().from_cpt[cp] : -1; }

void pre_tokenize(PreTokenizer kind, const uint32_t* cpts, size_t n, std::vector<uint32_t>& lengths) {
    lengths.clear();
    if (n == 0) return;
    std::vector<uint8_t> fl(n);
    for (size_t i = 0; i < n; ++i) fl[i] = flags(cpts[i]);
    const Piece whole{cpts, fl.data(), 0, n};
    switch (kind) {
        case PreTokenizer::Gpt2:
            split_gpt2(whole, lengths);
            return;
        case PreTokenizer::Llama3:
            split_llama3(whole, 3, lengths);
            return;
        case PreTokenizer::Qwen2:
            split_llama3(whole, 1, lengths);
            return;
        case PreTokenizer::Default:
            break;
    }
    // Default: four passes, each refining the words of the previous one.
    std::vector<uint32_t> scratch;
    lengths.push_back(static_cast<uint32_t>(n));
    // [\p{P}\$\+<=>\^~\|]+  (llama.cpp's ASCII \p{P} is exactly Unicode's)
    refine(cpts, fl.data(), lengths, scratch, [](const Piece& t, std::vector<uint32_t>& out) {
        split_runs(t, [&](size_t i) {
            const uint32_t c = t.cp[i];
            return (t.fl[i] & kFlagPunct) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
                   c == '^' || c == '~' || c == '|';
        }, out);
    });
    refine(cpts, fl.data(), lengths, scratch, split_gpt2);
    // \p{N}+
    refine(cpts, fl.data(), lengths, scratch, [](const Piece& t, std::vector<uint32_t>& out) {
        split_runs(t, [&](size_t i) { return (t.fl[i] & kFlagNumber) != 0; }, out);
    });
    refine(cpts, fl.data(), lengths, scratch, split_digit_triples);
}

}  // namespace unicode
}  // namespace ei
