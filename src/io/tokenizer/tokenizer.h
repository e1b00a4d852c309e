// Tokenizers: text <-> token ids for the checkpoints we run.
//
// Three kinds of file are read:
//  - Hugging Face `tokenizer.json` with model.type "BPE": GPT-2 style byte-level BPE (Qwen,
//    OLMoE, DeepSeek, Llama 3) and SentencePiece-style BPE with byte fallback (Llama 2, Mixtral).
//    See hf_tokenizer.h for the parts of the format that are understood.
//  - SentencePiece `tokenizer.model`, through the SentencePiece library.
//  - The vocabulary inside a GGUF model (tokenizer.ggml.*), run by the same engine as
//    tokenizer.json; see gguf_vocab.cpp.
//
// Ids are int32. Byte strings are UTF-8 on the way in; invalid UTF-8 is tolerated (byte-level
// tokenizers encode the raw bytes; SentencePiece replaces them as the library does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sy::io {

class GgufFile;  // io/gguf.h

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`. Added/special tokens written literally in the text (e.g.
  // "<|im_start|>") are always recognised, as Hugging Face does; `add_special` only controls the
  // tokens the file's post-processor adds around the text (typically a BOS token).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;

  // Text of a whole sequence, special tokens included as their literal text (filter them with
  // is_special first to hide them). Throws sy::Error for an id outside [0, vocab_size()).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  // Raw bytes that token `id` contributes to the output, for streaming. Two caveats:
  //  - Byte-level and byte-fallback tokens may hold a partial UTF-8 character: a streaming
  //    caller appends pieces to a buffer and emits only its first complete_utf8_prefix(buffer)
  //    bytes, keeping the rest until the next piece arrives (or the stream ends).
  //  - Whole-sequence decoder steps (SentencePiece's removal of the leading space of the first
  //    token) are not applied: callers that need text identical to decode() strip one leading
  //    ' ' from the first piece when strips_leading_space() is true.
  virtual std::string decode_piece(int32_t id) const = 0;

  // True when decode() drops one leading space from the sequence (SentencePiece style).
  virtual bool strips_leading_space() const = 0;

  // One past the largest id.
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;

  // Id of the token whose vocabulary string is `token` (byte-level tokens in their mapped form,
  // e.g. "Ġthe"), or nullopt.
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // Vocabulary string of `id`; throws sy::Error when id is out of range or unused.
  virtual std::string id_to_token(int32_t id) const = 0;
  // Special/control tokens (BOS, EOS, chat markers); false for out-of-range ids.
  virtual bool is_special(int32_t id) const = 0;
};

// Loads `path`: a tokenizer.json (Hugging Face), a tokenizer.model (SentencePiece), a GGUF
// model (name ending in .gguf, or starting with the GGUF magic; for a split set, its first
// part) or a folder holding tokenizer.json or tokenizer.model (tokenizer.json preferred). For a
// folder, tokenizer_config.json, when present, supplies the BOS/EOS token names. Throws
// sy::Error naming the file and what is wrong.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// The tokenizer stored in a GGUF file's metadata, as llama.cpp writes it: tokenizer.ggml.model
// "gpt2" (byte-level BPE, with the pre-tokenizer tokenizer.ggml.pre names) or "llama"
// (SentencePiece-style BPE with scores and byte tokens); token types, BOS/EOS/unknown/padding
// ids and add_bos_token / add_eos_token (which decide what encode(text, true) adds). Throws
// sy::Error naming the file and the key, e.g. for an unknown model or pre-tokenizer.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file);

// Length of the longest prefix of `bytes` that does not end inside an incomplete UTF-8
// sequence: what a streaming caller may emit now. Invalid bytes count as complete (they will
// never become valid), so the held-back tail is at most 3 bytes.
size_t complete_utf8_prefix(std::string_view bytes);

}  // namespace sy::io
