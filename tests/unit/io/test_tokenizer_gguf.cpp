// Tokenizers stored in GGUF metadata (tokenizer.ggml.*): every file here is built by the test
// with GgufWriter, next to a tokenizer.json holding the same vocabulary, and both must give the
// same ids and text.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
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
using tok::SplitPattern;

using ::sy::test::error_of;

// Key/value pairs in order, editable before they are written.
using Kvs = std::vector<std::pair<std::string, GgufValue>>;

void set(Kvs& kvs, const std::string& key, GgufValue v) {
  for (auto& [k, value] : kvs) {
    if (k == key) {
      value = std::move(v);
      return;
    }
  }
  kvs.emplace_back(key, std::move(v));
}
void drop(Kvs& kvs, const std::string& key) {
  std::erase_if(kvs, [&](const auto& kv) { return kv.first == key; });
}

std::string gguf_bytes(const Kvs& kvs) {
  GgufWriter w;
  w.add_kv("general.architecture", GgufValue::string("llama"));
  for (const auto& [k, v] : kvs) w.add_kv(k, v);
  return w.to_bytes();
}

std::unique_ptr<Tokenizer> from_gguf(const Kvs& kvs) {
  return load_gguf_tokenizer(GgufFile::parse(gguf_bytes(kvs), "t.gguf"));
}

// GPT-2's byte-mapped form of raw bytes.
std::string mapped(std::string_view raw) {
  std::string s;
  for (char b : raw) s += tok::byte_to_unicode()[static_cast<uint8_t>(b)];
  return s;
}

// A byte-level vocabulary: ids 0-255 are the bytes, then every prefix of each word below
// (merged one byte-level character at a time, left to right), then three added tokens.
struct ByteVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  int32_t endoftext = 0;
  int32_t im_start = 0;
  int32_t tool = 0;
};

ByteVocab byte_vocab() {
  ByteVocab v;
  std::unordered_map<std::string, int32_t> index;
  const auto add = [&](const std::string& t, int32_t type) {
    index.emplace(t, static_cast<int32_t>(v.tokens.size()));
    v.tokens.push_back(t);
    v.types.push_back(type);
  };
  for (int b = 0; b < 256; ++b) add(tok::byte_to_unicode()[b], 1);
  // Words that cross the boundaries some pre-tokenizers draw and others do not.
  const std::vector<std::string> words = {
      " the", "the", "Hello",   " world", "'s",        "'re",         "'m",   "I",     "345",
      "123",  "12",  " 12",     "45",     "!!!",       " !!",         "\n\n", "  ",    "   ",
      " \n",  ".\n", "-\u00E9", "\u00E9", "caf\u00E9", " caf",        "你好", " 你好", "世界",
      "👋",    "ok",  " ok",     "abc",    " a",        "$1",          "3.",   "a+",    "+b",
      "...",  "don", "'t",      " years", "\t\t",      "\u0663\u0664"};
  for (const std::string& w : words) {
    std::vector<std::string> chars;
    for (char b : w) chars.push_back(tok::byte_to_unicode()[static_cast<uint8_t>(b)]);
    std::string cur = chars[0];
    for (size_t k = 1; k < chars.size(); ++k) {
      const std::string merged = cur + chars[k];
      if (!index.contains(merged)) {
        add(merged, 1);
        v.merges.push_back(cur + " " + chars[k]);
      }
      cur = merged;
    }
  }
  v.endoftext = static_cast<int32_t>(v.tokens.size());
  add("<|endoftext|>", 3);
  v.im_start = static_cast<int32_t>(v.tokens.size());
  add("<|im_start|>", 3);
  v.tool = static_cast<int32_t>(v.tokens.size());
  add("<tool>", 4);
  return v;
}

