#include "moe/routing/common.h"

#include <algorithm>
#include <cmath>

#include "kernels/gemm.h"

namespace sy::moe {

std::string router_where(const RouterSpec& spec) { return fmt::format("router '{}'", spec.name); }

void validate_spec(const RouterSpec& spec, bool check_top_k, bool needs_d_model) {
  const std::string where = router_where(spec);
  SY_CHECK(spec.num_experts >= 1, "{}: num_experts = {}, expected >= 1", where, spec.num_experts);
  if (check_top_k) {
    SY_CHECK(spec.top_k >= 1 && spec.top_k <= spec.num_experts,
             "{}: top_k = {}, expected 1 <= top_k <= num_experts = {}", where, spec.top_k,
             spec.num_experts);
  }
  if (needs_d_model) {
    SY_CHECK(spec.d_model >= 1, "{}: d_model = {}, expected >= 1", where, spec.d_model);
  }
}

int64_t check_router_input(const RouterInput& in, int64_t d_model, const std::string& where) {
  SY_CHECK(in.x.defined(), "{}: input x is undefined", where);
  in.x.expect_dtype(DType::F32, (where + ": x").c_str());
  in.x.expect_shape({-1, d_model}, (where + ": x").c_str());
  return in.x.dim(0);
}

void check_backward_tokens(int64_t tokens, int64_t forward_tokens, const std::string& where) {
  SY_CHECK(forward_tokens == tokens, "{}: backward: x has {} tokens, forward had {}", where, tokens,
           forward_tokens);
}

int64_t check_backward(const RouterInput& in, int64_t d_model, const RoutingGrad& grad,
                       const Routing& routing, int64_t forward_tokens, const std::string& where) {
  const int64_t tokens = check_router_input(in, d_model, where);
  check_d_weight(grad, routing, where);
  check_backward_tokens(tokens, forward_tokens, where);
  return tokens;
}

void check_d_weight(const RoutingGrad& grad, const Routing& routing, const std::string& where) {
  SY_CHECK(grad.d_weight.defined(), "{}: backward: d_weight is undefined", where);
  grad.d_weight.expect_dtype(DType::F32, (where + ": d_weight").c_str());
  grad.d_weight.expect_shape({routing.weight.numel()}, (where + ": d_weight").c_str());
}

LinearGate::LinearGate(const std::string& prefix, int64_t num_experts, int64_t d_model)
    : weight_(Param::trainable(prefix + "gate.weight", {num_experts, d_model})) {}

void LinearGate::init(Rng& rng, float stddev) {
  float* w = weight_.value.mutable_data<float>();
  for (int64_t i = 0; i < weight_.value.numel(); ++i) w[i] = rng.normal(0.0f, stddev);
}

void LinearGate::forward(Tensor& logits, const Tensor& x) const {
  kernels::gemm(logits, x, weight_.value, {.trans_b = true});
}

void LinearGate::backward(Tensor& d_x, const Tensor& d_logits, const Tensor& x) {
  // logits = x W^T  =>  d_x = d_logits W, d_W = d_logits^T x.
  if (d_x.defined()) kernels::gemm(d_x, d_logits, weight_.value, {.accumulate = true});
  kernels::gemm(weight_.grad, d_logits, x, {.trans_a = true, .accumulate = true});
}

double mean_normalized_entropy(const float* p, int64_t tokens, int64_t experts) {
  if (tokens == 0) return NAN;
  if (experts == 1) return 0.0;
  double total = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = p + t * experts;
    double h = 0.0;
    for (int64_t e = 0; e < experts; ++e) {
      if (row[e] > 0.0f) h -= static_cast<double>(row[e]) * std::log(static_cast<double>(row[e]));
    }
    total += h;
  }
  return total / static_cast<double>(tokens) / std::log(static_cast<double>(experts));
}

