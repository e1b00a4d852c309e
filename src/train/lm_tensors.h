// Small tensor helpers of the trainable LM: activation buffers kept across training steps
// (allocated once per shape, reused while the batch shape stays the same, so a step of a
// training run allocates nothing of its own) and random initialisation.
#pragma once

#include "core/rng.h"
#include "core/tensor.h"

namespace sy::train {

// Makes t an f32 tensor of `shape`: kept as it is (contents included) when it already has that
// shape, else replaced by a new zero-filled one.
inline void ensure_shape(Tensor& t, const Shape& shape) {
  if (!t.defined() || t.shape() != shape || t.dtype() != DType::F32) t = Tensor::zeros(shape);
}

// Fills an f32 tensor with N(0, stddev^2) draws from rng, in element order.
inline void fill_normal(Tensor& t, Rng& rng, float stddev) {
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal(0.0f, stddev);
}

}  // namespace sy::train
