// GGUF-embedded vocabularies (tokenizer.ggml.*) as llama.cpp's converter writes them, turned
// into the tables of a tokenizer.json (hf_spec.h) so that the same BPE engine, pre-tokenizers
// and decoders run them:
//   gpt2   byte-level BPE: tokens in GPT-2's byte-mapped form, merges "left right", and the
//          pre-tokenizer named by tokenizer.ggml.pre, as the Split steps llama.cpp applies.
//   llama  SentencePiece-style BPE: tokens with "▁" for spaces, scores, <0xXX> byte tokens. Every
//          split of a token into two tokens becomes a merge ranked by the token's score (higher
//          first, equal scores leftmost first), which is llama.cpp's SPM merge order and what
//          Hugging Face's converter writes into tokenizer.json; characters missing from the
//          vocabulary fall back to byte tokens; " " becomes "▁" and, unless
//          tokenizer.ggml.add_space_prefix is false, each text section gets a leading "▁".
// Token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control, 4 user-defined,
// 5 unused, 6 byte (0, undefined, counts as normal). Control, unknown and user-defined tokens are
// also matched literally in the text, as Hugging Face matches added tokens; control and unknown
// ones are special. Unused and empty tokens are holes: never produced, and decode() refuses them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "core/error.h"
#include "io/gguf.h"
#include "io/tokenizer/hf_spec.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/tokenizer.h"
#include "io/tokenizer/unicode.h"

namespace sy::io {

namespace {

using tok::SplitPattern;

constexpr std::string_view kModel = "tokenizer.ggml.model";
constexpr std::string_view kPre = "tokenizer.ggml.pre";
constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kTokenType = "tokenizer.ggml.token_type";
constexpr std::string_view kScores = "tokenizer.ggml.scores";
constexpr std::string_view kMerges = "tokenizer.ggml.merges";
constexpr std::string_view kBos = "tokenizer.ggml.bos_token_id";
constexpr std::string_view kEos = "tokenizer.ggml.eos_token_id";
constexpr std::string_view kUnk = "tokenizer.ggml.unknown_token_id";
constexpr std::string_view kPad = "tokenizer.ggml.padding_token_id";
constexpr std::string_view kAddBos = "tokenizer.ggml.add_bos_token";
constexpr std::string_view kAddEos = "tokenizer.ggml.add_eos_token";
constexpr std::string_view kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

enum TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// llama.cpp's pre-tokenizer names (src/llama-vocab.cpp) and the regex steps each runs.
struct PreTokenizer {
  std::vector<std::string_view> names;
  std::vector<SplitPattern> steps;
  bool ignore_merges = false;
  bool add_bos = false;
};

const std::vector<PreTokenizer>& pre_tokenizers() {
  static const std::vector<PreTokenizer> kTable = {
      {{"default"},
       {SplitPattern::kPunctRuns, SplitPattern::kGpt2, SplitPattern::kDigitRuns,
        SplitPattern::kAsciiDigits3}},
      {{"gpt-2", "phi-2", "olmo", "mpt", "jais"}, {SplitPattern::kGpt2}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {SplitPattern::kLlama3}, true, true},
      {{"dbrx", "smaug-bpe"}, {SplitPattern::kLlama3}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {SplitPattern::kQwen2}},
      {{"deepseek-llm"},
       {SplitPattern::kDeepSeekLlmNewline, SplitPattern::kDeepSeekLlmLetters,
        SplitPattern::kDeepSeekLlmPunct, SplitPattern::kDeepSeekLlmTrailing,
        SplitPattern::kDeepSeekLlmCjk, SplitPattern::kDigitRuns}},
      {{"deepseek-v3"},
       {SplitPattern::kDigits3, SplitPattern::kDeepSeekV3Cjk, SplitPattern::kDeepSeekV3}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {SplitPattern::kDigit, SplitPattern::kGpt2}},
  };
  return kTable;
}

const PreTokenizer& find_pre_tokenizer(const std::string& file, const std::string& pre) {
  std::string known;
  for (const PreTokenizer& p : pre_tokenizers()) {
    for (std::string_view n : p.names) {
      if (n == pre) return p;
      known += known.empty() ? "" : ", ";
      known += n;
    }
  }
  fail("{}: key '{}' is '{}', expected one of: {}", file, kPre, pre, known);
}

std::string key_of(const GgufFile& f, std::string_view key) {
  return fmt::format("{}: key '{}'", f.name(), key);
}

// An array key with one entry per token.
const GgufValue::Array& per_token(const GgufFile& f, std::string_view key, size_t n) {
  const GgufValue::Array& a = f.get(key).as_array(key_of(f, key));
  SY_CHECK(a.items.size() == n, "{}: key '{}' has {} entries, expected {} (one per token)",
           f.name(), key, a.items.size(), n);
  return a;
}

bool integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kU16:
    case GgufValueType::kI16:
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kU64:
    case GgufValueType::kI64:
      return true;
    default:
      return false;
  }
}

