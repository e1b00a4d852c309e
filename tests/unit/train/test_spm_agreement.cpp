// Issue #5: "The SentencePiece paths agree with the SentencePiece library token for token on the
// bundled corpus". A BPE model with byte fallback is trained on the whole of data/brown.txt
// (vocabulary 4000) and every line of the corpus is encoded by
//   (a) the SentencePiece library itself (sentencepiece::SentencePieceProcessor),
//   (b) our tokenizer.json engine, given the same model converted to tokenizer.json the way
//       Hugging Face's LlamaConverter converts a tokenizer.model (below),
//   (c) our .model loader (io::load_tokenizer, which wraps the library),
// and the three must give the same ids on every line, and decode back to the line.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "io/atomic_file.h"
#include "io/tokenizer/tokenizer.h"
#include "support/temp_dir.h"
#include "train/data.h"

namespace sy::train {
namespace {

using json = nlohmann::json;

size_t code_points(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<uint8_t>(c) & 0xC0) != 0x80; }));
}

// Byte offset of code point `k` of s.
size_t offset_of(std::string_view s, size_t k) {
  size_t i = 0;
  for (size_t seen = 0; i < s.size(); ++i) {
    if ((static_cast<uint8_t>(s[i]) & 0xC0) != 0x80 && seen++ == k) return i;
  }
  return s.size();
}

// tokenizer.json for a SentencePiece BPE model, as transformers' LlamaConverter writes it
// (convert_slow_tokenizer.py: LlamaConverter, SpmConverter.tokenizer and generate_merges):
//  - model: BPE over the pieces in id order, unk_token <unk>, fuse_unk, byte_fallback. The
//    merges are every split (left, right) of every piece, at a code point boundary, whose two
//    halves are both pieces, ordered by the piece's score, highest first, then by the length
//    of the left half and of the right half, longest first (a stable sort over the pieces in
//    id order, each piece's splits by (id of left, id of right)).
//  - added tokens: the control pieces <unk>, <s>, </s> (special, not normalized).
//  - normalizer: Prepend "▁", then Replace " " -> "▁" (the legacy Llama tokenizer).
//  - no pre-tokenizer; post-processor: <s> before the text (LlamaTokenizerFast).
//  - decoder: Replace "▁" -> " ", ByteFallback, Fuse, Strip one leading space.
json llama_tokenizer_json(const sentencepiece::SentencePieceProcessor& sp) {
  const int n = sp.GetPieceSize();
  json vocab = json::object();
  std::vector<std::string> pieces(n);
  std::unordered_map<std::string, int> id_of;
  for (int i = 0; i < n; ++i) {
    pieces[i] = sp.IdToPiece(i);
    vocab[pieces[i]] = i;
    id_of.emplace(pieces[i], i);
  }
  struct Merge {
    float score;
    size_t left_len;
    size_t right_len;
    int left;
    int right;
  };
  std::vector<Merge> merges;
  for (int i = 0; i < n; ++i) {
    // LlamaConverter scores the three control pieces 0, the rest as in the model.
    const float score = i < 3 ? 0.0f : sp.GetScore(i);
    const std::string& piece = pieces[i];
    std::vector<Merge> local;
    const size_t len = code_points(piece);
    for (size_t k = 1; k < len; ++k) {
      const size_t at = offset_of(piece, k);
      const auto l = id_of.find(piece.substr(0, at));
      const auto r = id_of.find(piece.substr(at));
      if (l == id_of.end() || r == id_of.end()) continue;
      local.push_back({score, k, len - k, l->second, r->second});
    }
    std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
      return std::tie(a.left, a.right) < std::tie(b.left, b.right);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::tie(a.score, a.left_len, a.right_len) > std::tie(b.score, b.left_len, b.right_len);
  });
  json merge_list = json::array();
  for (const Merge& m : merges) merge_list.push_back({pieces[m.left], pieces[m.right]});

  const std::string space = "\xE2\x96\x81";  // U+2581
  json added = json::array();
  for (int i = 0; i < 3; ++i) {
    added.push_back({{"id", i},
                     {"content", pieces[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", space}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", pieces[0]},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", true},
            {"byte_fallback", true},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merge_list}}}};
}

std::string show(const sentencepiece::SentencePieceProcessor& sp, const std::vector<int32_t>& ids,
                 size_t at) {
  std::string out;
  const size_t from = at >= 4 ? at - 4 : 0;
  for (size_t i = from; i < std::min(ids.size(), at + 5); ++i) {
    out += fmt::format("{}{}({}) ", i == at ? ">>" : "", sp.IdToPiece(ids[i]), ids[i]);
  }
  return out;
}

