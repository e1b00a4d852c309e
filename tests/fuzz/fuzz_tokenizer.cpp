// libFuzzer target: tokenizers built from arbitrary bytes, run on arbitrary text.
//
// The input is TEXT '\0' FILE: the text to tokenize (everything before the first zero byte; all
// of the input is the file when there is none) and a tokenizer file, read as a GGUF model's
// vocabulary when it starts with the GGUF magic and as a tokenizer.json otherwise. Building may
// throw sy::Error, the expected outcome for most inputs. A tokenizer that builds must then
// encode the text, decode its own ids and answer every per-token query without any error;
// arbitrary ids (taken from the text bytes) may only throw sy::Error. Crashes, sanitizer
// reports, leaks and hangs are bugs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/tokenizer.h"

namespace {

using sy::io::Tokenizer;

[[noreturn]] void bug(const char* what, const sy::Error& e) {
  std::fprintf(stderr, "fuzz_tokenizer: %s threw: %s\n", what, e.what());
  std::abort();
}

std::unique_ptr<Tokenizer> build(std::string_view file) {
  try {
    if (file.starts_with("GGUF")) {
      return sy::io::load_gguf_tokenizer(sy::io::GgufFile::parse(file, "fuzz.gguf"));
    }
    return sy::io::tok::parse_hf_tokenizer(file, "fuzz.json");
  } catch (const sy::Error&) {
    return nullptr;  // malformed input
  }
}

// Everything a tokenizer promises for its own output.
size_t run_own_ids(const Tokenizer& t, std::string_view text) {
  size_t sink = sy::io::complete_utf8_prefix(text);
  for (const bool add_special : {false, true}) {
    std::vector<int32_t> ids;
    try {
      ids = t.encode(text, add_special);
      sink += t.decode(ids).size();
    } catch (const sy::Error& e) {
      bug("encode/decode of the tokenizer's own ids", e);
    }
    for (const int32_t id : ids) {
      try {
        sink += t.decode_piece(id).size() + t.id_to_token(id).size();
        sink += t.is_special(id) ? 1 : 0;
        sink += t.token_to_id(t.id_to_token(id)).has_value() ? 1 : 0;
      } catch (const sy::Error& e) {
        bug("a query about an id encode() returned", e);
      }
    }
  }
  sink += t.token_to_id(text).value_or(0) + t.bos_id().value_or(0) + t.eos_id().value_or(0);
  sink += t.strips_leading_space() ? 1 : 0;
  return sink;
}

// Ids the tokenizer never produced: errors are allowed, nothing else.
size_t run_arbitrary_ids(const Tokenizer& t, std::string_view text) {
  size_t sink = 0;
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 4 <= text.size() && ids.size() < 64; i += 4) {
    int32_t id = 0;
    std::memcpy(&id, text.data() + i, sizeof id);
    // Mostly small ids, so that many of them are in range.
    ids.push_back(id % (t.vocab_size() + 8));
  }
  try {
    sink += t.decode(ids).size();
  } catch (const sy::Error&) {
  }
  for (const int32_t id : ids) {
    try {
      sink += t.decode_piece(id).size() + t.id_to_token(id).size() + (t.is_special(id) ? 1 : 0);
    } catch (const sy::Error&) {
    }
  }
  return sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view text = split == std::string_view::npos ? "" : input.substr(0, split);
  const std::string_view file = split == std::string_view::npos ? input : input.substr(split + 1);
  const std::unique_ptr<Tokenizer> t = build(file);
  if (t == nullptr) return 0;
  volatile size_t keep = run_own_ids(*t, text) + run_arbitrary_ids(*t, text);
  (void)keep;
  return 0;
}