Kvs byte_gguf(const ByteVocab& v, const std::string& pre) {
  Kvs kvs;
  set(kvs, "tokenizer.ggml.model", GgufValue::string("gpt2"));
  set(kvs, "tokenizer.ggml.pre", GgufValue::string(pre));
  set(kvs, "tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
  set(kvs, "tokenizer.ggml.token_type", GgufValue::i32s(v.types));
  set(kvs, "tokenizer.ggml.merges", GgufValue::strings(v.merges));
  set(kvs, "tokenizer.ggml.bos_token_id", GgufValue::u32(v.im_start));
  set(kvs, "tokenizer.ggml.eos_token_id", GgufValue::u32(v.endoftext));
  set(kvs, "tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
  return kvs;
}

json split(SplitPattern p) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", std::string(tok::split_pattern_regex(p))}}},
          {"behavior", "Isolated"},
          {"invert", false}};
}

// The tokenizer.json Hugging Face would hold for the same model, written the way each model
// family's file writes its pre-tokenizer.
json byte_json(const ByteVocab& v, const std::string& pre) {
  json vocab = json::object();
  for (int32_t i = 0; i < v.endoftext; ++i) vocab[v.tokens[i]] = i;
  const json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  const auto sequence = [&](const std::vector<SplitPattern>& steps) {
    json list = json::array();
    for (SplitPattern p : steps) list.push_back(split(p));
    list.push_back(byte_level);
    return json{{"type", "Sequence"}, {"pretokenizers", list}};
  };
  json pre_tokenizer;
  if (pre == "gpt-2" || pre == "olmo") {
    pre_tokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  } else if (pre == "llama-bpe") {
    pre_tokenizer = sequence({SplitPattern::kLlama3});
  } else if (pre == "qwen2") {
    pre_tokenizer = sequence({SplitPattern::kQwen2});
  } else if (pre == "deepseek-v3") {
    pre_tokenizer =
        sequence({SplitPattern::kDigits3, SplitPattern::kDeepSeekV3Cjk, SplitPattern::kDeepSeekV3});
  } else if (pre == "deepseek-llm") {
    pre_tokenizer = sequence({SplitPattern::kDeepSeekLlmNewline, SplitPattern::kDeepSeekLlmLetters,
                              SplitPattern::kDeepSeekLlmPunct, SplitPattern::kDeepSeekLlmTrailing,
                              SplitPattern::kDeepSeekLlmCjk, SplitPattern::kDigitRuns});
  } else if (pre == "default") {
    pre_tokenizer = sequence({SplitPattern::kPunctRuns, SplitPattern::kGpt2,
                              SplitPattern::kDigitRuns, SplitPattern::kAsciiDigits3});
  } else if (pre == "starcoder") {
    pre_tokenizer = sequence({SplitPattern::kDigit, SplitPattern::kGpt2});
  }
  return {{"added_tokens",
           {{{"id", v.endoftext}, {"content", "<|endoftext|>"}, {"special", true}},
            {{"id", v.im_start}, {"content", "<|im_start|>"}, {"special", true}},
            {{"id", v.tool}, {"content", "<tool>"}, {"special", false}}}},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor", test::prepend_token_post_processor("<|im_start|>", v.im_start)},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", v.merges},
            {"ignore_merges", pre == "llama-bpe"}}}};
}

// Strings over the rules pre-tokenizers differ on.
const std::vector<std::string>& sample_texts() {
  static const std::vector<std::string> kTexts = {
      "Hello world",
      "it's I'M they're don't I'm",
      "12345 and 1,000,000 or $100 or 3.14",
      "\u0663\u0664\u0665 numbers",
      "Hi!!! ok... a+b=c e.g. x",
      "a   b  \t\tc   ",
      "  leading and trailing  ",
      "line\n\nbreaks\r\nand  \n  more\n",
      "!!\n\nx",
      "caf\u00E9 na\u0131ve nai\u0308ve Stra\u00DFe \u0395\u03BB\u03BB\u03AC\u03B4\u03B1",
      "\u041F\u0440\u0438\u0432\u0435\u0442 \u043C\u0438\u0440",
      "你好世界 こんにちは 한국어",
      "hi 👋🏽! 👍👍",
      "<|im_start|>user\nthe 12 apples<|endoftext|><tool> ok<tool>",
      "",
      " ",
      "\n",
  };
  return kTexts;
}

