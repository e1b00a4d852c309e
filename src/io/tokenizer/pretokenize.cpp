#include "io/tokenizer/pretokenize.h"

#include <algorithm>
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
// DeepSeek's regexes hold real CR and LF characters where the others write \r\n (that is how
// they read once their tokenizer.json is decoded).
constexpr std::string_view kDigits3Regex = R"(\p{N}{1,3})";
constexpr std::string_view kDeepSeekV3CjkRegex = "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+";
constexpr std::string_view kDeepSeekV3Regex =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^)re"
    "\r\n"
    R"re(\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[)re"
    "\r\n"
    R"re(]*|\s*[)re"
    "\r\n"
    R"re(]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kDeepSeekLlmNewlineRegex = "[\r\n]";
constexpr std::string_view kDeepSeekLlmLettersRegex =
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
    "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
    "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5"
    "\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59"
    "\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC"
    "\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107"
    "\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139"
    "\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE"
    "\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E"
    "\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F"
    "\U000104B0-\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2"
    "\U000118A0-\U000118DF\U0001E900-\U0001E943]+";
constexpr std::string_view kDeepSeekLlmPunctRegex =
    "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+";
constexpr std::string_view kDeepSeekLlmTrailingRegex = R"(\s+$)";
constexpr std::string_view kDeepSeekLlmCjkRegex = "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+";
constexpr std::string_view kDigitRunsRegex = R"(\p{N}+)";
constexpr std::string_view kDigitRegex = R"(\p{N})";
constexpr std::string_view kAsciiDigits3Regex = "[0-9][0-9][0-9]";
constexpr std::string_view kPunctRunsRegex = R"([\p{P}\$\+<=>\^~\|]+)";

// Code points and their classes, with bounds-checked accessors (past the end is "none").
class Text {
 public:
  explicit Text(std::string_view text) : cps_(decode_utf8(text)) {
    classes_.reserve(cps_.size());
    categories_.reserve(cps_.size());
    for (const CodePoint& c : cps_) {
      classes_.push_back(char_class(c.cp));
      categories_.push_back(category(c.cp));
    }
    trailing_space_ = cps_.size();
    while (trailing_space_ > 0 && classes_[trailing_space_ - 1] == CharClass::kSpace) {
      --trailing_space_;
    }
  }
  size_t size() const { return cps_.size(); }
  const CodePoint& at(size_t i) const { return cps_[i]; }
  char32_t cp(size_t i) const { return i < size() ? cps_[i].cp : kInvalidByte; }
  bool is(size_t i, CharClass c) const { return i < size() && classes_[i] == c; }
  bool is(size_t i, Category c) const { return i < size() && categories_[i] == c; }
  bool is_cp(size_t i, char32_t cp) const { return i < size() && cps_[i].cp == cp; }
  bool is_crlf(size_t i) const { return is_cp(i, '\r') || is_cp(i, '\n'); }
  // Length of the run of class `c` starting at i.
  size_t run(size_t i, CharClass c) const {
    size_t j = i;
    while (is(j, c)) ++j;
    return j - i;
  }
  // Length of the run of positions satisfying pred(position) starting at i.
  template <typename Pred>
  size_t run_if(size_t i, Pred pred) const {
    size_t j = i;
    while (j < size() && pred(j)) ++j;
    return j - i;
  }
  // First position from which every code point to the end is whitespace.
  size_t trailing_space() const { return trailing_space_; }

 private:
  std::vector<CodePoint> cps_;
  std::vector<CharClass> classes_;
  std::vector<Category> categories_;
  size_t trailing_space_ = 0;
};

