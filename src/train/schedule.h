// Learning-rate schedules: lr(step) as a pure function of the optimizer step.
//
// `step` counts optimizer updates from 0: lr(0) is the rate of the first update. Every schedule
// starts with a linear warmup over `warmup_steps` updates that ends at the peak rate:
//   lr(s) = peak * (s + 1) / warmup_steps            for s < warmup_steps
// so the first update is not wasted at rate 0 and update warmup_steps - 1 runs at the peak.
// After the warmup:
//   constant  lr(s) = peak, forever (total_steps is not used).
//   cosine    lr(s) = min + (peak - min) * (1 + cos(pi * p)) / 2,  p = (s - W) / (total - W),
//             W = warmup_steps: from the peak at s = W down to min at s = total (as llm.c and
//             nanoGPT write it); steps at or past total_steps stay at min_lr.
//   wsd       warmup-stable-decay (MiniCPM, Hagele et al. 2024): the peak until the decay starts
//             at S = total - round(decay_fraction * total), then down to min at s = total with
//             p = (s - S) / (total - S) and
//               linear   lr = min + (peak - min) * (1 - p)
//               cosine   lr = min + (peak - min) * (1 + cos(pi * p)) / 2
//               sqrt     lr = min + (peak - min) * (1 - sqrt(p))       ("1-sqrt", Hagele et al.)
//             steps at or past total_steps stay at min_lr.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sy::train {

enum class ScheduleKind { kConstant, kCosine, kWsd };
enum class DecayShape { kLinear, kCosine, kSqrt };

// "constant", "cosine", "wsd"; and "linear", "cosine", "1-sqrt". Unknown names throw sy::Error
// listing the valid ones.
ScheduleKind schedule_kind_from_name(std::string_view name);
DecayShape decay_shape_from_name(std::string_view name);
std::string_view schedule_kind_name(ScheduleKind kind);
std::string_view decay_shape_name(DecayShape shape);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::kCosine;
  double lr = 3e-4;     // peak rate (> 0)
  double min_lr = 0.0;  // final rate of cosine and wsd, in [0, lr]
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;      // updates in the run (cosine, wsd): > warmup_steps
  double decay_fraction = 0.2;  // wsd: the last fraction of total_steps that decays, in [0, 1]
  DecayShape decay_shape = DecayShape::kLinear;  // wsd
};

class LrSchedule {
 public:
  // Checks the options: throws sy::Error naming the bad field ("lr schedule: warmup_steps = 200
  // is not below total_steps = 100").
  explicit LrSchedule(const ScheduleOptions& options);

  const ScheduleOptions& options() const { return options_; }
  // First update of the wsd decay (total_steps for the other kinds).
  int64_t decay_start() const { return decay_start_; }
  // The rate of update `step` (>= 0; a negative step throws).
  double lr(int64_t step) const;

 private:
  ScheduleOptions options_;
  int64_t decay_start_ = 0;
};

}  // namespace sy::train
