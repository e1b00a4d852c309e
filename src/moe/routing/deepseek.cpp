// `deepseek`: DeepSeek-V2/V3 routing (routing.md A6; V3 report arXiv 2412.19437 §2.1.2).
// Scores s = sigmoid(x W^T) (V3) or softmax (V2); selection is the top-K of s + b
// (b = `e_score_correction_bias`, a buffer, selection only) restricted to the topk_group best of
// n_group equal groups of experts; weight = s of the chosen experts, normalised over the K when
// norm_topk_prob, times routed_scaling_factor. Sequence-wise balance loss "seq_balance"
// (see biased_score_core.h); optional bias update in end_step as in `loss_free`.
// Options (defaults follow V3 where V2 and V3 differ):
//   score                  "sigmoid"   V3; "softmax" for V2
//   n_group                1           V3: 8 (groups of 32 of 256 experts); must divide E
//   topk_group             n_group     V3: 4
//   group_score            "top2_sum"  V3: sum of the 2 best biased scores; "max": V2
//   norm_topk_prob         true        V3 true; V2 false
//   routed_scaling_factor  1.0         V3 2.5; V2 16 (V2 applies it only without norm; with
//                                      the released V2 configs, norm is false, so same result)
//   seq_aux_coeff          1e-4        V3 alpha; V2 used 1e-3
//   bias_update_rate       1e-3        V3 gamma (0 in its last 500B tokens); 0 freezes the bias
// The bias is `<prefix>gate.e_score_correction_bias` (HF DeepSeek-V3 name), f32 [E].
#include "moe/routing/biased_score_core.h"
#include "moe/routing/options.h"

namespace sy::moe {

std::unique_ptr<Router> make_deepseek_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  BiasedScoreConfig config;
  config.sigmoid = opts.get_string("score", "sigmoid", {"sigmoid", "softmax"}) == "sigmoid";
  config.n_group = opts.get_int("n_group", 1);
  config.topk_group = opts.get_int("topk_group", config.n_group);
  config.group_score_max = opts.get_string("group_score", "top2_sum", {"top2_sum", "max"}) == "max";
  config.normalize = opts.get_bool("norm_topk_prob", true);
  config.routed_scaling_factor = opts.get_double("routed_scaling_factor", 1.0);
  config.seq_aux_coeff = opts.get_double("seq_aux_coeff", 1e-4);
  config.bias_update_rate = opts.get_double("bias_update_rate", 1e-3);
  opts.finish();
  config.report_seq_aux = true;
  config.bias_name = "gate.e_score_correction_bias";
  return std::make_unique<BiasedScoreRouter>(spec, config);
}

}  // namespace sy::moe
