#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/pretokenize.h"
#include "io/tokenizer/tokenizer.h"
#include "io/tokenizer/unicode.h"
#include "support/tensor_testing.h"
#include "support/tokenizer_testing.h"

namespace sy::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;
using Pieces = std::vector<std::string_view>;

using ::sy::test::error_of;

constexpr std::string_view kQwenRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Pieces qwen(std::string_view s) { return tok::split_pieces(tok::SplitPattern::kQwen2, s); }
Pieces llama3(std::string_view s) { return tok::split_pieces(tok::SplitPattern::kLlama3, s); }
Pieces gpt2(std::string_view s) { return tok::split_pieces(tok::SplitPattern::kGpt2, s); }

TEST(TokenizerSplit, KnownRegexesAreRecognisedByTheirExactText) {
  EXPECT_EQ(tok::find_split_pattern(kQwenRegex), tok::SplitPattern::kQwen2);
  EXPECT_EQ(tok::find_split_pattern(kLlama3Regex), tok::SplitPattern::kLlama3);
  EXPECT_EQ(tok::find_split_pattern(kGpt2Regex), tok::SplitPattern::kGpt2);
  EXPECT_FALSE(tok::find_split_pattern(R"(\p{N}{1,4})").has_value());
}

TEST(TokenizerSplit, ContractionsLettersAndSpaces) {
  EXPECT_EQ(qwen("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(qwen("it's we're they've I'd I'll I'm don't"),
            (Pieces{"it", "'s", " we", "'re", " they", "'ve", " I", "'d", " I", "'ll", " I", "'m",
                    " don", "'t"}));
  EXPECT_EQ(qwen("IT'S"), (Pieces{"IT", "'S"}));      // (?i:...)
  EXPECT_EQ(gpt2("IT'S"), (Pieces{"IT", "'", "S"}));  // GPT-2's contractions are case-sensitive
  EXPECT_EQ(gpt2("it's"), (Pieces{"it", "'s"}));
  EXPECT_EQ(qwen("-abc"), (Pieces{"-abc"}));  // [^\r\n\p{L}\p{N}]?\p{L}+
  EXPECT_EQ(gpt2("-abc"), (Pieces{"-", "abc"}));
  EXPECT_EQ(gpt2("a   b"), (Pieces{"a", "  ", " b"}));  // \s+(?!\S) leaves one space to " b"
  EXPECT_EQ(gpt2("a  "), (Pieces{"a", "  "}));
  EXPECT_EQ(qwen("a  \n  b"), (Pieces{"a", "  \n", " ", " b"}));
  EXPECT_EQ(qwen("café au"), (Pieces{"café", " au"}));
}

TEST(TokenizerSplit, DigitsAreSplitPerPattern) {
  EXPECT_EQ(qwen("abc123"), (Pieces{"abc", "1", "2", "3"}));  // Qwen: \p{N} one by one
  EXPECT_EQ(llama3("12345"), (Pieces{"123", "45"}));          // Llama 3: \p{N}{1,3}
  EXPECT_EQ(gpt2("abc 123"), (Pieces{"abc", " 123"}));        // GPT-2: ?\p{N}+
  EXPECT_EQ(qwen("$100"), (Pieces{"$", "1", "0", "0"}));
  // Arabic-Indic digits are \p{N} (Nd) too.
  EXPECT_EQ(qwen("x\u0663\u0664"), (Pieces{"x", "\u0663", "\u0664"}));
}

TEST(TokenizerSplit, PunctuationRunsAndNewlines) {
  EXPECT_EQ(qwen("Hi!!! ok"), (Pieces{"Hi", "!!!", " ok"}));
  EXPECT_EQ(qwen("Hello, world!"), (Pieces{"Hello", ",", " world", "!"}));
  EXPECT_EQ(qwen("a\n\nb"), (Pieces{"a", "\n\n", "b"}));
  EXPECT_EQ(qwen("!!\n\nx"), (Pieces{"!!\n\n", "x"}));  // [\r\n]* after punctuation
  EXPECT_EQ(qwen("hello\n"), (Pieces{"hello", "\n"}));
  EXPECT_EQ(gpt2("a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
}

TEST(TokenizerSplit, MultiByteUtf8) {
  EXPECT_EQ(qwen("你好世界 你好"), (Pieces{"你好世界", " 你好"}));  // CJK are letters (Lo)
  EXPECT_EQ(qwen("hi 👋🏽!"), (Pieces{"hi", " 👋🏽!"}));    // emoji are neither
  // U+00A0 is \s but not ' ': it joins the next word in Qwen, stands alone in GPT-2.
  EXPECT_EQ(qwen("a\u00A0b"), (Pieces{"a", "\u00A0b"}));
  EXPECT_EQ(gpt2("a\u00A0b"), (Pieces{"a", "\u00A0", "b"}));
  // Invalid bytes are "other" and are kept.
  EXPECT_EQ(qwen("a\xff\xfe b"), (Pieces{"a", "\xff\xfe", " b"}));
}

// GPT-2's byte map, written out from its definition for the test.
std::string mapped(uint8_t b) {
  int n = 0;
  for (int c = 0; c < 256; ++c) {
    const bool keep = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
    if (c == b) {
      const int cp = keep ? c : 256 + n;
      std::string out;
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
      return out;
    }
    if (!keep) ++n;
  }
  return "";
}

// Byte-level BPE: ids 0-255 are the bytes, then a handful of merges, then two special tokens.
json byte_level_json(std::string_view regex, bool pair_merges = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[mapped(static_cast<uint8_t>(b))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"'", "s"}, {"1", "2"}};
  json m = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = id++;
    m.push_back(pair_merges ? json::array({a, b}) : json(fmt::format("{} {}", a, b)));
  }
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 263}, {"content", "<|endoftext|>"}, {"special", true}},
            {{"id", 264}, {"content", "<|im_start|>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", regex}}},
               {"behavior", "Isolated"},
               {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
          {"post_processor", test::prepend_token_post_processor("<|im_start|>", 264)},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", m},
            {"dropout", nullptr},
            {"unk_token", nullptr}}}};
}

