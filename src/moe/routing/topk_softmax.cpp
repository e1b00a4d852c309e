// `topk_softmax`: p = softmax(x W^T) over all E experts, the K most probable experts per token.
// Options (routing.md A1.1, A1.2, A1.4):
//   normalize           true   renormalise the K weights to sum 1 (HF Mixtral, Qwen3-MoE; set
//                              false for OLMoE and Qwen1.5/2-MoE, `norm_topk_prob: false`)
//   softmax_after_topk  false  weights = softmax of the K chosen logits (Mixtral paper, Megatron
//                              default); same values and gradients as normalize=true
//   aux_loss_coeff      0      Switch load-balancing loss, alpha * E * sum_e f_e P_e with
//                              f_e = count_e / (T K) (Megatron); 0.01 in Switch/OLMoE
//   z_loss_coeff        0      ST-MoE router z-loss; 1e-3 in ST-MoE-32B and OLMoE
// Both losses are computed and listed every forward (for logging); their gradient is added in
// backward scaled by the coefficient.
#include "moe/routing/options.h"
#include "moe/routing/softmax_topk_core.h"

namespace sy::moe {

std::unique_ptr<Router> make_topk_softmax_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  const bool normalize = opts.get_bool("normalize", true);
  const bool after = opts.get_bool("softmax_after_topk", false);
  SoftmaxTopKConfig config;
  config.aux_loss_coeff = opts.get_double("aux_loss_coeff", 0.0);
  config.z_loss_coeff = opts.get_double("z_loss_coeff", 0.0);
  opts.finish();
  SY_CHECK(!(after && opts.has("normalize") && !normalize),
           "{}: softmax_after_topk gives weights that sum to 1; it cannot be combined with "
           "normalize = false",
           opts.where());
  config.weights = after       ? TopKWeights::kSoftmaxOverK
                   : normalize ? TopKWeights::kRenormalized
                               : TopKWeights::kRaw;
  return std::make_unique<SoftmaxTopKRouter>(spec, config);
}

}  // namespace sy::moe