TEST(SpmAgreement, LibraryAndTokenizerJsonAgreeOnEveryLineOfTheBrownCorpus) {
  const std::string corpus = io::read_file(std::string(SY_SOURCE_DIR) + "/data/brown.txt");
  const std::vector<std::string> docs = parse_text_documents(corpus);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string model = train_sentencepiece(docs, {.vocab_size = 4000});
  const double train_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("trained a 4000-piece BPE model on %zu bytes in %.1f s\n", corpus.size(), train_s);

  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(model).ok());
  ASSERT_EQ(sp.GetPieceSize(), 4000);
  const test::TempDir dir("sy_spm");
  const std::string json_path = (dir.path / "tokenizer.json").string();
  const std::string model_path = (dir.path / "tokenizer.model").string();
  io::write_file_atomic(json_path, llama_tokenizer_json(sp).dump());
  io::write_file_atomic(model_path, model);
  const auto ours = io::load_tokenizer(json_path);
  const auto wrapped = io::load_tokenizer(model_path);
  ASSERT_EQ(ours->vocab_size(), 4000);
  EXPECT_EQ(ours->bos_id(), 1);
  EXPECT_EQ(ours->eos_id(), 2);

  // Sanitized builds (10-50x slower) compare every 8th line: still ~7000 lines of every genre.
  const size_t stride = std::getenv("SY_SANITIZED") != nullptr ? 8 : 1;
  std::vector<std::string> lines;
  size_t line_no = 0;
  for (size_t i = 0, next = 0; i < corpus.size(); i = next + 1, ++line_no) {
    next = corpus.find('\n', i);
    if (next == std::string::npos) next = corpus.size();
    if (line_no % stride == 0) lines.push_back(corpus.substr(i, next - i));
  }
  // Beyond the corpus: byte fallback for characters the model never saw, runs of spaces,
  // leading and trailing whitespace, tabs, digits, punctuation runs.
  const std::string unseen =  // i-diaeresis, e-acute, em dash, three CJK characters, an emoji
      "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80";
  lines.insert(lines.end(), {unseen, "  two leading spaces", "trailing spaces   ",
                             "tab\tseparated\tvalues", "    ", "3.14159 and 1,000,000 and 1964",
                             "Wait.... what?!?! ---- ===== .....", "\xC3\x9F"});

  // Each encoder is timed over all lines first (tokens/s printed), then the ids are compared.
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  std::vector<std::vector<int32_t>> lib_ids(lines.size());
  std::vector<std::vector<int32_t>> our_ids(lines.size());
  std::vector<std::vector<int32_t>> wrapped_ids(lines.size());
  auto t = Clock::now();
  for (size_t n = 0; n < lines.size(); ++n) {
    std::vector<int> ids;
    ASSERT_TRUE(sp.Encode(lines[n], &ids).ok());
    lib_ids[n].assign(ids.begin(), ids.end());
  }
  const double lib_s = seconds_since(t);
  t = Clock::now();
  for (size_t n = 0; n < lines.size(); ++n) our_ids[n] = ours->encode(lines[n], false);
  const double our_s = seconds_since(t);
  t = Clock::now();
  for (size_t n = 0; n < lines.size(); ++n) wrapped_ids[n] = wrapped->encode(lines[n], false);
  const double wrapped_s = seconds_since(t);

  size_t mismatched = 0;
  size_t tokens = 0;
  size_t byte_tokens = 0;
  std::string first;
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::vector<int32_t>& expected = lib_ids[n];
    const std::vector<int32_t>& got = our_ids[n];
    tokens += expected.size();
    for (int32_t id : expected) byte_tokens += sp.IsByte(id) ? 1 : 0;
    EXPECT_EQ(wrapped_ids[n], expected) << "line " << n + 1;
    if (got != expected) {
      if (++mismatched == 1) {
        size_t at = 0;
        while (at < got.size() && at < expected.size() && got[at] == expected[at]) ++at;
        first = fmt::format(
            "line {}: \"{}\"\n  first difference at token {}\n  library: {}\n  ours:    {}", n + 1,
            lines[n].substr(0, 300), at, show(sp, expected, at), show(sp, got, at));
      }
      continue;
    }
    std::string text;
    ASSERT_TRUE(sp.Decode(std::vector<int>(expected.begin(), expected.end()), &text).ok());
    EXPECT_EQ(ours->decode(got), text) << "line " << n + 1;
  }
  std::printf(
      "%zu lines, %zu tokens (%zu byte-fallback), %zu lines differ; encode tokens/s: library "
      "%.0f, tokenizer.json %.0f, .model wrapper %.0f\n",
      lines.size(), tokens, byte_tokens, mismatched, tokens / lib_s, tokens / our_s,
      tokens / wrapped_s);
  EXPECT_EQ(mismatched, 0u) << "first mismatch: " << first;
  EXPECT_GT(byte_tokens, 0u);  // the byte-fallback path was exercised
}

}  // namespace
}  // namespace sy::train