std::vector<int32_t> read_types(const GgufFile& f, size_t n) {
  if (!f.has(kTokenType)) return std::vector<int32_t>(n, kNormal);
  const GgufValue::Array& a = per_token(f, kTokenType, n);
  SY_CHECK(integer_type(a.type), "{}: key '{}' is {}, expected array of integers", f.name(),
           kTokenType, f.get(kTokenType).describe());
  std::vector<int32_t> types = f.get_i32s(kTokenType);
  for (size_t i = 0; i < n; ++i) {
    SY_CHECK(types[i] >= kUndefined && types[i] <= kByte,
             "{}: {}[{}] is {}, expected 1 (normal), 2 (unknown), 3 (control), 4 (user-defined), "
             "5 (unused), 6 (byte) or 0 (undefined)",
             f.name(), kTokenType, i, types[i]);
  }
  return types;
}

std::vector<float> read_scores(const GgufFile& f, size_t n) {
  if (!f.has(kScores)) return std::vector<float>(n, 0.0F);
  const GgufValue::Array& a = per_token(f, kScores, n);
  std::vector<float> scores;
  if (a.type == GgufValueType::kI32) {  // llama.cpp reads integer scores too
    for (int32_t s : f.get_i32s(kScores)) scores.push_back(static_cast<float>(s));
  } else {
    scores = f.get_f32s(kScores);
  }
  for (size_t i = 0; i < n; ++i) {
    SY_CHECK(!std::isnan(scores[i]), "{}: {}[{}] is nan, expected a number", f.name(), kScores, i);
  }
  return scores;
}

// Every split of a token into two tokens, ranked by the token's score (rank 0 = best).
void spm_merges(const std::vector<std::string>& tokens, const std::vector<bool>& hole,
                const std::vector<float>& scores, tok::HfSpec& spec) {
  std::vector<float> order;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!hole[i]) order.push_back(scores[i]);
  }
  std::sort(order.begin(), order.end(), std::greater<>());
  order.erase(std::unique(order.begin(), order.end()), order.end());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (hole[i]) continue;
    const std::string& t = tokens[i];
    const auto rank = static_cast<int32_t>(
        std::lower_bound(order.begin(), order.end(), scores[i], std::greater<>()) - order.begin());
    for (const tok::CodePoint& c : tok::decode_utf8(t)) {
      if (c.offset == 0) continue;
      std::string left = t.substr(0, c.offset);
      std::string right = t.substr(c.offset);
      if (spec.vocab.contains(left) && spec.vocab.contains(right)) {
        spec.merges.emplace_back(std::move(left), std::move(right));
        spec.merge_ranks.push_back(rank);
      }
    }
  }
}

