// Hand-checked vectors for the DeepSeek pre-tokenizers and the split steps llama.cpp's GGUF
// pre-tokenizers add, each step applied to every piece of the step before (a Sequence of
// Isolated splits, as Hugging Face runs it).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "io/tokenizer/hf_spec.h"
#include "io/tokenizer/pretokenize.h"

namespace sy::io {
namespace {

using tok::SplitPattern;
using Strings = std::vector<std::string>;

Strings run(const std::vector<SplitPattern>& steps, std::string_view text) {
  Strings pieces{std::string(text)};
  for (SplitPattern p : steps) {
    Strings next;
    for (const std::string& piece : pieces) {
      for (std::string_view s : tok::split_pieces(p, piece)) next.emplace_back(s);
    }
    pieces = std::move(next);
  }
  return pieces;
}

Strings deepseek_v3(std::string_view text) {
  return run({SplitPattern::kDigits3, SplitPattern::kDeepSeekV3Cjk, SplitPattern::kDeepSeekV3},
             text);
}

Strings deepseek_llm(std::string_view text) {
  return run({SplitPattern::kDeepSeekLlmNewline, SplitPattern::kDeepSeekLlmLetters,
              SplitPattern::kDeepSeekLlmPunct, SplitPattern::kDeepSeekLlmTrailing,
              SplitPattern::kDeepSeekLlmCjk, SplitPattern::kDigitRuns},
             text);
}

TEST(TokenizerSplitDeepSeekV3, LettersContractionsAndAsciiPunctuation) {
  EXPECT_EQ(deepseek_v3("Hello world"), (Strings{"Hello", " world"}));
  // "'m" is [ASCII punct][A-Za-z]+; the lone space before the digits ends its piece.
  EXPECT_EQ(deepseek_v3("I'm 12345 years"), (Strings{"I", "'m", " ", "123", "45", " years"}));
  EXPECT_EQ(deepseek_v3("don't"), (Strings{"don", "'t"}));
  EXPECT_EQ(deepseek_v3("a+b=c"), (Strings{"a", "+b", "=c"}));
  EXPECT_EQ(deepseek_v3("e.g. foo.bar()"), (Strings{"e", ".g", ".", " foo", ".bar", "()"}));
  // "__" is a punctuation run at the leftmost position, before "_i" could match.
  EXPECT_EQ(deepseek_v3("__init__"), (Strings{"__", "init", "__"}));
  EXPECT_EQ(deepseek_v3("x._y"), (Strings{"x", "._", "y"}));
  // A tab may lead a word ([^\r\n\p{L}\p{P}\p{S}]?); a combining mark belongs to it (\p{M}).
  EXPECT_EQ(deepseek_v3("\tindent"), (Strings{"\tindent"}));
  EXPECT_EQ(deepseek_v3("nai\u0308ve"), (Strings{"nai\u0308ve"}));
  EXPECT_EQ(deepseek_v3("\u0301abc"), (Strings{"\u0301abc"}));
  // Non-ASCII punctuation does not join a word the way ASCII does.
  EXPECT_EQ(deepseek_v3("\u00BFQu\u00E9?"), (Strings{"\u00BF", "Qu\u00E9", "?"}));
}

TEST(TokenizerSplitDeepSeekV3, DigitsInGroupsOfThree) {
  EXPECT_EQ(deepseek_v3("$100 and 1,000,000"),
            (Strings{"$", "100", " and", " ", "1", ",", "000", ",", "000"}));
  EXPECT_EQ(deepseek_v3("\u03C0\u22483.14"), (Strings{"\u03C0", "\u2248", "3", ".", "14"}));
  // Arabic-Indic digits are \p{N} too.
  EXPECT_EQ(deepseek_v3("\u0663\u0664\u0665\u0666"), (Strings{"\u0663\u0664\u0665", "\u0666"}));
}

TEST(TokenizerSplitDeepSeekV3, CjkRunsAndOtherScripts) {
  EXPECT_EQ(deepseek_v3("你好世界abc"), (Strings{"你好世界", "abc"}));
  // Kanji, hiragana and katakana are one class.
  EXPECT_EQ(deepseek_v3("日本語のテキストです"), (Strings{"日本語のテキストです"}));
  // Hangul is not in the class: it is split as letters.
  EXPECT_EQ(deepseek_v3("한국어 text"), (Strings{"한국어", " text"}));
  EXPECT_EQ(deepseek_v3("中文, English"), (Strings{"中文", ",", " English"}));
}

TEST(TokenizerSplitDeepSeekV3, PunctuationWhitespaceAndNewlines) {
  EXPECT_EQ(deepseek_v3("Hi!!!\n\nok"), (Strings{"Hi", "!!!\n\n", "ok"}));
  EXPECT_EQ(deepseek_v3("x  \n  y"), (Strings{"x", "  \n", " ", " y"}));
  EXPECT_EQ(deepseek_v3("ABC\r\nDEF"), (Strings{"ABC", "\r\n", "DEF"}));
  EXPECT_EQ(deepseek_v3("a   b  "), (Strings{"a", "  ", " b", "  "}));
  // Emoji are symbols (So, Sk): one punctuation run, with the space before it.
  EXPECT_EQ(deepseek_v3("hi 👋🏽!"), (Strings{"hi", " 👋🏽!"}));
  // Invalid bytes are neither letters nor punctuation: one may lead a word.
  EXPECT_EQ(deepseek_v3("\xff"
                        "ab \xfe"),
            (Strings{"\xff"
                     "ab",
                     " ", "\xfe"}));
}

TEST(TokenizerSplitDeepSeekLlm, HandCheckedVectors) {
  EXPECT_EQ(deepseek_llm("Hello world!\n"), (Strings{"Hello", " world", "!", "\n"}));
  EXPECT_EQ(deepseek_llm("a  b"), (Strings{"a", " ", " b"}));
  EXPECT_EQ(deepseek_llm("end   "), (Strings{"end", "   "}));
  EXPECT_EQ(deepseek_llm("a\r\nb"), (Strings{"a", "\r", "\n", "b"}));
  EXPECT_EQ(deepseek_llm("x12345y"), (Strings{"x", "12345", "y"}));
  // Full-width comma (U+FF0C) is in the punctuation class; CJK runs are their own pieces.
  EXPECT_EQ(deepseek_llm("你好，世界"), (Strings{"你好", "，", "世界"}));
  EXPECT_EQ(deepseek_llm("\u201Cquoted\u201D"), (Strings{"\u201C", "quoted", "\u201D"}));
  // Greek capital omega is a cased letter, but the punctuation step's class holds :-~, which
  // spans the ASCII letters: a word mixing ASCII and other letters is cut where they meet.
  // U+0294 (glottal stop, Lo) is no cased letter and lies below the CJK class's U+0800: a piece
  // of its own.
  EXPECT_EQ(deepseek_llm("\u03A9mega"), (Strings{"\u03A9", "mega"}));
  EXPECT_EQ(deepseek_llm(" caf\u00E9 \u00E9t\u00E9"),
            (Strings{" caf", "\u00E9", " \u00E9", "t", "\u00E9"}));
  EXPECT_EQ(deepseek_llm("\u0294a"), (Strings{"\u0294", "a"}));
  // Devanagari (U+0900..) falls in the CJK class's U+0800-4E00 range, marks included.
  EXPECT_EQ(deepseek_llm("नमस्ते दुनिया"), (Strings{"नमस्ते", " ", "दुनिया"}));
  // Letterlike and Greek extended ranges written with their own code points (U+2126 OHM SIGN,
  // U+1F7D), not the canonically equivalent U+03A9 / U+03CE.
  EXPECT_EQ(deepseek_llm("\u2126\u1F7D"), (Strings{"\u2126\u1F7D"}));
}

TEST(TokenizerSplitLlamaCpp, DefaultAndStarcoderSteps) {
  const std::vector<SplitPattern> kDefault = {SplitPattern::kPunctRuns, SplitPattern::kGpt2,
                                              SplitPattern::kDigitRuns,
                                              SplitPattern::kAsciiDigits3};
  EXPECT_EQ(run(kDefault, "Hello, world! 12345"),
            (Strings{"Hello", ",", " world", "!", " ", "123", "45"}));
  EXPECT_EQ(run(kDefault, "a$b^2"), (Strings{"a", "$", "b", "^", "2"}));
  EXPECT_EQ(run(kDefault, "`code`"), (Strings{"`", "code", "`"}));  // ` is Sk, not in the set
  EXPECT_EQ(run({SplitPattern::kDigit, SplitPattern::kGpt2}, "x = 42"),
            (Strings{"x", " =", " ", "4", "2"}));
}

// The pre_tokenizer of deepseek-ai/DeepSeek-V3's tokenizer.json, as the file writes it (CJK
// characters as JSON escapes here; they decode to the same text).
constexpr std::string_view kDeepSeekV3PreTokenizer = R"json({
  "type": "Sequence",
  "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"Regex": "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"},
     "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
  ]
})json";

