// Hugging Face tokenizer.json with a BPE model (internal to src/io/tokenizer).
//
// Understood parts of the file (anything else present and non-null is an error naming it):
//   model          type "BPE": vocab, merges ("a b" strings or [a, b] pairs), unk_token,
//                  fuse_unk, byte_fallback, ignore_merges; dropout must be null and the
//                  subword prefix/suffix null or empty.
//   added_tokens   id, content, special, lstrip, rstrip; matched in the raw text before
//                  normalization (leftmost, longest), whether "normalized" or not.
//   normalizer     Sequence, Prepend, Replace (String pattern), NFC, NFKC (ICU; Qwen2 and
//                  GPT-NeoX files use NFC).
//   pre_tokenizer  Sequence, Split (a known Regex, see pretokenize.h; behavior Isolated, not
//                  inverted), ByteLevel (add_prefix_space, use_regex = GPT-2 pattern),
//                  Metaspace (replacement, prepend_scheme, split).
//   post_processor Sequence, ByteLevel (nothing to do for ids), TemplateProcessing ("single"),
//                  RobertaProcessing / BertProcessing (cls + text + sep).
//   decoder        Sequence, ByteLevel, Replace (String pattern), ByteFallback, Fuse, Strip,
//                  Metaspace.
// A character missing from the vocabulary with neither byte_fallback nor unk_token is dropped,
// as Hugging Face does. Chains of steps that enlarge the text (Replace, NFC, NFKC, ByteLevel,
// Metaspace) may grow it at most 1024-fold, so that a small file cannot make encode() build
// gigabytes.
// Text between added tokens is normalized, pre-tokenized and BPE-encoded section by section,
// as Hugging Face does. decode() emits added tokens' content verbatim and runs the decoder
// chain over each run of ordinary tokens.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "io/tokenizer/tokenizer.h"

namespace sy::io::tok {

// Token names that override the BOS/EOS the file implies (from tokenizer_config.json).
struct SpecialTokenNames {
  std::optional<std::string> bos;
  std::optional<std::string> eos;
};

// Parses tokenizer.json text; `name` prefixes every error message.
std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view json_text, const std::string& name,
                                              const SpecialTokenNames& names = {});

// The same tokenizer from tables already parsed (hf_spec.h), e.g. a GGUF vocabulary.
struct HfSpec;
std::unique_ptr<Tokenizer> make_hf_tokenizer(HfSpec spec, const std::string& name,
                                             const SpecialTokenNames& names = {});

}  // namespace sy::io::tok
