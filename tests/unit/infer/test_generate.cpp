// generate() end to end on a tiny random Mixtral checkpoint (tests/reference/model_arch.py) with
// a small byte-level BPE tokenizer.json written here, sized to the model's vocabulary. Greedy
// decoding through the KV cache is checked against a reference that re-runs the whole sequence
// without a cache at every step; the other tests check how generation ends and what it streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "infer/generate.h"
#include "io/atomic_file.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"
#include "support/tokenizer_testing.h"

namespace sy::infer {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

constexpr int32_t kEos = 2;  // the checkpoint's eos_token_id and the tokenizer's "</s>"
constexpr std::string_view kPrompt = "the cat sat on the mat, then it ran";

// GPT-2's byte -> character map for the bytes the tokenizer below uses.
std::string mapped(int b) {
  if (b == ' ') return "Ġ";   // U+0120
  if (b == '\n') return "Ċ";  // U+010A
  // 33-126 and 161-255 (but 173) stand for themselves, as UTF-8 of that code point.
  if (b < 0x80) return std::string(1, static_cast<char>(b));
  return {static_cast<char>(0xC0 | (b >> 6)), static_cast<char>(0x80 | (b & 0x3F))};
}

// Byte-level BPE with exactly `vocab_size` ids: <pad> <s> </s> (special), the printable ASCII
// bytes, '\n', the two bytes of "é" (C3 A9), then merges until the vocabulary is full.
json tokenizer_json(int vocab_size) {
  json vocab = {{"<pad>", 0}, {"<s>", 1}, {"</s>", 2}};
  int id = 3;
  for (int b = 32; b < 127; ++b) vocab[mapped(b)] = id++;
  for (const int b : {int{'\n'}, 0xC3, 0xA9}) vocab[mapped(b)] = id++;
  static const std::vector<std::pair<std::string, std::string>> kMerges = {
      {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"e", "r"}, {"a", "n"},   {"o", "n"},
      {"Ġ", "a"}, {"r", "e"}, {"e", "n"},   {"Ġ", "s"}, {"Ġ", "w"}, {"a", "t"},   {"o", "r"},
      {"Ġ", "o"}, {"i", "s"}, {"Ġ", "c"},   {"e", "s"}, {"i", "t"}, {"Ġ", "b"},   {"a", "r"},
      {"Ġ", "f"}, {"Ġ", "p"}, {"Ġ", "m"},   {"a", "l"}, {"Ã", "©"}, {"Ġc", "at"}, {"l", "l"},
      {"o", "u"}, {"l", "e"}, {"s", "t"},   {"Ġ", "h"}, {"Ġ", "i"}, {"Ġ", "l"},   {"Ġ", "n"}};
  json merges = json::array();
  for (const auto& [a, b] : kMerges) {
    if (id == vocab_size) break;
    vocab[a + b] = id++;
    merges.push_back(fmt::format("{} {}", a, b));
  }
  SY_CHECK(id == vocab_size, "test tokenizer: {} ids, the model wants {}", id, vocab_size);
  const auto special = [](int i, const char* s) {
    return json{{"id", i}, {"content", s}, {"special", true}};
  };
  return {
      {"version", "1.0"},
      {"added_tokens", {special(0, "<pad>"), special(1, "<s>"), special(2, "</s>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", test::prepend_token_post_processor("<s>", 1)},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", merges},
        {"dropout", nullptr},
        {"unk_token", nullptr}}}};
}

using ::sy::test::error_of;

struct Gen {
  GenerateResult result;
  std::string streamed;  // every on_text piece, concatenated
  int pieces = 0;
};

class Generate : public ::testing::Test {
 protected:
  // One checkpoint (safetensors + GGUF) and tokenizer for the whole suite: the Python reference
  // costs ~2 s to start.
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::TempDir>("sy_generate");
    test::ReferenceCase c;
    c.params = {{"case", "mixtral"}, {"dir", dir_->str()}, {"seed", 1}, {"tokens", {1, 2, 3}}};
    test::run_reference_cases("model_arch", {c});
    std::ifstream config(dir_->path / "config.json");
    vocab_ = json::parse(config).at("vocab_size").get<int>();
    io::write_file_atomic((dir_->path / "tokenizer.json").string(), tokenizer_json(vocab_).dump());
    model_ = model::Model::load(dir_->str());
    gguf_ = model::Model::load((dir_->path / "model.gguf").string());
    tokenizer_ = io::load_tokenizer(dir_->str());
  }
  void SetUp() override {
    ASSERT_TRUE(model_ && gguf_ && tokenizer_) << "the checkpoint could not be made or loaded";
  }
  static void TearDownTestSuite() {
    tokenizer_.reset();
    gguf_.reset();
    model_.reset();
    dir_.reset();
  }