void gpt2_merges(const GgufFile& f, tok::HfSpec& spec) {
  const std::vector<std::string> merges = f.get_strings(kMerges);
  spec.merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const size_t sp = m.find(' ', 1);  // as llama.cpp: the left token may start with a space
    SY_CHECK(sp != std::string::npos,
             "{}: {}[{}] is '{}', expected \"left right\" (two tokens separated by a space)",
             f.name(), kMerges, r, m);
    spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& f) {
  const std::string& name = f.name();
  const std::string& model = f.get_string(kModel);
  SY_CHECK(model == "gpt2" || model == "llama",
           "{}: key '{}' is '{}', expected gpt2 (byte-level BPE) or llama (SentencePiece-style "
           "BPE)",
           name, kModel, model);
  const bool spm = model == "llama";

  const std::vector<std::string> tokens = f.get_strings(kTokens);
  SY_CHECK(!tokens.empty(), "{}: key '{}' is empty, expected at least one token", name, kTokens);
  SY_CHECK(tokens.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
           "{}: key '{}' has {} tokens, expected fewer than 2^31", name, kTokens, tokens.size());
  const auto n = static_cast<int32_t>(tokens.size());
  std::vector<int32_t> types = read_types(f, tokens.size());
  const std::vector<float> scores = spm ? read_scores(f, tokens.size()) : std::vector<float>{};

  std::vector<bool> hole(tokens.size());
  std::unordered_map<std::string_view, int32_t> seen;
  for (int32_t i = 0; i < n; ++i) {
    hole[i] = types[i] == kUnused || tokens[i].empty();
    if (tokens[i].empty()) continue;
    const auto [it, fresh] = seen.emplace(tokens[i], i);
    SY_CHECK(fresh, "{}: {}[{}] '{}' repeats {}[{}]", name, kTokens, i, tokens[i], kTokens,
             it->second);
  }

  // Special ids: stated ids must name a token; llama's defaults apply only where they do.
  const auto read_id = [&](std::string_view key, std::optional<int32_t> fallback,
                           bool must_be_used) -> std::optional<int32_t> {
    if (!f.has(key)) {
      if (fallback && *fallback < n && !hole[*fallback]) return fallback;
      return std::nullopt;
    }
    const uint32_t id = f.get_u32(key);
    SY_CHECK(id < static_cast<uint32_t>(n), "{}: key '{}' is {}, expected a token id below {}",
             name, key, id, n);
    SY_CHECK(!must_be_used || !hole[id], "{}: key '{}' is {}, which is an unused token", name, key,
             id);
    return static_cast<int32_t>(id);
  };
  const std::optional<int32_t> bos = read_id(kBos, spm ? std::optional(1) : std::nullopt, true);
  const std::optional<int32_t> eos = read_id(kEos, spm ? std::optional(2) : std::nullopt, true);
  const std::optional<int32_t> unk = read_id(kUnk, spm ? std::optional(0) : std::nullopt, true);
  const std::optional<int32_t> pad = read_id(kPad, std::nullopt, false);
  if (!f.has(kTokenType)) {  // no types: the special tokens the file names are control tokens
    for (const auto& [key, id] : {std::pair{kBos, bos}, {kEos, eos}, {kUnk, unk}, {kPad, pad}}) {
      if (f.has(key) && !hole[*id]) types[*id] = kControl;
    }
  }

  const PreTokenizer* pre = nullptr;
  if (!spm) {
    // llama.cpp reads a missing pre-tokenizer as "default" (files converted before it existed).
    pre = &find_pre_tokenizer(name, f.has(kPre) ? f.get_string(kPre) : "default");
  }
  const bool add_bos = f.has(kAddBos) ? f.get_bool(kAddBos) : spm || pre->add_bos;
  const bool add_eos = f.has(kAddEos) && f.get_bool(kAddEos);
  SY_CHECK(!add_bos || bos.has_value(),
           "{}: BOS is to be added (key '{}' {}), but key '{}' names no BOS token", name, kAddBos,
           f.has(kAddBos) ? "is true" : "is absent, default true", kBos);
  SY_CHECK(!add_eos || eos.has_value(), "{}: key '{}' is true, but key '{}' names no EOS token",
           name, kAddEos, kEos);

  tok::HfSpec spec;
  spec.vocab_size = n;
  spec.merges_field = kMerges;
  spec.vocab.reserve(tokens.size());
  for (int32_t i = 0; i < n; ++i) {
    if (hole[i]) continue;
    spec.vocab.emplace(tokens[i], i);
    const int32_t type = types[i];
    if (type == kControl || type == kUnknown || type == kUserDefined) {
      spec.added.push_back({.id = i, .content = tokens[i], .special = type != kUserDefined});
    }
  }
  spec.bos = bos;
  spec.eos = eos;
  if (add_bos) spec.prefix.push_back(*bos);
  if (add_eos) spec.suffix.push_back(*eos);

  using Dec = tok::DecoderStep::Kind;
  if (spm) {
    spm_merges(tokens, hole, scores, spec);
    spec.bpe = {.unk_id = unk, .fuse_unk = true, .byte_fallback = true};
    const bool add_space = !f.has(kAddSpacePrefix) || f.get_bool(kAddSpacePrefix);
    if (add_space) {
      spec.normalizers.push_back({tok::NormalizerStep::Kind::kPrepend, std::string(kSpace), {}});
    }
    spec.normalizers.push_back({tok::NormalizerStep::Kind::kReplace, " ", std::string(kSpace)});
    spec.decoders.push_back(
        {.kind = Dec::kReplace, .pattern = std::string(kSpace), .content = " "});
    spec.decoders.push_back({.kind = Dec::kByteFallback});
    spec.decoders.push_back({.kind = Dec::kFuse});
    if (add_space) spec.decoders.push_back({.kind = Dec::kStrip, .pattern = " ", .start = 1});
  } else {
    gpt2_merges(f, spec);
    spec.bpe.ignore_merges = pre->ignore_merges;
    for (SplitPattern p : pre->steps) {
      spec.pre_tokenizers.push_back({.kind = tok::PreTokenizerStep::Kind::kSplit, .pattern = p});
    }
    spec.pre_tokenizers.push_back({.kind = tok::PreTokenizerStep::Kind::kByteLevel});
    spec.decoders.push_back({.kind = Dec::kByteLevel});
  }
  return tok::make_hf_tokenizer(std::move(spec), name);
}

}  // namespace sy::io
