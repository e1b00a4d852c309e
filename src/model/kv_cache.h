// Keys and values of every position a sequence has seen, per layer, so each new token attends
// to the past without recomputing it. Lives in the model layer because Model::forward appends
// to it (infer/ builds sessions and schedulers on top).
//
// Layout per layer, head-major: k [Hkv, capacity, Dk], v [Hkv, capacity, Dv] (f16, or f32),
// positions [0, length) of each kv head filled. A decode step then reads each kv head's keys and
// values as two sequential streams (kernels::cached_attention_heads). Multi-head latent
// attention stores the decompressed per-head keys and values.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sy::model {

struct KvCache {
  int64_t capacity = 0;  // positions it can hold
  int64_t length = 0;    // positions filled
  std::vector<Tensor> k, v;

  int64_t free() const { return capacity - length; }
  void clear() { length = 0; }
};

}  // namespace sy::model
