// switchyard convert's tokenizer export (model/convert_vocab.cpp): tokenizer.json and
// tokenizer.model beside a tiny checkpoint become tokenizer.ggml.* keys, checked key by key
// against vocabularies written here, and run back through our GGUF vocabulary loader to the same
// ids as the original files.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/tokenizer/pretokenize.h"
#include "io/tokenizer/tokenizer.h"
#include "model/config.h"
#include "model/convert.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"
#include "support/tokenizer_testing.h"

namespace sy::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;

const std::vector<int32_t> kTokens = {1, 17, 42, 5, 99, 23, 64, 8, 31, 77, 2, 50};
const std::vector<std::string> kTexts = {"the cat sat on the mat, then it ran",
                                         "<s>hello</s> world my_tok é\n", "", "  it  is  "};

using ::sy::test::error_of;

void write_json(const fs::path& path, const json& j) {
  io::write_file_atomic(path.string(), j.dump());
}

// GPT-2's byte -> character map for the bytes used here.
std::string mapped(int b) {
  if (b == ' ') return "\xC4\xA0";   // U+0120
  if (b == '\n') return "\xC4\x8A";  // U+010A
  if (b < 0x80) return std::string(1, static_cast<char>(b));
  return {static_cast<char>(0xC0 | (b >> 6)), static_cast<char>(0x80 | (b & 0x3F))};
}

struct ByteLevel {
  json file;
  std::vector<std::string> tokens;  // what tokenizer.ggml.tokens must be
  std::vector<int32_t> types;
  std::vector<std::string> merges;
};

// Byte-level BPE for a vocabulary of `n` ids: <pad> <s> </s> special, printable ASCII, '\n',
// the bytes of "é", merges, then a hole at n - 2 and a non-special added token at n - 1.
ByteLevel byte_level(int n) {
  ByteLevel b;
  json vocab = json::object();
  const auto add = [&](const std::string& t, int32_t type) {
    vocab[t] = static_cast<int>(b.tokens.size());
    b.tokens.emplace_back(t);
    b.types.push_back(type);
  };
  for (const char* s : {"<pad>", "<s>", "</s>"}) add(s, 3);
  for (int c = 32; c < 127; ++c) add(mapped(c), 1);
  for (const int c : {int{'\n'}, 0xC3, 0xA9}) add(mapped(c), 1);
  const std::string sp = mapped(' ');
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {sp, "t"},  {"h", "e"}, {sp + "t", "he"}, {"i", "n"}, {"a", "t"},       {sp, "c"},
      {sp, "s"},  {sp, "m"},  {sp + "c", "at"}, {sp, "o"},  {sp, "i"},        {"r", "a"},
      {sp, "r"},  {"o", "n"}, {sp + "s", "at"}, {"e", "n"}, {sp + "m", "at"}, {"Ã", "©"},
      {sp, "w"},  {"o", "r"}, {"l", "d"},       {sp, "h"},  {"e", "l"},       {"l", "o"},
      {"i", "s"}, {sp, "is"}};
  json merges = json::array();
  for (const auto& [l, r] : pairs) {
    if (static_cast<int>(b.tokens.size()) == n - 2) break;
    add(l + r, 1);
    std::string merge = l;
    merge.append(" ").append(r);
    merges.push_back(merge);
    b.merges.push_back(merge);
  }
  EXPECT_EQ(static_cast<int>(b.tokens.size()), n - 2) << "test vocabulary too small";
  b.tokens.push_back(fmt::format("[PAD{}]", n - 2));
  b.types.push_back(5);
  b.tokens.emplace_back("my_tok");
  b.types.push_back(4);
  const auto added = [](int id, const char* s, bool special) {
    return json{{"id", id}, {"content", s}, {"special", special}, {"normalized", !special}};
  };
  b.file = {
      {"version", "1.0"},
      {"added_tokens",
       {added(0, "<pad>", true), added(1, "<s>", true), added(2, "</s>", true),
        added(n - 1, "my_tok", false)}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", io::tok::split_pattern_regex(io::tok::SplitPattern::kGpt2)}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", test::prepend_token_post_processor("<s>", 1)},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"unk_token", nullptr}}}};
  return b;
}

