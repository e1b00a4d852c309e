// `smile`: SMILE bi-level routing (He et al. 2022, "SMILE: Scaling Mixture-of-Experts with
// Efficient Bi-level Routing", arXiv 2212.05191; routing.md A8). The E experts form G equal
// groups of M = E / G (in the paper a group is a node and its experts the node's GPUs, so the
// first level is the inter-node all-to-all and the second the intra-node one):
//   level 1: q_t = softmax(W_g x_t) over the G groups, the token goes to its top-1 group g_t
//            (W_g: `<prefix>smile.group_gate.weight` f32 [G, D])
//   level 2: r_t = softmax of (W_e x_t) restricted to the M experts of g_t, the token takes the K
//            most probable of them (W_e: `<prefix>smile.expert_gate.weight` f32 [E, D])
//   weight:  q_{t,g_t} * r_{t,e} (the product of both levels' probabilities; with normalize,
//            q_{t,g_t} * r_{t,e} / sum of the K chosen r)
// Load balancing is additive over the two levels, each a Switch-style scaled dot product of
// dispatch fractions and mean routing probabilities:
//   "group_balance"  G * sum_g f_g P_g, f_g = T_g / T (tokens sent to g), P_g = mean_t q_{t,g}
//   "expert_balance" sum_g (T_g / T) * M * sum_{e in g} f_e P_e, over the T_g tokens of group g:
//                    f_e = count_e / (T_g K), P_e = mean over those tokens of r_{t,e}
//                    (each group balances its own experts; a group's term is weighted by its
//                    share of tokens, so empty groups drop out; 1 at perfect balance, like Switch)
// Routing::entropy is that of the joint distribution q_{t,g(e)} * softmax-within-group_e.
// Slots token-major, choice-minor (slot t*K + j is token t's j-th best expert of its group); causal
// (a token's choice depends on that token alone).
// Options:
//   groups                G      must divide E; default: the largest divisor of E not above
//                                sqrt(E) (E = 64: 8 groups of 8, the paper's 8 GPUs per node)
//   normalize             false  renormalise the K level-2 probabilities (K = 1: weight = q_g)
//   group_balance_coeff   0.01   Switch's alpha
//   expert_balance_coeff  0.01   Switch's alpha
// Facts routing.md marks "verify" (its A8 math is from memory) could not be re-read at the source:
// the paper's text was not reachable from here; a summary of it confirms the two additive
// Switch-style terms. routing.md has top-1 at both levels; K > 1 picks within the group generalise
// the second level. The per-group weighting of the second term and both coefficients (Switch's
// 0.01) are this implementation's choice.
// Initialisation: both gates N(0, 0.02^2).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/softmax.h"
#include "kernels/topk.h"
#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

struct SmileConfig {
  int64_t groups = 1;
  bool normalize = false;
  double group_balance_coeff = 0.01;
  double expert_balance_coeff = 0.01;
};

struct SmileSaved : RouterSaved {
  Tensor q;                        // f32 [T, G] level-1 probabilities
  Tensor r;                        // f32 [T, E] level-2 probabilities, softmax within each group
  std::vector<int32_t> group;      // [T] chosen group
  std::vector<double> sum_r;       // [T] sum of the K chosen r (normalize)
  std::vector<double> group_rows;  // [G] T_g
  std::vector<double> count;       // [E] slots per expert
};

// The largest divisor of e not above sqrt(e).
int64_t default_groups(int64_t e) {
  int64_t best = 1;
  for (int64_t g = 1; g * g <= e; ++g) {
    if (e % g == 0) best = g;
  }
  return best;
}

void init_normal(Param& p, Rng& rng) {
  float* w = p.value.mutable_data<float>();
  for (int64_t i = 0; i < p.value.numel(); ++i) w[i] = rng.normal(0.0f, 0.02f);
}

