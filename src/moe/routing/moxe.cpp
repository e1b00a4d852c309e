// `moxe`: MoxE entropy-aware routing (Thiombiano et al. 2025, arXiv 2505.01459; code
// thiomajid/moxe `moxe/modules/gate.py` BiasConditionedGate, `moxe/ops.py`; routing.md A7). The
// E experts form two equal groups, A = [0, E/2) (the paper's mLSTM experts) and B = [E/2, E)
// (sLSTM); a difficulty predictor pushes hard tokens toward A and easy ones toward B:
//   d_t  = sigmoid(w_d . x_t + b_d)             `<prefix>moxe.entropy_predictor.{weight [1, D],
//                                                bias [1]}`
//   s_t  = gamma * d_t                          modulation "standard"
//        = gamma * relu(d_t - threshold)        "proportional"
//        = gamma * d_t * [d_t > threshold]      "masked"
//   l_t  = W x_t (+ b)                          `<prefix>gate.weight` [E, D], `<prefix>gate.bias`
//                                                [E] (with gate_bias)
//   l'_t = l_t + s_t (experts in A), l_t - s_t (experts in B);  p_t = softmax(l'_t)
// Each token takes the K most probable experts; the weights are those K probabilities
// renormalised to sum 1 (moxe.py). Losses (total += coeff * value), every one differentiated:
//   "z_loss"        mean_t logsumexp(l'_t)^2 (ST-MoE form on the conditioned logits)
//   "load_balance"  E * mean_e (u_e - 1/E)^2, u_e = (sum of p_{t,e} over the slots that chose e)
//                   / (T K): MoxE's squared distance of expert usage to uniform, not Switch's f.P
//   "d_loss"        mean_t (d_t - H_t)^2, H_t = -sum_e q log(max(q, 1e-6)) / log E of the
//                   UNBIASED q_t = softmax(l_t) (the predictor learns the router's entropy)
//   "group_loss"    on p_A = mean_t sum_{e in A} p_{t,e} and p_B likewise, by `group_loss`:
//                   kl_div        p_A log(2 p_A + 1e-8) + p_B log(2 p_B + 1e-8), KL to [1/2, 1/2]
//                   self_balance  (p_A - p_B)^2
//                   bounded       (p_A - 1/2)^2 + (p_B - 1/2)^2
//                   js_div        Jensen-Shannon divergence of [p_A, p_B] and [1/2, 1/2], with
//                                 eps 1e-8 inside both logs (ops.py)
// Options (defaults: the trainer config moxe_trainer.yaml for coefficients, the model config
// configs/model/moxe.yaml for the gate):
//   gamma                 0.7        modulation strength (the MoxEConfig class default is 0.3)
//   difficulty_threshold  0.9        tau of proportional/masked (class default 0.8)
//   modulation            "standard" or "proportional", "masked"
//   gate_bias             true       the router has a bias (class default false)
//   group_loss            "kl_div"   or "self_balance", "bounded", "js_div"
//   z_loss_coeff          1e-3
//   aux_loss_coeff        1e-2       load_balance
//   d_loss_coeff          1e-2
//   group_loss_coeff      1e-2
// E must be even (the two groups are halves). Routing::entropy is the normalised entropy of p.
// Slots token-major, choice-minor (slot t*K + j is token t's j-th most probable expert); causal
// (a token's choice depends on that token alone).
// Choices (the paper's text was not reachable from here; these follow the released code, HEAD of
// thiomajid/moxe, which routing.md A7 cites):
// - the z-loss uses the conditioned logits l' (an earlier commit used the unbiased l);
// - load_balance sums the chosen experts' RAW probabilities p (jax.lax.top_k of p), not the
//   renormalised weights; gradient flows through p, the choice itself is constant;
// - d_loss is differentiated with respect to both d_t and H_t (the code has no stop-gradient on
//   the target), so it also trains the router; the d_t gradient through the masked modulation's
//   indicator is 0 almost everywhere and is taken as 0.
// Initialisation: W, w_d ~ N(0, 0.02^2), biases 0.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/softmax.h"
#include "kernels/topk.h"
#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

constexpr double kEntropyClip = 1e-6;  // compute_entropy's clip inside the log
constexpr double kGroupEps = 1e-8;     // the group losses' eps

