#include "kernels/cross_entropy.h"

#include <string>

#include "kernels/cpu/cross_entropy_cpu.h"

namespace sy::kernels {

namespace {
// Checks logits and targets; returns the number of valid (not ignored) tokens. Every target is
// checked here so the raw body can index with it.
int64_t check_inputs(const Tensor& logits, const Tensor& targets, int32_t ignore_index,
                     const char* op) {
  const std::string o(op);
  logits.expect_dtype(DType::F32, (o + ": logits").c_str());
  targets.expect_dtype(DType::I32, (o + ": targets").c_str());
  SY_CHECK(logits.rank() >= 2, "{}: logits: shape {}, expected [..., V] of rank >= 2", op,
           shape_str(logits.shape()));
  Shape leading = logits.shape();
  leading.pop_back();
  targets.expect_shape(leading, (o + ": targets").c_str());
  const int64_t vocab = logits.cols();
  const int32_t* tg = targets.data<int32_t>();
  int64_t n_valid = 0;
  for (int64_t t = 0; t < targets.numel(); ++t) {
    if (tg[t] == ignore_index) continue;
    SY_CHECK(tg[t] >= 0 && tg[t] < vocab,
             "{}: targets[{}] is {}, expected in [0, V={}) or ignore_index {}", op, t, tg[t], vocab,
             ignore_index);
    ++n_valid;
  }
  return n_valid;
}

void ensure_shape(Tensor& t, const Shape& shape) {
  if (!t.defined() || t.shape() != shape || t.dtype() != DType::F32) t = Tensor::zeros(shape);
}
}  // namespace

float cross_entropy_forward(CrossEntropySaved& saved, const Tensor& logits, const Tensor& targets,
                            const CrossEntropyOptions& opts) {
  const int64_t n_valid = check_inputs(logits, targets, opts.ignore_index, "cross_entropy_forward");
  const int64_t rows = logits.rows();
  ensure_shape(saved.lse, {rows});
  ensure_shape(saved.token_loss, {rows});
  saved.n_valid = n_valid;
  saved.ignore_index = opts.ignore_index;
  const double sum = cpu::cross_entropy_forward(
      saved.token_loss.mutable_data<float>(), saved.lse.mutable_data<float>(), logits.data<float>(),
      targets.data<int32_t>(), rows, logits.cols(), opts.ignore_index);
  return n_valid == 0 ? 0.0f : static_cast<float>(sum / static_cast<double>(n_valid));
}

void cross_entropy_backward(Tensor& d_logits, float d_loss, const Tensor& logits,
                            const Tensor& targets, const CrossEntropySaved& saved) {
  const int64_t n_valid =
      check_inputs(logits, targets, saved.ignore_index, "cross_entropy_backward");
  d_logits.expect_dtype(DType::F32, "cross_entropy_backward: d_logits");
  d_logits.expect_shape(logits.shape(), "cross_entropy_backward: d_logits");
  saved.lse.expect_shape({logits.rows()}, "cross_entropy_backward: saved.lse");
  SY_CHECK(n_valid == saved.n_valid,
           "cross_entropy_backward: targets hold {} valid tokens, forward saw {}", n_valid,
           saved.n_valid);
  if (n_valid == 0) return;
  const float scale = d_loss / static_cast<float>(n_valid);
  cpu::cross_entropy_backward(d_logits.mutable_data<float>(), logits.data<float>(),
                              targets.data<int32_t>(), saved.lse.data<float>(), logits.rows(),
                              logits.cols(), saved.ignore_index, scale);
}

}  // namespace sy::kernels
