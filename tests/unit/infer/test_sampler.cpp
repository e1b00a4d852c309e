#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "infer/sampler.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::infer {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
using Ids = std::vector<int32_t>;

using ::sy::test::error_of;

// Only the filters named in the test: everything else off.
SamplerOptions plain(float temperature = 1.0f) {
  return {.temperature = temperature,
          .top_k = 0,
          .top_p = 1.0f,
          .min_p = 0.0f,
          .repeat_penalty = 1.0f,
          .repeat_last_n = 64,
          .seed = 1};
}

std::vector<float> probs_of(const SamplerOptions& o, const std::vector<float>& logits,
                            const Ids& context = {}) {
  Sampler s(o);
  std::vector<float> p;
  s.probabilities(logits.data(), static_cast<int64_t>(logits.size()), context, p);
  return p;
}

// Softmax in double of the given logits (-inf -> 0), for hand-made expectations.
std::vector<float> softmax(const std::vector<double>& x) {
  double mx = -std::numeric_limits<double>::infinity();
  for (double v : x) mx = std::max(mx, v);
  double z = 0.0;
  for (double v : x) z += std::exp(v - mx);
  std::vector<float> p;
  p.reserve(x.size());
  for (double v : x) p.push_back(static_cast<float>(std::exp(v - mx) / z));
  return p;
}

void expect_probs(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-7) << "token " << i;
}

TEST(Sampler, GreedyPicksTheFirstMaximumAfterThePenalty) {
  const std::vector<float> logits = {1.0f, 3.0f, -kInf, 3.0f, 2.0f};
  for (float t : {0.0f, -1.0f}) {
    SamplerOptions o;  // llama.cpp defaults otherwise: the filters do not change the argmax
    o.temperature = t;
    Sampler s(o);
    EXPECT_EQ(s.sample(logits.data(), 5, {}), 1);
    std::vector<float> p;
    s.probabilities(logits.data(), 5, {}, p);
    EXPECT_EQ(p, (std::vector<float>{0, 1, 0, 0, 0}));
  }
  // 3 / 2 = 1.5 < 2: the penalty moves the maximum to token 4 (token 3 is penalised too).
  SamplerOptions o = plain(0.0f);
  o.repeat_penalty = 2.0f;
  Sampler s(o);
  EXPECT_EQ(s.sample(logits.data(), 5, Ids{1, 3}), 4);
  EXPECT_EQ(s.sample(logits.data(), 5, Ids{3}), 1);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesOtherLogitsOncePerId) {
  const std::vector<float> logits = {2.0f, -2.0f, 1.0f, -1.0f, 0.0f, 0.5f};
  SamplerOptions o = plain();
  o.repeat_penalty = 2.0f;
  // 0 twice and 1 three times are penalised once; 4 (logit 0) stays 0.
  expect_probs(probs_of(o, logits, {0, 1, 0, 1, 4, 1}), softmax({1.0, -4.0, 1.0, -1.0, 0.0, 0.5}));
  // Penalty < 1 rewards instead.
  o.repeat_penalty = 0.5f;
  expect_probs(probs_of(o, logits, {0, 1}), softmax({4.0, -1.0, 1.0, -1.0, 0.0, 0.5}));
  // Only the last repeat_last_n tokens count: here 3 and 5, not 0.
  o.repeat_penalty = 2.0f;
  o.repeat_last_n = 2;
  expect_probs(probs_of(o, logits, {0, 3, 5}), softmax({2.0, -2.0, 1.0, -2.0, 0.0, 0.25}));
  // -1: the whole context; 0: off.
  o.repeat_last_n = -1;
  expect_probs(probs_of(o, logits, {0, 3, 5}), softmax({1.0, -2.0, 1.0, -2.0, 0.0, 0.25}));
  o.repeat_last_n = 0;
  expect_probs(probs_of(o, logits, {0, 3, 5}), softmax({2.0, -2.0, 1.0, -1.0, 0.0, 0.5}));
}

