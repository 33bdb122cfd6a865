// Utf8Assembler and StopMatcher: every split point, ill-formed input against Python's
// errors="replace" decoding, stop strings spanning pushes, and a random model check.
#include <cstdint>
#include <string>
#include <vector>

#include "check.h"
#include "text_stream.h"

namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

std::string unhex(const std::string& h) {
    std::string out;
    for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
    return out;
}

// Strict UTF-8 check written independently of the assembler (decode, then validate the
// code point and the shortest form).
bool valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char b = static_cast<unsigned char>(s[i]);
        int n;
        uint32_t cp;
        if (b < 0x80) { n = 0; cp = b; }
        else if ((b & 0xE0) == 0xC0) { n = 1; cp = b & 0x1F; }
        else if ((b & 0xF0) == 0xE0) { n = 2; cp = b & 0x0F; }
        else if ((b & 0xF8) == 0xF0) { n = 3; cp = b & 0x07; }
        else return false;
        if (n > 0 && i + static_cast<size_t>(n) >= s.size()) return false;  // truncated
        for (int k = 1; k <= n; ++k) {
            const unsigned char c = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
            if ((c & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        static const uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += static_cast<size_t>(n) + 1;
    }
    return true;
}

// Small deterministic generator for the randomised checks.
struct Lcg {
    uint64_t s;
    uint32_t next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<uint32_t>(s >> 33);
    }
    uint32_t below(uint32_t n) { return next() % n; }
};

// "aé€😀中" and friends: 1-, 2-, 3- and 4-byte characters side by side.
const std::string kMixed = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xE4\xB8\xAD z\xC3\xBF\xF4\x8F\xBF\xBF.";

std::string assemble_in_pieces(const std::string& bytes, const std::vector<size_t>& cuts, bool* all_valid) {
    ei::Utf8Assembler a;
    std::string out;
    size_t prev = 0;
    *all_valid = true;
    auto take = [&](const std::string& piece) {
        if (!valid_utf8(piece)) *all_valid = false;
        out += piece;
    };
    for (size_t c : cuts) {
        take(a.push(std::string_view(bytes).substr(prev, c - prev)));
        prev = c;
    }
    take(a.push(std::string_view(bytes).substr(prev)));
    take(a.flush());
    return out;
}

}  // namespace

TEST(utf8_valid_helper_sanity) {
    CHECK(valid_utf8(kMixed));
    CHECK(!valid_utf8("\xC3"));
    CHECK(!valid_utf8("\xED\xA0\x80"));
    CHECK(!valid_utf8("\xC0\xAF"));
}

TEST(utf8_ascii_passes_straight_through) {
    ei::Utf8Assembler a;
    CHECK(a.push("hello ") == "hello ");
    CHECK(a.push("") == "");
    CHECK(a.push("world") == "world");
    CHECK(!a.pending());
    CHECK(a.flush() == "");
}

TEST(utf8_every_single_and_double_split_reassembles) {
    bool valid = true;
    for (size_t i = 0; i <= kMixed.size(); ++i) {
        CHECK(assemble_in_pieces(kMixed, {i}, &valid) == kMixed);
        CHECK(valid);
        for (size_t j = i; j <= kMixed.size(); ++j) {
            CHECK(assemble_in_pieces(kMixed, {i, j}, &valid) == kMixed);
            CHECK(valid);
        }
    }
}

TEST(utf8_byte_by_byte_emits_each_character_on_its_last_byte) {
    ei::Utf8Assembler a;
    std::vector<std::string> got;
    for (char c : kMixed) got.push_back(a.push(std::string(1, c)));
    CHECK(a.flush() == "");
    // Walk the expected characters: all bytes but the last of each give "".
    size_t i = 0, k = 0;
    while (i < kMixed.size()) {
        const unsigned char b = static_cast<unsigned char>(kMixed[i]);
        const size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        for (size_t m = 0; m + 1 < len; ++m) CHECK(got[k++].empty());
        CHECK(got[k++] == kMixed.substr(i, len));
        i += len;
    }
    CHECK_EQ(k, got.size());
}

TEST(utf8_incomplete_tail_is_held_then_flushed_as_fffd) {
    ei::Utf8Assembler a;
    CHECK(a.push("x\xE2\x82") == "x");
    CHECK(a.pending());
    CHECK(a.flush() == kFFFD);
    CHECK(!a.pending());
    CHECK(a.push("\xAC") == kFFFD);  // a stray continuation after the flush
    // A held prefix followed by a byte that cannot continue it is replaced, not held.
    CHECK(a.push("\xE2") == "");
    CHECK(a.push("y") == kFFFD + "y");
    CHECK(!a.pending());
    CHECK(a.push("\xF0\x9F") == "");
    CHECK(a.push("\x98") == "");
    CHECK(a.push("\x80!") == "\xF0\x9F\x98\x80!");
}

