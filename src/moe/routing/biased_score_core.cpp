#include "moe/routing/biased_score_core.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/softmax.h"
#include "kernels/topk.h"

namespace sy::moe {
namespace {

constexpr double kNormEps = 1e-20;  // DeepSeek/Megatron: weights / (sum + 1e-20)

struct BiasedScoreSaved : RouterSaved {
  Tensor scores;            // f32 [T, E] s
  std::vector<double> sum;  // [T] sum of the K chosen s (normalize)
  int64_t seq_len = 0;      // tokens per sequence for seq_balance
  std::vector<double> f;    // [B, E] seq_balance's f_e per sequence
};

}  // namespace

BiasedScoreRouter::BiasedScoreRouter(const RouterSpec& spec, const BiasedScoreConfig& config)
    : name_(spec.name),
      where_(router_where(spec)),
      experts_(spec.num_experts),
      top_k_(spec.top_k),
      d_model_(spec.d_model),
      config_(config),
      gate_(spec.prefix, spec.num_experts, spec.d_model),
      bias_(Param::buffer(spec.prefix + config.bias_name, {spec.num_experts})),
      counts_(static_cast<size_t>(spec.num_experts), 0.0) {
  SY_CHECK(config.n_group >= 1 && experts_ % config.n_group == 0,
           "{}: n_group = {} does not divide num_experts = {}", where_, config.n_group, experts_);
  SY_CHECK(config.topk_group >= 1 && config.topk_group <= config.n_group,
           "{}: topk_group = {}, expected 1 <= topk_group <= n_group = {}", where_,
           config.topk_group, config.n_group);
  const int64_t reachable = config.topk_group * (experts_ / config.n_group);
  SY_CHECK(top_k_ <= reachable,
           "{}: top_k = {} exceeds the {} experts in topk_group = {} groups of {}", where_, top_k_,
           reachable, config.topk_group, experts_ / config.n_group);
  SY_CHECK(config.bias_update_rate >= 0.0, "{}: bias_update_rate = {}, expected >= 0", where_,
           config.bias_update_rate);
  SY_CHECK(config.seq_aux_coeff >= 0.0, "{}: seq_aux_coeff = {}, expected >= 0", where_,
           config.seq_aux_coeff);
  SY_CHECK(config.routed_scaling_factor > 0.0, "{}: routed_scaling_factor = {}, expected > 0",
           where_, config.routed_scaling_factor);
}

Routing BiasedScoreRouter::forward(const RouterInput& in) {
  const int64_t tokens = check_router_input(in, d_model_, where_);
  const int64_t e_count = experts_, k = top_k_;
  auto saved = std::make_shared<BiasedScoreSaved>();
  saved->scores = Tensor::zeros({tokens, e_count});
  Tensor idx = Tensor::zeros({tokens, k}, DType::I32);
  Tensor weight = Tensor::zeros({tokens * k});
  saved->sum.assign(static_cast<size_t>(tokens), 1.0);
  if (tokens > 0) {
    Tensor logits = Tensor::zeros({tokens, e_count});
    gate_.forward(logits, in.x);
    if (config_.sigmoid) {
      const float* l = logits.data<float>();
      float* s = saved->scores.mutable_data<float>();
      for (int64_t i = 0; i < logits.numel(); ++i) s[i] = 1.0f / (1.0f + std::exp(-l[i]));
    } else {
      kernels::softmax_forward(saved->scores, logits);
    }
    // Selection scores: s + b, with the groups a token may not use masked to -inf.
    Tensor select = Tensor::zeros({tokens, e_count});
    const float* s = saved->scores.data<float>();
    const float* b = bias_.value.data<float>();
    float* sel = select.mutable_data<float>();
    const int64_t groups = config_.n_group, gsize = e_count / groups;
    std::vector<float> gscore(static_cast<size_t>(groups));
    std::vector<char> keep(static_cast<size_t>(groups));
    for (int64_t t = 0; t < tokens; ++t) {
      float* row = sel + t * e_count;
      for (int64_t e = 0; e < e_count; ++e) row[e] = s[t * e_count + e] + b[e];
      if (groups == 1) continue;
      for (int64_t g = 0; g < groups; ++g) {
        const float* grow = row + g * gsize;
        float best = -std::numeric_limits<float>::infinity(), second = best;
        for (int64_t j = 0; j < gsize; ++j) {
          if (grow[j] > best) {
            second = best;
            best = grow[j];
          } else if (grow[j] > second) {
            second = grow[j];
          }
        }
        gscore[static_cast<size_t>(g)] =
            config_.group_score_max || gsize == 1 ? best : best + second;
      }
      // The topk_group best groups; ties go to the lower group index.
      std::fill(keep.begin(), keep.end(), 0);
      for (int64_t r = 0; r < config_.topk_group; ++r) {
        int64_t arg = -1;
        for (int64_t g = 0; g < groups; ++g) {
          if (!keep[static_cast<size_t>(g)] &&
              (arg < 0 || gscore[static_cast<size_t>(g)] > gscore[static_cast<size_t>(arg)])) {
            arg = g;
          }
        }
        if (arg < 0) break;  // unreachable: topk_group <= n_group
        keep[static_cast<size_t>(arg)] = 1;
      }
      for (int64_t g = 0; g < groups; ++g) {
        if (keep[static_cast<size_t>(g)]) continue;
        std::fill(row + g * gsize, row + (g + 1) * gsize, -std::numeric_limits<float>::infinity());
      }
    }
    Tensor values = Tensor::zeros({tokens, k});
    kernels::topk_forward(values, idx, select);

    const int32_t* id = idx.data<int32_t>();
    float* w = weight.mutable_data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
      double total = 0.0;
      for (int64_t j = 0; j < k; ++j) total += s[t * e_count + id[t * k + j]];
      const double denom = config_.normalize ? total + kNormEps : 1.0;
      saved->sum[static_cast<size_t>(t)] = denom;
      for (int64_t j = 0; j < k; ++j) {
        w[t * k + j] = static_cast<float>(config_.routed_scaling_factor *
                                          s[t * e_count + id[t * k + j]] / denom);
      }
    }
    if (in.training) {
      for (int64_t i = 0; i < tokens * k; ++i) counts_[static_cast<size_t>(id[i])] += 1.0;
    }
  }