TEST(TokenizerGguf, ByteLevelMatchesTheEquivalentTokenizerJson) {
  const ByteVocab v = byte_vocab();
  for (const std::string pre : {"gpt-2", "olmo", "llama-bpe", "qwen2", "deepseek-v3",
                                "deepseek-llm", "default", "starcoder"}) {
    SCOPED_TRACE(pre);
    const auto g = from_gguf(byte_gguf(v, pre));
    const auto h = tok::parse_hf_tokenizer(byte_json(v, pre).dump(), "t.json");
    EXPECT_EQ(g->vocab_size(), h->vocab_size());
    EXPECT_EQ(g->bos_id(), h->bos_id());
    EXPECT_EQ(g->eos_id(), h->eos_id());
    for (const std::string& text : sample_texts()) {
      const Ids ids = g->encode(text, false);
      ASSERT_EQ(ids, h->encode(text, false)) << "'" << text << "'";
      EXPECT_EQ(g->encode(text, true), h->encode(text, true)) << "'" << text << "'";
      EXPECT_EQ(g->decode(ids), text);
      EXPECT_EQ(g->decode(ids), h->decode(ids));
      for (int32_t id : ids) {
        EXPECT_EQ(g->decode_piece(id), h->decode_piece(id));
        EXPECT_EQ(g->is_special(id), h->is_special(id));
      }
    }
  }
}

TEST(TokenizerGguf, ByteLevelPreTokenizersDrawTheirOwnBoundaries) {
  const ByteVocab v = byte_vocab();
  const auto id = [&](std::string_view raw) {
    for (size_t i = 0; i < v.tokens.size(); ++i) {
      if (v.tokens[i] == mapped(raw)) return static_cast<int32_t>(i);
    }
    ADD_FAILURE() << "no token for '" << raw << "'";
    return -1;
  };
  const auto encode = [&](const std::string& pre, std::string_view text) {
    return from_gguf(byte_gguf(v, pre))->encode(text, false);
  };
  // Merges rank in the order the words were added: "34" before "12" before "45". GPT-2 keeps
  // " 12" in one piece (its merges then stop at Ġ 12); Qwen 2 splits digits one by one;
  // Llama 3 and DeepSeek-V3 in threes; DeepSeek LLM keeps digit runs whole.
  EXPECT_EQ(encode("gpt-2", " 12"), (Ids{id(" "), id("12")}));
  EXPECT_EQ(encode("qwen2", " 12"), (Ids{id(" "), id("1"), id("2")}));
  EXPECT_EQ(encode("llama-bpe", "12345"), (Ids{id("123"), id("45")}));
  EXPECT_EQ(encode("deepseek-v3", "12345"), (Ids{id("123"), id("45")}));
  EXPECT_EQ(encode("deepseek-llm", "12345"), (Ids{id("12"), id("345")}));
  // Contractions: GPT-2 is case-sensitive, Llama 3 is not.
  EXPECT_EQ(encode("gpt-2", "I'm"), (Ids{id("I"), id("'m")}));
  EXPECT_EQ(encode("llama-bpe", "I'M"), (Ids{id("I"), id("'"), id("M")}));
  // DeepSeek-V3 joins ASCII punctuation to the letters after it, and only ASCII letters;
  // Qwen 2 joins any one non-letter to any letters; GPT-2 joins nothing.
  EXPECT_EQ(encode("deepseek-v3", "a+b"), (Ids{id("a"), id("+b")}));
  EXPECT_EQ(encode("gpt-2", "a+b"), (Ids{id("a"), id("+"), id("b")}));
  EXPECT_EQ(encode("deepseek-v3", "-\u00E9"), (Ids{id("-"), id("\u00E9")}));
  EXPECT_EQ(encode("qwen2", "-\u00E9"), (Ids{id("-\u00E9")}));
  // Added tokens are found in the text; BOS is added when asked.
  const auto g = from_gguf(byte_gguf(v, "qwen2"));
  EXPECT_EQ(g->encode("ok<|endoftext|><tool> ok", true),
            (Ids{v.im_start, id("ok"), v.endoftext, v.tool, id(" "), id("ok")}));
  EXPECT_EQ(g->bos_id(), v.im_start);
  EXPECT_EQ(g->eos_id(), v.endoftext);
  EXPECT_TRUE(g->is_special(v.endoftext));
  EXPECT_FALSE(g->is_special(v.tool));  // user-defined: matched, but not special
  EXPECT_EQ(g->token_to_id("<tool>"), v.tool);
  EXPECT_EQ(g->id_to_token(id(" the")), "\u0120the");
}

