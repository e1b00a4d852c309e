#include "support/moe_testing.h"

#include <algorithm>
#include <numeric>

#include "support/tensor_testing.h"

namespace sy::test {

void GivenRouter::backward(const moe::RouterInput& /*in*/, const moe::Routing& /*routing*/,
                           const moe::RoutingGrad& grad, Tensor& /*d_x*/) {
  last_grad = moe::RoutingGrad{};
  if (grad.d_weight.defined()) last_grad.d_weight = grad.d_weight.clone();
  if (grad.d_dispatch.defined()) last_grad.d_dispatch = grad.d_dispatch.clone();
  if (grad.d_combine.defined()) last_grad.d_combine = grad.d_combine.clone();
  if (grad.d_out.defined()) last_grad.d_out = grad.d_out.clone();
}

moe::Routing random_topk_routing(int64_t tokens, int64_t experts, int64_t top_k, Rng& rng) {
  const int64_t n = tokens * top_k;
  moe::Routing r;
  r.token = Tensor::zeros({n}, DType::I32);
  r.expert = Tensor::zeros({n}, DType::I32);
  r.choice = Tensor::zeros({n}, DType::I32);
  r.weight = Tensor::zeros({n});
  std::vector<int32_t> ids(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    std::iota(ids.begin(), ids.end(), 0);
    for (int64_t j = 0; j < top_k; ++j) {  // partial Fisher-Yates: K distinct experts
      const auto pick = static_cast<int64_t>(rng.below(static_cast<uint64_t>(experts - j))) + j;
      std::swap(ids[j], ids[pick]);
      const int64_t s = t * top_k + j;
      r.token.mutable_data<int32_t>()[s] = static_cast<int32_t>(t);
      r.expert.mutable_data<int32_t>()[s] = ids[j];
      r.choice.mutable_data<int32_t>()[s] = static_cast<int32_t>(j);
      r.weight.mutable_data<float>()[s] = rng.uniform(0.1f, 1.0f);
    }
  }
  return r;
}

moe::Routing random_dense_routing(int64_t tokens, int64_t experts, int64_t slots_per_expert,
                                  Rng& rng) {
  moe::Routing r;
  const int64_t s = experts * slots_per_expert;
  r.dispatch = random_uniform({s, tokens}, rng, 0.0f, 1.0f);
  r.combine = random_uniform({tokens, s}, rng, 0.0f, 1.0f);
  r.slots_per_expert = slots_per_expert;
  return r;
}

}  // namespace sy::test