std::unique_ptr<Tokenizer> parse(const json& j, const tok::SpecialTokenNames& names = {}) {
  return tok::parse_hf_tokenizer(j.dump(), "t.json", names);
}

TEST(TokenizerByteLevel, EncodesHandCheckedVectors) {
  const auto t = parse(byte_level_json(kQwenRegex));
  EXPECT_EQ(t->vocab_size(), 265);
  EXPECT_EQ(t->token_to_id("Ġ"), 32);  // U+0120 stands for the space byte
  EXPECT_EQ(t->token_to_id("Ġthe"), 258);
  // "the" -> t + he; " cat" -> Ġ c a t (no merge applies); "'s" -> 's.
  EXPECT_EQ(t->encode("the cat's", false), (Ids{116, 257, 32, 99, 97, 116, 261}));
  // Ġ t h e: (Ġ,t) rank 0 first, then (h,e), then (Ġt,he).
  EXPECT_EQ(t->encode(" the", false), (Ids{258}));
  // Qwen splits digits, so the "1 2" merge never sees both.
  EXPECT_EQ(t->encode("12 in", false), (Ids{49, 50, 32, 259}));
  EXPECT_EQ(parse(byte_level_json(kGpt2Regex, true))->encode("12 in", false), (Ids{262, 32, 259}));
  // Special tokens in the middle of text; the template adds <|im_start|> in front.
  EXPECT_EQ(t->encode("hi<|endoftext|>the", false), (Ids{104, 105, 263, 116, 257}));
  EXPECT_EQ(t->encode("the", true), (Ids{264, 116, 257}));
  EXPECT_EQ(t->bos_id(), 264);
  EXPECT_EQ(t->eos_id(), 263);  // <|endoftext|> by name
  EXPECT_TRUE(t->is_special(263));
  EXPECT_FALSE(t->is_special(258));
  EXPECT_FALSE(t->is_special(9999));
  // é is two bytes C3 A9, mapped to two vocabulary characters.
  EXPECT_EQ(t->encode("é", false), (Ids{0xC3, 0xA9}));
}

