// Stop strings for streaming generation.
//
// The generate loop feeds decoded text pieces in order; StopStrings says what may be shown now
// and when a stop string has appeared, possibly spread over several pieces. Matching is on
// bytes (exact, case-sensitive). The shown text never includes any part of the stop string:
// it is cut just before it, as llama.cpp's server and the OpenAI API do.
//
//  - While no stop string has completed, feed() returns the new text minus the held-back tail:
//    the longest suffix of the text so far that is a prefix of some stop string (it may still
//    grow into one). With no stop strings nothing is held back.
//  - When stop strings complete, the one that ends first in the text wins (on a tie at its
//    end, the longest: it starts first), so the result does not depend on how the text was cut
//    into pieces. feed() returns the text before it, stopped() turns true and matched() names
//    it; later feeds return nothing.
//  - flush() at the end of generation (no stop found) returns the held-back tail.
// Held-back text is a prefix of a stop string, so for UTF-8 stop strings and UTF-8 text the
// shown text always ends on a character boundary.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sy::infer {

class StopStrings {
 public:
  // Throws sy::Error naming the entry when a stop string is empty.
  explicit StopStrings(std::vector<std::string> stops);

  // Appends `piece`; returns the text that is now safe to show (possibly empty).
  std::string feed(std::string_view piece);

  // Text held back so far; call once generation ended without a stop. Empty after a stop.
  std::string flush();

  bool stopped() const { return matched_.has_value(); }
  // Index into the constructor's list of the stop string that stopped the stream.
  std::optional<size_t> matched() const { return matched_; }
  // Bytes currently held back.
  size_t held() const { return held_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::optional<size_t> matched_;
};

}  // namespace sy::infer
