// SentencePiece .model files through the SentencePiece library (internal to src/io/tokenizer).
//
// encode/decode are the library's Encode/Decode; add_special prepends BOS (and nothing else,
// as Llama does) when the model defines one. Control tokens (<s>, </s>) decode to nothing, as
// the library does; decode_piece turns "▁" into a space and byte pieces <0xXX> into their byte.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "io/tokenizer/tokenizer.h"

namespace sy::io::tok {

// `name` prefixes error messages.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);
std::unique_ptr<Tokenizer> parse_sentencepiece(std::string_view model_bytes,
                                               const std::string& name);

}  // namespace sy::io::tok