// Expected strings from Python's unicodedata.normalize (Unicode 14), an implementation
// independent of ICU's.
TEST(TokenizerNormalizers, NfcAndNfkcMatchUnicodedata) {
  using tok::UnicodeForm;
  const auto nfc = [](std::string_view s) { return tok::normalize_unicode(s, UnicodeForm::kNfc); };
  const auto nfkc = [](std::string_view s) {
    return tok::normalize_unicode(s, UnicodeForm::kNfkc);
  };
  EXPECT_EQ(nfc("plain ASCII\n"), "plain ASCII\n");
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                     // e + U+0301 -> U+00E9
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                  // U+212B ANGSTROM SIGN -> U+00C5
  EXPECT_EQ(nfc("\xEF\xAC\x81"), "\xEF\xAC\x81");              // U+FB01 stays under NFC
  EXPECT_EQ(nfkc("\xEF\xAC\x81"), "fi");                       // and is "fi" under NFKC
  EXPECT_EQ(nfkc("\xE2\x91\xA0"), "1");                        // U+2460 CIRCLED DIGIT ONE
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // Hangul L + V -> U+AC00
  EXPECT_EQ(nfc("A\xCC\x8A\xCC\xA7"), "\xC3\x85\xCC\xA7");     // marks reordered, composed
  EXPECT_EQ(nfkc("\xEF\xB7\xBA").size(), 33u);                 // U+FDFA: 18 code points
  EXPECT_EQ(nfc("\xF0\x9D\x85\xA0"),                           // U+1D160 decomposes (excluded)
            "\xF0\x9D\x85\x98\xF0\x9D\x85\xA5\xF0\x9D\x85\xAE");
  // Invalid bytes stay where they were; the valid runs around them are normalized.
  EXPECT_EQ(nfc(std::string_view("e\xCC\x81\xFF"
                                 "e\xCC\x81\x80",
                                 8)),
            std::string_view("\xC3\xA9\xFF\xC3\xA9\x80", 6));
}

// Qwen2's and GPT-NeoX's tokenizer.json normalize to NFC before splitting.
TEST(TokenizerNormalizers, TokenizerJsonNfcAndNfkc) {
  json j = byte_level_json(kQwenRegex);
  const Ids composed = parse(j)->encode("\xC3\xA9", false);
  EXPECT_EQ(composed, (Ids{0xC3, 0xA9}));
  EXPECT_EQ(parse(j)->encode("e\xCC\x81", false), (Ids{'e', 0xCC, 0x81}));
  j["normalizer"] = {{"type", "NFC"}};
  EXPECT_EQ(parse(j)->encode("e\xCC\x81", false), composed);
  EXPECT_EQ(parse(j)->encode("\xEF\xAC\x81", false), (Ids{0xEF, 0xAC, 0x81}));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
  EXPECT_EQ(parse(j)->encode("\xEF\xAC\x81", false), (Ids{'f', 'i'}));
  // Added tokens are matched before normalizing; only the text between them is normalized.
  EXPECT_EQ(parse(j)->encode("\xEF\xAC\x81<|endoftext|>", false), (Ids{'f', 'i', 263}));
}

