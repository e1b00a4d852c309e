#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numbers>
#include <string>

#include "core/error.h"
#include "support/tensor_testing.h"
#include "train/schedule.h"

namespace sy::train {
namespace {

using ::sy::test::error_of;

constexpr double kPi = std::numbers::pi;

TEST(LrSchedule, WarmupIsLinearFromOneStepToThePeak) {
  for (ScheduleKind kind : {ScheduleKind::kConstant, ScheduleKind::kCosine, ScheduleKind::kWsd}) {
    SCOPED_TRACE(std::string(schedule_kind_name(kind)));
    const LrSchedule s(
        {.kind = kind, .lr = 1e-3, .min_lr = 1e-5, .warmup_steps = 4, .total_steps = 20});
    EXPECT_DOUBLE_EQ(s.lr(0), 1e-3 * 1 / 4);  // the first update is not at rate 0
    EXPECT_DOUBLE_EQ(s.lr(1), 1e-3 * 2 / 4);
    EXPECT_DOUBLE_EQ(s.lr(2), 1e-3 * 3 / 4);
    EXPECT_DOUBLE_EQ(s.lr(3), 1e-3);  // the warmup ends at the peak
    EXPECT_DOUBLE_EQ(s.lr(4), 1e-3);  // and the next phase starts there
  }
}

TEST(LrSchedule, ConstantStaysAtThePeakForever) {
  const LrSchedule s({.kind = ScheduleKind::kConstant, .lr = 0.5, .warmup_steps = 0});
  EXPECT_DOUBLE_EQ(s.lr(0), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(1'000'000'000), 0.5);
}

TEST(LrSchedule, CosineFollowsTheFormulaToMinLr) {
  const double peak = 6e-4;
  const double lo = 6e-5;
  const LrSchedule s({.kind = ScheduleKind::kCosine,
                      .lr = peak,
                      .min_lr = lo,
                      .warmup_steps = 10,
                      .total_steps = 110});
  const auto formula = [&](int64_t step) {
    const double p = (step - 10) / 100.0;
    return lo + (peak - lo) * 0.5 * (1 + std::cos(kPi * p));
  };
  EXPECT_DOUBLE_EQ(s.lr(10), peak);
  for (int64_t step : {11, 35, 60, 85, 109}) EXPECT_DOUBLE_EQ(s.lr(step), formula(step)) << step;
  EXPECT_DOUBLE_EQ(s.lr(60), (peak + lo) / 2);  // halfway
  EXPECT_GT(s.lr(109), lo);
  EXPECT_DOUBLE_EQ(s.lr(110), lo);   // the end
  EXPECT_DOUBLE_EQ(s.lr(5000), lo);  // beyond
  // Monotone after the warmup.
  for (int64_t step = 10; step < 120; ++step) EXPECT_LE(s.lr(step + 1), s.lr(step)) << step;
}

TEST(LrSchedule, CosineWithoutWarmupStartsAtThePeak) {
  const LrSchedule s({.kind = ScheduleKind::kCosine, .lr = 1.0, .total_steps = 4});
  EXPECT_DOUBLE_EQ(s.lr(0), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(1), 0.5 * (1 + std::cos(kPi / 4)));
  EXPECT_DOUBLE_EQ(s.lr(2), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(4), 0.0);
}

TEST(LrSchedule, WsdIsStableThenDecaysOverTheLastFraction) {
  const double peak = 1e-3;
  const double lo = 1e-4;
  for (DecayShape shape : {DecayShape::kLinear, DecayShape::kCosine, DecayShape::kSqrt}) {
    SCOPED_TRACE(std::string(decay_shape_name(shape)));
    const LrSchedule s({.kind = ScheduleKind::kWsd,
                        .lr = peak,
                        .min_lr = lo,
                        .warmup_steps = 5,
                        .total_steps = 100,
                        .decay_fraction = 0.2,
                        .decay_shape = shape});
    EXPECT_EQ(s.decay_start(), 80);
    EXPECT_DOUBLE_EQ(s.lr(4), peak);   // end of warmup
    EXPECT_DOUBLE_EQ(s.lr(5), peak);   // stable phase
    EXPECT_DOUBLE_EQ(s.lr(79), peak);  // last stable step
    EXPECT_DOUBLE_EQ(s.lr(80), peak);  // the decay starts at the peak (p = 0)
    for (int64_t step : {81, 85, 90, 99}) {
      const double p = (step - 80) / 20.0;
      const double frac = shape == DecayShape::kLinear   ? 1 - p
                          : shape == DecayShape::kCosine ? 0.5 * (1 + std::cos(kPi * p))
                                                         : 1 - std::sqrt(p);
      EXPECT_DOUBLE_EQ(s.lr(step), lo + (peak - lo) * frac) << step;
    }
    EXPECT_GT(s.lr(99), lo);
    EXPECT_DOUBLE_EQ(s.lr(100), lo);
    EXPECT_DOUBLE_EQ(s.lr(1000), lo);
  }
  // Halfway through the decay: linear and cosine at the middle, 1-sqrt below it.
  const auto mid = [&](DecayShape shape) {
    return LrSchedule({.kind = ScheduleKind::kWsd,
                       .lr = 1.0,
                       .total_steps = 100,
                       .decay_fraction = 0.2,
                       .decay_shape = shape})
        .lr(90);
  };
  EXPECT_DOUBLE_EQ(mid(DecayShape::kLinear), 0.5);
  EXPECT_DOUBLE_EQ(mid(DecayShape::kCosine), 0.5);
  EXPECT_DOUBLE_EQ(mid(DecayShape::kSqrt), 1 - std::sqrt(0.5));
}

TEST(LrSchedule, WsdEdgeFractions) {
  // No decay: the peak until the end, then min_lr.
  const LrSchedule none({.kind = ScheduleKind::kWsd,
                         .lr = 1.0,
                         .min_lr = 0.1,
                         .total_steps = 10,
                         .decay_fraction = 0.0});
  EXPECT_EQ(none.decay_start(), 10);
  EXPECT_DOUBLE_EQ(none.lr(9), 1.0);
  EXPECT_DOUBLE_EQ(none.lr(10), 0.1);
  // All decay (no warmup): a plain linear decay from step 0; the decay length is rounded.
  const LrSchedule all(
      {.kind = ScheduleKind::kWsd, .lr = 1.0, .total_steps = 10, .decay_fraction = 1.0});
  EXPECT_EQ(all.decay_start(), 0);
  EXPECT_DOUBLE_EQ(all.lr(0), 1.0);
  EXPECT_DOUBLE_EQ(all.lr(5), 0.5);
  EXPECT_EQ(
      LrSchedule({.kind = ScheduleKind::kWsd, .lr = 1.0, .total_steps = 10, .decay_fraction = 0.25})
          .decay_start(),
      7);  // round(2.5) = 3 decay steps
}

TEST(LrSchedule, NamesRoundTrip) {
  for (ScheduleKind k : {ScheduleKind::kConstant, ScheduleKind::kCosine, ScheduleKind::kWsd}) {
    EXPECT_EQ(schedule_kind_from_name(schedule_kind_name(k)), k);
  }
  for (DecayShape d : {DecayShape::kLinear, DecayShape::kCosine, DecayShape::kSqrt}) {
    EXPECT_EQ(decay_shape_from_name(decay_shape_name(d)), d);
  }
  EXPECT_EQ(error_of([] { schedule_kind_from_name("linear"); }),
            "lr schedule: unknown kind 'linear'; valid kinds: constant, cosine, wsd");
  EXPECT_EQ(error_of([] { decay_shape_from_name("sqrt"); }),
            "lr schedule: unknown decay shape 'sqrt'; valid shapes: linear, cosine, 1-sqrt");
}

TEST(LrSchedule, BadOptionsNameTheField) {
  using K = ScheduleKind;
  EXPECT_EQ(error_of([] { LrSchedule({.kind = K::kConstant, .lr = 0.0}); }),
            "lr schedule: lr = 0 is not a positive number");
  EXPECT_EQ(error_of([] { LrSchedule({.kind = K::kConstant, .lr = std::nan("")}); }),
            "lr schedule: lr = nan is not a positive number");
  EXPECT_EQ(error_of([] { LrSchedule({.kind = K::kConstant, .lr = 1.0, .min_lr = 2.0}); }),
            "lr schedule: min_lr = 2 is not in [0, lr = 1]");
  EXPECT_EQ(error_of([] { LrSchedule({.kind = K::kConstant, .lr = 1.0, .warmup_steps = -1}); }),
            "lr schedule: warmup_steps = -1 is negative");
  EXPECT_EQ(error_of([] {
              LrSchedule({.kind = K::kCosine, .lr = 1.0, .warmup_steps = 200, .total_steps = 100});
            }),
            "lr schedule: total_steps = 100 is not above warmup_steps = 200 (cosine needs a decay "
            "phase)");
  EXPECT_EQ(error_of([] { LrSchedule({.kind = K::kWsd, .lr = 1.0, .total_steps = 0}); }),
            "lr schedule: total_steps = 0 is not above warmup_steps = 0 (wsd needs a decay phase)");
  EXPECT_EQ(error_of([] {
              LrSchedule({.kind = K::kWsd, .lr = 1.0, .total_steps = 10, .decay_fraction = 1.5});
            }),
            "lr schedule: decay_fraction = 1.5 is not in [0, 1]");
  EXPECT_EQ(error_of([] {
              LrSchedule({.kind = K::kWsd,
                          .lr = 1.0,
                          .warmup_steps = 5,
                          .total_steps = 10,
                          .decay_fraction = 0.8});
            }),
            "lr schedule: the wsd decay (8 of 10 steps) starts at step 2, before the warmup ends "
            "at step 5");
  const LrSchedule ok({.kind = K::kConstant, .lr = 1.0});
  EXPECT_EQ(error_of([&] { ok.lr(-1); }), "lr schedule: step -1 is negative");
}

}  // namespace
}  // namespace sy::train