enum class Modulation { kStandard, kProportional, kMasked };
enum class GroupLoss { kKlDiv, kSelfBalance, kBounded, kJsDiv };

struct MoxeConfig {
  double gamma = 0.7;
  double threshold = 0.9;
  Modulation modulation = Modulation::kStandard;
  bool gate_bias = true;
  GroupLoss group_loss = GroupLoss::kKlDiv;
  double z_loss_coeff = 1e-3;
  double aux_loss_coeff = 1e-2;
  double d_loss_coeff = 1e-2;
  double group_loss_coeff = 1e-2;
};

struct MoxeSaved : RouterSaved {
  std::vector<double> d;        // [T] predicted difficulty d_t
  Tensor probs;                 // f32 [T, E] p = softmax(l')
  Tensor unbiased;              // f32 [T, E] q = softmax(l)
  std::vector<float> lse;       // [T] logsumexp(l') (z-loss)
  std::vector<double> usage;    // [E] u_e
  std::vector<double> entropy;  // [T] H_t of q
  double p_a = 0.0, p_b = 0.0;  // group usages
};

// Value and gradient (d/dp_a, d/dp_b) of the group loss.
double group_loss_value(GroupLoss kind, double pa, double pb, double& d_pa, double& d_pb) {
  switch (kind) {
    case GroupLoss::kKlDiv: {
      const double la = std::log(2.0 * pa + kGroupEps), lb = std::log(2.0 * pb + kGroupEps);
      d_pa = la + 2.0 * pa / (2.0 * pa + kGroupEps);
      d_pb = lb + 2.0 * pb / (2.0 * pb + kGroupEps);
      return pa * la + pb * lb;
    }
    case GroupLoss::kSelfBalance:
      d_pa = 2.0 * (pa - pb);
      d_pb = -d_pa;
      return (pa - pb) * (pa - pb);
    case GroupLoss::kBounded:
      d_pa = 2.0 * (pa - 0.5);
      d_pb = 2.0 * (pb - 0.5);
      return (pa - 0.5) * (pa - 0.5) + (pb - 0.5) * (pb - 0.5);
    case GroupLoss::kJsDiv: {
      // M = (P + Q) / 2 with Q = [1/2, 1/2]; JS = (KL(P||M) + KL(Q||M)) / 2.
      const double ma = 0.25 + 0.5 * pa, mb = 0.25 + 0.5 * pb;
      const double kl_pm = pa * std::log((pa + kGroupEps) / (ma + kGroupEps)) +
                           pb * std::log((pb + kGroupEps) / (mb + kGroupEps));
      const double kl_qm =
          0.5 * std::log(0.5 / (ma + kGroupEps)) + 0.5 * std::log(0.5 / (mb + kGroupEps));
      auto grad = [](double p, double m) {
        return 0.5 * (std::log((p + kGroupEps) / (m + kGroupEps)) + p / (p + kGroupEps) -
                      0.5 * p / (m + kGroupEps) - 0.25 / (m + kGroupEps));
      };
      d_pa = grad(pa, ma);
      d_pb = grad(pb, mb);
      return 0.5 * (kl_pm + kl_qm);
    }
  }
  return 0.0;
}