TEST(TokenizerGguf, Llama3TurnsOnIgnoreMergesAndBos) {
  ByteVocab v = byte_vocab();
  // "Ġab" reachable only as a whole word: no merge builds it from "Ġa" + "b".
  v.tokens.push_back(mapped(" ab"));
  v.types.push_back(1);
  Kvs kvs = byte_gguf(v, "llama-bpe");
  drop(kvs, "tokenizer.ggml.add_bos_token");
  const auto t = from_gguf(kvs);
  const auto n = static_cast<int32_t>(v.tokens.size());
  EXPECT_EQ(t->encode(" ab", true), (Ids{v.im_start, n - 1}));
  set(kvs, "tokenizer.ggml.pre", GgufValue::string("qwen2"));  // no ignore_merges, no BOS
  EXPECT_EQ(from_gguf(kvs)->encode(" ab", true), from_gguf(kvs)->encode(" ab", false));
  EXPECT_NE(from_gguf(kvs)->encode(" ab", false), (Ids{n - 1}));
  // add_eos_token appends EOS.
  set(kvs, "tokenizer.ggml.add_eos_token", GgufValue::boolean(true));
  const auto with_eos = from_gguf(kvs);
  Ids expected = with_eos->encode("ok", false);
  expected.push_back(v.endoftext);
  EXPECT_EQ(with_eos->encode("ok", true), expected);
}

TEST(TokenizerGguf, UnusedTokensAreHoles) {
  ByteVocab v = byte_vocab();
  const auto hole = static_cast<int32_t>(v.tokens.size());
  v.tokens.emplace_back("[PAD]");
  v.types.push_back(5);
  v.tokens.emplace_back("after");
  v.types.push_back(1);
  const auto t = from_gguf(byte_gguf(v, "gpt-2"));
  EXPECT_EQ(t->vocab_size(), hole + 2);
  EXPECT_EQ(t->token_to_id("[PAD]"), std::nullopt);
  EXPECT_EQ(t->token_to_id("after"), hole + 1);
  EXPECT_EQ(error_of([&] { t->decode({hole}); }),
            fmt::format("tokenizer: token id {} is unused in the vocabulary", hole));
  EXPECT_EQ(t->decode({hole + 1}), "after");
}

// SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces whose
// scores rank their merges, then a user-defined token.
struct SpmVocab {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};
};

SpmVocab spm_vocab() {
  SpmVocab v;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.scores.push_back(0);
    v.types.push_back(6);
  }
  const std::vector<std::string> pieces = {"▁",   "a",  "b",  "c",   "▁a",  "ab",
                                           "▁ab", "▁c", "bc", "abc", "▁abc"};
  float score = -1;
  for (const std::string& p : pieces) {
    v.tokens.push_back(p);
    v.scores.push_back(score--);
    v.types.push_back(1);
  }
  v.tokens.emplace_back("<tool>");
  v.scores.push_back(0);
  v.types.push_back(4);
  return v;
}

