// Seeded, platform-independent random numbers. std:: distributions differ between standard
// libraries, so these are written out: the same seed gives the same numbers everywhere.
#pragma once

#include <cstdint>

namespace sy {

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits (exact in f32).
  float uniform();
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal via Box-Muller (pairs cached).
  float normal();
  float normal(float mean, float stddev) { return mean + stddev * normal(); }
  // Uniform integer in [0, n), n > 0, without modulo bias.
  uint64_t below(uint64_t n);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace sy