  static GenerateOptions greedy(int64_t max_tokens) {
    GenerateOptions o;
    o.max_tokens = max_tokens;
    o.sampling.temperature = 0.0f;
    o.ignore_eos = true;
    return o;
  }

  static Gen run(const GenerateOptions& options, model::Model* model = nullptr,
                 std::string_view prompt = kPrompt) {
    Gen r;
    r.result = generate(model != nullptr ? *model : *model_, *tokenizer_, prompt, options,
                        [&](std::string_view piece) {
                          EXPECT_FALSE(piece.empty()) << "on_text called with nothing";
                          r.streamed += piece;
                          ++r.pieces;
                        });
    EXPECT_EQ(r.streamed, r.result.text);
    return r;
  }

  // Greedy without a KV cache: the whole sequence through forward() at every step, argmax of
  // the last row (lowest id on ties, as the sampler).
  static Ids greedy_reference(Ids seq, int n) {
    Ids out;
    for (int i = 0; i < n; ++i) {
      model::KvCache cache = model_->new_cache(static_cast<int64_t>(seq.size()));
      const Tensor logits = model_->forward(seq, cache, /*all_logits=*/false);
      const float* row = logits.data<float>();
      const auto id = static_cast<int32_t>(std::max_element(row, row + vocab_) - row);
      seq.push_back(id);
      out.push_back(id);
    }
    return out;
  }

  // Text of `ids` as a stream shows it: the byte pieces of the non-special tokens.
  static std::string text_of(const Ids& ids) {
    std::string s;
    for (const int32_t id : ids) {
      if (!tokenizer_->is_special(id)) s += tokenizer_->decode_piece(id);
    }
    return s;
  }

  static Ids prompt_ids() { return tokenizer_->encode(kPrompt, true); }

  // The checks, grouped into three tests below (each test process pays for the checkpoint).
  static void GreedyMatchesTheNoCacheReference();
  static void MaxTokensAndContextEndWithLength();
  static void EosIdStopsAndIsNotShown();
  static void StopStringIsCutFromTheText();
  static void SeededSamplingRepeatsAndDependsOnTheSeed();
  static void ContextTooSmallAndOtherBadInputs();
  static void GgufAndSafetensorsGenerateTheSameTokens();

  static inline std::unique_ptr<test::TempDir> dir_;
  static inline int vocab_ = 0;
  static inline std::unique_ptr<model::Model> model_, gguf_;
  static inline std::unique_ptr<io::Tokenizer> tokenizer_;
};