class SmileRouter : public Router {
 public:
  SmileRouter(const RouterSpec& spec, const SmileConfig& config)
      : name_(spec.name),
        where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model),
        config_(config),
        group_gate_(Param::trainable(spec.prefix + "smile.group_gate.weight",
                                     {config.groups, spec.d_model})),
        expert_gate_(Param::trainable(spec.prefix + "smile.expert_gate.weight",
                                      {spec.num_experts, spec.d_model})) {}

  std::string_view name() const override { return name_; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {&group_gate_, &expert_gate_}; }
  void init(Rng& rng) override {
    init_normal(group_gate_, rng);
    init_normal(expert_gate_, rng);
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    const int64_t e_count = experts_, k = top_k_, groups = config_.groups;
    const int64_t m = e_count / groups;
    auto saved = std::make_shared<SmileSaved>();
    saved->q = Tensor::zeros({tokens, groups});
    saved->r = Tensor::zeros({tokens, e_count});
    saved->group.assign(static_cast<size_t>(tokens), 0);
    saved->sum_r.assign(static_cast<size_t>(tokens), 1.0);
    saved->group_rows.assign(static_cast<size_t>(groups), 0.0);
    saved->count.assign(static_cast<size_t>(e_count), 0.0);
    Tensor idx = Tensor::zeros({tokens, k}, DType::I32);
    Tensor weight = Tensor::zeros({tokens * k});
    if (tokens > 0) {
      Tensor group_logits = Tensor::zeros({tokens, groups});
      kernels::gemm(group_logits, in.x, group_gate_.value, {.trans_b = true});
      kernels::softmax_forward(saved->q, group_logits);
      Tensor expert_logits = Tensor::zeros({tokens, e_count});
      kernels::gemm(expert_logits, in.x, expert_gate_.value, {.trans_b = true});
      Tensor r_blocks = saved->r.reshape({tokens * groups, m});  // a view: one row per group
      kernels::softmax_forward(r_blocks, expert_logits.reshape({tokens * groups, m}));

      Tensor best_v = Tensor::zeros({tokens, 1});
      Tensor best_g = Tensor::zeros({tokens, 1}, DType::I32);
      kernels::topk_forward(best_v, best_g, saved->q);
      // The chosen group's M probabilities, then its K best experts.
      Tensor local = Tensor::zeros({tokens, m});
      const float* r = saved->r.data<float>();
      float* lp = local.mutable_data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        const int32_t g = best_g.data<int32_t>()[t];
        saved->group[static_cast<size_t>(t)] = g;
        saved->group_rows[static_cast<size_t>(g)] += 1.0;
        std::copy(r + t * e_count + g * m, r + t * e_count + (g + 1) * m, lp + t * m);
      }
      Tensor local_v = Tensor::zeros({tokens, k});
      kernels::topk_forward(local_v, idx, local);
      int32_t* id = idx.mutable_data<int32_t>();
      const float* v = local_v.data<float>();
      const float* q = saved->q.data<float>();
      float* w = weight.mutable_data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        const int32_t g = saved->group[static_cast<size_t>(t)];
        double sum = 0.0;
        for (int64_t j = 0; j < k; ++j) sum += v[t * k + j];
        const double denom = config_.normalize ? sum : 1.0;
        saved->sum_r[static_cast<size_t>(t)] = denom;
        for (int64_t j = 0; j < k; ++j) {
          id[t * k + j] += static_cast<int32_t>(g * m);
          saved->count[static_cast<size_t>(id[t * k + j])] += 1.0;
          w[t * k + j] = static_cast<float>(q[t * groups + g] * v[t * k + j] / denom);
        }
      }
    }
    Routing routing = token_choice_slots(idx, std::move(weight));

    // Entropy of the joint distribution over experts.
    Tensor joint = saved->r.clone();
    float* jp = joint.mutable_data<float>();
    const float* q = saved->q.data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t e = 0; e < e_count; ++e) jp[t * e_count + e] *= q[t * groups + e / m];
    }
    routing.entropy = mean_normalized_entropy(jp, tokens, e_count);

    double group_balance = 0.0, expert_balance = 0.0;
    if (tokens > 0) {
      const auto n = static_cast<double>(tokens);
      for (int64_t g = 0; g < groups; ++g) {
        double p_sum = 0.0;
        for (int64_t t = 0; t < tokens; ++t) p_sum += q[t * groups + g];
        group_balance +=
            static_cast<double>(groups) * saved->group_rows[static_cast<size_t>(g)] / n * p_sum / n;
      }
      const float* r = saved->r.data<float>();
      std::vector<double> r_sum(static_cast<size_t>(e_count), 0.0);  // over each group's tokens
      for (int64_t t = 0; t < tokens; ++t) {
        const int64_t g = saved->group[static_cast<size_t>(t)];
        for (int64_t e = g * m; e < (g + 1) * m; ++e)
          r_sum[static_cast<size_t>(e)] += r[t * e_count + e];
      }
      const double scale = static_cast<double>(m) / (n * static_cast<double>(k));
      for (int64_t e = 0; e < e_count; ++e) {
        const double rows = saved->group_rows[static_cast<size_t>(e / m)];
        if (rows == 0.0) continue;
        expert_balance +=
            scale * saved->count[static_cast<size_t>(e)] * r_sum[static_cast<size_t>(e)] / rows;
      }
    }
    routing.losses.push_back({"group_balance", group_balance, config_.group_balance_coeff});
    routing.losses.push_back({"expert_balance", expert_balance, config_.expert_balance_coeff});
    routing.saved = std::move(saved);
    return routing;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override {
    const auto& saved = saved_state<SmileSaved>(routing, where_);
    const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.q.dim(0), where_);
    if (tokens == 0) return;
    const int64_t e_count = experts_, k = top_k_, groups = config_.groups;
    const int64_t m = e_count / groups;
    const auto n = static_cast<double>(tokens);
    const float* q = saved.q.data<float>();
    const float* r = saved.r.data<float>();
    const float* dg = grad.d_weight.data<float>();
    const int32_t* ex = routing.expert.data<int32_t>();

    Tensor d_q = Tensor::zeros({tokens, groups});
    Tensor d_r = Tensor::zeros({tokens, e_count});
    Tensor d_group_logits = Tensor::zeros({tokens, groups});
    Tensor d_expert_logits = Tensor::zeros({tokens, e_count});
    float* dq = d_q.mutable_data<float>();
    float* dr = d_r.mutable_data<float>();
    float* del = d_expert_logits.mutable_data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
      const int32_t g = saved.group[static_cast<size_t>(t)];
      const double qg = q[t * groups + g];
      const double denom = saved.sum_r[static_cast<size_t>(t)];
      const int64_t base = t * k;
      double dq_t = 0.0;
      if (!config_.normalize) {
        // weight_j = q_g r_j.
        for (int64_t j = 0; j < k; ++j) {
          dq_t += static_cast<double>(dg[base + j]) * r[t * e_count + ex[base + j]];
          dr[t * e_count + ex[base + j]] += static_cast<float>(dg[base + j] * qg);
        }
      } else {
        // weight_j = q_g h_j with h = r_K / sum r_K, a softmax over the chosen logits.
        double dot = 0.0;
        for (int64_t j = 0; j < k; ++j) {
          const double h = r[t * e_count + ex[base + j]] / denom;
          dq_t += dg[base + j] * h;
          dot += qg * dg[base + j] * h;
        }
        for (int64_t j = 0; j < k; ++j) {
          const double h = r[t * e_count + ex[base + j]] / denom;
          del[t * e_count + ex[base + j]] += static_cast<float>(h * (qg * dg[base + j] - dot));
        }
      }
      dq[t * groups + g] += static_cast<float>(dq_t);
    }
    if (config_.group_balance_coeff != 0.0) {
      // d/dq_{t,g} = G f_g / T.
      for (int64_t g = 0; g < groups; ++g) {
        const auto c =
            static_cast<float>(config_.group_balance_coeff * static_cast<double>(groups) *
                               saved.group_rows[static_cast<size_t>(g)] / (n * n));
        for (int64_t t = 0; t < tokens; ++t) dq[t * groups + g] += c;
      }
    }
    if (config_.expert_balance_coeff != 0.0) {
      // d/dr_{t,e} = M count_e / (T K T_g) for e in the token's group g.
      const double scale =
          config_.expert_balance_coeff * static_cast<double>(m) / (n * static_cast<double>(k));
      for (int64_t t = 0; t < tokens; ++t) {
        const int64_t g = saved.group[static_cast<size_t>(t)];
        const double rows = saved.group_rows[static_cast<size_t>(g)];
        for (int64_t e = g * m; e < (g + 1) * m; ++e) {
          dr[t * e_count + e] +=
              static_cast<float>(scale * saved.count[static_cast<size_t>(e)] / rows);
        }
      }
    }
    kernels::softmax_backward(d_group_logits, d_q, saved.q);
    Tensor del_blocks = d_expert_logits.reshape({tokens * groups, m});
    kernels::softmax_backward(del_blocks, d_r.reshape({tokens * groups, m}),
                              saved.r.reshape({tokens * groups, m}));

    if (d_x.defined()) {
      d_x.expect_shape(in.x.shape(), (where_ + ": d_x").c_str());
      kernels::gemm(d_x, d_group_logits, group_gate_.value, {.accumulate = true});
      kernels::gemm(d_x, d_expert_logits, expert_gate_.value, {.accumulate = true});
    }
    kernels::gemm(group_gate_.grad, d_group_logits, in.x, {.trans_a = true, .accumulate = true});
    kernels::gemm(expert_gate_.grad, d_expert_logits, in.x, {.trans_a = true, .accumulate = true});
  }

 private:
  std::string name_;
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  SmileConfig config_;
  Param group_gate_;
  Param expert_gate_;
};

}  // namespace