TEST(TokenizerSplitDeepSeekV3, TokenizerJsonPreTokenizerIsRecognised) {
  const std::string json = std::string(R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
      "pre_tokenizer": )") +
                           std::string(kDeepSeekV3PreTokenizer) + "}";
  const tok::HfSpec spec = tok::parse_hf_spec(json, "t.json");
  ASSERT_EQ(spec.pre_tokenizers.size(), 4u);
  const SplitPattern expected[] = {SplitPattern::kDigits3, SplitPattern::kDeepSeekV3Cjk,
                                   SplitPattern::kDeepSeekV3};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(spec.pre_tokenizers[i].kind, tok::PreTokenizerStep::Kind::kSplit);
    EXPECT_EQ(spec.pre_tokenizers[i].pattern, expected[i]) << i;
  }
  EXPECT_EQ(spec.pre_tokenizers[3].kind, tok::PreTokenizerStep::Kind::kByteLevel);
  EXPECT_FALSE(spec.pre_tokenizers[3].use_regex);
}

TEST(TokenizerSplit, NumberOverflowIsNotValidJson) {
  try {
    tok::parse_hf_spec(R"({"model": {"type": "BPE", "dropout": 1e999}})", "t.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "t.json: not valid JSON: [json.exception.out_of_range.406] number overflow parsing "
              "'1e999'");
  }
}

TEST(TokenizerSplit, EveryPatternRoundTripsItsRegexText) {
  for (int p = 0; p <= static_cast<int>(SplitPattern::kPunctRuns); ++p) {
    const auto pattern = static_cast<SplitPattern>(p);
    EXPECT_EQ(tok::find_split_pattern(tok::split_pattern_regex(pattern)), pattern) << p;
  }
  // Pieces always tile the text, whatever the pattern.
  const std::string text = "Mixed: 日本 \t\r\n 12,345 émoji 👋 \xff\xfe a'S __x__  ";
  for (int p = 0; p <= static_cast<int>(SplitPattern::kPunctRuns); ++p) {
    std::string joined;
    for (std::string_view s : tok::split_pieces(static_cast<SplitPattern>(p), text)) {
      EXPECT_FALSE(s.empty());
      joined += s;
    }
    EXPECT_EQ(joined, text) << p;
  }
}

}  // namespace
}  // namespace sy::io
