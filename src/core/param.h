// A named trainable tensor with its gradient, or a named piece of non-trainable state (a buffer:
// a router's bias, ReMoE's lambda, an EMA) with no gradient. Modules own their Params and hand
// out pointers so the optimizer and the checkpoint writer can reach them by name.
#pragma once

#include <string>

#include "core/tensor.h"

namespace sy {

struct Param {
  std::string name;   // checkpoint key, e.g. "model.layers.3.mlp.gate.weight"
  Tensor value;       // f32
  Tensor grad;        // f32, same shape as value; undefined for buffers
  bool decay = true;  // AdamW weight decay applies (false for norms, biases, buffers)

  // A trainable parameter: zero-filled value and gradient of `shape`.
  static Param trainable(std::string name, const Shape& shape, bool decay = true) {
    return Param{std::move(name), Tensor::zeros(shape), Tensor::zeros(shape), decay};
  }
  // Non-trainable state that is checkpointed (no gradient, no decay).
  static Param buffer(std::string name, Shape shape) {
    return Param{std::move(name), Tensor::zeros(std::move(shape)), Tensor(), false};
  }
  bool trainable_param() const { return grad.defined(); }
};

}  // namespace sy