Kvs spm_gguf(const SpmVocab& v) {
  Kvs kvs;
  set(kvs, "tokenizer.ggml.model", GgufValue::string("llama"));
  set(kvs, "tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
  set(kvs, "tokenizer.ggml.scores", GgufValue::f32s(v.scores));
  set(kvs, "tokenizer.ggml.token_type", GgufValue::i32s(v.types));
  set(kvs, "tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  set(kvs, "tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  set(kvs, "tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  set(kvs, "tokenizer.ggml.padding_token_id", GgufValue::u32(0));
  return kvs;
}

// The tokenizer.json Hugging Face's converter writes for that vocabulary (Llama 2 layout): every
// split of a piece into two pieces is a merge, ordered by the piece's score.
json spm_json(const SpmVocab& v) {
  json vocab = json::object();
  for (size_t i = 0; i + 1 < v.tokens.size(); ++i) vocab[v.tokens[i]] = i;
  const json merges = {"▁ a",  "a b",  "▁ ab",  "▁a b",  "▁ c",  "b c",
                       "a bc", "ab c", "▁ abc", "▁a bc", "▁ab c"};
  const auto tool = static_cast<int>(v.tokens.size() - 1);
  json j = test::spm_bpe_tokenizer_json(vocab, merges);
  j["added_tokens"].push_back({{"id", tool}, {"content", "<tool>"}, {"special", false}});
  return j;
}

TEST(TokenizerGguf, SentencePieceMatchesTheEquivalentTokenizerJson) {
  const SpmVocab v = spm_vocab();
  const auto g = from_gguf(spm_gguf(v));
  const auto h = tok::parse_hf_tokenizer(spm_json(v).dump(), "t.json");
  constexpr int32_t kPiece = 259;  // id of "▁"; the pieces follow in the order listed
  const int32_t spc = kPiece, a = kPiece + 1, b = kPiece + 2, sp_a = kPiece + 4, sp_ab = kPiece + 6,
                sp_c = kPiece + 7, sp_abc = kPiece + 10, tool = kPiece + 11;
  // ▁abc▁abc: ▁a (best score) twice, then ▁ab twice, then ▁abc twice.
  EXPECT_EQ(g->encode("abc abc", false), (Ids{sp_abc, sp_abc}));
  EXPECT_EQ(g->encode("ab c", true), (Ids{1, sp_ab, sp_c}));
  // é is missing: its bytes C3 A9 become byte tokens.
  EXPECT_EQ(g->encode("\u00E9", false), (Ids{spc, 3 + 0xC3, 3 + 0xA9}));
  // Each section after a control or user-defined token gets its own ▁.
  EXPECT_EQ(g->encode("a<s>b<tool>b", false), (Ids{sp_a, 1, spc, b, tool, spc, b}));
  EXPECT_EQ(g->decode({sp_a, 1, spc, b, tool, spc, b}), "a<s> b<tool> b");
  EXPECT_EQ(g->bos_id(), 1);
  EXPECT_EQ(g->eos_id(), 2);
  EXPECT_TRUE(g->is_special(0));
  EXPECT_TRUE(g->is_special(2));
  EXPECT_FALSE(g->is_special(tool));
  EXPECT_FALSE(g->is_special(a));
  EXPECT_TRUE(g->strips_leading_space());
  for (const std::string text :
       {"abc abc", "ab c", "cab bcab", "  leading", "trailing  ", "a\nb", "你好", "<unk>x",
        "a<s>b</s>", "<tool>abc", "", " ", "\u00E9t\u00E9 ab", "\xff bad"}) {
    const Ids ids = g->encode(text, false);
    EXPECT_EQ(ids, h->encode(text, false)) << "'" << text << "'";
    EXPECT_EQ(g->encode(text, true), h->encode(text, true)) << "'" << text << "'";
    EXPECT_EQ(g->decode(ids), h->decode(ids)) << "'" << text << "'";
    for (int32_t id : ids) EXPECT_EQ(g->decode_piece(id), h->decode_piece(id));
  }
}

TEST(TokenizerGguf, SentencePieceOptions) {
  const SpmVocab v = spm_vocab();
  constexpr int32_t kPiece = 259;
  const int32_t ab = kPiece + 5, sp_c = kPiece + 7, bc = kPiece + 8, a = kPiece + 1;
  Kvs kvs = spm_gguf(v);
  // Without the leading ▁, "ab c" is ab ▁c; decode keeps the text as is.
  set(kvs, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  set(kvs, "tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  const auto t = from_gguf(kvs);
  EXPECT_EQ(t->encode("ab c", true), (Ids{ab, sp_c}));
  EXPECT_EQ(t->decode({ab, sp_c}), "ab c");
  EXPECT_FALSE(t->strips_leading_space());
  // Equal scores: the leftmost pair merges first. Without an "abc" token, the first merge of
  // "abc" decides the result.
  SpmVocab tie = spm_vocab();
  tie.tokens[kPiece + 9] = "xyz";
  tie.scores[kPiece + 5] = -20;  // ab
  tie.scores[kPiece + 8] = -20;  // bc
  Kvs tied = spm_gguf(tie);
  set(tied, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  EXPECT_EQ(from_gguf(tied)->encode("abc", false), (Ids{ab, kPiece + 3}));
  tie.scores[kPiece + 5] = -21;  // bc is now better
  tied = spm_gguf(tie);
  set(tied, "tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  EXPECT_EQ(from_gguf(tied)->encode("abc", false), (Ids{a, bc}));
  // No token types: the BOS/EOS/unknown ids are the control tokens.
  drop(kvs, "tokenizer.ggml.token_type");
  const auto untyped = from_gguf(kvs);
  EXPECT_TRUE(untyped->is_special(1));
  EXPECT_FALSE(untyped->is_special(kPiece + 11));  // <tool> is an ordinary token now
  EXPECT_EQ(untyped->encode("a<s>", false), (Ids{a, 1}));
  // Defaults (as llama.cpp): BOS 1, EOS 2, unknown 0, BOS added.
  Kvs bare;
  set(bare, "tokenizer.ggml.model", GgufValue::string("llama"));
  set(bare, "tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
  const auto d = from_gguf(bare);
  EXPECT_EQ(d->bos_id(), 1);
  EXPECT_EQ(d->eos_id(), 2);
  EXPECT_EQ(d->encode("ab", true), (Ids{1, kPiece + 6}));  // all scores 0: leftmost first
}

Kvs small_gpt2() {
  std::vector<std::string> tokens(tok::byte_to_unicode().begin(), tok::byte_to_unicode().end());
  tokens.insert(tokens.end(), {"Ġt", "he", "<|endoftext|>"});
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  Kvs kvs;
  set(kvs, "tokenizer.ggml.model", GgufValue::string("gpt2"));
  set(kvs, "tokenizer.ggml.pre", GgufValue::string("qwen2"));
  set(kvs, "tokenizer.ggml.tokens", GgufValue::strings(tokens));
  set(kvs, "tokenizer.ggml.token_type", GgufValue::i32s(types));
  set(kvs, "tokenizer.ggml.merges", GgufValue::strings({"Ġ t", "h e"}));
  set(kvs, "tokenizer.ggml.eos_token_id", GgufValue::u32(258));
  return kvs;
}

std::string gguf_error(const std::function<void(Kvs&)>& edit) {
  Kvs kvs = small_gpt2();
  edit(kvs);
  return error_of([&] { from_gguf(kvs); });
}

TEST(TokenizerGgufErrors, ModelAndPreTokenizer) {
  EXPECT_EQ(gguf_error([](Kvs&) {}), "(no error)");
  EXPECT_EQ(gguf_error([](Kvs& k) { drop(k, "tokenizer.ggml.model"); }),
            "t.gguf: key 'tokenizer.ggml.model' not found");
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.model", GgufValue::string("bert")); }),
            "t.gguf: key 'tokenizer.ggml.model' is 'bert', expected gpt2 (byte-level BPE) or llama "
            "(SentencePiece-style BPE)");
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.model", GgufValue::u32(7)); }),
            "t.gguf: key 'tokenizer.ggml.model' is u32 7, expected string");
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.pre", GgufValue::string("gpt4")); }),
            "t.gguf: key 'tokenizer.ggml.pre' is 'gpt4', expected one of: default, gpt-2, phi-2, "
            "olmo, mpt, jais, llama3, llama-v3, llama-bpe, falcon3, dbrx, smaug-bpe, qwen2, "
            "deepseek-r1-qwen, stablelm2, megrez, deepseek-llm, deepseek-v3, starcoder, refact, "
            "command-r, smollm, codeshell, exaone, minerva-7b");
  // A missing pre-tokenizer is llama.cpp's "default" (files converted before the key existed).
  Kvs kvs = small_gpt2();
  drop(kvs, "tokenizer.ggml.pre");
  EXPECT_EQ(from_gguf(kvs)->encode("a,b", false), (Ids{'a', ',', 'b'}));
}

TEST(TokenizerGgufErrors, TokensTypesAndScores) {
  EXPECT_EQ(gguf_error([](Kvs& k) { drop(k, "tokenizer.ggml.tokens"); }),
            "t.gguf: key 'tokenizer.ggml.tokens' not found");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              set(k, "tokenizer.ggml.tokens", GgufValue::i32s({1, 2}));
            }),
            "t.gguf: key 'tokenizer.ggml.tokens' is array of 2 i32, expected array of string");
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.tokens", GgufValue::strings({})); }),
            "t.gguf: key 'tokenizer.ggml.tokens' is empty, expected at least one token");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              std::vector<std::string> t = k[2].second.as_strings();
              t[257] = "Ġt";
              set(k, "tokenizer.ggml.tokens", GgufValue::strings(t));
            }),
            "t.gguf: tokenizer.ggml.tokens[257] 'Ġt' repeats tokenizer.ggml.tokens[256]");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              set(k, "tokenizer.ggml.token_type", GgufValue::i32s({1, 1, 1}));
            }),
            "t.gguf: key 'tokenizer.ggml.token_type' has 3 entries, expected 259 (one per token)");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              set(k, "tokenizer.ggml.token_type", GgufValue::strings(k[2].second.as_strings()));
            }),
            "t.gguf: key 'tokenizer.ggml.token_type' is array of 259 string, expected array of "
            "integers");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              std::vector<int32_t> types(259, 1);
              types[5] = 9;
              set(k, "tokenizer.ggml.token_type", GgufValue::i32s(types));
            }),
            "t.gguf: tokenizer.ggml.token_type[5] is 9, expected 1 (normal), 2 (unknown), 3 "
            "(control), 4 (user-defined), 5 (unused), 6 (byte) or 0 (undefined)");
  // Scores are read for SentencePiece vocabularies.
  const auto spm_error = [](const std::function<void(Kvs&)>& edit) {
    Kvs kvs = spm_gguf(spm_vocab());
    edit(kvs);
    return error_of([&] { from_gguf(kvs); });
  };
  EXPECT_EQ(spm_error([](Kvs& k) {
              set(k, "tokenizer.ggml.scores", GgufValue::f32s({0, 1}));
            }),
            "t.gguf: key 'tokenizer.ggml.scores' has 2 entries, expected 271 (one per token)");
  EXPECT_EQ(spm_error([](Kvs& k) {
              std::vector<float> s(271, 0);
              s[7] = std::numeric_limits<float>::quiet_NaN();
              set(k, "tokenizer.ggml.scores", GgufValue::f32s(s));
            }),
            "t.gguf: tokenizer.ggml.scores[7] is nan, expected a number");
  EXPECT_EQ(spm_error([](Kvs& k) {
              set(k, "tokenizer.ggml.scores", GgufValue::strings(std::vector<std::string>(271)));
            }),
            "t.gguf: key 'tokenizer.ggml.scores' is array of 271 string, expected array of f32 or "
            "f64");
  // Integer scores are read as llama.cpp reads them.
  EXPECT_EQ(spm_error([](Kvs& k) {
              set(k, "tokenizer.ggml.scores", GgufValue::i32s(std::vector<int32_t>(271, -1)));
            }),
            "(no error)");
}