// A bracket expression as sorted, merged code point ranges.
class CharSet {
 public:
  // The first [...] of `regex`: literal characters and a-b ranges (no escapes, no negation).
  explicit CharSet(std::string_view regex) {
    const size_t open = regex.find('[');
    const size_t close = regex.find(']', open);
    const std::vector<CodePoint> cps = decode_utf8(regex.substr(open + 1, close - open - 1));
    for (size_t k = 0; k < cps.size(); ++k) {
      if (k + 2 < cps.size() && cps[k + 1].cp == '-') {
        ranges_.emplace_back(cps[k].cp, cps[k + 2].cp);
        k += 2;
      } else {
        ranges_.emplace_back(cps[k].cp, cps[k].cp);
      }
    }
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<char32_t, char32_t>> merged;
    for (const auto& r : ranges_) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    ranges_ = std::move(merged);
  }
  bool contains(char32_t cp) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), cp,
                               [](char32_t c, const auto& r) { return c < r.first; });
    return it != ranges_.begin() && cp <= std::prev(it)->second;
  }

 private:
  std::vector<std::pair<char32_t, char32_t>> ranges_;
};

// The classes of the DeepSeek regexes, built once from the regex text itself.
const CharSet& deepseek_set(SplitPattern p) {
  static const std::array<CharSet, 4> kSets = {
      CharSet(kDeepSeekV3CjkRegex), CharSet(kDeepSeekLlmLettersRegex),
      CharSet(kDeepSeekLlmPunctRegex), CharSet(kDeepSeekLlmCjkRegex)};
  switch (p) {
    case SplitPattern::kDeepSeekLlmLetters:
      return kSets[1];
    case SplitPattern::kDeepSeekLlmPunct:
      return kSets[2];
    case SplitPattern::kDeepSeekLlmCjk:
      return kSets[3];
    default:
      return kSets[0];
  }
}

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

// \s*[\r\n]+|\s+(?!\S)|\s+ : up to and including the last CR/LF of the whitespace run, else as
// match_trailing_space.
size_t match_space_tail(const Text& t, size_t i) {
  const size_t ws = t.run(i, CharClass::kSpace);
  for (size_t k = ws; k > 0; --k) {
    if (t.is_crlf(i + k - 1)) return k;
  }
  return match_trailing_space(t, i);
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
  return match_space_tail(t, i);
}
size_t match_llama3(const Text& t, size_t i) { return match_llama3_family(t, i, 3); }
size_t match_qwen2(const Text& t, size_t i) { return match_llama3_family(t, i, 1); }