  Routing routing = token_choice_slots(idx, std::move(weight));
  // Entropy and seq_balance use the scores normalised over experts.
  Tensor dist = saved->scores.clone();
  if (config_.sigmoid) {
    float* d = dist.mutable_data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
      double total = 0.0;
      for (int64_t e = 0; e < e_count; ++e) total += d[t * e_count + e];
      for (int64_t e = 0; e < e_count; ++e) {
        d[t * e_count + e] = static_cast<float>(d[t * e_count + e] / total);
      }
    }
  }
  routing.entropy = mean_normalized_entropy(dist.data<float>(), tokens, e_count);

  if (config_.report_seq_aux) {
    const int64_t seq = in.seq_len > 0 ? in.seq_len : tokens;
    SY_CHECK(seq == 0 || tokens % seq == 0,
             "{}: {} tokens are not a whole number of sequences of {}", where_, tokens, seq);
    saved->seq_len = seq;
    const int64_t seqs = seq == 0 ? 0 : tokens / seq;
    saved->f.assign(static_cast<size_t>(seqs * e_count), 0.0);
    double value = 0.0;
    if (seqs > 0) {
      // f counts the plain top-K of the unbiased scores (no bias, no group limit).
      Tensor plain_v = Tensor::zeros({tokens, k});
      Tensor plain_i = Tensor::zeros({tokens, k}, DType::I32);
      kernels::topk_forward(plain_v, plain_i, saved->scores);
      const int32_t* pi = plain_i.data<int32_t>();
      const float* d = dist.data<float>();
      const double f_scale = static_cast<double>(e_count) / static_cast<double>(k * seq);
      for (int64_t q = 0; q < seqs; ++q) {
        double* f = saved->f.data() + q * e_count;
        for (int64_t i = q * seq * k; i < (q + 1) * seq * k; ++i) f[pi[i]] += f_scale;
        for (int64_t e = 0; e < e_count; ++e) {
          double p_sum = 0.0;
          for (int64_t t = q * seq; t < (q + 1) * seq; ++t) p_sum += d[t * e_count + e];
          value += f[e] * p_sum / static_cast<double>(seq);
        }
      }
      value /= static_cast<double>(seqs);
    }
    routing.losses.push_back({"seq_balance", value, config_.seq_aux_coeff});
  }
  routing.saved = std::move(saved);
  return routing;
}

