#include "io/tokenizer/bpe.h"

#include <queue>

#include "core/error.h"
#include "io/tokenizer/unicode.h"

namespace sy::io::tok {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& name, const std::vector<int32_t>& ranks,
                   std::string_view field)
    : vocab_(std::move(vocab)), options_(options) {
  SY_CHECK(ranks.empty() || ranks.size() == merges.size(),
           "{}: {} merges but {} ranks (internal error)", name, merges.size(), ranks.size());
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    const auto ia = vocab_.find(a);
    const auto ib = vocab_.find(b);
    const auto ic = vocab_.find(a + b);
    SY_CHECK(ia != vocab_.end() && ib != vocab_.end(),
             "{}: {}[{}]: token '{}' is not in the vocabulary", name, field, r,
             ia == vocab_.end() ? a : b);
    SY_CHECK(ic != vocab_.end(), "{}: {}[{}]: merged token '{}' is not in the vocabulary", name,
             field, r, a + b);
    // The first (best) rank of a repeated pair wins, as in Hugging Face.
    const int32_t rank = ranks.empty() ? static_cast<int32_t>(r) : ranks[r];
    merges_.try_emplace(key(ia->second, ib->second), Merge{rank, ic->second});
  }
}

std::optional<int32_t> BpeModel::find(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

int BpeModel::fallback_byte(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  int v = 0;
  for (char c : token.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      v |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = find(word)) {
      out.push_back(*id);
      return;
    }
  }
  // Initial symbols: one per character (or per byte through fallback).
  std::vector<int32_t> ids;
  bool last_unk = false;
  for (const CodePoint& c : decode_utf8(word)) {
    const std::string_view ch = word.substr(c.offset, c.size);
    if (auto id = find(ch)) {
      ids.push_back(*id);
      last_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<int32_t> bytes;
      for (char b : ch) {
        if (auto id = find(fmt::format("<0x{:02X}>", static_cast<uint8_t>(b)))) {
          bytes.push_back(*id);
        }
      }
      if (bytes.size() == ch.size()) {
        ids.insert(ids.end(), bytes.begin(), bytes.end());
        last_unk = false;
        continue;
      }
    }
    if (options_.unk_id) {
      if (!(options_.fuse_unk && last_unk)) ids.push_back(*options_.unk_id);
      last_unk = true;
    }
  }
  // Merge the best-ranked adjacent pair until none is left: a heap of candidate pairs over a
  // doubly linked list of symbols; stale candidates are skipped when popped.
  const auto n = static_cast<int32_t>(ids.size());
  std::vector<int32_t> prev(ids.size());
  std::vector<int32_t> next(ids.size());
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;  // left symbol
    int32_t left;
    int32_t right;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    const auto it = merges_.find(key(ids[i], ids[next[i]]));
    if (it != merges_.end()) heap.push({it->second.rank, i, ids[i], ids[next[i]]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> dead(ids.size(), false);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t i = c.pos;
    if (dead[i] || next[i] < 0 || ids[i] != c.left || ids[next[i]] != c.right) continue;
    const int32_t j = next[i];
    ids[i] = merges_.at(key(c.left, c.right)).result;
    dead[j] = true;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (!dead[i]) out.push_back(ids[i]);
  }
}

}  // namespace sy::io::tok