bool ascii_letter(char32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
// The 32 ASCII punctuation and symbol characters: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
bool ascii_punct(char32_t c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}

size_t match_deepseek_v3(const Text& t, size_t i) {
  // [!"#...~][A-Za-z]+
  if (ascii_punct(t.cp(i)) && ascii_letter(t.cp(i + 1))) {
    return 1 + t.run_if(i + 1, [&](size_t k) { return ascii_letter(t.cp(k)); });
  }
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ (a leading mark is covered by either reading)
  const auto letter_or_mark = [&](size_t k) {
    return t.is(k, Category::kLetter) || t.is(k, Category::kMark);
  };
  if (letter_or_mark(i)) return t.run_if(i, letter_or_mark);
  if (i < t.size() && !t.is_crlf(i) && !t.is(i, Category::kPunct) && !t.is(i, Category::kSymbol) &&
      letter_or_mark(i + 1)) {
    return 1 + t.run_if(i + 1, letter_or_mark);
  }
  // ?[\p{P}\p{S}]+[\r\n]*
  const auto punct_or_symbol = [&](size_t k) {
    return t.is(k, Category::kPunct) || t.is(k, Category::kSymbol);
  };
  const size_t start = t.is_cp(i, ' ') && punct_or_symbol(i + 1) ? i + 1 : i;
  if (const size_t n = t.run_if(start, punct_or_symbol); n > 0) {
    size_t j = start + n;
    while (t.is_crlf(j)) ++j;
    return j - i;
  }
  return match_space_tail(t, i);
}

// \s?[X]+ for a DeepSeek LLM class X.
size_t match_space_then_set(const Text& t, size_t i, const CharSet& set) {
  const auto in = [&](size_t k) { return k < t.size() && set.contains(t.cp(k)); };
  const size_t start = t.is(i, CharClass::kSpace) && in(i + 1) ? i + 1 : i;
  const size_t n = t.run_if(start, in);
  return n == 0 ? 0 : start - i + n;
}

size_t match_pattern(SplitPattern p, const Text& t, size_t i) {
  switch (p) {
    case SplitPattern::kGpt2:
      return match_gpt2(t, i);
    case SplitPattern::kLlama3:
      return match_llama3(t, i);
    case SplitPattern::kQwen2:
      return match_qwen2(t, i);
    case SplitPattern::kDigits3:
      return std::min<size_t>(t.run(i, CharClass::kNumber), 3);
    case SplitPattern::kDeepSeekV3:
      return match_deepseek_v3(t, i);
    case SplitPattern::kDeepSeekV3Cjk:
    case SplitPattern::kDeepSeekLlmCjk: {
      const CharSet& set = deepseek_set(p);
      return t.run_if(i, [&](size_t k) { return set.contains(t.cp(k)); });
    }
    case SplitPattern::kDeepSeekLlmNewline:
      return t.is_crlf(i) ? 1 : 0;
    case SplitPattern::kDeepSeekLlmLetters:
    case SplitPattern::kDeepSeekLlmPunct:
      return match_space_then_set(t, i, deepseek_set(p));
    case SplitPattern::kDeepSeekLlmTrailing:
      return i >= t.trailing_space() && i < t.size() ? t.size() - i : 0;
    case SplitPattern::kDigitRuns:
      return t.run(i, CharClass::kNumber);
    case SplitPattern::kDigit:
      return t.is(i, CharClass::kNumber) ? 1 : 0;
    case SplitPattern::kAsciiDigits3: {
      const auto digit = [&](size_t k) { return t.cp(k) >= '0' && t.cp(k) <= '9'; };
      return digit(i) && digit(i + 1) && digit(i + 2) ? 3 : 0;
    }
    case SplitPattern::kPunctRuns:
      return t.run_if(i, [&](size_t k) {
        return t.is(k, Category::kPunct) ||
               std::u32string_view(U"$+<=>^~|").find(t.cp(k)) != std::u32string_view::npos;
      });
  }
  return 0;
}

constexpr std::array<std::pair<SplitPattern, std::string_view>, 15> kPatterns = {{
    {SplitPattern::kGpt2, kGpt2Regex},
    {SplitPattern::kLlama3, kLlama3Regex},
    {SplitPattern::kQwen2, kQwen2Regex},
    {SplitPattern::kDigits3, kDigits3Regex},
    {SplitPattern::kDeepSeekV3Cjk, kDeepSeekV3CjkRegex},
    {SplitPattern::kDeepSeekV3, kDeepSeekV3Regex},
    {SplitPattern::kDeepSeekLlmNewline, kDeepSeekLlmNewlineRegex},
    {SplitPattern::kDeepSeekLlmLetters, kDeepSeekLlmLettersRegex},
    {SplitPattern::kDeepSeekLlmPunct, kDeepSeekLlmPunctRegex},
    {SplitPattern::kDeepSeekLlmTrailing, kDeepSeekLlmTrailingRegex},
    {SplitPattern::kDeepSeekLlmCjk, kDeepSeekLlmCjkRegex},
    {SplitPattern::kDigitRuns, kDigitRunsRegex},
    {SplitPattern::kDigit, kDigitRegex},
    {SplitPattern::kAsciiDigits3, kAsciiDigits3Regex},
    {SplitPattern::kPunctRuns, kPunctRunsRegex},
}};

}  // namespace

std::optional<SplitPattern> find_split_pattern(std::string_view regex) {
  for (const auto& [pattern, text] : kPatterns) {
    if (regex == text) return pattern;
  }
  return std::nullopt;
}

std::string_view split_pattern_regex(SplitPattern pattern) {
  for (const auto& [p, text] : kPatterns) {
    if (p == pattern) return text;
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
    const size_t n = match_pattern(pattern, t, i);
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
