#include "io/tokenizer/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/utypes.h>

#include <algorithm>

#include "core/error.h"

namespace sy::io::tok {

size_t utf8_sequence_size(std::string_view text) {
  if (text.empty()) return 0;
  const auto b0 = static_cast<uint8_t>(text[0]);
  if (b0 < 0x80) return 1;
  size_t n = 0;
  char32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (text.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<uint8_t>(text[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr std::array<char32_t, 5> kMin = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

std::vector<CodePoint> decode_utf8(std::string_view text) {
  std::vector<CodePoint> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = utf8_sequence_size(text.substr(i));
    if (n == 0) {
      out.push_back({kInvalidByte, static_cast<uint32_t>(i), 1});
      ++i;
      continue;
    }
    const auto b0 = static_cast<uint8_t>(text[i]);
    char32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(text[i + k]) & 0x3F);
    out.push_back({cp, static_cast<uint32_t>(i), static_cast<uint32_t>(n)});
    i += n;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

CharClass char_class(char32_t cp) {
  if (cp < 0x80) {  // fast path; same answers as ICU
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return CharClass::kSpace;
    return CharClass::kOther;
  }
  if (cp > 0x10FFFF) return CharClass::kOther;
  const auto c = static_cast<UChar32>(cp);
  const uint32_t mask = U_GET_GC_MASK(c);
  if ((mask & U_GC_L_MASK) != 0) return CharClass::kLetter;
  if ((mask & U_GC_N_MASK) != 0) return CharClass::kNumber;
  if (u_isUWhiteSpace(c)) return CharClass::kSpace;
  return CharClass::kOther;
}

Category category(char32_t cp) {
  if (cp > 0x10FFFF) return Category::kOther;
  const uint32_t mask = U_GET_GC_MASK(static_cast<UChar32>(cp));
  if ((mask & U_GC_L_MASK) != 0) return Category::kLetter;
  if ((mask & U_GC_M_MASK) != 0) return Category::kMark;
  if ((mask & U_GC_N_MASK) != 0) return Category::kNumber;
  if ((mask & U_GC_P_MASK) != 0) return Category::kPunct;
  if ((mask & U_GC_S_MASK) != 0) return Category::kSymbol;
  return Category::kOther;
}

namespace {
struct ByteMap {
  std::array<std::string, 256> forward;
  std::array<int16_t, 324> inverse{};  // mapped code points are all below U+0144
  ByteMap() {
    inverse.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(forward[b], cp);
      inverse[cp] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap map;  // immutable after construction
  return map;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return byte_map().forward; }

int unicode_to_byte(char32_t cp) {
  return cp < byte_map().inverse.size() ? byte_map().inverse[cp] : -1;
}

std::string normalize_unicode(std::string_view text, UnicodeForm form) {
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return static_cast<uint8_t>(c) < 0x80; })) {
    return std::string(text);
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = form == UnicodeForm::kNfc
                                           ? icu::Normalizer2::getNFCInstance(status)
                                           : icu::Normalizer2::getNFKCInstance(status);
  SY_CHECK(U_SUCCESS(status), "tokenizer: ICU has no normalizer: {}", u_errorName(status));
  std::string out;
  out.reserve(text.size());
  icu::StringByteSink<std::string> sink(&out);
  size_t i = 0;
  while (i < text.size()) {
    size_t end = i;
    for (size_t n = 0; end < text.size() && (n = utf8_sequence_size(text.substr(end))) > 0;) {
      end += n;
    }
    if (end == i) {  // an invalid byte: kept
      out.push_back(text[i++]);
      continue;
    }
    normalizer->normalizeUTF8(0, icu::StringPiece(text.data() + i, static_cast<int32_t>(end - i)),
                              sink, nullptr, status);
    SY_CHECK(U_SUCCESS(status), "tokenizer: normalization failed: {}", u_errorName(status));
    i = end;
  }
  return out;
}

}  // namespace sy::io::tok