TEST(TokenizerGgufErrors, Merges) {
  EXPECT_EQ(gguf_error([](Kvs& k) { drop(k, "tokenizer.ggml.merges"); }),
            "t.gguf: key 'tokenizer.ggml.merges' not found");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              set(k, "tokenizer.ggml.merges", GgufValue::strings({"Ġt", "h e"}));
            }),
            "t.gguf: tokenizer.ggml.merges[0] is 'Ġt', expected \"left right\" (two tokens "
            "separated by a space)");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              set(k, "tokenizer.ggml.merges", GgufValue::strings({"Ġ t", "h zz"}));
            }),
            "t.gguf: tokenizer.ggml.merges[1]: token 'zz' is not in the vocabulary");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              set(k, "tokenizer.ggml.merges", GgufValue::strings({"Ġ t", "h x"}));
            }),
            "t.gguf: tokenizer.ggml.merges[1]: merged token 'hx' is not in the vocabulary");
}

TEST(TokenizerGgufErrors, SpecialTokenIds) {
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.bos_token_id", GgufValue::u32(500)); }),
            "t.gguf: key 'tokenizer.ggml.bos_token_id' is 500, expected a token id below 259");
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.bos_token_id", GgufValue::i32(-1)); }),
            "t.gguf: key 'tokenizer.ggml.bos_token_id' is i32 -1, expected a value that fits u32 "
            "(0..4294967295)");
  EXPECT_EQ(
      gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.padding_token_id", GgufValue::u32(259)); }),
      "t.gguf: key 'tokenizer.ggml.padding_token_id' is 259, expected a token id below 259");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              std::vector<int32_t> types(259, 1);
              types[100] = 5;
              set(k, "tokenizer.ggml.token_type", GgufValue::i32s(types));
              set(k, "tokenizer.ggml.eos_token_id", GgufValue::u32(100));
            }),
            "t.gguf: key 'tokenizer.ggml.eos_token_id' is 100, which is an unused token");
  EXPECT_EQ(
      gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.add_bos_token", GgufValue::boolean(true)); }),
      "t.gguf: BOS is to be added (key 'tokenizer.ggml.add_bos_token' is true), but key "
      "'tokenizer.ggml.bos_token_id' names no BOS token");
  EXPECT_EQ(gguf_error([](Kvs& k) {
              drop(k, "tokenizer.ggml.eos_token_id");
              set(k, "tokenizer.ggml.add_eos_token", GgufValue::boolean(true));
            }),
            "t.gguf: key 'tokenizer.ggml.add_eos_token' is true, but key "
            "'tokenizer.ggml.eos_token_id' names no EOS token");
  EXPECT_EQ(gguf_error([](Kvs& k) { set(k, "tokenizer.ggml.add_bos_token", GgufValue::u8(1)); }),
            "t.gguf: key 'tokenizer.ggml.add_bos_token' is u8 1, expected bool");
  // llama vocabularies add BOS by default: with no token 1 to default to, that is an error.
  Kvs one;
  set(one, "tokenizer.ggml.model", GgufValue::string("llama"));
  set(one, "tokenizer.ggml.tokens", GgufValue::strings({"a"}));
  EXPECT_EQ(error_of([&] { from_gguf(one); }),
            "t.gguf: BOS is to be added (key 'tokenizer.ggml.add_bos_token' is absent, default "
            "true), but key 'tokenizer.ggml.bos_token_id' names no BOS token");
  set(one, "tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  // The default unknown id 0 is "a" (an ordinary token: defaults make nothing special); ▁ has
  // neither a token nor byte tokens, so it becomes that unknown id.
  const auto t = from_gguf(one);
  EXPECT_EQ(t->bos_id(), std::nullopt);
  EXPECT_EQ(t->encode("a", true), (Ids{0, 0}));
  EXPECT_FALSE(t->is_special(0));
}

TEST(TokenizerGgufErrors, LoadTokenizerOpensGgufFiles) {
  const fs::path dir = fs::path(::testing::TempDir()) / "sy_tokenizer_gguf";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bytes = gguf_bytes(small_gpt2());
  write_file_atomic((dir / "model.gguf").string(), bytes);
  write_file_atomic((dir / "model.bin").string(), bytes);  // found by its magic
  for (const char* file : {"model.gguf", "model.bin"}) {
    const auto t = load_tokenizer((dir / file).string());
    EXPECT_EQ(t->encode(" the", false), (Ids{256, 257})) << file;
    EXPECT_EQ(t->eos_id(), 258);
  }
  write_file_atomic((dir / "cut.gguf").string(), bytes.substr(0, 40));
  const std::string err = error_of([&] { load_tokenizer((dir / "cut.gguf").string()); });
  EXPECT_EQ(err.rfind((dir / "cut.gguf").string() + ": ", 0), 0u) << err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sy::io