std::unique_ptr<Router> make_smile_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  SmileConfig config;
  config.groups = opts.get_int("groups", default_groups(spec.num_experts));
  config.normalize = opts.get_bool("normalize", false);
  config.group_balance_coeff = opts.get_double("group_balance_coeff", 0.01);
  config.expert_balance_coeff = opts.get_double("expert_balance_coeff", 0.01);
  opts.finish();
  const std::string& where = opts.where();
  SY_CHECK(config.groups >= 1, "{}: option 'groups' must be >= 1, got {}", where, config.groups);
  SY_CHECK(spec.num_experts % config.groups == 0,
           "{}: option 'groups' ({}) must divide num_experts ({})", where, config.groups,
           spec.num_experts);
  const int64_t m = spec.num_experts / config.groups;
  SY_CHECK(spec.top_k <= m,
           "{}: top_k = {} exceeds the {} experts of a group (num_experts {} / "
           "groups {})",
           where, spec.top_k, m, spec.num_experts, config.groups);
  SY_CHECK(config.group_balance_coeff >= 0.0,
           "{}: option 'group_balance_coeff' must be >= 0, got {}", where,
           config.group_balance_coeff);
  SY_CHECK(config.expert_balance_coeff >= 0.0,
           "{}: option 'expert_balance_coeff' must be >= 0, got {}", where,
           config.expert_balance_coeff);
  return std::make_unique<SmileRouter>(spec, config);
}

}  // namespace sy::moe