TEST(utf8_ill_formed_matches_python_replace) {
    struct Case {
        std::string in, want;
    };
    const std::vector<Case> cases = {
        {"\x80", kFFFD},
        {"\xC3(", kFFFD + "("},
        {"\xC0\xAF", kFFFD + kFFFD},                        // overlong
        {"\xED\xA0\x80", kFFFD + kFFFD + kFFFD},            // surrogate
        {"\xF0\x9F\x98" "A", kFFFD + "A"},                  // truncated 4-byte: one U+FFFD
        {"\xF5", kFFFD},
        {"\xF4\x90\x80\x80", kFFFD + kFFFD + kFFFD + kFFFD},  // past U+10FFFF
        {"\xE2\x82\xE2\x82\xAC", kFFFD + "\xE2\x82\xAC"},
        {"a\xFF\xFE" "b", "a" + kFFFD + kFFFD + "b"},
        {"\xE0\x80\x80", kFFFD + kFFFD + kFFFD},
        {"\xC2", kFFFD},
    };
    // Random byte soup, expected output from Python's bytes.decode("utf-8", "replace").
    const std::vector<std::pair<const char*, const char*>> hex = {
        {"c290e0f57f80f08fdff17fefa07f80e1e180bf80",
         "c290efbfbdefbfbd7fefbfbdefbfbdefbfbdefbfbdefbfbd7fefbfbd7fefbfbdefbfbde180bfefbfbd"},
        {"f0e17ff18fbff5f5f17ff1f1e07fbf7ff090c1e1",
         "efbfbdefbfbd7fefbfbdefbfbdefbfbdefbfbd7fefbfbdefbfbdefbfbd7fefbfbd7fefbfbdefbfbdefbfbd"},
        {"90f08ff1c1f0ff9f8ff1f1f5a0df8ff080f17ff4",
         "efbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbddf8fefbfbdefbfbdefbfbd7fefbf"
         "bd"},
        {"edc1f4808fefe19fc290eee17fff80f0f1c2c2df",
         "efbfbdefbfbdefbfbdefbfbdefbfbdc290efbfbdefbfbd7fefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbd"},
        {"f4eef1ed8080c0eeff807fc1f5f1ffedc1e0ffdf",
         "efbfbdefbfbdefbfbded8080efbfbdefbfbdefbfbdefbfbd7fefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbd"},
        {"41eddf9ff48fee7fa0c190bfe0e0ee809fede0f0",
         "41efbfbddf9fefbfbdefbfbd7fefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdee809fefbfbdefbfbdefbfbd"},
        {"c090e1f0c0e1dfffe0bf90809f90bfffbf41eef1",
         "efbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbde0bf90efbfbdefbfbdefbfbdefbfbdefbfbdefbfbd41efbfbdefbfbd"},
        {"9fc0c14190e1f0dff4f1c290eff4f5ff7fedfff0",
         "efbfbdefbfbdefbfbd41efbfbdefbfbdefbfbdefbfbdefbfbdefbfbdc290efbfbdefbfbdefbfbdefbfbd7fefbfbdefbfbdefbfbd"},
        {"e0e0e0e08feef5e07fa080a0ed9f8fc2f47f8f41",
         "efbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbdefbfbd7fefbfbdefbfbdefbfbded9f8fefbfbdefbfbd7fefbfbd41"},
    };
    std::vector<Case> all = cases;
    for (const auto& h : hex) all.push_back({unhex(h.first), unhex(h.second)});
    for (const auto& c : all) {
        bool valid = true;
        CHECK(assemble_in_pieces(c.in, {}, &valid) == c.want);
        CHECK(valid);
        // The same result whatever the split, including byte by byte.
        for (size_t i = 0; i <= c.in.size(); ++i) CHECK(assemble_in_pieces(c.in, {i}, &valid) == c.want);
        std::vector<size_t> every;
        for (size_t i = 1; i < c.in.size(); ++i) every.push_back(i);
        CHECK(assemble_in_pieces(c.in, every, &valid) == c.want);
        CHECK(valid);
    }
}

TEST(utf8_random_bytes_split_invariant) {
    Lcg r{12345};
    const unsigned char pool[] = {0x41, 0x80, 0xA0, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0x9F, 0x8F};
    for (int t = 0; t < 300; ++t) {
        std::string s;
        const size_t n = r.below(40);
        for (size_t i = 0; i < n; ++i) s += static_cast<char>(pool[r.below(sizeof pool)]);
        bool valid = true;
        const std::string whole = assemble_in_pieces(s, {}, &valid);
        CHECK(valid);
        std::vector<size_t> cuts;
        for (size_t i = 1; i < s.size(); ++i)
            if (r.below(3) == 0) cuts.push_back(i);
        CHECK(assemble_in_pieces(s, cuts, &valid) == whole);
        CHECK(valid);
    }
}