TEST(Sampler, FiltersBreakTiesByLowerIdAndKeepAtLeastOneToken) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 3.0f, 2.0f, -kInf};
  SamplerOptions o = plain();
  o.top_k = 2;
  expect_probs(probs_of(o, logits), {0, 0.5f, 0.5f, 0, 0, 0});
  o.top_k = 100;  // more than V: keeps all finite
  expect_probs(probs_of(o, logits), softmax({1.0, 3.0, 3.0, 3.0, 2.0, -INFINITY}));
  o = plain();
  o.top_p = 1e-6f;  // the first token alone already reaches it
  expect_probs(probs_of(o, logits), {0, 1, 0, 0, 0, 0});
  // p(3) = e^3 / (e + 3e^3 + e^2) = 0.2855 each: two reach 0.5709 < 0.6, the third is needed.
  o.top_p = 0.6f;
  expect_probs(probs_of(o, logits), {0, 1.0f / 3, 1.0f / 3, 1.0f / 3, 0, 0});
  o.top_p = 0.55f;
  expect_probs(probs_of(o, logits), {0, 0.5f, 0.5f, 0, 0, 0});
  o = plain();
  o.min_p = 0.99f;  // only the maxima pass
  expect_probs(probs_of(o, logits), {0, 1.0f / 3, 1.0f / 3, 1.0f / 3, 0, 0});
  o.min_p = 0.36f;  // e^-1 = 0.3679 >= 0.36: token 4 passes, token 0 (e^-2) does not
  expect_probs(probs_of(o, logits), softmax({-INFINITY, 3.0, 3.0, 3.0, 2.0, -INFINITY}));
}

TEST(Sampler, TemperatureScalesTheKeptLogits) {
  const std::vector<float> logits = {0.5f, -1.0f, 2.0f};
  expect_probs(probs_of(plain(0.5f), logits), softmax({1.0, -2.0, 4.0}));
  expect_probs(probs_of(plain(4.0f), logits), softmax({0.125, -0.25, 0.5}));
}

struct ChainCase {
  std::string name;
  int64_t vocab;
  float stddev;  // of the random logits
  SamplerOptions options;
  Ids context;
  int masked = 0;  // this many tokens (every 7th) get -inf
};

std::vector<ChainCase> chain_cases() {
  const SamplerOptions defaults;  // llama.cpp's: t 0.8, k 40, p 0.95, min_p 0.05
  SamplerOptions top_k = plain();
  top_k.top_k = 10;
  SamplerOptions top_p = plain(0.7f);
  top_p.top_p = 0.9f;
  SamplerOptions min_p = plain(1.5f);
  min_p.min_p = 0.1f;
  SamplerOptions everything = defaults;
  everything.top_k = 20;
  everything.top_p = 0.8f;
  everything.min_p = 0.02f;
  everything.repeat_penalty = 1.3f;
  everything.repeat_last_n = 8;
  SamplerOptions no_k = defaults;
  no_k.top_k = 0;
  no_k.repeat_penalty = 0.7f;
  no_k.repeat_last_n = -1;
  SamplerOptions greedy = defaults;
  greedy.temperature = 0.0f;
  greedy.repeat_penalty = 1.5f;
  const Ids ctx = {3, 7, 3, 12, 0, 41, 7, 7, 19, 25, 3, 30, 1, 2, 49, 12};
  std::vector<ChainCase> cases;
  for (int64_t v : {int64_t{50}, int64_t{32000}}) {
    // Flat logits over 32000 tokens make top-p keep thousands (its lazy sort doubles many
    // times); peaked ones keep few.
    const float spread = v == 50 ? 1.0f : 4.0f;
    cases.push_back({"defaults", v, spread, defaults, {}});
    cases.push_back({"top_k", v, spread, top_k, {}});
    cases.push_back({"top_p", v, spread, top_p, {}});
    cases.push_back({"top_p_flat", v, 0.5f, top_p, {}});
    cases.push_back({"min_p", v, spread, min_p, {}});
    cases.push_back({"softmax", v, spread, plain(), {}});
    cases.push_back({"everything", v, spread, everything, ctx, 5});
    cases.push_back({"no_k_penalty_all", v, spread, no_k, ctx, 3});
    cases.push_back({"greedy", v, spread, greedy, ctx});
  }
  return cases;
}

