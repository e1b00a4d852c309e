#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace sy::infer {
namespace {

// Top-p sorts its candidates lazily: this many first, then doubling, so a peaked distribution
// over a large vocabulary costs O(V) instead of a full sort.
constexpr size_t kFirstSortChunk = 64;

}  // namespace

void validate(const SamplerOptions& o) {
  SY_CHECK(std::isfinite(o.temperature),
           "sampler: temperature is {}, expected a finite value (<= 0 for greedy)", o.temperature);
  SY_CHECK(std::isfinite(o.top_p) && o.top_p > 0.0f && o.top_p <= 1.0f,
           "sampler: top_p is {}, expected a value in (0, 1] (1 turns it off)", o.top_p);
  SY_CHECK(std::isfinite(o.min_p) && o.min_p >= 0.0f && o.min_p < 1.0f,
           "sampler: min_p is {}, expected a value in [0, 1) (0 turns it off)", o.min_p);
  SY_CHECK(std::isfinite(o.repeat_penalty) && o.repeat_penalty > 0.0f,
           "sampler: repeat_penalty is {}, expected a finite value > 0 (1 turns it off)",
           o.repeat_penalty);
  SY_CHECK(o.repeat_last_n >= -1,
           "sampler: repeat_last_n is {}, expected -1 (whole context), 0 (off) or a positive count",
           o.repeat_last_n);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
  validate(options_);
}

int32_t Sampler::sample(const float* logits, int64_t vocab, std::span<const int32_t> context) {
  filter(logits, vocab, context);
  if (cands_.size() == 1) return cands_[0].id;
  // 53 random bits: probabilities far below f32's 2^-24 still get their share.
  const double u = static_cast<double>(rng_.next_u64() >> 11) * 0x1.0p-53;
  const double target = u * weight_sum_;
  double cum = 0.0;
  size_t last_positive = 0;
  for (size_t i = 0; i < cands_.size(); ++i) {
    if (weights_[i] <= 0.0) continue;
    last_positive = i;
    cum += weights_[i];
    if (cum > target) return cands_[i].id;
  }
  return cands_[last_positive].id;  // rounding left target at the very end of the sum
}

void Sampler::probabilities(const float* logits, int64_t vocab, std::span<const int32_t> context,
                            std::vector<float>& probs) {
  filter(logits, vocab, context);
  probs.assign(static_cast<size_t>(vocab), 0.0f);
  for (size_t i = 0; i < cands_.size(); ++i) {
    probs[static_cast<size_t>(cands_[i].id)] = static_cast<float>(weights_[i] / weight_sum_);
  }
}

void Sampler::filter(const float* logits, int64_t vocab, std::span<const int32_t> context) {
  SY_CHECK(vocab >= 1 && vocab <= std::numeric_limits<int32_t>::max(),
           "sampler: vocabulary size is {}, expected 1 to {}", vocab,
           std::numeric_limits<int32_t>::max());
  SY_CHECK(logits != nullptr, "sampler: logits pointer is null for a vocabulary of {}", vocab);
  cands_.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    const float l = logits[i];
    SY_CHECK(!std::isnan(l), "sampler: logit of token {} is NaN, expected a number or -inf", i);
    SY_CHECK(l != std::numeric_limits<float>::infinity(),
             "sampler: logit of token {} is +inf, expected a finite value or -inf", i);
    cands_[static_cast<size_t>(i)] = {l, static_cast<int32_t>(i)};
  }
  apply_penalty(vocab, context);

  // Masked tokens leave the candidate list here, so no later step can keep them.
  std::erase_if(cands_, [](const Candidate& c) { return std::isinf(c.logit); });
  SY_CHECK(!cands_.empty(), "sampler: all {} logits are -inf, nothing can be sampled", vocab);

  if (options_.temperature <= 0.0f) {
    Candidate best = cands_[0];
    for (const Candidate& c : cands_) {
      if (c.logit > best.logit) best = c;  // strict: the lower id wins ties (ids ascend here)
    }
    cands_.assign(1, best);
    weights_.assign(1, 1.0);
    weight_sum_ = 1.0;
    return;
  }

  const bool sorted = apply_top_k();
  apply_top_p_min_p(sorted);

  double max_logit = -std::numeric_limits<double>::infinity();
  for (const Candidate& c : cands_) max_logit = std::max(max_logit, static_cast<double>(c.logit));
  const double inv_t = 1.0 / static_cast<double>(options_.temperature);
  weights_.resize(cands_.size());
  weight_sum_ = 0.0;
  for (size_t i = 0; i < cands_.size(); ++i) {
    weights_[i] = std::exp((static_cast<double>(cands_[i].logit) - max_logit) * inv_t);
    weight_sum_ += weights_[i];
  }
}

