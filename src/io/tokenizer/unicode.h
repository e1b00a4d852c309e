// UTF-8 and Unicode character classes for the tokenizers (internal to src/io/tokenizer).
//
// Classes come from ICU (libicu-dev): letter = general category L*, number = N*, space = the
// White_Space property, which is what \p{L}, \p{N} and \s mean in the Oniguruma/Rust regexes
// that Hugging Face tokenizers run.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sy::io::tok {

// Code point that stands for one byte of invalid UTF-8 (outside the Unicode range, so it is
// none of letter, number or space).
inline constexpr char32_t kInvalidByte = 0x110000;

struct CodePoint {
  char32_t cp;      // kInvalidByte for a byte that does not start a valid sequence
  uint32_t offset;  // byte offset in the decoded text
  uint32_t size;    // 1-4 bytes
};

// Decodes UTF-8, one entry per code point; each byte of an invalid, overlong, surrogate or
// truncated sequence becomes its own kInvalidByte entry, so the offsets always tile the input.
std::vector<CodePoint> decode_utf8(std::string_view text);

// Length of the valid UTF-8 sequence starting at text[0], or 0 when it is not valid.
size_t utf8_sequence_size(std::string_view text);

void append_utf8(std::string& out, char32_t cp);

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };
CharClass char_class(char32_t cp);

// The general category group of a code point, for \p{L} (letter), \p{M} (mark), \p{N}
// (number), \p{P} (punctuation) and \p{S} (symbol); separators, controls, unassigned code
// points and kInvalidByte are kOther. Whitespace is a separate property (char_class).
enum class Category : uint8_t { kLetter, kMark, kNumber, kPunct, kSymbol, kOther };
Category category(char32_t cp);

// Unicode normalization forms (UAX #15) that tokenizer.json normalizers ask for.
enum class UnicodeForm : uint8_t { kNfc, kNfkc };
// `text` in normalization form `form` (ICU's tables). Bytes that are not valid UTF-8 are kept as
// they are, each ending the valid run before it; ASCII comes back unchanged.
std::string normalize_unicode(std::string_view text, UnicodeForm form);

// GPT-2's reversible byte -> code point map: printable Latin-1 bytes map to themselves, the
// other 68 bytes to U+0100 onwards, in byte order. byte_to_unicode()[b] is the UTF-8 encoding.
const std::array<std::string, 256>& byte_to_unicode();
// Inverse: the byte of a mapped code point, or -1.
int unicode_to_byte(char32_t cp);

}  // namespace sy::io::tok
