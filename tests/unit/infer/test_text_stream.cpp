#include <fmt/format.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "infer/text_stream.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/tokenizer.h"
#include "support/tokenizer_testing.h"

namespace sy::infer {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;
using Strings = std::vector<std::string>;

// Llama 2 style tokenizer.json: <unk> <s> </s>, byte tokens <0x00>..<0xFF> (ids 3-258), then
// ▁ a b ▁a ab ▁ab c (ids 259-265). The decoder turns ▁ into a space, byte tokens into bytes,
// and strips one leading space from the sequence.
constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kSpace = 259;
constexpr int32_t kA = 260;
constexpr int32_t kSpaceAb = 264;
constexpr int32_t kC = 265;
int32_t byte_token(int b) { return 3 + b; }

json sentencepiece_style() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = byte_token(b);
  const std::vector<std::string> pieces = {"▁", "a", "b", "▁a", "ab", "▁ab", "c"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = kSpace + static_cast<int>(i);
  return test::spm_bpe_tokenizer_json(vocab, {"▁ a", "a b", "▁a b"});
}

// GPT-2 byte-level: byte b is written as the code point b when printable, else 256 + n for the
// n-th unprintable byte. Vocabulary: the 256 bytes, "Ġt" "he" "Ġthe", then <|endoftext|>.
std::string byte_char(int b) {
  int n = 0;
  for (int c = 0; c < b; ++c) n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
  const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const int cp = printable ? b : 256 + n;
  if (cp < 0x80) return std::string(1, static_cast<char>(cp));
  return {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
}

json byte_level() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["Ġt"] = 256;
  vocab["he"] = 257;
  vocab["Ġthe"] = 258;
  return {{"added_tokens", {{{"id", 259}, {"content", "<|endoftext|>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", {"Ġ t", "h e", "Ġt he"}},
            {"dropout", nullptr},
            {"unk_token", nullptr}}}};
}

std::unique_ptr<io::Tokenizer> parse(const json& j) {
  return io::tok::parse_hf_tokenizer(j.dump(), "t.json");
}

// Pushes every id and flushes; returns each call's output, flush last.
Strings stream(TextStream& s, const Ids& ids) {
  Strings out;
  for (int32_t id : ids) out.push_back(s.push(id));
  out.push_back(s.flush());
  return out;
}

std::string join(const Strings& parts) {
  std::string all;
  for (const std::string& p : parts) all += p;
  return all;
}

Ids without_specials(const io::Tokenizer& t, const Ids& ids) {
  Ids out;
  for (int32_t id : ids) {
    if (!t.is_special(id)) out.push_back(id);
  }
  return out;
}

// 😀 is F0 9F 98 80: not in the vocabulary, so four byte-fallback tokens.
const Ids kEmoji = {byte_token(0xF0), byte_token(0x9F), byte_token(0x98), byte_token(0x80)};

TEST(TextStream, ByteFallbackEmojiComesOutWholeAndTheLeadingSpaceIsStripped) {
  const auto t = parse(sentencepiece_style());
  ASSERT_TRUE(t->strips_leading_space());
  Ids ids = {kBos, kSpaceAb, kSpace};
  ids.insert(ids.end(), kEmoji.begin(), kEmoji.end());
  ids.push_back(kC);
  ids.push_back(kEos);
  TextStream s(*t);
  EXPECT_EQ(stream(s, ids), (Strings{"", "ab", " ", "", "", "", "😀", "c", "", ""}));
  EXPECT_EQ(t->decode(without_specials(*t, ids)), "ab 😀c");
  // The same ids encoded from text, and other texts: the stream equals decode().
  for (const std::string text : {"ab 😀c", "😀 ab", "é😀c a", " ab", "a  b"}) {
    const Ids encoded = t->encode(text, true);
    TextStream fresh(*t);
    EXPECT_EQ(join(stream(fresh, encoded)), t->decode(without_specials(*t, encoded)))
        << "text '" << text << "'";
    EXPECT_EQ(t->decode(without_specials(*t, encoded)), text);
  }
}

TEST(TextStream, SpecialTokensShownOnRequestKeepTheSpaceAsDecodeDoes) {
  const auto t = parse(sentencepiece_style());
  Ids ids = {kBos, kSpaceAb};
  ids.insert(ids.end(), kEmoji.begin(), kEmoji.end());
  ids.push_back(kEos);
  TextStream s(*t, {.include_special = true});
  const Strings out = stream(s, ids);
  EXPECT_EQ(out, (Strings{"<s>", " ab", "", "", "", "😀", "</s>", ""}));
  EXPECT_EQ(join(out), t->decode(ids));
}

TEST(TextStream, FlushReturnsAnUnfinishedCharacterAndStartsOver) {
  const auto t = parse(sentencepiece_style());
  TextStream s(*t);
  EXPECT_EQ(stream(s, {kA, byte_token(0xF0), byte_token(0x9F)}),
            (Strings{"a", "", "", "\xF0\x9F"}));
  // A new stream: its first token loses its leading space again.
  EXPECT_EQ(stream(s, {kSpaceAb, kSpaceAb}), (Strings{"ab", " ab", ""}));
  // A special token skipped at the start does not count as the first piece.
  EXPECT_EQ(stream(s, {kBos, kBos, kSpaceAb}), (Strings{"", "", "ab", ""}));
}

TEST(TextStream, ByteLevelTokensKeepSpacesAndJoinSplitCharacters) {
  const auto t = parse(byte_level());
  ASSERT_FALSE(t->strips_leading_space());
  const Ids ids = t->encode(" the 😀<|endoftext|>", false);
  ASSERT_EQ(ids, (Ids{258, 32, 0xF0, 0x9F, 0x98, 0x80, 259}));
  TextStream s(*t);
  EXPECT_EQ(stream(s, ids), (Strings{" the", " ", "", "", "", "😀", "", ""}));
  TextStream with_special(*t, {.include_special = true});
  EXPECT_EQ(join(stream(with_special, ids)), " the 😀<|endoftext|>");
}

TEST(TextStream, BadIdIsTheTokenizersError) {
  const auto t = parse(byte_level());
  TextStream s(*t);
  try {
    s.push(260);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "tokenizer: token id 260 is out of range [0, 260)");
  }
}

}  // namespace
}  // namespace sy::infer