class MoxeRouter : public Router {
 public:
  MoxeRouter(const RouterSpec& spec, const MoxeConfig& config)
      : name_(spec.name),
        where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model),
        config_(config),
        gate_(spec.prefix, spec.num_experts, spec.d_model),
        gate_bias_(Param::trainable(spec.prefix + "gate.bias", {spec.num_experts}, false)),
        pred_w_(Param::trainable(spec.prefix + "moxe.entropy_predictor.weight", {1, spec.d_model})),
        pred_b_(Param::trainable(spec.prefix + "moxe.entropy_predictor.bias", {1}, false)) {}

  std::string_view name() const override { return name_; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override {
    if (config_.gate_bias) return {&gate_.weight(), &gate_bias_, &pred_w_, &pred_b_};
    return {&gate_.weight(), &pred_w_, &pred_b_};
  }
  void init(Rng& rng) override {
    gate_.init(rng);
    gate_bias_.value.fill(0.0f);
    float* w = pred_w_.value.mutable_data<float>();
    for (int64_t i = 0; i < pred_w_.value.numel(); ++i) w[i] = rng.normal(0.0f, 0.02f);
    pred_b_.value.fill(0.0f);
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    const int64_t e_count = experts_, k = top_k_, half = experts_ / 2;
    auto saved = std::make_shared<MoxeSaved>();
    saved->d.assign(static_cast<size_t>(tokens), 0.0);
    saved->entropy.assign(static_cast<size_t>(tokens), 0.0);
    saved->probs = Tensor::zeros({tokens, e_count});
    saved->unbiased = Tensor::zeros({tokens, e_count});
    Tensor logits = Tensor::zeros({tokens, e_count});
    Tensor cond = Tensor::zeros({tokens, e_count});
    Tensor idx = Tensor::zeros({tokens, k}, DType::I32);
    Tensor weight = Tensor::zeros({tokens * k});
    if (tokens > 0) {
      gate_.forward(logits, in.x);
      float* l = logits.mutable_data<float>();
      float* lc = cond.mutable_data<float>();
      const float* x = in.x.data<float>();
      const float* wd = pred_w_.value.data<float>();
      const float* gb = gate_bias_.value.data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        double z = pred_b_.value.data<float>()[0];
        for (int64_t c = 0; c < d_model_; ++c)
          z += static_cast<double>(x[t * d_model_ + c]) * wd[c];
        const double d = 1.0 / (1.0 + std::exp(-z));
        saved->d[static_cast<size_t>(t)] = d;
        const double s = modulation(d);
        for (int64_t e = 0; e < e_count; ++e) {
          if (config_.gate_bias) l[t * e_count + e] += gb[e];
          lc[t * e_count + e] = static_cast<float>(l[t * e_count + e] + (e < half ? s : -s));
        }
      }
      kernels::softmax_forward(saved->probs, cond);
      kernels::softmax_forward(saved->unbiased, logits);
      Tensor values = Tensor::zeros({tokens, k});
      kernels::topk_forward(values, idx, saved->probs);
      const float* v = values.data<float>();
      float* w = weight.mutable_data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        double sum = 0.0;
        for (int64_t j = 0; j < k; ++j) sum += v[t * k + j];
        for (int64_t j = 0; j < k; ++j) w[t * k + j] = static_cast<float>(v[t * k + j] / sum);
      }
    }
    Routing routing = token_choice_slots(idx, std::move(weight));
    const float* p = saved->probs.data<float>();
    routing.entropy = mean_normalized_entropy(p, tokens, e_count);

    const double z = z_loss(cond.data<float>(), tokens, e_count, saved->lse);
    double lb = 0.0, d_loss = 0.0, group = 0.0;
    saved->usage.assign(static_cast<size_t>(e_count), 0.0);
    if (tokens > 0) {
      const double tk = static_cast<double>(tokens * k);
      const int32_t* id = idx.data<int32_t>();
      for (int64_t i = 0; i < tokens * k; ++i) {
        saved->usage[static_cast<size_t>(id[i])] += p[(i / k) * e_count + id[i]] / tk;
      }
      for (double u : saved->usage) {
        const double dev = u - 1.0 / static_cast<double>(e_count);
        lb += dev * dev;  // E * mean_e = sum_e
      }
      const float* q = saved->unbiased.data<float>();
      const double log_e = std::log(static_cast<double>(e_count));
      for (int64_t t = 0; t < tokens; ++t) {
        double h = 0.0;
        for (int64_t e = 0; e < e_count; ++e) {
          const double qe = q[t * e_count + e];
          h -= qe * std::log(std::max(qe, kEntropyClip));
        }
        h /= log_e;
        saved->entropy[static_cast<size_t>(t)] = h;
        const double r = saved->d[static_cast<size_t>(t)] - h;
        d_loss += r * r;
        for (int64_t e = 0; e < e_count; ++e) {
          (e < half ? saved->p_a : saved->p_b) += p[t * e_count + e];
        }
      }
      d_loss /= static_cast<double>(tokens);
      saved->p_a /= static_cast<double>(tokens);
      saved->p_b /= static_cast<double>(tokens);
      double unused_a = 0.0, unused_b = 0.0;
      group = group_loss_value(config_.group_loss, saved->p_a, saved->p_b, unused_a, unused_b);
    }
    routing.losses.push_back({"z_loss", z, config_.z_loss_coeff});
    routing.losses.push_back({"load_balance", lb, config_.aux_loss_coeff});
    routing.losses.push_back({"d_loss", d_loss, config_.d_loss_coeff});
    routing.losses.push_back({"group_loss", group, config_.group_loss_coeff});
    routing.saved = std::move(saved);
    return routing;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override {
    const auto& saved = saved_state<MoxeSaved>(routing, where_);
    const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.probs.dim(0), where_);
    if (tokens == 0) return;
    const int64_t e_count = experts_, k = top_k_, half = experts_ / 2;
    const auto n = static_cast<double>(tokens);
    const float* p = saved.probs.data<float>();
    const float* q = saved.unbiased.data<float>();

    // Gradients with respect to p = softmax(l') and, directly, to l'.
    Tensor d_probs = Tensor::zeros({tokens, e_count});
    Tensor d_cond = Tensor::zeros({tokens, e_count});
    float* dp = d_probs.mutable_data<float>();
    float* dc = d_cond.mutable_data<float>();
    const int32_t* ex = routing.expert.data<int32_t>();
    const double lb_scale = 2.0 * config_.aux_loss_coeff / (n * static_cast<double>(k));
    // Renormalised top-K weights are a softmax over the chosen conditioned logits.
    topk_weights_backward(true, grad.d_weight.data<float>(), routing.weight.data<float>(), ex,
                          tokens, k, e_count, dp, dc);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t e = ex[t * k + j];
        const double dev = saved.usage[static_cast<size_t>(e)] - 1.0 / static_cast<double>(e_count);
        dp[t * e_count + e] += static_cast<float>(lb_scale * dev);
      }
    }
    if (config_.group_loss_coeff != 0.0) {
      double d_pa = 0.0, d_pb = 0.0;
      group_loss_value(config_.group_loss, saved.p_a, saved.p_b, d_pa, d_pb);
      const auto ga = static_cast<float>(config_.group_loss_coeff * d_pa / n);
      const auto gb = static_cast<float>(config_.group_loss_coeff * d_pb / n);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t e = 0; e < e_count; ++e) dp[t * e_count + e] += e < half ? ga : gb;
      }
    }
    kernels::softmax_backward(d_cond, d_probs, saved.probs);
    z_loss_backward(dc, p, saved.lse, tokens, e_count, config_.z_loss_coeff);

    // l' = l +- s_t: l gets d_cond; s_t gets sum_A d_cond - sum_B d_cond. The d-loss reaches d_t
    // directly and l through H_t of q = softmax(l).
    Tensor d_logits = d_cond.clone();
    Tensor d_unbiased = Tensor::zeros({tokens, e_count});
    float* dq = d_unbiased.mutable_data<float>();
    std::vector<double> d_z(static_cast<size_t>(tokens), 0.0);
    const double log_e = std::log(static_cast<double>(e_count));
    for (int64_t t = 0; t < tokens; ++t) {
      double d_s = 0.0;
      for (int64_t e = 0; e < e_count; ++e)
        d_s += e < half ? dc[t * e_count + e] : -dc[t * e_count + e];
      const double d = saved.d[static_cast<size_t>(t)];
      const double r = 2.0 * config_.d_loss_coeff * (d - saved.entropy[static_cast<size_t>(t)]) / n;
      const double d_d = d_s * modulation_grad(d) + r;
      d_z[static_cast<size_t>(t)] = d_d * d * (1.0 - d);
      // dH/dq_e = -(log max(q_e, clip) + [q_e > clip]) / log E; H enters the loss with -r.
      for (int64_t e = 0; e < e_count; ++e) {
        const double qe = q[t * e_count + e];
        const double dh = -(std::log(std::max(qe, kEntropyClip)) + (qe > kEntropyClip ? 1.0 : 0.0));
        dq[t * e_count + e] = static_cast<float>(-r * dh / log_e);
      }
    }
    kernels::softmax_backward(d_logits, d_unbiased, saved.unbiased);

    gate_.backward(d_x, d_logits, in.x);
    const float* dl = d_logits.data<float>();
    if (config_.gate_bias) {
      float* gb = gate_bias_.grad.mutable_data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t e = 0; e < e_count; ++e) gb[e] += dl[t * e_count + e];
      }
    }
    // z_t = w_d . x_t + b_d.
    const float* x = in.x.data<float>();
    const float* wd = pred_w_.value.data<float>();
    float* gw = pred_w_.grad.mutable_data<float>();
    float* dx = d_x.defined() ? d_x.mutable_data<float>() : nullptr;
    double gbias = 0.0;
    for (int64_t t = 0; t < tokens; ++t) {
      const double dz = d_z[static_cast<size_t>(t)];
      gbias += dz;
      for (int64_t c = 0; c < d_model_; ++c) {
        gw[c] += static_cast<float>(dz * x[t * d_model_ + c]);
        if (dx != nullptr) dx[t * d_model_ + c] += static_cast<float>(dz * wd[c]);
      }
    }
    pred_b_.grad.mutable_data<float>()[0] += static_cast<float>(gbias);
  }

 private:
  double modulation(double d) const {
    switch (config_.modulation) {
      case Modulation::kStandard:
        return config_.gamma * d;
      case Modulation::kProportional:
        return config_.gamma * std::max(d - config_.threshold, 0.0);
      case Modulation::kMasked:
        return d > config_.threshold ? config_.gamma * d : 0.0;
    }
    return 0.0;
  }
  double modulation_grad(double d) const {
    if (config_.modulation == Modulation::kStandard) return config_.gamma;
    return d > config_.threshold ? config_.gamma : 0.0;
  }

  std::string name_;
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  MoxeConfig config_;
  LinearGate gate_;
  Param gate_bias_;
  Param pred_w_;
  Param pred_b_;
};

}  // namespace