TEST(TokenizerByteLevel, DecodesAndStreamsPartialUtf8) {
  const auto t = parse(byte_level_json(kQwenRegex));
  EXPECT_EQ(t->decode({258, 263, 32, 99}), " the<|endoftext|> c");
  EXPECT_EQ(t->decode_piece(258), " the");
  EXPECT_EQ(t->decode_piece(0xC3), "\xC3");  // half of é
  EXPECT_EQ(t->id_to_token(258), "Ġthe");
  EXPECT_FALSE(t->strips_leading_space());
  // Streaming: buffer pieces, emit the complete UTF-8 prefix.
  std::string buffer;
  std::string shown;
  for (int32_t id : t->encode("a€b", false)) {
    buffer += t->decode_piece(id);
    const size_t n = complete_utf8_prefix(buffer);
    shown += buffer.substr(0, n);
    buffer.erase(0, n);
    EXPECT_EQ(complete_utf8_prefix(shown), shown.size()) << "partial character shown";
  }
  EXPECT_EQ(shown + buffer, "a€b");
  EXPECT_EQ(complete_utf8_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x91"), 0u);
  EXPECT_EQ(complete_utf8_prefix("a\xff"), 2u);  // never valid: nothing to wait for
  EXPECT_EQ(error_of([&] { t->decode({265}); }),
            "tokenizer: token id 265 is out of range [0, 265)");
  EXPECT_EQ(error_of([&] { t->decode({-1}); }), "tokenizer: token id -1 is out of range [0, 265)");
}

// Random strings over ASCII, Latin, CJK, emoji, digits, whitespace and the special tokens.
std::string random_text(std::mt19937& rng, bool with_specials, bool invalid_bytes) {
  static const std::vector<std::string> kAtoms = {
      "a", "Z", "the", " ",  "  ", "\n",   "\r\n",   "\t",     "'s", "'RE", "1", "٣", "!", "...",
      "é", "ß", "你",  "好", "👋",  "🏽", "\u00A0", "\u3000", "-",  "$",   "€", "ـ", "ǅ"};
  std::string s;
  const int n = static_cast<int>(rng() % 24);
  for (int i = 0; i < n; ++i) {
    const uint32_t r = rng() % 100;
    if (with_specials && r < 5) {
      s += r < 3 ? "<|endoftext|>" : "<|im_start|>";
    } else if (invalid_bytes && r < 10) {
      s += static_cast<char>(0x80 + rng() % 128);
    } else {
      s += kAtoms[rng() % kAtoms.size()];
    }
  }
  return s;
}

TEST(TokenizerByteLevel, DecodeInvertsEncodeOnRandomText) {
  std::mt19937 rng(7);
  for (std::string_view regex : {kQwenRegex, kLlama3Regex, kGpt2Regex}) {
    const auto t = parse(byte_level_json(regex));
    for (int i = 0; i < 300; ++i) {
      const std::string s = random_text(rng, true, i % 2 == 1);
      ASSERT_EQ(t->decode(t->encode(s, false)), s) << regex << " on '" << s << "'";
      std::string pieces;
      for (int32_t id : t->encode(s, false)) pieces += t->decode_piece(id);
      ASSERT_EQ(pieces, s);
    }
  }
}

TEST(TokenizerByteLevel, ByteLevelPreTokenizerWithItsOwnRegexAndPrefixSpace) {
  json j = byte_level_json(kGpt2Regex);
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"trim_offsets", true}};
  const auto t = parse(j);
  EXPECT_EQ(t->encode("the 12", true), (Ids{258, 32, 262}));  // " the", " ", "12"
  EXPECT_EQ(t->bos_id(), std::nullopt);
  EXPECT_EQ(t->decode(t->encode("the 12", false)), " the 12");
}

