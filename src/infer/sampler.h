// Token sampling from one row of logits, with llama.cpp's default filter chain.
//
// The chain, in llama.cpp's default order (common/sampling: penalties -> top_k -> top_p ->
// min_p -> temperature -> dist), each step working on the candidates the previous one kept:
//   1. repetition penalty  CTRL-style: for each distinct id among the last `repeat_last_n`
//                          tokens of the context, a logit > 0 is divided by repeat_penalty and
//                          any other logit multiplied by it (once per id, however often it
//                          occurs). llama.cpp default 1.0 (off), last 64.
//   2. top-k               keep the k highest logits (equal logits: lower id first).
//                          llama.cpp default 40; k <= 0 or k >= V keeps all.
//   3. top-p (nucleus)     softmax (temperature 1) over the kept candidates; keep the smallest
//                          set of the most probable ones whose cumulative probability reaches
//                          top_p (always at least one). llama.cpp default 0.95; 1 keeps all.
//   4. min-p               keep tokens with p >= min_p * p_max (p at temperature 1, so the test
//                          is logit >= max_logit + log(min_p)). llama.cpp default 0.05; 0 is off.
//   5. temperature         logits / temperature, then softmax over the kept candidates and a
//                          draw from that distribution. llama.cpp default 0.8.
// temperature <= 0 is greedy: the highest logit after the repetition penalty (ties: lower id);
// top-k/top-p/min-p never remove the maximum, so they do not matter then.
//
// Logits of -inf mark masked tokens: they are never drawn. NaN or +inf logits are errors, as are
// a row with every logit -inf and, when the penalty is on, a context id it reads outside [0, V).
// Randomness comes from core/rng.h seeded with `seed`: the same seed and the same inputs give the
// same tokens on every platform.
//
// Cost per call: O(V) for the copy, penalty and min-p; top-k is a partial selection
// (O(V + k log k)); top-p without top-k sorts only as many of the best candidates as it needs
// (doubling from 64). Scratch buffers are reused across calls. A Sampler is not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"

namespace sy::infer {

struct SamplerOptions {
  float temperature = 0.8f;     // <= 0: greedy; otherwise finite
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // in (0, 1]; 1: off
  float min_p = 0.05f;          // in [0, 1); 0: off
  float repeat_penalty = 1.0f;  // > 0 and finite; 1: off
  int repeat_last_n = 64;       // tokens of context the penalty looks at; 0: off, -1: all
  uint64_t seed = 0x5EEDull;    // fixed by default so runs repeat; callers may pass a random one
};

// Throws sy::Error naming the option, the expected range and the value when `options` is
// invalid (top_p outside (0, 1], min_p outside [0, 1), repeat_penalty <= 0, repeat_last_n < -1,
// any non-finite float).
void validate(const SamplerOptions& options);

class Sampler {
 public:
  // Validates `options` (see validate) and seeds the generator.
  explicit Sampler(const SamplerOptions& options);

  // Draws one token id from `logits` (f32 [V], V = vocab >= 1) after the chain above.
  // `context` holds the ids seen so far (prompt and generated), oldest first; only its last
  // repeat_last_n entries are read.
  int32_t sample(const float* logits, int64_t vocab, std::span<const int32_t> context);

  // The distribution sample() draws from, written into probs (f32 [V], resized): zero outside
  // the kept set, summing to 1 (one-hot for greedy). Does not advance the generator.
  void probabilities(const float* logits, int64_t vocab, std::span<const int32_t> context,
                     std::vector<float>& probs);

  const SamplerOptions& options() const { return options_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };

  // Runs the chain up to (not including) the draw. Leaves the kept candidates in cands_
  // (non-empty) and, unless greedy, their unnormalised final weights in weights_ with sum
  // weight_sum_; for greedy, cands_ holds only the winner.
  void filter(const float* logits, int64_t vocab, std::span<const int32_t> context);
  void apply_penalty(int64_t vocab, std::span<const int32_t> context);
  bool apply_top_k();  // true when it cut the list (which it then leaves sorted best first)
  void apply_top_p_min_p(bool sorted);

  SamplerOptions options_;
  Rng rng_;
  std::vector<Candidate> cands_;
  std::vector<int32_t> recent_;
  std::vector<double> weights_;
  double weight_sum_ = 0.0;
};

}  // namespace sy::infer