// The whole probability vector, against tests/reference/sampler.py (float64 from the
// definitions): kept sets must be identical, probabilities within 1e-6.
TEST(Sampler, ChainMatchesPyTorchReference) {
  const std::vector<ChainCase> cases = chain_cases();
  Rng rng(11);
  std::vector<test::ReferenceCase> refs_in;
  std::vector<std::vector<float>> logits;
  for (const ChainCase& c : cases) {
    Tensor t = test::random_normal({c.vocab}, rng, c.stddev);
    for (int m = 0; m < c.masked; ++m) t.mutable_data<float>()[7 * m + 5] = -kInf;
    logits.emplace_back(t.data<float>(), t.data<float>() + c.vocab);
    const SamplerOptions& o = c.options;
    refs_in.push_back({{{"logits", t}},
                       {{"temperature", o.temperature},
                        {"top_k", o.top_k},
                        {"top_p", o.top_p},
                        {"min_p", o.min_p},
                        {"repeat_penalty", o.repeat_penalty},
                        {"repeat_last_n", o.repeat_last_n},
                        {"context", c.context}}});
  }
  const auto refs = test::run_reference_cases("sampler", refs_in);
  for (size_t i = 0; i < cases.size(); ++i) {
    const ChainCase& c = cases[i];
    SCOPED_TRACE(::testing::Message() << c.name << " V " << c.vocab);
    Sampler s(c.options);
    std::vector<float> p;
    s.probabilities(logits[i].data(), c.vocab, c.context, p);
    const Tensor& want = refs[i].at("probs");
    ASSERT_EQ(want.numel(), c.vocab);
    int64_t kept = 0;
    int64_t kept_ref = 0;
    int64_t support_mismatch = 0;
    double sum = 0.0;
    for (int64_t j = 0; j < c.vocab; ++j) {
      const float w = want.data<float>()[j];
      const float g = p[static_cast<size_t>(j)];
      kept += g > 0.0f;
      kept_ref += w > 0.0f;
      support_mismatch += (g > 0.0f) != (w > 0.0f);
      sum += g;
    }
    EXPECT_EQ(support_mismatch, 0) << "kept " << kept << ", reference kept " << kept_ref;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_ALL_CLOSE(Tensor::from_f32({c.vocab}, p), want, 1e-6f, 0.0f);
    // Each case must exercise what it is named for.
    if (c.name == "top_k") {
      EXPECT_EQ(kept, 10);
    } else if (c.name == "greedy") {
      EXPECT_EQ(kept, 1);
    } else if (c.name == "softmax") {
      EXPECT_EQ(kept, c.vocab);
    } else {
      EXPECT_LT(kept, c.vocab - c.masked);
    }
    if (c.name == "top_p_flat" && c.vocab == 32000) {
      EXPECT_GT(kept, 1000);
    }
    EXPECT_GT(kept, c.name == "greedy" ? 0 : 1);
  }
}

// Pearson chi-square of 20000 draws against probabilities() over the 5 kept tokens (df 4).
// Threshold 18.47: the 0.999 quantile of chi-square with 4 degrees of freedom, so a correct
// sampler fails with probability 1e-3 per seed (the seed is fixed: it passes or fails always).
TEST(Sampler, DrawsFollowTheDistribution) {
  const std::vector<float> logits = {1.0f, 0.5f, 0.2f, -0.3f, -1.0f, -3.0f, -kInf};
  SamplerOptions o = plain(0.9f);
  o.top_k = 5;
  o.seed = 2024;
  Sampler s(o);
  std::vector<float> p;
  s.probabilities(logits.data(), 7, {}, p);
  constexpr int kDraws = 20000;
  std::vector<int> counts(7, 0);
  for (int i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(s.sample(logits.data(), 7, {}))];
  EXPECT_EQ(counts[5], 0);  // cut by top-k
  EXPECT_EQ(counts[6], 0);  // masked
  const auto chi2 = [&](const std::vector<double>& expected_p) {
    double stat = 0.0;
    for (size_t j = 0; j < 5; ++j) {
      const double e = kDraws * expected_p[j];
      stat += (counts[j] - e) * (counts[j] - e) / e;
    }
    return stat;
  };
  EXPECT_LT(chi2({p[0], p[1], p[2], p[3], p[4]}), 18.47);
  // The same statistic rejects a slightly wrong distribution (temperature 1 instead of 0.9),
  // so the check has teeth.
  const std::vector<float> wrong = probs_of(
      [&] {
        SamplerOptions w = o;
        w.temperature = 1.0f;
        return w;
      }(),
      logits);
  EXPECT_GT(chi2({wrong[0], wrong[1], wrong[2], wrong[3], wrong[4]}), 18.47);
}