TEST(TokenizerByteLevel, AddedTokenStripAndIgnoreMerges) {
  json j = byte_level_json(kQwenRegex);
  j["added_tokens"][0]["lstrip"] = true;
  j["added_tokens"][1]["rstrip"] = true;
  // lstrip eats the spaces before <|endoftext|>; rstrip the space and newline after <|im_start|>.
  EXPECT_EQ(parse(j)->encode("a \u3000<|endoftext|> a<|im_start|> \nb", false),
            (Ids{97, 263, 260, 264, 98}));
  // ignore_merges: a word found whole in the vocabulary is taken as is. "Ġthe" is reached by
  // merges anyway; "Ġa" + "in" would not merge, but "Ġain" is in the vocabulary.
  j = byte_level_json(kQwenRegex);
  j["model"]["vocab"]["Ġain"] = 265;
  EXPECT_EQ(parse(j)->encode(" ain", false), (Ids{260, 259}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(parse(j)->encode(" ain", false), (Ids{265}));
}

TEST(TokenizerByteLevel, TokenizerConfigNamesBosAndEos) {
  const auto t =
      parse(byte_level_json(kQwenRegex), {.bos = "<|endoftext|>", .eos = "<|im_start|>"});
  EXPECT_EQ(t->bos_id(), 263);
  EXPECT_EQ(t->eos_id(), 264);
  EXPECT_EQ(error_of([] { parse(byte_level_json(kQwenRegex), {.eos = "<nope>"}); }),
            "t.json: eos_token '<nope>' is not in the vocabulary");
}

// SentencePiece-style BPE in tokenizer.json (Llama 2 / Mixtral layout): <unk> <s> </s>, the 256
// byte tokens (ids 3-258), then ▁ a b ▁a ab ▁ab c.
json spm_bpe_json() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  int id = 259;
  for (const char* t : {"▁", "a", "b", "▁a", "ab", "▁ab", "c"}) vocab[t] = id++;
  return test::spm_bpe_tokenizer_json(vocab, {"▁ a", "a b", "▁a b"});
}

TEST(TokenizerSpmBpe, EncodesWithByteFallbackAndDecodes) {
  const auto t = parse(spm_bpe_json());
  // "▁ab▁c": (▁,a) rank 0, then (▁a,b) rank 2 -> ▁ab; ▁ and c stay.
  EXPECT_EQ(t->encode("ab c", false), (Ids{264, 259, 265}));
  EXPECT_EQ(t->encode("ab c", true), (Ids{1, 264, 259, 265}));
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  // é is not in the vocabulary: its bytes C3 A9 become <0xC3> <0xA9>.
  EXPECT_EQ(t->encode("é", false), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->decode({259, 3 + 0xC3, 3 + 0xA9}), "é");
  EXPECT_EQ(t->decode_piece(3 + 0xC3), "\xC3");
  EXPECT_EQ(t->decode_piece(264), " ab");
  EXPECT_TRUE(t->strips_leading_space());
  // A lone continuation byte is not UTF-8: decode shows U+FFFD, as Hugging Face does.
  EXPECT_EQ(t->decode({262, 3 + 0xA9}), "a\uFFFD");
  // Special tokens in the middle: each section gets its own ▁ prefix.
  EXPECT_EQ(t->encode("a<s>b", false), (Ids{262, 1, 259, 261}));
  EXPECT_EQ(t->decode({262, 1, 259, 261}), "a<s> b");
  EXPECT_EQ(t->decode({1, 262}), "<s> a");
}

TEST(TokenizerSpmBpe, DecodeInvertsEncodeOnRandomText) {
  const auto t = parse(spm_bpe_json());
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_text(rng, false, false);
    ASSERT_EQ(t->decode(t->encode(s, false)), s) << "on '" << s << "'";
  }
}

TEST(TokenizerSpmBpe, MetaspacePreTokenizerAndDecoder) {
  json j = spm_bpe_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}};
  const auto t = parse(j);
  EXPECT_EQ(t->encode("ab c", false), (Ids{264, 259, 265}));
  EXPECT_EQ(t->encode("a<s>b", false), (Ids{262, 1, 261}));  // "first": no ▁ after <s>
  EXPECT_EQ(t->decode({264, 259, 265}), "ab c");
  EXPECT_EQ(t->decode({1, 264}), "<s> ab");
}

std::string hf_error(const std::function<void(json&)>& edit) {
  json j = byte_level_json(kQwenRegex);
  edit(j);
  return error_of([&] { parse(j); });
}

