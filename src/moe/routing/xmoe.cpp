// `xmoe`: X-MoE routing (Chi et al., NeurIPS 2022, "On the Representation Collapse of Sparse
// Mixture of Experts", arXiv 2204.09179; routing.md A9). Routing scores live on a low-dimensional
// hypersphere:
//   u_t = W_p x_t                              W_p: `<prefix>xmoe.proj.weight` f32 [P, D]
//   s_{t,e} = <u_t / |u_t|, e_e / |e_e|> / tau  e: `<prefix>xmoe.expert_emb` f32 [E, P]
//   p_t = softmax(s_t) over the E experts       tau: `<prefix>xmoe.temperature` f32 [1], learned
// Each token takes the K most probable experts; the weight is p of the chosen expert (the paper's
// top-1 gate g = softmax(s)_e, generalised to K picks; `normalize` renormalises the K weights).
// Gradients are exact through both L2 normalisations and the temperature.
// Slots token-major, choice-minor (slot t*K + j is token t's j-th most probable expert); causal
// (a token's choice depends on that token alone).
// Options:
//   proj_dim          16     P, the routing dimension (torchscale's `wg_reduction` is 16 wide)
//   temperature_init  0.07   tau at init (the X-MoE code's `gating_t` init; learned afterwards)
//   normalize         false  divide the K weights by their sum (false: the paper's raw gate)
//   aux_loss_coeff    0.01   Switch load-balancing loss alpha * E * sum_e f_e P_e on p, with
//                            f_e = count_e / (T K) (Megatron's top-k form); Switch's alpha
// Choices (routing.md's A9 entry is "from memory - verify"; the paper text was not reachable from
// here; read: microsoft/torchscale component/xmoe/routing.py, the released code, and a fairseq
// derivative of the X-MoE gate with its `gating_t`):
// - Normalisation is F.normalize's v / max(|v|, 1e-4), the eps of X-MoE's `_cosine`; the
//   temperature used is max(tau, 1e-4) (`_get_gating_temperature`), so tau gets no gradient below
//   1e-4.
// - torchscale's released gate normalises only the expert embeddings (rescaling them in place to
//   norm 1.5) and applies no temperature; we follow the paper's formulation as routing.md and
//   the fairseq derivative give it (both normalised, learned tau).
// - The X-MoE code lineage computes the balance loss's P_e with a fixed temperature 0.07
//   (`TEMPERATURE_FOR_L_UAX`); we use the routing distribution p itself (identical at init), so
//   the loss also reaches tau.
// - Initialisation: W_p ~ N(0, 0.02^2), e ~ N(0, 1) (only directions matter; the code's orthogonal
//   init only fixes directions), tau = temperature_init.
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

constexpr double kNormEps = 1e-4;         // F.normalize eps in X-MoE's `_cosine`
constexpr double kMinTemperature = 1e-4;  // floor of the temperature (`_get_gating_temperature`)

struct XmoeConfig {
  int64_t proj_dim = 16;
  double temperature_init = 0.07;
  bool normalize = false;
  double aux_loss_coeff = 0.01;
};

struct XmoeSaved : RouterSaved {
  Tensor u_hat;                // f32 [T, P] normalised projected tokens
  std::vector<double> u_norm;  // [T] max(|u_t|, eps)
  Tensor e_hat;                // f32 [E, P] normalised expert embeddings
  std::vector<double> e_norm;  // [E] max(|e_e|, eps)
  Tensor cos;                  // f32 [T, E] cosine scores
  Tensor probs;                // f32 [T, E] softmax(cos / tau)
  double tau = 1.0;            // temperature used (after the floor)
  bool tau_clamped = false;    // the floor was active: no gradient to tau
  std::vector<double> d_p_lb;  // [E] d(load balance)/dp, constant over tokens
};

// rows of v (f32 [R, C]) divided by max(|row|, eps); norms written to norm [R].
Tensor normalize_rows(const Tensor& v, std::vector<double>& norm) {
  const int64_t rows = v.dim(0), cols = v.dim(1);
  Tensor out = Tensor::zeros({rows, cols});
  norm.assign(static_cast<size_t>(rows), 0.0);
  const float* in = v.data<float>();
  float* o = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    double sq = 0.0;
    for (int64_t c = 0; c < cols; ++c)
      sq += static_cast<double>(in[r * cols + c]) * in[r * cols + c];
    const double n = std::max(std::sqrt(sq), kNormEps);
    norm[static_cast<size_t>(r)] = n;
    for (int64_t c = 0; c < cols; ++c) o[r * cols + c] = static_cast<float>(in[r * cols + c] / n);
  }
  return out;
}

