#include "infer/stop_strings.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace sy::infer {

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i) {
    SY_CHECK(!stops_[i].empty(), "stop strings: entry {} of {} is empty, expected at least 1 byte",
             i, stops_.size());
  }
}

std::string StopStrings::feed(std::string_view piece) {
  if (stopped()) return {};
  held_.append(piece);

  // The held text holds no whole stop string (it would have stopped), so any match ends in the
  // new piece; searching the held tail plus the piece is enough.
  size_t best_end = std::string::npos;
  size_t best_start = 0;
  for (size_t s = 0; s < stops_.size(); ++s) {
    const size_t start = held_.find(stops_[s]);
    if (start == std::string::npos) continue;
    const size_t end = start + stops_[s].size();
    if (end < best_end || (end == best_end && start < best_start)) {
      best_end = end;
      best_start = start;
      matched_ = s;
    }
  }
  if (matched_) {
    std::string out = held_.substr(0, best_start);
    held_.clear();
    return out;
  }

  size_t keep = 0;  // longest suffix of held_ that is a proper prefix of some stop string
  for (const std::string& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, held_.size()); len > keep; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(stop).substr(0, len)) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStrings::flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace sy::infer
