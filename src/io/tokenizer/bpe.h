// The BPE model of a Hugging Face tokenizer.json: vocabulary, ranked merges, byte fallback.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sy::io::tok {

struct BpeOptions {
  std::optional<int32_t> unk_id;  // emitted for characters missing from the vocabulary
  bool fuse_unk = false;          // consecutive unknowns become one unk
  bool byte_fallback = false;     // missing characters become <0xXX> tokens instead
  bool ignore_merges = false;     // a word found whole in the vocabulary is emitted as is
};

class BpeModel {
 public:
  // `merges` holds (left, right) strings, best first; `ranks`, when not empty, gives each merge
  // its priority instead (lower first; equal ranks go leftmost first, as SentencePiece scores
  // do). Throws sy::Error "<name>: <field>[i]: ..." when a merge names a token, or produces
  // one, that is not in the vocabulary.
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& name, const std::vector<int32_t>& ranks = {},
           std::string_view field = "model.merges");

  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> find(std::string_view token) const;
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  // Byte value of a "<0xXX>" byte-fallback token, or -1.
  static int fallback_byte(std::string_view token);

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions options_;
};

}  // namespace sy::io::tok
