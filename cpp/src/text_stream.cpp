#include "text_stream.h"

#include <algorithm>

namespace ei {

namespace {

constexpr const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the sequence a lead byte starts and the allowed range of its second byte
// (Unicode Table 3-7, which excludes overlongs, surrogates and values past U+10FFFF);
// 0 for bytes that cannot start a sequence.
struct Lead {
    int len;
    unsigned char lo, hi;
};

Lead lead_info(unsigned char b) {
    if (b < 0x80) return {1, 0, 0};
    if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
    if (b == 0xE0) return {3, 0xA0, 0xBF};
    if (b == 0xED) return {3, 0x80, 0x9F};
    if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
    if (b == 0xF0) return {4, 0x90, 0xBF};
    if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
    if (b == 0xF4) return {4, 0x80, 0x8F};
    return {0, 0, 0};
}

}  // namespace

std::string Utf8Assembler::push(std::string_view bytes) {
    std::string buf;
    if (pending_.empty()) {
        buf.assign(bytes.data(), bytes.size());
    } else {
        buf.reserve(pending_.size() + bytes.size());
        buf = pending_;
        buf.append(bytes.data(), bytes.size());
        pending_.clear();
    }
    std::string out;
    out.reserve(buf.size());
    size_t i = 0;
    while (i < buf.size()) {
        const unsigned char b = static_cast<unsigned char>(buf[i]);
        const Lead L = lead_info(b);
        if (L.len == 1) {
            out += static_cast<char>(b);
            ++i;
            continue;
        }
        if (L.len == 0) {
            out += kReplacement;
            ++i;
            continue;
        }
        // Walk the continuation bytes; stop at the first that cannot follow.
        size_t j = 1;
        bool bad = false;
        for (; j < static_cast<size_t>(L.len); ++j) {
            if (i + j >= buf.size()) {
                pending_ = buf.substr(i);  // a valid prefix so far: wait for more
                return out;
            }
            const unsigned char c = static_cast<unsigned char>(buf[i + j]);
            const unsigned char lo = j == 1 ? L.lo : 0x80, hi = j == 1 ? L.hi : 0xBF;
            if (c < lo || c > hi) {
                bad = true;
                break;
            }
        }
        if (bad) {
            // The j bytes so far are one maximal ill-formed subpart; the offending byte
            // is looked at again as a possible lead.
            out += kReplacement;
            i += j;
        } else {
            out.append(buf, i, static_cast<size_t>(L.len));
            i += static_cast<size_t>(L.len);
        }
    }
    return out;
}

std::string Utf8Assembler::flush() {
    if (pending_.empty()) return {};
    pending_.clear();
    return kReplacement;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) {
            max_len_ = std::max(max_len_, s.size());
            stops_.push_back(std::move(s));
        }
}

std::string StopMatcher::push(std::string_view text) {
    if (stopped_) return {};
    held_.append(text.data(), text.size());
    if (stops_.empty()) {
        std::string out;
        out.swap(held_);
        return out;
    }
    // The earliest complete stop string wins. Nothing emitted earlier can be part of a
    // match: any suffix that could still start one was held back.
    size_t best = std::string::npos;
    const std::string* which = nullptr;
    for (const auto& s : stops_) {
        const size_t pos = held_.find(s);
        if (pos < best) {
            best = pos;
            which = &s;
        }
    }
    if (which != nullptr) {
        std::string out = held_.substr(0, best);
        matched_ = *which;
        held_.clear();
        stopped_ = true;
        return out;
    }
    // Hold the longest suffix that is a proper prefix of some stop string.
    size_t keep = 0;
    for (size_t k = std::min(held_.size(), max_len_ - 1); k > 0 && keep == 0; --k) {
        for (const auto& s : stops_) {
            if (s.size() > k && held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                keep = k;
                break;
            }
        }
    }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    if (!stopped_) out.swap(held_);
    held_.clear();
    return out;
}

}  // namespace ei