TEST(Sampler, SameSeedSameTokens) {
  Rng rng(3);
  const Tensor t = test::random_normal({1000}, rng, 1.0f);
  SamplerOptions o;
  o.top_k = 0;
  o.seed = 77;
  const auto run = [&](const SamplerOptions& opts) {
    Sampler s(opts);
    Ids out;
    for (int i = 0; i < 200; ++i) out.push_back(s.sample(t.data<float>(), 1000, out));
    return out;
  };
  const Ids first = run(o);
  EXPECT_EQ(run(o), first);
  o.seed = 78;
  EXPECT_NE(run(o), first);
  // probabilities() does not advance the generator.
  Sampler a(o);
  Sampler b(o);
  std::vector<float> p;
  b.probabilities(t.data<float>(), 1000, {}, p);
  EXPECT_EQ(a.sample(t.data<float>(), 1000, {}), b.sample(t.data<float>(), 1000, {}));
}

TEST(Sampler, MaskedTokensAreNeverDrawn) {
  std::vector<float> logits(64, -kInf);
  logits[5] = -100.0f;
  logits[40] = 100.0f;  // e^-200: token 5 keeps a tiny probability, the rest none
  Sampler s(plain());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(s.sample(logits.data(), 64, {}), 40);
  logits[40] = -kInf;
  EXPECT_EQ(s.sample(logits.data(), 64, {}), 5);
}

TEST(Sampler, ErrorsNameTheOptionAndTheRange) {
  const auto option_error = [](const std::function<void(SamplerOptions&)>& edit) {
    SamplerOptions o;
    edit(o);
    return error_of([&] { Sampler s(o); });
  };
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.temperature = NAN; }),
            "sampler: temperature is nan, expected a finite value (<= 0 for greedy)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.temperature = kInf; }),
            "sampler: temperature is inf, expected a finite value (<= 0 for greedy)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.top_p = 0.0f; }),
            "sampler: top_p is 0, expected a value in (0, 1] (1 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.top_p = 1.5f; }),
            "sampler: top_p is 1.5, expected a value in (0, 1] (1 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.top_p = NAN; }),
            "sampler: top_p is nan, expected a value in (0, 1] (1 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.min_p = 1.0f; }),
            "sampler: min_p is 1, expected a value in [0, 1) (0 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.min_p = -0.25f; }),
            "sampler: min_p is -0.25, expected a value in [0, 1) (0 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.repeat_penalty = 0.0f; }),
            "sampler: repeat_penalty is 0, expected a finite value > 0 (1 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.repeat_penalty = -kInf; }),
            "sampler: repeat_penalty is -inf, expected a finite value > 0 (1 turns it off)");
  EXPECT_EQ(option_error([](SamplerOptions& o) { o.repeat_last_n = -2; }),
            "sampler: repeat_last_n is -2, expected -1 (whole context), 0 (off) or a positive "
            "count");
  EXPECT_EQ(option_error([](SamplerOptions&) {}), "(no error)");
  EXPECT_EQ(option_error([](SamplerOptions& o) {
              o.temperature = -3.0f;  // greedy, not an error
              o.top_p = 1.0f;
              o.min_p = 0.0f;
              o.top_k = -5;
            }),
            "(no error)");

  SamplerOptions o;
  o.repeat_penalty = 1.1f;
  Sampler s(o);
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f};
  const auto sample_error = [&](int64_t vocab, const Ids& context) {
    return error_of([&] { s.sample(logits.data(), vocab, context); });
  };
  EXPECT_EQ(sample_error(0, {}), "sampler: vocabulary size is 0, expected 1 to 2147483647");
  EXPECT_EQ(error_of([&] { s.sample(nullptr, 4, {}); }),
            "sampler: logits pointer is null for a vocabulary of 4");
  EXPECT_EQ(sample_error(4, {0, 4}), "sampler: context[1] is token 4, expected an id in [0, 4)");
  EXPECT_EQ(sample_error(4, {-1, 2}), "sampler: context[0] is token -1, expected an id in [0, 4)");
  logits[2] = NAN;
  EXPECT_EQ(sample_error(4, {}), "sampler: logit of token 2 is NaN, expected a number or -inf");
  logits[2] = kInf;
  EXPECT_EQ(sample_error(4, {}),
            "sampler: logit of token 2 is +inf, expected a finite value or -inf");
  logits.assign(4, -kInf);
  EXPECT_EQ(sample_error(4, {}), "sampler: all 4 logits are -inf, nothing can be sampled");
  std::vector<float> p;
  EXPECT_EQ(error_of([&] { s.probabilities(logits.data(), 4, {}, p); }),
            "sampler: all 4 logits are -inf, nothing can be sampled");
}

}  // namespace
}  // namespace sy::infer