// Tiny Mixtral (vocab 128) and OLMoE (vocab 112) checkpoints, copied into each test's folder.
std::vector<std::string> keys_of(const io::GgufFile& f, std::string_view prefix) {
  std::vector<std::string> out;
  for (const io::GgufKv& kv : f.kvs()) {
    if (kv.key.rfind(prefix, 0) == 0) out.push_back(kv.key);
  }
  return out;
}

class ConvertVocab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    source_ = new test::TempDir("sy_convert_vocab_src");
    std::vector<test::ReferenceCase> cases(2);
    for (size_t i = 0; i < 2; ++i) {
      const std::string arch = i == 0 ? "mixtral" : "olmoe";
      cases[i].params = {{"case", arch},
                         {"dir", (source_->path / arch).string()},
                         {"seed", 1},
                         {"tokens", json(kTokens)},
                         {"gguf", false}};
    }
    test::run_reference_cases("model_arch", cases);
  }
  static void TearDownTestSuite() {
    delete source_;
    source_ = nullptr;
  }
  fs::path folder(const std::string& arch) {
    fs::path dir = tmp_.path / arch;
    if (!fs::exists(dir)) fs::copy(source_->path / arch, dir, fs::copy_options::recursive);
    return dir;
  }
  // Converts (f32) and opens the result.
  io::GgufFile convert(const fs::path& dir, ConvertReport* report = nullptr) {
    ConvertOptions o;
    o.type = GgmlType::kF32;
    o.progress = false;
    const std::string out = (dir / "out.gguf").string();
    const ConvertReport r = convert_to_gguf(dir.string(), out, o);
    if (report != nullptr) *report = r;
    return io::GgufFile::open(out);
  }
  // Writes `tokenizer` as dir's tokenizer.json and converts: the message convert throws.
  std::string error_converting(const fs::path& dir, const json& tokenizer) {
    write_json(dir / "tokenizer.json", tokenizer);
    return error_of([&] { convert(dir); });
  }
  // Writes `tokenizer` as dir's tokenizer.json and converts, expecting no tokenizer embedded:
  // the report's notes.
  std::vector<std::string> notes_without_tokenizer(const fs::path& dir, const json& tokenizer) {
    write_json(dir / "tokenizer.json", tokenizer);
    ConvertReport r;
    EXPECT_TRUE(keys_of(convert(dir, &r), "tokenizer.").empty());
    EXPECT_FALSE(r.tokenizer);
    return r.notes;
  }
  // Both tokenizers give the same ids for every text, with and without special tokens.
  void expect_same_encoding(const fs::path& dir, const fs::path& original) {
    const auto want = io::load_tokenizer(original.string());
    const auto got = io::load_tokenizer((dir / "out.gguf").string());
    // The GGUF vocabulary has the model's size (holes where the file has no token).
    EXPECT_EQ(got->vocab_size(), load_config(dir.string()).vocab_size);
    EXPECT_EQ(got->bos_id(), want->bos_id());
    EXPECT_EQ(got->eos_id(), want->eos_id());
    for (const std::string& text : kTexts) {
      for (const bool special : {false, true}) {
        const Ids ids = want->encode(text, special);
        EXPECT_EQ(got->encode(text, special), ids) << "'" << text << "' special " << special;
        EXPECT_EQ(got->decode(ids), want->decode(ids)) << text;
      }
    }
  }

  static test::TempDir* source_;
  test::TempDir tmp_{"sy_convert_vocab"};
};
test::TempDir* ConvertVocab::source_ = nullptr;