void BiasedScoreRouter::backward(const RouterInput& in, const Routing& routing,
                                 const RoutingGrad& grad, Tensor& d_x) {
  const auto& saved = saved_state<BiasedScoreSaved>(routing, where_);
  const int64_t tokens = check_backward(in, d_model_, grad, routing, saved.scores.dim(0), where_);
  if (tokens == 0) return;
  const int64_t e_count = experts_, k = top_k_;
  const float* s = saved.scores.data<float>();
  const float* dg = grad.d_weight.data<float>();
  const float* g = routing.weight.data<float>();
  const int32_t* ex = routing.expert.data<int32_t>();
  Tensor d_scores = Tensor::zeros({tokens, e_count});
  float* ds = d_scores.mutable_data<float>();
  const double scale = config_.routed_scaling_factor;
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t base = t * k;
    if (!config_.normalize) {
      for (int64_t j = 0; j < k; ++j) {
        ds[t * e_count + ex[base + j]] += static_cast<float>(scale * dg[base + j]);
      }
      continue;
    }
    // g_j = scale * s_j / (S + eps): ds_j = (scale dg_j - sum_i dg_i g_i) / (S + eps).
    const double denom = saved.sum[static_cast<size_t>(t)];
    double dot = 0.0;
    for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(dg[base + j]) * g[base + j];
    for (int64_t j = 0; j < k; ++j) {
      ds[t * e_count + ex[base + j]] += static_cast<float>((scale * dg[base + j] - dot) / denom);
    }
  }
  if (config_.report_seq_aux && config_.seq_aux_coeff != 0.0 && saved.seq_len > 0) {
    // d value / d s'_{t,e} = f_e(seq of t) / (T_s * B); then through s' = s / sum_e s.
    const int64_t seq = saved.seq_len, seqs = tokens / seq;
    const double c = config_.seq_aux_coeff / static_cast<double>(seq * seqs);
    for (int64_t t = 0; t < tokens; ++t) {
      const double* f = saved.f.data() + (t / seq) * e_count;
      const float* st = s + t * e_count;
      float* dst = ds + t * e_count;
      if (!config_.sigmoid) {
        for (int64_t e = 0; e < e_count; ++e) dst[e] += static_cast<float>(c * f[e]);
        continue;
      }
      double total = 0.0, dot = 0.0;
      for (int64_t e = 0; e < e_count; ++e) total += st[e];
      for (int64_t e = 0; e < e_count; ++e) dot += c * f[e] * st[e] / total;
      for (int64_t e = 0; e < e_count; ++e) {
        dst[e] += static_cast<float>((c * f[e] - dot) / total);
      }
    }
  }
  Tensor d_logits = Tensor::zeros({tokens, e_count});
  if (config_.sigmoid) {
    float* dl = d_logits.mutable_data<float>();
    for (int64_t i = 0; i < d_logits.numel(); ++i) dl[i] = ds[i] * s[i] * (1.0f - s[i]);
  } else {
    kernels::softmax_backward(d_logits, d_scores, saved.scores);
  }
  gate_.backward(d_x, d_logits, in.x);
}

void BiasedScoreRouter::end_step() {
  double total = 0.0;
  for (double c : counts_) total += c;
  if (total > 0.0 && config_.bias_update_rate != 0.0) {
    // Under-loaded experts (count below the mean) move up, over-loaded ones down.
    const double mean = total / static_cast<double>(experts_);
    float* b = bias_.value.mutable_data<float>();
    const auto rate = static_cast<float>(config_.bias_update_rate);
    for (int64_t e = 0; e < experts_; ++e) {
      const double err = mean - counts_[static_cast<size_t>(e)];
      b[e] += err > 0.0 ? rate : (err < 0.0 ? -rate : 0.0f);
    }
  }
  std::fill(counts_.begin(), counts_.end(), 0.0);
}

}  // namespace sy::moe
