// The parsed pieces of a tokenizer.json (internal: hf_parse.cpp fills it, hf_tokenizer.cpp runs
// it). See hf_tokenizer.h for what each step means.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/tokenizer/bpe.h"
#include "io/tokenizer/pretokenize.h"

namespace sy::io::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
};

struct NormalizerStep {
  enum class Kind { kPrepend, kReplace, kNfc, kNfkc } kind;
  std::string text;         // prepended text, or the replaced pattern
  std::string replacement;  // kReplace only
};

enum class PrependScheme { kAlways, kFirst, kNever };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace } kind;
  SplitPattern pattern = SplitPattern::kGpt2;  // kSplit, and kByteLevel when use_regex
  bool use_regex = false;                      // kByteLevel
  bool add_prefix_space = false;               // kByteLevel
  std::string replacement;                     // kMetaspace
  PrependScheme prepend = PrependScheme::kAlways;
  bool split = false;  // kMetaspace: split before each replacement
};

struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
  std::string pattern;  // kReplace: pattern; kStrip, kMetaspace: the character
  std::string content;  // kReplace: replacement
  int start = 0;        // kStrip
  int stop = 0;         // kStrip
  PrependScheme prepend = PrependScheme::kAlways;  // kMetaspace
};

struct HfSpec {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<int32_t> merge_ranks;           // empty: merges rank by position (BpeModel)
  std::string merges_field = "model.merges";  // names the merges in error messages
  BpeOptions bpe;
  std::vector<AddedToken> added;
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  std::vector<DecoderStep> decoders;
  std::vector<int32_t> prefix;  // post-processor ids before the text
  std::vector<int32_t> suffix;  // and after it
  // Set by vocabularies that state them (GGUF): the BOS/EOS ids, which win over the ones the
  // post-processor and token names imply, and the exact id range [0, vocab_size), where ids
  // that are neither vocabulary nor added tokens are unused holes.
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  int32_t vocab_size = 0;
};

HfSpec parse_hf_spec(std::string_view json_text, const std::string& name);

}  // namespace sy::io::tok