void Generate::GreedyMatchesTheNoCacheReference() {
  const Ids prompt = prompt_ids();
  ASSERT_EQ(prompt.front(), 1);  // <s>
  ASSERT_GT(prompt.size(), 8u);
  const Ids ref = greedy_reference(prompt, 16);
  const Gen r = run(greedy(16));
  EXPECT_EQ(r.result.prompt_ids, prompt);
  EXPECT_EQ(r.result.ids, ref);
  EXPECT_EQ(r.result.finish_reason, "length");
  EXPECT_EQ(r.result.text, text_of(ref));
  EXPECT_GT(r.pieces, 8) << "the text came in one piece, not streamed";
  EXPECT_GT(r.result.prefill_seconds, 0.0);
  EXPECT_GT(r.result.decode_seconds, 0.0);
  // A test that can fail: the generated text is not one token over and over.
  EXPECT_GT(std::set<int32_t>(ref.begin(), ref.end()).size(), 2u);
  // The prompt without <s>.
  const Gen plain = [] {
    GenerateOptions o = greedy(4);
    o.add_special = false;
    return run(o);
  }();
  EXPECT_EQ(plain.result.prompt_ids, Ids(prompt.begin() + 1, prompt.end()));
  EXPECT_EQ(plain.result.ids, greedy_reference(plain.result.prompt_ids, 4));
}

void Generate::MaxTokensAndContextEndWithLength() {
  const Ids ref = greedy_reference(prompt_ids(), 6);
  for (const int n : {0, 1, 6}) {
    const Gen r = run(greedy(n));
    EXPECT_EQ(r.result.ids, Ids(ref.begin(), ref.begin() + n)) << n;
    EXPECT_EQ(r.result.finish_reason, "length") << n;
    EXPECT_EQ(r.result.text, text_of(r.result.ids)) << n;
  }
  // A context of prompt + 2 positions holds the prompt and two generated tokens; the token
  // after them comes from the logits of the last position, then there is no room left.
  GenerateOptions o = greedy(100);
  o.context = static_cast<int64_t>(prompt_ids().size()) + 2;
  const Gen r = run(o);
  EXPECT_EQ(r.result.ids, Ids(ref.begin(), ref.begin() + 3));
  EXPECT_EQ(r.result.finish_reason, "length");
}

void Generate::EosIdStopsAndIsNotShown() {
  const Ids ref = greedy_reference(prompt_ids(), 12);
  GenerateOptions o = greedy(12);
  o.ignore_eos = false;
  o.eos_ids = {ref[5]};
  // Generation ends at the first token that is ref[5] or the model's EOS.
  const auto end = static_cast<size_t>(
      std::find_if(ref.begin(), ref.end(), [&](int32_t id) { return id == ref[5] || id == kEos; }) -
      ref.begin());
  ASSERT_LE(end, 5u);
  const Gen r = run(o);
  EXPECT_EQ(r.result.ids, Ids(ref.begin(), ref.begin() + static_cast<ptrdiff_t>(end) + 1));
  EXPECT_EQ(r.result.finish_reason, "eos");
  EXPECT_EQ(r.result.text, text_of(Ids(ref.begin(), ref.begin() + static_cast<ptrdiff_t>(end))));
  // ignore_eos goes on to max_tokens.
  o.ignore_eos = true;
  const Gen all = run(o);
  EXPECT_EQ(all.result.ids, ref);
  EXPECT_EQ(all.result.finish_reason, "length");
}

void Generate::StopStringIsCutFromTheText() {
  const Ids ref = greedy_reference(prompt_ids(), 16);
  const std::string full = text_of(ref);
  ASSERT_GE(full.size(), 8u) << full;
  // Three characters from the second half of the text; its first occurrence may be earlier.
  const std::string stop = full.substr(full.size() / 2, 3);
  const size_t at = full.find(stop);
  GenerateOptions o = greedy(16);
  o.stop = {"never in this text", stop};
  const Gen r = run(o);
  EXPECT_EQ(r.result.text, full.substr(0, at)) << "stop '" << stop << "' in '" << full << "'";
  EXPECT_EQ(r.result.finish_reason, "stop");
  // It ends at the token that completes the stop string.
  ASSERT_LE(r.result.ids.size(), ref.size());
  EXPECT_EQ(r.result.ids,
            Ids(ref.begin(), ref.begin() + static_cast<ptrdiff_t>(r.result.ids.size())));
  EXPECT_GE(text_of(r.result.ids).size(), at + stop.size());
  EXPECT_LT(text_of(Ids(r.result.ids.begin(), r.result.ids.end() - 1)).size(), at + stop.size());
  // A stop string that never appears changes nothing.
  o.stop = {"never in this text"};
  const Gen none = run(o);
  EXPECT_EQ(none.result.text, full);
  EXPECT_EQ(none.result.finish_reason, "length");
}

