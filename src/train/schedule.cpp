#include "train/schedule.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace sy::train {

ScheduleKind schedule_kind_from_name(std::string_view name) {
  if (name == "constant") return ScheduleKind::kConstant;
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "wsd") return ScheduleKind::kWsd;
  fail("lr schedule: unknown kind '{}'; valid kinds: constant, cosine, wsd", name);
}

DecayShape decay_shape_from_name(std::string_view name) {
  if (name == "linear") return DecayShape::kLinear;
  if (name == "cosine") return DecayShape::kCosine;
  if (name == "1-sqrt") return DecayShape::kSqrt;
  fail("lr schedule: unknown decay shape '{}'; valid shapes: linear, cosine, 1-sqrt", name);
}

std::string_view schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kConstant:
      return "constant";
    case ScheduleKind::kCosine:
      return "cosine";
    case ScheduleKind::kWsd:
      return "wsd";
  }
  return "?";
}

std::string_view decay_shape_name(DecayShape shape) {
  switch (shape) {
    case DecayShape::kLinear:
      return "linear";
    case DecayShape::kCosine:
      return "cosine";
    case DecayShape::kSqrt:
      return "1-sqrt";
  }
  return "?";
}

LrSchedule::LrSchedule(const ScheduleOptions& options) : options_(options) {
  const ScheduleOptions& o = options_;
  SY_CHECK(std::isfinite(o.lr) && o.lr > 0, "lr schedule: lr = {} is not a positive number", o.lr);
  SY_CHECK(std::isfinite(o.min_lr) && o.min_lr >= 0 && o.min_lr <= o.lr,
           "lr schedule: min_lr = {} is not in [0, lr = {}]", o.min_lr, o.lr);
  SY_CHECK(o.warmup_steps >= 0, "lr schedule: warmup_steps = {} is negative", o.warmup_steps);
  decay_start_ = o.total_steps;
  if (o.kind == ScheduleKind::kConstant) return;
  SY_CHECK(o.total_steps > o.warmup_steps,
           "lr schedule: total_steps = {} is not above warmup_steps = {} ({} needs a decay phase)",
           o.total_steps, o.warmup_steps, schedule_kind_name(o.kind));
  if (o.kind == ScheduleKind::kWsd) {
    SY_CHECK(o.decay_fraction >= 0 && o.decay_fraction <= 1,
             "lr schedule: decay_fraction = {} is not in [0, 1]", o.decay_fraction);
    const auto decay_steps =
        static_cast<int64_t>(std::llround(o.decay_fraction * static_cast<double>(o.total_steps)));
    decay_start_ = o.total_steps - decay_steps;
    SY_CHECK(decay_start_ >= o.warmup_steps,
             "lr schedule: the wsd decay ({} of {} steps) starts at step {}, before the warmup "
             "ends at step {}",
             decay_steps, o.total_steps, decay_start_, o.warmup_steps);
  }
}

double LrSchedule::lr(int64_t step) const {
  const ScheduleOptions& o = options_;
  SY_CHECK(step >= 0, "lr schedule: step {} is negative", step);
  if (step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.kind == ScheduleKind::kConstant) return o.lr;
  if (step >= o.total_steps) return o.min_lr;
  const int64_t start = o.kind == ScheduleKind::kCosine ? o.warmup_steps : decay_start_;
  if (step < start) return o.lr;  // wsd's stable phase
  const double p = static_cast<double>(step - start) / static_cast<double>(o.total_steps - start);
  double frac = 0.0;  // of the way from min_lr to the peak
  if (o.kind == ScheduleKind::kCosine || o.decay_shape == DecayShape::kCosine) {
    frac = 0.5 * (1.0 + std::cos(std::numbers::pi * p));
  } else if (o.decay_shape == DecayShape::kLinear) {
    frac = 1.0 - p;
  } else {
    frac = 1.0 - std::sqrt(p);
  }
  return o.min_lr + (o.lr - o.min_lr) * frac;
}

}  // namespace sy::train
