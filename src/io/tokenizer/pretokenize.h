// Regex splitting for Hugging Face pre-tokenizers, without a regex engine.
//
// std::regex has no \p{L} / \p{N}, so each pattern that real checkpoints declare is implemented
// by hand, keyed on the exact regex string; anything else is an error naming the regex. Known
// (\p{..} are Unicode general categories, \s is White_Space):
//   gpt2      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//             (also what ByteLevel with use_regex=true applies; GPT-2, OLMoE / GPT-NeoX)
//   llama3    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2     the llama3 pattern with \p{N} instead of \p{N}{1,3} (digits one by one)
//   DeepSeek-V3 (also R1), three steps:
//     digits3         \p{N}{1,3}
//     deepseek_v3_cjk [一-龥぀-ゟ゠-ヿ]+  (U+4E00-9FA5, hiragana, katakana)
//     deepseek_v3     [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?
//                     [\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   DeepSeek LLM (also DeepSeek-MoE, V2), six steps:
//     deepseek_llm_newline  [\r\n]
//     deepseek_llm_letters  \s?[A-Za-zµÀ-Ö...]+  (the cased letters Lu/Ll/Lt, listed by range)
//     deepseek_llm_punct    \s?[!-/:-~！-／：-～‘-‟　-。]+
//     deepseek_llm_trailing \s+$
//     deepseek_llm_cjk      [一-龥ࠀ-一가-퟿]+  (U+4E00-9FA5, U+0800-4E00, U+AC00-D7FF)
//     digit_runs            \p{N}+
//   and the single steps llama.cpp's GGUF pre-tokenizers use besides: digit \p{N},
//   ascii_digits3 [0-9][0-9][0-9], punct_runs [\p{P}\$\+<=>\^~\|]+.
// Matching follows the regex semantics: leftmost match, first alternative that matches wins,
// greedy quantifiers with backtracking; text no alternative matches becomes its own piece
// ("Isolated" behaviour). (?i) folds ASCII letters plus U+017F (long s), which Unicode case
// folding maps to 's'. `$` is the end of the piece (no piece these run on holds a newline but a
// lone one, where both readings agree).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sy::io::tok {

enum class SplitPattern {
  kGpt2,
  kLlama3,
  kQwen2,
  kDigits3,
  kDeepSeekV3Cjk,
  kDeepSeekV3,
  kDeepSeekLlmNewline,
  kDeepSeekLlmLetters,
  kDeepSeekLlmPunct,
  kDeepSeekLlmTrailing,
  kDeepSeekLlmCjk,
  kDigitRuns,
  kDigit,
  kAsciiDigits3,
  kPunctRuns,
};

// The pattern whose regex is exactly `regex`, or nullopt.
std::optional<SplitPattern> find_split_pattern(std::string_view regex);
// The regex text of a known pattern.
std::string_view split_pattern_regex(SplitPattern pattern);

// Splits `text` into consecutive pieces (matches and the gaps between them) that concatenate
// back to `text`. Invalid UTF-8 bytes are classed as "other" (no category, not whitespace).
std::vector<std::string_view> split_pieces(SplitPattern pattern, std::string_view text);

}  // namespace sy::io::tok
