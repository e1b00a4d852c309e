#include "io/tokenizer/pretokenize.h"

#include <array>

#include "io/tokenizer/unicode.h"

namespace sy::io::tok {

namespace {

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Code points and their classes, with bounds-checked accessors (past the end is "none").
class Text {
 public:
  explicit Text(std::string_view text) : cps_(decode_utf8(text)) {
    classes_.reserve(cps_.size());
    for (const CodePoint& c : cps_) classes_.push_back(char_class(c.cp));
  }
  size_t size() const { return cps_.size(); }
  const CodePoint& at(size_t i) const { return cps_[i]; }
  bool is(size_t i, CharClass c) const { return i < size() && classes_[i] == c; }
  bool is_cp(size_t i, char32_t cp) const { return i < size() && cps_[i].cp == cp; }
  bool is_crlf(size_t i) const { return is_cp(i, '\r') || is_cp(i, '\n'); }
  // Length of the run of class `c` starting at i.
  size_t run(size_t i, CharClass c) const {
    size_t j = i;
    while (is(j, c)) ++j;
    return j - i;
  }

 private:
  std::vector<CodePoint> cps_;
  std::vector<CharClass> classes_;
};

char32_t fold(char32_t cp, bool ignore_case) {
  if (!ignore_case) return cp;
  if (cp >= 'A' && cp <= 'Z') return cp + ('a' - 'A');
  if (cp == 0x017F) return 's';
  return cp;
}

// 's|'t|'re|'ve|'m|'ll|'d at i: number of code points matched, or 0.
size_t match_contraction(const Text& t, size_t i, bool ignore_case) {
  if (!t.is_cp(i, '\'')) return 0;
  static constexpr std::array<std::u32string_view, 7> kSuffixes = {U"s", U"t",  U"re", U"ve",
                                                                   U"m", U"ll", U"d"};
  for (std::u32string_view s : kSuffixes) {
    bool ok = true;
    for (size_t k = 0; k < s.size() && ok; ++k) {
      ok = i + 1 + k < t.size() && fold(t.at(i + 1 + k).cp, ignore_case) == s[k];
    }
    if (ok) return 1 + s.size();
  }
  return 0;
}

// " ?X+" for a class X: optional ASCII space, then at least one X.
size_t match_space_then_run(const Text& t, size_t i, CharClass c) {
  const size_t start = t.is_cp(i, ' ') && t.is(i + 1, c) ? i + 1 : i;
  const size_t n = t.run(start, c);
  return n == 0 ? 0 : start - i + n;
}

// \s+(?!\S) then \s+: whitespace not directly before a non-space, else all of it.
size_t match_trailing_space(const Text& t, size_t i) {
  const size_t n = t.run(i, CharClass::kSpace);
  if (n == 0) return 0;
  if (i + n == t.size() || n == 1) return n;  // (?!\S) holds at the end; else backtrack one
  return n - 1;
}

size_t match_gpt2(const Text& t, size_t i) {
  if (size_t n = match_contraction(t, i, false)) return n;
  if (size_t n = match_space_then_run(t, i, CharClass::kLetter)) return n;
  if (size_t n = match_space_then_run(t, i, CharClass::kNumber)) return n;
  if (size_t n = match_space_then_run(t, i, CharClass::kOther)) return n;
  return match_trailing_space(t, i);
}

size_t match_llama3_family(const Text& t, size_t i, size_t max_digits) {
  if (size_t n = match_contraction(t, i, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (t.is(i, CharClass::kLetter)) return t.run(i, CharClass::kLetter);
  if (i < t.size() && !t.is_crlf(i) && !t.is(i, CharClass::kNumber) &&
      t.is(i + 1, CharClass::kLetter)) {
    return 1 + t.run(i + 1, CharClass::kLetter);
  }
  // \p{N}{1,max}
  if (t.is(i, CharClass::kNumber)) return std::min(t.run(i, CharClass::kNumber), max_digits);
  // ?[^\s\p{L}\p{N}]+[\r\n]*
  if (size_t n = match_space_then_run(t, i, CharClass::kOther)) {
    size_t j = i + n;
    while (t.is_crlf(j)) ++j;
    return j - i;
  }
  // \s*[\r\n]+ : up to and including the last CR/LF of the whitespace run
  const size_t ws = t.run(i, CharClass::kSpace);
  for (size_t k = ws; k > 0; --k) {
    if (t.is_crlf(i + k - 1)) return k;
  }
  return match_trailing_space(t, i);
}

}  // namespace

std::optional<SplitPattern> find_split_pattern(std::string_view regex) {
  for (SplitPattern p : {SplitPattern::kGpt2, SplitPattern::kLlama3, SplitPattern::kQwen2}) {
    if (regex == split_pattern_regex(p)) return p;
  }
  return std::nullopt;
}

std::string_view split_pattern_regex(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2:
      return kGpt2Regex;
    case SplitPattern::kLlama3:
      return kLlama3Regex;
    case SplitPattern::kQwen2:
      return kQwen2Regex;
  }
  return {};
}

std::vector<std::string_view> split_pieces(SplitPattern pattern, std::string_view text) {
  const Text t(text);
  std::vector<std::string_view> pieces;
  size_t gap_start = 0;  // first code point not yet in a piece
  size_t i = 0;
  const auto byte_at = [&](size_t k) { return k < t.size() ? t.at(k).offset : text.size(); };
  while (i < t.size()) {
    size_t n = 0;
    switch (pattern) {
      case SplitPattern::kGpt2:
        n = match_gpt2(t, i);
        break;
      case SplitPattern::kLlama3:
        n = match_llama3_family(t, i, 3);
        break;
      case SplitPattern::kQwen2:
        n = match_llama3_family(t, i, 1);
        break;
    }
    if (n == 0) {
      ++i;
      continue;
    }
    if (gap_start < i)
      pieces.push_back(text.substr(byte_at(gap_start), byte_at(i) - byte_at(gap_start)));
    pieces.push_back(text.substr(byte_at(i), byte_at(i + n) - byte_at(i)));
    i += n;
    gap_start = i;
  }
  if (gap_start < t.size()) pieces.push_back(text.substr(byte_at(gap_start)));
  return pieces;
}

}  // namespace sy::io::tok
