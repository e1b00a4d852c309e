// Regex splitting for Hugging Face pre-tokenizers, without a regex engine.
//
// std::regex has no \p{L} / \p{N}, so each pattern that real checkpoints declare is implemented
// by hand, keyed on the exact regex string; anything else is an error naming the regex. Known:
//   gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//           (also what ByteLevel with use_regex=true applies; GPT-2, OLMoE / GPT-NeoX)
//   llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2   the llama3 pattern with \p{N} instead of \p{N}{1,3} (digits one by one)
// Matching follows the regex semantics: leftmost match, first alternative that matches wins,
// greedy quantifiers with backtracking; text no alternative matches becomes its own piece
// ("Isolated" behaviour). (?i) folds ASCII letters plus U+017F (long s), which Unicode case
// folding maps to 's'.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sy::io::tok {

enum class SplitPattern { kGpt2, kLlama3, kQwen2 };

// The pattern whose regex is exactly `regex`, or nullopt.
std::optional<SplitPattern> find_split_pattern(std::string_view regex);
// The regex text of a known pattern.
std::string_view split_pattern_regex(SplitPattern pattern);

// Splits `text` into consecutive pieces (matches and the gaps between them) that concatenate
// back to `text`. Invalid UTF-8 bytes are classed as "other" (neither letter, number nor space).
std::vector<std::string_view> split_pieces(SplitPattern pattern, std::string_view text);

}  // namespace sy::io::tok