double load_balance_loss(const float* p, const int32_t* selected, int64_t tokens, int64_t experts,
                         int64_t top_k, std::vector<double>& d_p_per_expert) {
  d_p_per_expert.assign(static_cast<size_t>(experts), 0.0);
  if (tokens == 0) return 0.0;
  std::vector<double> count(static_cast<size_t>(experts), 0.0);
  for (int64_t i = 0; i < tokens * top_k; ++i) count[static_cast<size_t>(selected[i])] += 1.0;
  std::vector<double> p_sum(static_cast<size_t>(experts), 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < experts; ++e) p_sum[static_cast<size_t>(e)] += p[t * experts + e];
  }
  const double t2k =
      static_cast<double>(tokens) * static_cast<double>(tokens) * static_cast<double>(top_k);
  const double scale = static_cast<double>(experts) / t2k;
  double value = 0.0;
  for (size_t e = 0; e < count.size(); ++e) {
    value += scale * count[e] * p_sum[e];
    d_p_per_expert[e] = scale * count[e];
  }
  return value;
}

double z_loss(const float* logits, int64_t tokens, int64_t experts, std::vector<float>& lse) {
  lse.assign(static_cast<size_t>(tokens), 0.0f);
  if (tokens == 0) return 0.0;
  double total = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = logits + t * experts;
    const float m = *std::max_element(row, row + experts);
    double s = 0.0;
    for (int64_t e = 0; e < experts; ++e) s += std::exp(static_cast<double>(row[e] - m));
    const double v = static_cast<double>(m) + std::log(s);
    lse[static_cast<size_t>(t)] = static_cast<float>(v);
    total += v * v;
  }
  return total / static_cast<double>(tokens);
}

void load_balance_backward(float* d_probs, const std::vector<double>& d_p_per_expert,
                           int64_t tokens, int64_t experts, double coeff) {
  if (coeff == 0.0) return;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < experts; ++e) {
      d_probs[t * experts + e] +=
          static_cast<float>(coeff * d_p_per_expert[static_cast<size_t>(e)]);
    }
  }
}

void topk_weights_backward(bool renormalised, const float* dg, const float* g, const int32_t* ex,
                           int64_t tokens, int64_t top_k, int64_t experts, float* d_probs,
                           float* d_logits) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t base = t * top_k;
    if (!renormalised) {
      for (int64_t j = 0; j < top_k; ++j) d_probs[t * experts + ex[base + j]] += dg[base + j];
      continue;
    }
    double dot = 0.0;
    for (int64_t j = 0; j < top_k; ++j) dot += static_cast<double>(dg[base + j]) * g[base + j];
    for (int64_t j = 0; j < top_k; ++j) {
      d_logits[t * experts + ex[base + j]] +=
          static_cast<float>(g[base + j] * (dg[base + j] - dot));
    }
  }
}

void z_loss_backward(float* d_logits, const float* p, const std::vector<float>& lse, int64_t tokens,
                     int64_t experts, double coeff) {
  if (coeff == 0.0 || tokens == 0) return;
  const double c = 2.0 * coeff / static_cast<double>(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    const double s = c * lse[static_cast<size_t>(t)];
    for (int64_t e = 0; e < experts; ++e) {
      d_logits[t * experts + e] += static_cast<float>(s * p[t * experts + e]);
    }
  }
}

Routing token_choice_slots(const Tensor& idx, Tensor weight) {
  const int64_t tokens = idx.dim(0), k = idx.dim(1), n = tokens * k;
  Routing r;
  r.token = Tensor::zeros({n}, DType::I32);
  r.expert = idx.reshape({n}).clone();
  r.choice = Tensor::zeros({n}, DType::I32);
  r.weight = std::move(weight);
  int32_t* tok = r.token.mutable_data<int32_t>();
  int32_t* ch = r.choice.mutable_data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    tok[i] = static_cast<int32_t>(i / k);
    ch[i] = static_cast<int32_t>(i % k);
  }
  return r;
}

}  // namespace sy::moe