void Generate::SeededSamplingRepeatsAndDependsOnTheSeed() {
  GenerateOptions o;
  o.max_tokens = 16;
  o.ignore_eos = true;
  o.sampling = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 7};
  const Gen a = run(o);
  const Gen b = run(o);
  o.sampling.seed = 8;
  const Gen c = run(o);
  EXPECT_EQ(a.result.ids.size(), 16u);
  EXPECT_EQ(a.result.ids, b.result.ids);
  EXPECT_EQ(a.result.text, b.result.text);
  EXPECT_NE(a.result.ids, c.result.ids);
  // Sampling at temperature 1 over the whole vocabulary is not greedy.
  EXPECT_NE(a.result.ids, greedy_reference(prompt_ids(), 16));
}

void Generate::ContextTooSmallAndOtherBadInputs() {
  const auto n = static_cast<int64_t>(prompt_ids().size());
  GenerateOptions o = greedy(4);
  o.context = n;
  EXPECT_EQ(error_of([&] { run(o); }),
            fmt::format("generate: the prompt has {} tokens, the context only {} positions", n, n));
  o.context = 3;
  EXPECT_EQ(error_of([&] { run(o); }),
            fmt::format("generate: the prompt has {} tokens, the context only 3 positions", n));
  o = greedy(-1);
  EXPECT_EQ(error_of([&] { run(o); }), "generate: max_tokens is -1, expected >= 0");
  o = greedy(4);
  o.add_special = false;
  EXPECT_EQ(error_of([&] { run(o, nullptr, ""); }),
            "generate: the prompt is empty and the tokenizer adds no BOS token; give a prompt");
  // A tokenizer with more tokens than the model: its last merge (id vocab_ + 1) is not
  // something the model can read.
  const std::unique_ptr<io::Tokenizer> big =
      io::tok::parse_hf_tokenizer(tokenizer_json(vocab_ + 2).dump(), "big.json");
  const std::string last = big->decode_piece(vocab_ + 1);
  ASSERT_EQ(big->encode(last, false), Ids{vocab_ + 1});
  EXPECT_EQ(error_of([&] { generate(*model_, *big, last, greedy(1)); }),
            fmt::format("generate: prompt token {} is outside the model's vocabulary of {} "
                        "(tokenizer and model disagree)",
                        vocab_ + 1, vocab_));
}

void Generate::GgufAndSafetensorsGenerateTheSameTokens() {
  ASSERT_TRUE(gguf_->config().gguf);
  const Gen st = run(greedy(16));
  const Gen gg = run(greedy(16), gguf_.get());
  EXPECT_EQ(gg.result.ids, st.result.ids);
  EXPECT_EQ(gg.result.text, st.result.text);
}

TEST_F(Generate, GreedyMatchesTheNoCacheReferenceInBothFormats) {
  GreedyMatchesTheNoCacheReference();
  GgufAndSafetensorsGenerateTheSameTokens();
}

TEST_F(Generate, EndsOnLengthEosAndStopStrings) {
  MaxTokensAndContextEndWithLength();
  EosIdStopsAndIsNotShown();
  StopStringIsCutFromTheText();
}

TEST_F(Generate, SeededSamplingAndBadInputs) {
  SeededSamplingRepeatsAndDependsOnTheSeed();
  ContextTooSmallAndOtherBadInputs();
}

}  // namespace
}  // namespace sy::infer
