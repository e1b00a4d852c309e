// Token ids -> UTF-8 text, one token at a time, for streaming output.
//
// Each pushed id's bytes (io::Tokenizer::decode_piece) join a buffer of which only the longest
// prefix not ending inside a UTF-8 sequence (io::complete_utf8_prefix) is returned; the rest
// waits for the next token, so a character split over several byte-fallback or byte-level
// tokens comes out whole. Special tokens (Tokenizer::is_special) are skipped unless
// `include_special` is set, in which case their literal text is emitted. When the tokenizer
// strips one leading space from a sequence (Tokenizer::strips_leading_space, SentencePiece
// style), the first token of the stream that is shown and is not special loses one leading ' ' —
// unless a special token was shown before it, as decode() does.
// For any ids, the concatenation of every push() and flush() equals tokenizer.decode(ids with
// the skipped specials removed) whenever that text is valid UTF-8 (decode() replaces invalid
// bytes with U+FFFD; the stream passes them through).
#pragma once

#include <cstdint>
#include <string>

#include "io/tokenizer/tokenizer.h"

namespace sy::infer {

struct TextStreamOptions {
  bool include_special =
      false;  // emit special tokens' text (e.g. "<|im_end|>") instead of skipping
};

class TextStream {
 public:
  // `tokenizer` must outlive the stream.
  explicit TextStream(const io::Tokenizer& tokenizer, TextStreamOptions options = {});

  // Appends token `id` (sy::Error from the tokenizer when it is out of range); returns the text
  // that became complete, possibly empty.
  std::string push(int32_t id);

  // End of the stream: returns the held-back bytes (an unfinished UTF-8 sequence, as raw bytes)
  // and starts a new stream (the next token is again the first).
  std::string flush();

 private:
  const io::Tokenizer& tokenizer_;
  TextStreamOptions options_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace sy::infer