void Sampler::apply_penalty(int64_t vocab, std::span<const int32_t> context) {
  const float penalty = options_.repeat_penalty;
  if (penalty == 1.0f || options_.repeat_last_n == 0 || context.empty()) return;
  const size_t n = options_.repeat_last_n < 0
                       ? context.size()
                       : std::min(context.size(), static_cast<size_t>(options_.repeat_last_n));
  const size_t first = context.size() - n;
  recent_.assign(context.begin() + static_cast<std::ptrdiff_t>(first), context.end());
  for (size_t i = 0; i < n; ++i) {
    SY_CHECK(recent_[i] >= 0 && recent_[i] < vocab,
             "sampler: context[{}] is token {}, expected an id in [0, {})", first + i, recent_[i],
             vocab);
  }
  std::sort(recent_.begin(), recent_.end());
  recent_.erase(std::unique(recent_.begin(), recent_.end()), recent_.end());
  for (const int32_t id : recent_) {
    float& l = cands_[static_cast<size_t>(id)].logit;  // cands_ is still indexed by id
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

namespace {

// Higher logit first; equal logits: lower id first. A strict total order, so every selection
// below is deterministic.
struct Better {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
};

}  // namespace

bool Sampler::apply_top_k() {
  const int k = options_.top_k;
  if (k <= 0 || static_cast<size_t>(k) >= cands_.size()) return false;
  const auto kth = cands_.begin() + k;
  std::nth_element(cands_.begin(), kth, cands_.end(), Better{});
  cands_.erase(kth, cands_.end());
  std::sort(cands_.begin(), cands_.end(), Better{});
  return true;
}

void Sampler::apply_top_p_min_p(bool sorted_by_top_k) {
  const double top_p = options_.top_p;
  const double min_p = options_.min_p;
  const bool use_top_p = top_p < 1.0;
  const bool use_min_p = min_p > 0.0;
  if (!use_top_p && !use_min_p) return;

  double max_logit = -std::numeric_limits<double>::infinity();
  for (const Candidate& c : cands_) max_logit = std::max(max_logit, static_cast<double>(c.logit));
  // Top-p's probabilities are normalised over the candidates it receives (the top-k set).
  double z = 0.0;
  if (use_top_p) {
    for (const Candidate& c : cands_) z += std::exp(static_cast<double>(c.logit) - max_logit);
  }
  // Both filters keep a prefix of the best-first order, so min-p (a threshold) can run first
  // as long as top-p uses the normaliser computed above: the result is the shorter prefix.
  if (use_min_p) {
    const double threshold = max_logit + std::log(min_p);
    std::erase_if(cands_,
                  [&](const Candidate& c) { return static_cast<double>(c.logit) < threshold; });
  }
  if (!use_top_p) return;

  // After a top-k cut cands_ is sorted; otherwise it is in id order and sorted lazily here.
  const size_t n = cands_.size();
  size_t sorted = sorted_by_top_k ? n : 0;
  double cum = 0.0;
  size_t keep = n;
  for (size_t i = 0; i < n; ++i) {
    if (i == sorted) {
      const size_t end = std::min(n, sorted + std::max(kFirstSortChunk, sorted));
      const auto first = cands_.begin() + static_cast<std::ptrdiff_t>(sorted);
      const auto last = cands_.begin() + static_cast<std::ptrdiff_t>(end);
      if (end < n) std::nth_element(first, last, cands_.end(), Better{});
      std::sort(first, last, Better{});
      sorted = end;
    }
    cum += std::exp(static_cast<double>(cands_[i].logit) - max_logit);
    if (cum / z >= top_p) {
      keep = i + 1;
      break;
    }
  }
  cands_.resize(keep);
}

}  // namespace sy::infer
