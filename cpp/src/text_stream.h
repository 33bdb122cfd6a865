// Streaming helpers for the generation loop: token bytes go through Utf8Assembler (so a
// character split across tokens is emitted once whole), then StopMatcher (so a stop
// string split across tokens is never partly emitted).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ei {

// Turns an arbitrary byte stream into complete UTF-8 characters. An incomplete tail
// (a valid prefix of a character) is held until the next push; ill-formed bytes become
// U+FFFD, one per maximal ill-formed subpart (Unicode's recommended practice, the same
// as Python's errors="replace"), so nothing is held forever.
class Utf8Assembler {
public:
    std::string push(std::string_view bytes);
    // End of stream: a held incomplete tail becomes one U+FFFD.
    std::string flush();
    bool pending() const { return !pending_.empty(); }

private:
    std::string pending_;  // at most 3 bytes
};

// Withholds text that could be the start of a stop string and stops at the first
// complete one; neither the stop string nor anything after it is emitted. Empty stop
// strings are ignored. If the input is whole UTF-8 characters and the stop strings are
// valid UTF-8, what it emits is whole characters too.
class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);
    // Returns the part of the text seen so far that is now safe to emit.
    std::string push(std::string_view text);
    // End of stream: releases the held suffix (unless stopped).
    std::string flush();
    bool stopped() const { return stopped_; }
    // The stop string that ended the stream (empty until stopped()).
    const std::string& matched() const { return matched_; }

private:
    std::vector<std::string> stops_;
    std::string held_;
    std::string matched_;
    size_t max_len_ = 0;
    bool stopped_ = false;
};

}  // namespace ei
