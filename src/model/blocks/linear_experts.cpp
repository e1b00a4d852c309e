#include "model/blocks/linear_experts.h"

#include "core/error.h"
#include "kernels/activations.h"

namespace sy::model {

LinearExperts::LinearExperts(int64_t num_experts, int64_t d_model, int64_t d_ff, Linear gate,
                             Linear up, Linear down)
    : e_(num_experts), d_(d_model), f_(d_ff) {
  SY_CHECK(gate.rows() == e_ * f_ && gate.cols() == d_ && up.rows() == e_ * f_ && up.cols() == d_ &&
               down.rows() == e_ * d_ && down.cols() == f_,
           "LinearExperts: gate [{}, {}], up [{}, {}], down [{}, {}] for {} experts of [{} -> {}]",
           gate.rows(), gate.cols(), up.rows(), up.cols(), down.rows(), down.cols(), e_, d_, f_);
  for (int64_t j = 0; j < e_; ++j) {
    gate_.push_back(gate.slice_rows(j * f_, (j + 1) * f_));
    up_.push_back(up.slice_rows(j * f_, (j + 1) * f_));
    down_.push_back(down.slice_rows(j * d_, (j + 1) * d_));
  }
}

uint64_t LinearExperts::expert_bytes() const {
  return gate_.front().nbytes() + up_.front().nbytes() + down_.front().nbytes();
}

void LinearExperts::forward(Tensor& out, const Tensor& buffer, const std::vector<int64_t>& offsets,
                            moe::FfnSaved* /*saved*/) {
  SY_CHECK(static_cast<int64_t>(offsets.size()) == e_ + 1,
           "LinearExperts: {} offsets for {} "
           "experts",
           offsets.size(), e_);
  for (int64_t j = 0; j < e_; ++j) {
    const int64_t begin = offsets[static_cast<size_t>(j)],
                  end = offsets[static_cast<size_t>(j) + 1];
    if (begin == end) continue;
    const Tensor x = buffer.slice_rows(begin, end);
    const Tensor g = gate_[static_cast<size_t>(j)].apply(x);
    const Tensor u = up_[static_cast<size_t>(j)].apply(x);
    Tensor h = Tensor::empty(g.shape());
    kernels::swiglu_forward(h, g, u);
    Tensor y = out.slice_rows(begin, end);
    down_[static_cast<size_t>(j)].apply(y, h);
  }
}

void LinearExperts::backward(Tensor& /*d_buffer*/, const Tensor& /*d_out*/,
                             const Tensor& /*buffer*/, const std::vector<int64_t>& /*offsets*/,
                             const moe::FfnSaved& /*saved*/) {
  fail("LinearExperts: inference-only expert bank; train with the in-memory bank");
}

}  // namespace sy::model