TEST_F(ConvertVocab, ByteLevelTokenizerJson) {
  const fs::path dir = folder("mixtral");
  const ByteLevel b = byte_level(128);
  write_json(dir / "tokenizer.json", b.file);
  write_json(dir / "tokenizer_config.json", {{"bos_token", "<s>"},
                                             {"eos_token", {{"content", "</s>"}}},
                                             {"pad_token", "<pad>"},
                                             {"unk_token", nullptr},
                                             {"add_bos_token", true},
                                             {"add_eos_token", false},
                                             {"chat_template", "{{ messages }}"}});
  ConvertReport r;
  const io::GgufFile f = convert(dir, &r);
  EXPECT_TRUE(r.tokenizer);
  EXPECT_TRUE(r.notes.empty());
  EXPECT_EQ(keys_of(f, "tokenizer."),
            (std::vector<std::string>{
                "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                "tokenizer.chat_template"}));
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens"), b.tokens);
  EXPECT_EQ(f.get_i32s("tokenizer.ggml.token_type"), b.types);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.merges"), b.merges);
  EXPECT_EQ(f.get("tokenizer.ggml.bos_token_id"), io::GgufValue::u32(1));
  EXPECT_EQ(f.get("tokenizer.ggml.eos_token_id"), io::GgufValue::u32(2));
  EXPECT_EQ(f.get("tokenizer.ggml.padding_token_id"), io::GgufValue::u32(0));
  EXPECT_EQ(f.get("tokenizer.ggml.add_bos_token"), io::GgufValue::boolean(true));
  EXPECT_EQ(f.get("tokenizer.ggml.add_eos_token"), io::GgufValue::boolean(false));
  EXPECT_EQ(f.get_string("tokenizer.chat_template"), "{{ messages }}");
  expect_same_encoding(dir, dir);
  // The model reads its BOS/EOS from the embedded vocabulary.
  const ModelConfig c = load_config((dir / "out.gguf").string());
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);

  // Merges as pairs (transformers >= 4.45): the same strings, a space inside a part as U+0120.
  json pairs = b.file;
  pairs["model"]["merges"] = json::array();
  for (const std::string& m : b.merges) {
    const size_t space = m.find(' ');
    pairs["model"]["merges"].push_back({m.substr(0, space), m.substr(space + 1)});
  }
  pairs["model"]["merges"].back() = {" t", "he"};
  write_json(dir / "tokenizer.json", pairs);
  std::vector<std::string> merges = b.merges;
  merges.back() = "\xC4\xA0t he";
  EXPECT_EQ(convert(dir).get_strings("tokenizer.ggml.merges"), merges);

  // Without tokenizer_config.json the ids come from config.json, add_bos_token from the
  // post-processor's template ("<s> $A": BOS, no EOS), and there is no chat template.
  write_json(dir / "tokenizer.json", b.file);
  fs::remove(dir / "tokenizer_config.json");
  const io::GgufFile g = convert(dir);
  EXPECT_EQ(
      keys_of(g, "tokenizer.ggml.add"),
      (std::vector<std::string>{"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"}));
  EXPECT_EQ(g.get("tokenizer.ggml.add_bos_token"), io::GgufValue::boolean(true));
  EXPECT_EQ(g.get("tokenizer.ggml.add_eos_token"), io::GgufValue::boolean(false));
  EXPECT_EQ(keys_of(g, "tokenizer.ggml.bos"),
            std::vector<std::string>{"tokenizer.ggml.bos_token_id"});
  EXPECT_EQ(g.get("tokenizer.ggml.eos_token_id"), io::GgufValue::u32(2));
  EXPECT_EQ(g.find("tokenizer.ggml.padding_token_id"), nullptr);
  EXPECT_EQ(g.find("tokenizer.chat_template"), nullptr);
  // Not embedding it at all.
  ConvertOptions o;
  o.type = GgmlType::kF32;
  o.progress = false;
  o.tokenizer = false;
  const ConvertReport none = convert_to_gguf(dir.string(), (dir / "n.gguf").string(), o);
  EXPECT_FALSE(none.tokenizer);
  EXPECT_TRUE(keys_of(io::GgufFile::open((dir / "n.gguf").string()), "tokenizer.").empty());
}

// Pre-tokenizer names from the regexes: GPT-2 (OLMoE: "olmo"), Llama 3, Qwen2, DeepSeek; an
// unknown sequence is a note and no tokenizer.
TEST_F(ConvertVocab, PreTokenizerNames) {
  using io::tok::SplitPattern;
  const auto split = [](SplitPattern p) {
    return json{{"type", "Split"},
                {"pattern", {{"Regex", io::tok::split_pattern_regex(p)}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  };
  const json byte_level_step = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  const auto sequence = [&](const std::vector<SplitPattern>& ps) {
    json steps = json::array();
    for (SplitPattern p : ps) steps.push_back(split(p));
    steps.push_back(byte_level_step);
    return json{{"type", "Sequence"}, {"pretokenizers", steps}};
  };
  struct Case {
    std::string arch;
    json pre;
    std::string name;
  };
  const std::vector<Case> cases = {
      {"mixtral", {{"type", "ByteLevel"}, {"add_prefix_space", false}}, "gpt-2"},
      {"olmoe", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}, "olmo"},
      {"mixtral", sequence({SplitPattern::kLlama3}), "llama-bpe"},
      {"mixtral", sequence({SplitPattern::kQwen2}), "qwen2"},
      {"mixtral",
       sequence({SplitPattern::kDigits3, SplitPattern::kDeepSeekV3Cjk, SplitPattern::kDeepSeekV3}),
       "deepseek-v3"},
      {"mixtral",
       sequence({SplitPattern::kDeepSeekLlmNewline, SplitPattern::kDeepSeekLlmLetters,
                 SplitPattern::kDeepSeekLlmPunct, SplitPattern::kDeepSeekLlmTrailing,
                 SplitPattern::kDeepSeekLlmCjk, SplitPattern::kDigitRuns}),
       "deepseek-llm"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path dir = folder(c.arch);
    ByteLevel b = byte_level(c.arch == "olmoe" ? 112 : 128);
    b.file["pre_tokenizer"] = c.pre;
    write_json(dir / "tokenizer.json", b.file);
    const io::GgufFile f = convert(dir);
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), c.name);
    expect_same_encoding(dir, dir / "tokenizer.json");
  }
  const fs::path dir = folder("mixtral");
  ByteLevel b = byte_level(128);
  b.file["pre_tokenizer"] = sequence({SplitPattern::kGpt2, SplitPattern::kDigit});
  EXPECT_EQ(notes_without_tokenizer(dir, b.file),
            std::vector<std::string>{
                (dir / "tokenizer.json").string() +
                ": the pre-tokenizer is not one whose llama.cpp name is known (GPT-2, "
                "Llama 3, Qwen2, DeepSeek-V3, DeepSeek LLM); no tokenizer embedded"});
  // GPT-2's regex with a space put before the text: the tokenizers library's ByteLevel default.
  b.file["pre_tokenizer"] = {{"type", "ByteLevel"}, {"use_regex", true}};
  EXPECT_EQ(notes_without_tokenizer(dir, b.file),
            std::vector<std::string>{(dir / "tokenizer.json").string() +
                                     ": the ByteLevel pre-tokenizer adds a space before the text "
                                     "(add_prefix_space, true when absent), which llama.cpp's gpt2 "
                                     "vocabularies do not; no tokenizer embedded"});
  b.file["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  b.file["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(
      notes_without_tokenizer(dir, b.file),
      std::vector<std::string>{(dir / "tokenizer.json").string() +
                               ": the normalizer step 'Lowercase' changes the text, which a GGUF "
                               "vocabulary cannot do; no tokenizer embedded"});
}

// SentencePiece-style BPE in tokenizer.json: model "llama", byte tokens, scores in merge order.
TEST_F(ConvertVocab, SentencePieceStyleTokenizerJson) {
  const fs::path dir = folder("mixtral");
  const std::string sp = "\xE2\x96\x81";
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>"};
  for (const char* t : {"t", "h", "e", "a", "c", "s", "m", "i", "n", "o", "r"})
    tokens.emplace_back(t);
  tokens.push_back(sp);
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {sp, "t"},        {"h", "e"}, {sp + "t", "he"}, {"a", "t"}, {sp, "c"},
      {sp + "c", "at"}, {sp, "s"},  {sp + "s", "at"}, {"i", "n"}, {"o", "n"}};
  json merges = json::array();
  for (const auto& [l, r] : pairs) {
    tokens.push_back(l + r);
    std::string merge = l;
    merge.append(" ").append(r);
    merges.push_back(merge);
  }
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  json file = test::spm_bpe_tokenizer_json(vocab, merges);
  write_json(dir / "tokenizer.json", file);
  const io::GgufFile f = convert(dir);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "default");
  EXPECT_EQ(f.find("tokenizer.ggml.merges"), nullptr);
  EXPECT_EQ(f.find("tokenizer.ggml.add_space_prefix"), nullptr);
  std::vector<std::string> want_tokens = tokens;
  std::vector<float> want_scores;
  std::vector<int32_t> want_types;
  for (size_t i = 0; i < tokens.size(); ++i) {
    want_types.push_back(i == 0 ? 2 : i < 3 ? 3 : i < 6 ? 6 : 1);
    // Merged tokens score minus their merge's rank; other normal tokens below every merge.
    want_scores.push_back(i >= 18 ? -static_cast<float>(i - 18) : i >= 6 ? -10.0f : 0.0f);
  }
  for (size_t i = tokens.size(); i < 128; ++i) {
    want_tokens.push_back(fmt::format("[PAD{}]", i));
    want_types.push_back(5);
    want_scores.push_back(0.0f);
  }
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens"), want_tokens);
  EXPECT_EQ(f.get_i32s("tokenizer.ggml.token_type"), want_types);
  EXPECT_EQ(f.get_f32s("tokenizer.ggml.scores"), want_scores);
  expect_same_encoding(dir, dir / "tokenizer.json");

  // A Metaspace step that never prepends: add_space_prefix false.
  file["normalizer"] = nullptr;
  file["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "never"}, {"split", false}};
  write_json(dir / "tokenizer.json", file);
  EXPECT_EQ(convert(dir).get("tokenizer.ggml.add_space_prefix"), io::GgufValue::boolean(false));

  // Text steps a GGUF vocabulary cannot do are notes, and no vocabulary is written (the fuzzer
  // found the first: its GGUF split spaces as "▁" where tokenizer.json kept them).
  const auto notes_for = [&](const json& normalizer, const json& pre_tokenizer) {
    file["normalizer"] = normalizer;
    file["pre_tokenizer"] = pre_tokenizer;
    return notes_without_tokenizer(dir, file);
  };
  const auto note = [&](const std::string& what) {
    return std::vector<std::string>{(dir / "tokenizer.json").string() + ": " + what +
                                    ", which a GGUF vocabulary cannot do; no tokenizer embedded"};
  };
  EXPECT_EQ(notes_for(nullptr, nullptr),
            note("spaces stay spaces (no Replace normalizer or Metaspace pre-tokenizer makes them "
                 "\"\xE2\x96\x81\")"));
  EXPECT_EQ(
      notes_for({{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", sp}}, nullptr),
      note("the normalizer step 'Replace' changes the text"));
  EXPECT_EQ(notes_for(nullptr, {{"type", "Sequence"},
                                {"pretokenizers",
                                 {{{"type", "Metaspace"}, {"replacement", sp}},
                                  {{"type", "Digits"}, {"individual_digits", true}}}}}),
            note("the pre-tokenizer step 'Digits' splits or changes the text"));
}

// tokenizer.model through the SentencePiece library, preferred for Mixtral as in llama.cpp.
TEST_F(ConvertVocab, SentencePieceModel) {
  const fs::path dir = folder("mixtral");
  std::string corpus;
  for (int rep = 0; rep < 20; ++rep) {
    corpus +=
        "the cat sat on the mat, then it ran\nexperts are routed by a gate that picks the top "
        "two\nsparse mixture of experts models scale with few active parameters\n";
  }
  io::write_file_atomic((tmp_.path / "corpus.txt").string(), corpus);
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + (tmp_.path / "corpus.txt").string() +
      " --model_prefix=" + (dir / "tokenizer").string() +
      " --vocab_size=100 --model_type=bpe --hard_vocab_limit=false --minloglevel=2");
  ASSERT_TRUE(status.ok()) << status.ToString();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load((dir / "tokenizer.model").string()).ok());
  const int n = sp.GetPieceSize();
  ASSERT_LE(n, 126);
  // A byte-level tokenizer.json beside it is not used for a llama-architecture model.
  write_json(dir / "tokenizer.json", byte_level(128).file);
  write_json(dir / "tokenizer_config.json",
             {{"added_tokens_decoder",
               {{std::to_string(n), {{"content", "<|im_start|>"}, {"special", false}}},
                {std::to_string(n + 1),
                 {{"content",
                   "\xE2\x96\x81"
                   "extra"},
                  {"special", false}}},
                {"500", {{"content", "<|out_of_range|>"}, {"special", true}}}}}});
  const io::GgufFile f = convert(dir);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "default");
  const std::vector<std::string> tokens = f.get_strings("tokenizer.ggml.tokens");
  const std::vector<float> scores = f.get_f32s("tokenizer.ggml.scores");
  const std::vector<int32_t> types = f.get_i32s("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), 128u);
  ASSERT_EQ(scores.size(), 128u);
  ASSERT_EQ(types.size(), 128u);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(tokens[i], sp.IdToPiece(i));
    EXPECT_EQ(scores[i], sp.GetScore(i));
    EXPECT_EQ(types[i], sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsByte(i) ? 6 : 1) << i;
  }
  // Added tokens: special-looking -> control, else user-defined with "▁" as a space.
  EXPECT_EQ(tokens[n], "<|im_start|>");
  EXPECT_EQ(types[n], 3);
  EXPECT_EQ(scores[n], -1000.0f);
  EXPECT_EQ(tokens[n + 1], " extra");
  EXPECT_EQ(types[n + 1], 4);
  for (int i = n + 2; i < 128; ++i) {
    EXPECT_EQ(tokens[i], fmt::format("[PAD{}]", i));
    EXPECT_EQ(types[i], 5);
    EXPECT_EQ(scores[i], -10000.0f);
  }
  EXPECT_EQ(f.find("tokenizer.ggml.merges"), nullptr);
  EXPECT_EQ(f.get("tokenizer.ggml.bos_token_id"), io::GgufValue::u32(1));  // config.json
  EXPECT_EQ(f.get("tokenizer.ggml.eos_token_id"), io::GgufValue::u32(2));
  const auto got = io::load_tokenizer((dir / "out.gguf").string());
  // (Not runs of spaces: SentencePiece collapses them by default, llama.cpp does not.)
  for (const std::string text : {"the cat sat on the mat", "experts route tokens", "xyz é"}) {
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(text, &want).ok());
    EXPECT_EQ(got->encode(text, false), Ids(want.begin(), want.end())) << text;
  }
}

// A byte-level BPE without merges (every token a single byte) still gets the merges key, which
// llama.cpp requires of a gpt2 vocabulary: empty.
TEST_F(ConvertVocab, ByteLevelWithoutMerges) {
  const fs::path dir = folder("mixtral");
  ByteLevel b = byte_level(128);
  b.file["model"]["merges"] = json::array();
  write_json(dir / "tokenizer.json", b.file);
  const io::GgufFile f = convert(dir);
  ASSERT_NE(f.find("tokenizer.ggml.merges"), nullptr);
  EXPECT_TRUE(f.get_strings("tokenizer.ggml.merges").empty());
  const auto t = io::load_tokenizer((dir / "out.gguf").string());
  EXPECT_EQ(t->encode("hi", false), (Ids{b.file["model"]["vocab"]["h"].get<int32_t>(),
                                         b.file["model"]["vocab"]["i"].get<int32_t>()}));
}

// A special id that names no token (a hole of the vocabulary, or past it) is left out with a
// note: the GGUF vocabulary loader refuses such an id.
TEST_F(ConvertVocab, SpecialIdsThatNameNoTokenAreNotes) {
  const fs::path dir = folder("mixtral");
  const ByteLevel b = byte_level(128);
  write_json(dir / "tokenizer.json", b.file);
  json config = json::parse(io::read_file((dir / "config.json").string()));
  config["pad_token_id"] = 126;  // the hole of byte_level(128)
  config["sep_token_id"] = 500;
  write_json(dir / "config.json", config);
  ConvertReport r;
  const io::GgufFile f = convert(dir, &r);
  EXPECT_EQ(f.find("tokenizer.ggml.padding_token_id"), nullptr);
  EXPECT_EQ(f.find("tokenizer.ggml.seperator_token_id"), nullptr);
  EXPECT_EQ(f.get("tokenizer.ggml.bos_token_id"), io::GgufValue::u32(1));
  const std::string where = (dir / "config.json").string();
  EXPECT_EQ(r.notes, (std::vector<std::string>{
                         where + ": sep_token_id is 500, which is no token of the vocabulary; "
                                 "tokenizer.ggml.seperator_token_id not written",
                         where + ": pad_token_id is 126, which is no token of the vocabulary; "
                                 "tokenizer.ggml.padding_token_id not written"}));
  expect_same_encoding(dir, dir);

  // No BOS id at all, though BOS is to be added: the flag is written false (a loader would
  // otherwise look for a BOS to add, and could not load the vocabulary).
  config.erase("bos_token_id");
  config.erase("sep_token_id");
  config.erase("pad_token_id");
  write_json(dir / "config.json", config);
  write_json(dir / "tokenizer_config.json", {{"bos_token", "<q>"}, {"add_bos_token", true}});
  const io::GgufFile g = convert(dir, &r);
  EXPECT_EQ(g.find("tokenizer.ggml.bos_token_id"), nullptr);
  EXPECT_EQ(g.get("tokenizer.ggml.add_bos_token"), io::GgufValue::boolean(false));
  EXPECT_EQ(r.notes, std::vector<std::string>{
                         dir.string() + ": add_bos_token is true, but no bos token id was found; "
                                        "tokenizer.ggml.add_bos_token written as false"});
  EXPECT_EQ(io::load_tokenizer((dir / "out.gguf").string())->encode("the cat", true),
            io::load_tokenizer((dir / "tokenizer.json").string())->encode("the cat", false));
}

TEST_F(ConvertVocab, TokenizerFileErrors) {
  const fs::path dir = folder("mixtral");
  const std::string file = (dir / "tokenizer.json").string();
  io::write_file_atomic(file, "{not json");
  EXPECT_EQ(error_of([&] { convert(dir); }), file + ": not a JSON object");
  ByteLevel b = byte_level(128);
  b.file["model"]["vocab"]["zz"] = 128;
  EXPECT_EQ(error_converting(dir, b.file),
            file +
                ": token 'zz' has id 128, outside the model's vocabulary [0, 128) (config.json "
                "vocab_size)");
  b = byte_level(128);
  b.file["model"]["merges"][3] = "inn";
  EXPECT_EQ(error_converting(dir, b.file), file + ": merge 'inn' is not 'left right'");
  b.file["model"]["merges"][3] = json::array({"i"});
  EXPECT_EQ(error_converting(dir, b.file), file + ": merge [\"i\"] is not a pair of strings");
  b.file["model"].erase("vocab");
  EXPECT_EQ(error_converting(dir, b.file),
            file + ": key 'model.vocab' is missing or not an object");
  // Files the tokenizers library refuses, whose merges the GGUF loader could not read back
  // (the converter used to write them).
  b = byte_level(128);
  b.file["model"]["vocab"]["zz"] = 5;
  EXPECT_EQ(error_converting(dir, b.file),
            file + ": model.vocab: tokens '" + b.tokens[5] + "' and 'zz' both have id 5");
  b = byte_level(128);
  b.file["model"]["merges"][3] = "i q";
  EXPECT_EQ(error_converting(dir, b.file),
            file + ": model.merges[3]: merged token 'iq' is not in the vocabulary");
  b.file["model"]["merges"][3] = json::array({"i", "\u00e9"});
  EXPECT_EQ(error_converting(dir, b.file),
            file + ": model.merges[3]: token '\u00e9' is not in the vocabulary");
  b = byte_level(128);
  b.file["added_tokens"].push_back({{"id", 5}, {"content", "<s>"}, {"special", true}});
  EXPECT_EQ(error_converting(dir, b.file), file + ": token '<s>' has ids 1 and 5");
  b = byte_level(128);  // an added token takes the id of "he", which merges 1 and 2 use
  b.file["added_tokens"].push_back({{"id", b.file["model"]["vocab"]["he"]}, {"content", "<x>"}});
  EXPECT_EQ(error_converting(dir, b.file),
            file + ": model.merges[1]: merged token 'he' is not in the vocabulary");
  // Keys of another type name the files (they threw json type_error 302 unnamed).
  b = byte_level(128);
  b.file["model"]["type"] = 5;
  EXPECT_EQ(error_converting(dir, b.file),
            file +
                " / tokenizer_config.json: a key has an unexpected type: "
                "[json.exception.type_error.302] type must be string, but is number");
  b = byte_level(128);
  b.file["model"]["byte_fallback"] = "yes";
  b.file["pre_tokenizer"] = nullptr;
  b.file["decoder"] = nullptr;
  EXPECT_EQ(error_converting(dir, b.file),
            file +
                " / tokenizer_config.json: a key has an unexpected type: "
                "[json.exception.type_error.302] type must be boolean, but is string");
  // A tokenizer that GGUF cannot hold is a note; the model still converts.
  EXPECT_EQ(
      notes_without_tokenizer(dir, {{"model", {{"type", "Unigram"}, {"vocab", json::array()}}}}),
      std::vector<std::string>{file +
                               ": model type 'Unigram' cannot be written as a GGUF vocabulary "
                               "(BPE only); no tokenizer embedded"});
  fs::remove(file);
  io::write_file_atomic((dir / "tokenizer.model").string(), "junk");
  EXPECT_EQ(error_of([&] { convert(dir); }).rfind((dir / "tokenizer.model").string() + ": ", 0),
            0u);
}

}  // namespace
}  // namespace sy::model