TEST(TokenizerErrors, BadFilesNameTheField) {
  EXPECT_EQ(error_of([] { load_tokenizer("/nonexistent/tok.json"); }),
            "/nonexistent/tok.json: no such file or directory");
  EXPECT_EQ(error_of([] {
              tok::parse_hf_tokenizer("{\"model\": ", "t.json");
            }).rfind("t.json: not valid JSON: ", 0),
            0u);
  EXPECT_EQ(error_of([] { tok::parse_hf_tokenizer("[1]", "t.json"); }),
            "t.json: expected a JSON object, got [1]");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["type"] = "WordPiece"; }),
            "t.json: model.type is 'WordPiece', expected 'BPE' (the only model supported)");
  EXPECT_EQ(hf_error([](json& j) {
              j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\d+";
            }),
            "t.json: pre_tokenizer.pretokenizers[0].pattern.Regex: unsupported split regex '\\d+' "
            "(known: the GPT-2, Llama 3, Qwen 2, DeepSeek-V3 and DeepSeek LLM patterns, listed in "
            "io/tokenizer/pretokenize.h)");
  EXPECT_EQ(
      hf_error([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; }),
      "t.json: pre_tokenizer.pretokenizers[0].behavior is 'Removed', expected 'Isolated'");
  EXPECT_EQ(hf_error([](json& j) {
              j["pre_tokenizer"] = {{"type", "Whitespace"}};
            }),
            "t.json: pre_tokenizer: unsupported pre_tokenizer type 'Whitespace'");
  EXPECT_EQ(hf_error([](json& j) {
              j["normalizer"] = {{"type", "Lowercase"}};
            }),
            "t.json: normalizer: unsupported normalizer type 'Lowercase'");
  EXPECT_EQ(hf_error([](json& j) {
              j["decoder"] = {{"type", "WordPiece"}};
            }),
            "t.json: decoder: unsupported decoder type 'WordPiece'");
  EXPECT_EQ(hf_error([](json& j) { j["model"].erase("merges"); }),
            "t.json: model: missing field 'merges'");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["merges"][2] = "Ġthe"; }),
            "t.json: model.merges[2]: expected \"left right\" (two tokens separated by one space), "
            "got \"Ġthe\"");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["merges"][1] = "h x"; }),
            "t.json: model.merges[1]: merged token 'hx' is not in the vocabulary");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["merges"][1] = "h zz"; }),
            "t.json: model.merges[1]: token 'zz' is not in the vocabulary");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["vocab"]["x"] = -3; }),
            "t.json: model.vocab['x']: expected an integer in [0, 2147483646], got -3");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["vocab"]["x"] = "7"; }),
            "t.json: model.vocab['x']: expected an integer, got \"7\"");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["vocab"]["Ġx"] = 120; }),
            "t.json: model.vocab: tokens 'x' and 'Ġx' both have id 120");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["vocab"]["x"] = 100000; }),
            "t.json: token id 100000 is too large for a vocabulary of 265 entries (ids must be "
            "below 1554)");
  EXPECT_EQ(hf_error([](json& j) { j["model"]["dropout"] = 0.1; }),
            "t.json: model.dropout is set; BPE dropout is not supported");
  EXPECT_EQ(hf_error([](json& j) { j["added_tokens"][0]["id"] = "x"; }),
            "t.json: added_tokens[0].id: expected an integer, got \"x\"");
  EXPECT_EQ(hf_error([](json& j) {
              j["post_processor"]["special_tokens"]["<|im_start|>"]["ids"][0] = 5000;
            }),
            "t.json: post_processor: token id 5000 is not in the vocabulary");
  EXPECT_EQ(hf_error([](json& j) { j["post_processor"]["type"] = "BertLike"; }),
            "t.json: post_processor: unsupported post_processor type 'BertLike'");
  // Chains of enlarging steps would build gigabytes from a few bytes of text.
  EXPECT_EQ(hf_error([](json& j) {
              json steps = json::array();
              for (int i = 0; i < 11; ++i) steps.push_back({{"type", "ByteLevel"}});
              j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
            }),
            "t.json: the normalizer and pre_tokenizer steps can grow the text 2048-fold, expected "
            "at most 1024-fold");
  EXPECT_EQ(hf_error([](json& j) {
              j["decoder"] = {{"type", "Replace"},
                              {"pattern", {{"String", "a"}}},
                              {"content", std::string(2000, 'a')}};
            }),
            "t.json: the decoder steps can grow the text 2000-fold, expected at most 1024-fold");
  EXPECT_EQ(hf_error([](json& j) {
              json steps = json::array();
              for (int i = 0; i < 10; ++i) steps.push_back({{"type", "ByteLevel"}});
              j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
            }),
            "(no error)");
}

