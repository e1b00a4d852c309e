#include "infer/text_stream.h"

#include <utility>

namespace sy::infer {

TextStream::TextStream(const io::Tokenizer& tokenizer, TextStreamOptions options)
    : tokenizer_(tokenizer), options_(options) {}

std::string TextStream::push(int32_t id) {
  std::string piece = tokenizer_.decode_piece(id);  // validates id
  const bool special = tokenizer_.is_special(id);
  if (special && !options_.include_special) return {};
  // decode() strips the space only when the sequence starts with an ordinary token.
  if (at_start_ && !special && tokenizer_.strips_leading_space() && piece.starts_with(' ')) {
    piece.erase(0, 1);
  }
  at_start_ = false;
  pending_ += piece;
  const size_t n = io::complete_utf8_prefix(pending_);
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  return out;
}

std::string TextStream::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  at_start_ = true;
  return out;
}

}  // namespace sy::infer