TEST(stop_no_stops_passes_everything) {
    ei::StopMatcher m({});
    CHECK(m.push("abc") == "abc");
    CHECK(m.push("<|im_end|>") == "<|im_end|>");
    CHECK(!m.stopped());
    CHECK(m.flush() == "");
    ei::StopMatcher e({"", ""});  // empty stop strings are ignored
    CHECK(e.push("x") == "x");
    CHECK(!e.stopped());
}

TEST(stop_within_one_push) {
    ei::StopMatcher m({"<|im_end|>"});
    CHECK(m.push("Hello<|im_end|>junk") == "Hello");
    CHECK(m.stopped());
    CHECK(m.matched() == "<|im_end|>");
    CHECK(m.push("more") == "");
    CHECK(m.flush() == "");
}

TEST(stop_spanning_pushes) {
    ei::StopMatcher m({"<|im_end|>"});
    CHECK(m.push("Hello<|im") == "Hello");
    CHECK(!m.stopped());
    CHECK(m.push("_en") == "");
    CHECK(m.push("d|>after") == "");
    CHECK(m.stopped());
    // A false start is released as soon as it cannot match any more.
    ei::StopMatcher f({"<|im_end|>"});
    CHECK(f.push("a<|i") == "a");
    CHECK(f.push("x") == "<|ix");
    CHECK(f.push("<") == "");
    CHECK(f.flush() == "<");  // end of stream releases the held suffix
    CHECK(!f.stopped());
}

TEST(stop_overlapping_prefixes) {
    // "aaab" against "aab": the held "aa" must slide, not be dropped.
    ei::StopMatcher m({"aab"});
    CHECK(m.push("a") == "");
    CHECK(m.push("a") == "");
    CHECK(m.push("a") == "a");
    CHECK(m.push("b") == "");
    CHECK(m.stopped());
    // Several stops: the earliest occurrence wins.
    ei::StopMatcher s({"</s>", "[INST]"});
    CHECK(s.push("x[INST]y</s>") == "x");
    CHECK(s.matched() == "[INST]");
    // A shorter stop completing inside a longer candidate.
    ei::StopMatcher t({"<|eot_id|>", "<|e"});
    CHECK(t.push("ok<|") == "ok");
    CHECK(t.push("eot") == "");
    CHECK(t.matched() == "<|e");
}

TEST(stop_random_model_check) {
    // Random text over a tiny alphabet, random splits; the concatenated output must be
    // the text up to the first stop occurrence, and held text never exceeds the longest
    // stop string minus one.
    const std::vector<std::string> stops = {"abc", "cab", "bb", "acca"};
    Lcg r{777};
    for (int t = 0; t < 2000; ++t) {
        std::string text;
        const size_t n = r.below(30);
        for (size_t i = 0; i < n; ++i) text += "abc"[r.below(3)];
        size_t first = std::string::npos;
        for (const auto& s : stops) first = std::min(first, text.find(s));
        const std::string want = first == std::string::npos ? text : text.substr(0, first);

        ei::StopMatcher m(stops);
        std::string got;
        size_t fed = 0;
        while (fed < text.size()) {
            const size_t len = 1 + r.below(5);
            const std::string piece = text.substr(fed, len);
            fed += piece.size();
            got += m.push(piece);
            if (!m.stopped()) CHECK(got.size() + 3 >= fed);  // at most max_len - 1 held
        }
        got += m.flush();
        CHECK(got == want);
        CHECK_EQ(m.stopped(), first != std::string::npos);
    }
}

TEST(pipeline_utf8_then_stop_strings) {
    // Token bytes cut mid-character, with a non-ASCII stop string: the generation loop's
    // order (assemble, then match).
    const std::string text = "\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82\n\xE5\x86\x8D\xE8\xA7\x81";  // 你好。\n再见
    const std::string stop = "\xE3\x80\x82\n";                                                // 。\n
    for (size_t step = 1; step <= 5; ++step) {
        ei::Utf8Assembler a;
        ei::StopMatcher m({stop});
        std::string got;
        for (size_t i = 0; i < text.size() && !m.stopped(); i += step) {
            const std::string piece = m.push(a.push(text.substr(i, step)));
            CHECK(valid_utf8(piece));
            got += piece;
        }
        if (!m.stopped()) got += m.push(a.flush()) + m.flush();
        CHECK(m.stopped());
        CHECK(got == "\xE4\xBD\xA0\xE5\xA5\xBD");
    }
}