std::unique_ptr<Router> make_moxe_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  MoxeConfig config;
  config.gamma = opts.get_double("gamma", 0.7);
  config.threshold = opts.get_double("difficulty_threshold", 0.9);
  const std::string mod =
      opts.get_string("modulation", "standard", {"standard", "proportional", "masked"});
  config.modulation = mod == "standard"       ? Modulation::kStandard
                      : mod == "proportional" ? Modulation::kProportional
                                              : Modulation::kMasked;
  config.gate_bias = opts.get_bool("gate_bias", true);
  const std::string group =
      opts.get_string("group_loss", "kl_div", {"kl_div", "self_balance", "bounded", "js_div"});
  config.group_loss = group == "kl_div"         ? GroupLoss::kKlDiv
                      : group == "self_balance" ? GroupLoss::kSelfBalance
                      : group == "bounded"      ? GroupLoss::kBounded
                                                : GroupLoss::kJsDiv;
  config.z_loss_coeff = opts.get_double("z_loss_coeff", 1e-3);
  config.aux_loss_coeff = opts.get_double("aux_loss_coeff", 1e-2);
  config.d_loss_coeff = opts.get_double("d_loss_coeff", 1e-2);
  config.group_loss_coeff = opts.get_double("group_loss_coeff", 1e-2);
  opts.finish();
  const std::string& where = opts.where();
  SY_CHECK(spec.num_experts % 2 == 0, "{}: num_experts = {} must be even (two equal expert groups)",
           where, spec.num_experts);
  SY_CHECK(std::isfinite(config.gamma) && config.gamma >= 0.0,
           "{}: option 'gamma' must be >= 0, got {}", where, config.gamma);
  SY_CHECK(config.threshold >= 0.0 && config.threshold <= 1.0,
           "{}: option 'difficulty_threshold' must be in [0, 1], got {}", where, config.threshold);
  const std::pair<const char*, double> coeffs[] = {{"z_loss_coeff", config.z_loss_coeff},
                                                   {"aux_loss_coeff", config.aux_loss_coeff},
                                                   {"d_loss_coeff", config.d_loss_coeff},
                                                   {"group_loss_coeff", config.group_loss_coeff}};
  for (const auto& [key, value] : coeffs) {
    SY_CHECK(value >= 0.0, "{}: option '{}' must be >= 0, got {}", where, key, value);
  }
  return std::make_unique<MoxeRouter>(spec, config);
}

}  // namespace sy::moe