TEST(TokenizerErrors, FoldersAndFileKinds) {
  const fs::path dir = fs::path(::testing::TempDir()) / "sy_tokenizer_folder";
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_EQ(error_of([&] { load_tokenizer(dir.string()); }),
            dir.string() + ": folder has neither tokenizer.json nor tokenizer.model");
  write_file_atomic((dir / "tokenizer.json").string(), byte_level_json(kQwenRegex).dump());
  write_file_atomic((dir / "tokenizer_config.json").string(),
                    R"({"bos_token": null, "eos_token": {"content": "<|im_start|>"}})");
  const auto t = load_tokenizer(dir.string());
  EXPECT_EQ(t->encode(" the", false), (Ids{258}));
  EXPECT_EQ(t->eos_id(), 264);
  EXPECT_EQ(load_tokenizer((dir / "tokenizer.json").string())->eos_id(), 263);
  write_file_atomic((dir / "tokenizer_config.json").string(), R"({"eos_token": 3})");
  EXPECT_EQ(error_of([&] { load_tokenizer(dir.string()); }),
            (dir / "tokenizer_config.json").string() +
                ": eos_token: expected a string or {\"content\": string}, got 3");
  write_file_atomic((dir / "junk.model").string(), "not a model");
  EXPECT_EQ(error_of([&] {
              load_tokenizer((dir / "junk.model").string());
            }).rfind((dir / "junk.model").string() + ": not a SentencePiece model: ", 0),
            0u);
  fs::remove_all(dir);
}

// Trains a ~100-piece BPE model with the library's own trainer, then checks our wrapper against
// the library's processor on the same file.
TEST(TokenizerSentencePiece, WrapperAgreesWithTheLibrary) {
  const fs::path dir = fs::path(::testing::TempDir()) / "sy_tokenizer_spm";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string corpus;
  const std::vector<std::string> lines = {
      "the quick brown fox jumps over the lazy dog",
      "a tokenizer turns text into pieces and pieces into ids",
      "experts are routed by a gate that picks the top two",
      "sparse mixture of experts models scale with few active parameters",
      "the router sends each token to the experts it likes best"};
  for (int rep = 0; rep < 20; ++rep) {
    for (const std::string& l : lines) corpus += l + "\n";
  }
  write_file_atomic((dir / "corpus.txt").string(), corpus);
  const std::string prefix = (dir / "tokenizer").string();
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + (dir / "corpus.txt").string() + " --model_prefix=" + prefix +
      " --vocab_size=100 --model_type=bpe --hard_vocab_limit=false --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();

  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(prefix + ".model").ok());
  const auto t = load_tokenizer(dir.string());  // folder: finds tokenizer.model
  EXPECT_EQ(t->vocab_size(), sp.GetPieceSize());
  EXPECT_EQ(t->bos_id(), sp.bos_id());
  EXPECT_EQ(t->eos_id(), sp.eos_id());
  EXPECT_TRUE(t->is_special(sp.bos_id()));
  EXPECT_FALSE(t->is_special(sp.PieceToId("▁the")));
  EXPECT_EQ(t->token_to_id("▁the"), sp.PieceToId("▁the"));
  EXPECT_EQ(t->token_to_id("no such piece"), std::nullopt);
  EXPECT_EQ(t->id_to_token(sp.PieceToId("▁the")), "▁the");
  for (const std::string text :
       {"the quick fox", "  experts   route tokens ", "unseen words: xyz 123 é 你好", ""}) {
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(text, &want).ok());
    const Ids got = t->encode(text, false);
    EXPECT_EQ(got, Ids(want.begin(), want.end())) << text;
    Ids with_bos = got;
    with_bos.insert(with_bos.begin(), sp.bos_id());
    EXPECT_EQ(t->encode(text, true), with_bos);
    EXPECT_EQ(t->decode(got), sp.DecodeIds(want)) << text;
    std::string pieces;
    for (int32_t id : got) pieces += t->decode_piece(id);
    if (!pieces.empty() && t->strips_leading_space() && pieces[0] == ' ') pieces.erase(0, 1);
    EXPECT_EQ(pieces, sp.DecodeIds(want)) << text;
  }
  EXPECT_EQ(t->decode_piece(sp.PieceToId("▁the")), " the");
  EXPECT_EQ(t->decode_piece(sp.eos_id()), "");
  EXPECT_EQ(error_of([&] { t->decode({100000}); }),
            fmt::format("tokenizer: token id 100000 is out of range [0, {})", sp.GetPieceSize()));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sy::io