// Backward of v_hat = v / max(|v|, eps): d_v = (d_hat - v_hat <v_hat, d_hat>) / |v| while the
// norm exceeds eps, else d_hat / eps. Returns d_v f32 [R, C].
Tensor normalize_rows_backward(const Tensor& d_hat, const Tensor& v_hat,
                               const std::vector<double>& norm) {
  const int64_t rows = v_hat.dim(0), cols = v_hat.dim(1);
  Tensor d_v = Tensor::zeros({rows, cols});
  const float* dh = d_hat.data<float>();
  const float* h = v_hat.data<float>();
  float* dv = d_v.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const double n = norm[static_cast<size_t>(r)];
    double dot = 0.0;
    const bool above = n > kNormEps;
    if (above) {
      for (int64_t c = 0; c < cols; ++c)
        dot += static_cast<double>(h[r * cols + c]) * dh[r * cols + c];
    }
    for (int64_t c = 0; c < cols; ++c) {
      const double g = above ? dh[r * cols + c] - h[r * cols + c] * dot : dh[r * cols + c];
      dv[r * cols + c] = static_cast<float>(g / n);
    }
  }
  return d_v;
}

class XmoeRouter : public Router {
 public:
  XmoeRouter(const RouterSpec& spec, const XmoeConfig& config)
      : name_(spec.name),
        where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model),
        config_(config),
        proj_(Param::trainable(spec.prefix + "xmoe.proj.weight", {config.proj_dim, spec.d_model})),
        expert_emb_(
            Param::trainable(spec.prefix + "xmoe.expert_emb", {spec.num_experts, config.proj_dim})),
        temperature_(Param::trainable(spec.prefix + "xmoe.temperature", {1}, /*decay=*/false)) {
    temperature_.value.fill(static_cast<float>(config.temperature_init));
  }

  std::string_view name() const override { return name_; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {&proj_, &expert_emb_, &temperature_}; }
  void init(Rng& rng) override {
    float* w = proj_.value.mutable_data<float>();
    for (int64_t i = 0; i < proj_.value.numel(); ++i) w[i] = rng.normal(0.0f, 0.02f);
    float* e = expert_emb_.value.mutable_data<float>();
    for (int64_t i = 0; i < expert_emb_.value.numel(); ++i) e[i] = rng.normal();
    temperature_.value.fill(static_cast<float>(config_.temperature_init));
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    const int64_t e_count = experts_, k = top_k_;
    auto saved = std::make_shared<XmoeSaved>();
    const double tau_raw = temperature_.value.data<float>()[0];
    SY_CHECK(std::isfinite(tau_raw), "{}: temperature is {}", where_, tau_raw);
    saved->tau = std::max(tau_raw, kMinTemperature);
    saved->tau_clamped = tau_raw <= kMinTemperature;
    saved->e_hat = normalize_rows(expert_emb_.value, saved->e_norm);
    saved->cos = Tensor::zeros({tokens, e_count});
    saved->probs = Tensor::zeros({tokens, e_count});
    Tensor idx = Tensor::zeros({tokens, k}, DType::I32);
    Tensor weight = Tensor::zeros({tokens * k});
    if (tokens > 0) {
      Tensor u = Tensor::zeros({tokens, config_.proj_dim});
      kernels::gemm(u, in.x, proj_.value, {.trans_b = true});
      saved->u_hat = normalize_rows(u, saved->u_norm);
      kernels::gemm(saved->cos, saved->u_hat, saved->e_hat, {.trans_b = true});
      Tensor logits = saved->cos.clone();
      float* l = logits.mutable_data<float>();
      for (int64_t i = 0; i < logits.numel(); ++i) l[i] = static_cast<float>(l[i] / saved->tau);
      kernels::softmax_forward(saved->probs, logits);
      Tensor values = Tensor::zeros({tokens, k});
      kernels::topk_forward(values, idx, saved->probs);
      const float* v = values.data<float>();
      float* w = weight.mutable_data<float>();
      for (int64_t t = 0; t < tokens; ++t) {
        double sum = 0.0;
        for (int64_t j = 0; j < k; ++j) sum += v[t * k + j];
        const double denom = config_.normalize ? sum : 1.0;
        for (int64_t j = 0; j < k; ++j) w[t * k + j] = static_cast<float>(v[t * k + j] / denom);
      }
    }
    Routing routing = token_choice_slots(idx, std::move(weight));
    const float* p = saved->probs.data<float>();
    routing.entropy = mean_normalized_entropy(p, tokens, e_count);
    const double lb = load_balance_loss(p, idx.data<int32_t>(), tokens, e_count, k, saved->d_p_lb);
    routing.losses.push_back({"load_balance", lb, config_.aux_loss_coeff});
    routing.saved = std::move(saved);
    return routing;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override {
    const auto& saved = saved_state<XmoeSaved>(routing, where_);
    const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.probs.dim(0), where_);
    if (tokens == 0) return;
    const int64_t e_count = experts_, k = top_k_;
    Tensor d_probs = Tensor::zeros({tokens, e_count});
    Tensor d_logits = Tensor::zeros({tokens, e_count});
    float* dp = d_probs.mutable_data<float>();
    float* dl = d_logits.mutable_data<float>();
    topk_weights_backward(config_.normalize, grad.d_weight.data<float>(),
                          routing.weight.data<float>(), routing.expert.data<int32_t>(), tokens, k,
                          e_count, dp, dl);
    load_balance_backward(dp, saved.d_p_lb, tokens, e_count, config_.aux_loss_coeff);
    kernels::softmax_backward(d_logits, d_probs, saved.probs);

    // logits = cos / tau: d_cos = d_logits / tau, d_tau = -sum d_logits * cos / tau^2.
    Tensor d_cos = Tensor::zeros({tokens, e_count});
    float* dc = d_cos.mutable_data<float>();
    const float* c = saved.cos.data<float>();
    double d_tau = 0.0;
    for (int64_t i = 0; i < d_cos.numel(); ++i) {
      dc[i] = static_cast<float>(dl[i] / saved.tau);
      d_tau -= static_cast<double>(dl[i]) * c[i];
    }
    if (!saved.tau_clamped) {
      temperature_.grad.mutable_data<float>()[0] +=
          static_cast<float>(d_tau / (saved.tau * saved.tau));
    }

    // cos = u_hat e_hat^T.
    Tensor d_u_hat = Tensor::zeros({tokens, config_.proj_dim});
    Tensor d_e_hat = Tensor::zeros({e_count, config_.proj_dim});
    kernels::gemm(d_u_hat, d_cos, saved.e_hat);
    kernels::gemm(d_e_hat, d_cos, saved.u_hat, {.trans_a = true});
    const Tensor d_u = normalize_rows_backward(d_u_hat, saved.u_hat, saved.u_norm);
    const Tensor d_e = normalize_rows_backward(d_e_hat, saved.e_hat, saved.e_norm);
    float* ge = expert_emb_.grad.mutable_data<float>();
    const float* de = d_e.data<float>();
    for (int64_t i = 0; i < d_e.numel(); ++i) ge[i] += de[i];

    // u = x W_p^T.
    if (d_x.defined()) {
      d_x.expect_shape(in.x.shape(), (where_ + ": d_x").c_str());
      kernels::gemm(d_x, d_u, proj_.value, {.accumulate = true});
    }
    kernels::gemm(proj_.grad, d_u, in.x, {.trans_a = true, .accumulate = true});
  }

 private:
  std::string name_;
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
  XmoeConfig config_;
  Param proj_;
  Param expert_emb_;
  Param temperature_;
};

}  // namespace

std::unique_ptr<Router> make_xmoe_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  XmoeConfig config;
  config.proj_dim = opts.get_int("proj_dim", 16);
  config.temperature_init = opts.get_double("temperature_init", 0.07);
  config.normalize = opts.get_bool("normalize", false);
  config.aux_loss_coeff = opts.get_double("aux_loss_coeff", 0.01);
  opts.finish();
  SY_CHECK(config.proj_dim >= 1, "{}: option 'proj_dim' must be >= 1, got {}", opts.where(),
           config.proj_dim);
  SY_CHECK(config.temperature_init > kMinTemperature && std::isfinite(config.temperature_init),
           "{}: option 'temperature_init' must be > {} (the temperature floor), got {}",
           opts.where(), kMinTemperature, config.temperature_init);
  SY_CHECK(config.aux_loss_coeff >= 0.0, "{}: option 'aux_loss_coeff' must be >= 0, got {}",
           opts.where(), config.aux_loss_coeff);
  return std::make_unique<XmoeRouter>(spec, config);
}

}  // namespace sy::moe
