// `soft_moe` (Puigcerver et al. 2023, arXiv 2308.00951; routing.md A3): no token is assigned to
// an expert. Each of the S = E * slots_per_expert slots takes a convex mix of all T tokens, its
// expert runs on that mix, and each token takes a convex mix of all slot outputs:
//   logits  L = x Phi^T                                   f32 [T, S]
//   dispatch[s, t] = softmax over tokens t of L[:, s]     f32 [S, T]  (Routing::dispatch)
//   combine[t, s]  = softmax over slots s of L[t, :]      f32 [T, S]  (Routing::combine)
// The layer then computes slot inputs dispatch @ x, runs expert s / slots_per_expert on slot s,
// and y = combine @ slot outputs (dispatch.cpp's dense plan).
//
// Parameters:
//   <prefix>soft_moe.phi    f32 [S, D]  row s is slot s's vector; slot s = e * slots_per_expert
//                                       + j is expert e's j-th slot (vmoe's `mu` [D, E, p],
//                                       transposed and flattened expert-major). Init N(0, 1/D)
//                                       (LeCun normal over D; vmoe uses a truncated LeCun normal,
//                                       whose scale is moot when normalize is on).
//   <prefix>soft_moe.scale  f32 [1]     only with normalize; init 1, no weight decay.
// Options:
//   slots_per_expert  1      p in the paper (vmoe derives it from the group size and a capacity
//                            factor; here it is fixed so the parameter shape is fixed)
//   normalize         false  the paper's l2-normalisation (routing.md A3; vmoe's SoftRouter
//                            always applies it): L = scale * xn Phin^T with xn = x * (|x|^2 +
//                            1e-6)^(-1/2) per token, Phin likewise per slot (vmoe's eps), and a
//                            learnable scalar scale. Gradients flow through both normalisations
//                            and into scale.
// vmoe's optional logit noise (noise_std, default 0) is left out.
// No auxiliary loss (vmoe reports 0): every slot is filled by construction, so Routing::losses is
// empty. Entropy: the combine weights of each token summed per expert give a distribution over
// the E experts; Routing::entropy is the mean over tokens of its entropy / log(E) (= the combine
// entropy over slots when slots_per_expert = 1). routing.md suggests no metric of its own (vmoe
// logs min/max of the weights and cosine similarities).
// Not causal: dispatch mixes every token of the batch into every slot, so causal() is false and
// a causal model must opt in (allow_non_causal). spec.top_k is not used.
#include <cmath>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/softmax.h"
#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

constexpr double kNormEps = 1e-6;  // vmoe normalize(): x * rsqrt(sum(x^2) + 1e-6)

struct SoftMoeSaved : RouterSaved {
  // normalize only:
  Tensor x_unit;                  // f32 [T, D] x * rx
  Tensor phi_unit;                // f32 [S, D] Phi * rphi
  std::vector<double> x_rnorm;    // [T] rx = (|x_t|^2 + eps)^(-1/2)
  std::vector<double> phi_rnorm;  // [S]
  Tensor raw_logits;              // f32 [T, S] xn Phin^T before the scale (for d scale)
  float scale = 1.0f;
};

// out = v * r per row, r = (|v_row|^2 + eps)^(-1/2), recorded in rnorm.
Tensor normalize_rows(const Tensor& v, std::vector<double>& rnorm) {
  const int64_t rows = v.dim(0), cols = v.dim(1);
  Tensor out = Tensor::zeros(v.shape());
  rnorm.assign(static_cast<size_t>(rows), 0.0);
  const float* src = v.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t i = 0; i < rows; ++i) {
    double sq = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      sq += static_cast<double>(src[i * cols + j]) * src[i * cols + j];
    }
    const double r = 1.0 / std::sqrt(sq + kNormEps);
    rnorm[static_cast<size_t>(i)] = r;
    for (int64_t j = 0; j < cols; ++j)
      dst[i * cols + j] = static_cast<float>(src[i * cols + j] * r);
  }
  return out;
}

// The gradient of u = v * r(v) given d_u: d_v += r (d_u - (u . d_u) u) per row.
void normalize_rows_backward(Tensor& d_v, const Tensor& d_u, const Tensor& u,
                             const std::vector<double>& rnorm) {
  const int64_t rows = u.dim(0), cols = u.dim(1);
  const float* du = d_u.data<float>();
  const float* uu = u.data<float>();
  float* dv = d_v.mutable_data<float>();
  for (int64_t i = 0; i < rows; ++i) {
    double dot = 0.0;
    for (int64_t j = 0; j < cols; ++j)
      dot += static_cast<double>(du[i * cols + j]) * uu[i * cols + j];
    const double r = rnorm[static_cast<size_t>(i)];
    for (int64_t j = 0; j < cols; ++j) {
      dv[i * cols + j] += static_cast<float>(r * (du[i * cols + j] - dot * uu[i * cols + j]));
    }
  }
}

// dst [C, R] = src [R, C]^T, or dst += src^T when accumulate.
void transpose(Tensor& dst, const Tensor& src, bool accumulate) {
  const int64_t rows = src.dim(0), cols = src.dim(1);
  const float* s = src.data<float>();
  float* d = dst.mutable_data<float>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      if (accumulate) {
        d[j * rows + i] += s[i * cols + j];
      } else {
        d[j * rows + i] = s[i * cols + j];
      }
    }
  }
}

class SoftMoeRouter : public Router {
 public:
  SoftMoeRouter(const RouterSpec& spec, int64_t slots_per_expert, bool normalize)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        slots_per_expert_(slots_per_expert),
        slots_(spec.num_experts * slots_per_expert),
        d_model_(spec.d_model),
        normalize_(normalize),
        phi_(Param::trainable(spec.prefix + "soft_moe.phi", {slots_, spec.d_model})),
        scale_(Param::trainable(spec.prefix + "soft_moe.scale", {1}, /*decay=*/false)) {
    scale_.value.fill(1.0f);
  }

  std::string_view name() const override { return "soft_moe"; }
  int64_t num_experts() const override { return experts_; }
  bool causal() const override { return false; }
  std::vector<Param*> params() override {
    if (normalize_) return {&phi_, &scale_};
    return {&phi_};
  }
  void init(Rng& rng) override {
    const auto stddev = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d_model_)));
    float* p = phi_.value.mutable_data<float>();
    for (int64_t i = 0; i < phi_.value.numel(); ++i) p[i] = rng.normal(0.0f, stddev);
    scale_.value.fill(1.0f);
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    auto saved = std::make_shared<SoftMoeSaved>();
    Routing r;
    r.slots_per_expert = slots_per_expert_;
    r.dispatch = Tensor::zeros({slots_, tokens});
    r.combine = Tensor::zeros({tokens, slots_});
    if (tokens > 0) {
      Tensor logits = Tensor::zeros({tokens, slots_});
      if (normalize_) {
        saved->x_unit = normalize_rows(in.x, saved->x_rnorm);
        saved->phi_unit = normalize_rows(phi_.value, saved->phi_rnorm);
        saved->scale = scale_.value.data<float>()[0];
        saved->raw_logits = Tensor::zeros({tokens, slots_});
        kernels::gemm(saved->raw_logits, saved->x_unit, saved->phi_unit, {.trans_b = true});
        const float* raw = saved->raw_logits.data<float>();
        float* l = logits.mutable_data<float>();
        for (int64_t i = 0; i < logits.numel(); ++i) l[i] = saved->scale * raw[i];
      } else {
        kernels::gemm(logits, in.x, phi_.value, {.trans_b = true});
      }
      kernels::softmax_forward(r.combine, logits);  // over the S slots of each token
      Tensor logits_t = Tensor::zeros({slots_, tokens});
      transpose(logits_t, logits, /*accumulate=*/false);
      kernels::softmax_forward(r.dispatch, logits_t);  // over the T tokens of each slot
    }
    // Each token's combine mass per expert (sums over the expert's slots) -> entropy.
    std::vector<float> per_expert(static_cast<size_t>(tokens * experts_), 0.0f);
    const float* c = r.combine.data<float>();
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t s = 0; s < slots_; ++s) {
        per_expert[static_cast<size_t>(t * experts_ + s / slots_per_expert_)] += c[t * slots_ + s];
      }
    }
    r.entropy = mean_normalized_entropy(per_expert.data(), tokens, experts_);
    r.saved = std::move(saved);
    return r;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& d_x) override {
    const auto& saved = saved_state<SoftMoeSaved>(routing, where_);
    const int64_t tokens = check_router_input(in, d_model_, where_);
    SY_CHECK(routing.combine.defined() && routing.combine.dim(0) == tokens,
             "{}: backward: x has {} tokens, forward had {}", where_, tokens,
             routing.combine.defined() ? routing.combine.dim(0) : 0);
    SY_CHECK(grad.d_dispatch.defined() && grad.d_combine.defined(),
             "{}: backward: d_dispatch and d_combine are required (dense routing)", where_);
    grad.d_dispatch.expect_dtype(DType::F32, (where_ + ": d_dispatch").c_str());
    grad.d_dispatch.expect_shape({slots_, tokens}, (where_ + ": d_dispatch").c_str());
    grad.d_combine.expect_dtype(DType::F32, (where_ + ": d_combine").c_str());
    grad.d_combine.expect_shape({tokens, slots_}, (where_ + ": d_combine").c_str());
    if (d_x.defined()) d_x.expect_shape(in.x.shape(), (where_ + ": d_x").c_str());
    if (tokens == 0) return;

    // Both softmaxes read the same logits: d_L = softmax'(combine) + softmax'(dispatch)^T.
    Tensor d_logits = Tensor::zeros({tokens, slots_});
    kernels::softmax_backward(d_logits, grad.d_combine, routing.combine);
    Tensor d_logits_t = Tensor::zeros({slots_, tokens});
    kernels::softmax_backward(d_logits_t, grad.d_dispatch, routing.dispatch);
    transpose(d_logits, d_logits_t, /*accumulate=*/true);

    if (!normalize_) {
      // L = x Phi^T: d_x += d_L Phi, d_Phi += d_L^T x.
      if (d_x.defined()) kernels::gemm(d_x, d_logits, phi_.value, {.accumulate = true});
      kernels::gemm(phi_.grad, d_logits, in.x, {.trans_a = true, .accumulate = true});
      return;
    }
    // L = scale * xn Phin^T.
    const float* dl = d_logits.data<float>();
    const float* raw = saved.raw_logits.data<float>();
    double d_scale = 0.0;
    for (int64_t i = 0; i < d_logits.numel(); ++i) d_scale += static_cast<double>(dl[i]) * raw[i];
    scale_.grad.mutable_data<float>()[0] += static_cast<float>(d_scale);
    if (d_x.defined()) {
      Tensor d_xn = Tensor::zeros(in.x.shape());
      kernels::gemm(d_xn, d_logits, saved.phi_unit, {.alpha = saved.scale});
      normalize_rows_backward(d_x, d_xn, saved.x_unit, saved.x_rnorm);
    }
    Tensor d_phin = Tensor::zeros(phi_.value.shape());
    kernels::gemm(d_phin, d_logits, saved.x_unit, {.trans_a = true, .alpha = saved.scale});
    normalize_rows_backward(phi_.grad, d_phin, saved.phi_unit, saved.phi_rnorm);
  }

 private:
  std::string where_;
  int64_t experts_;
  int64_t slots_per_expert_;
  int64_t slots_;
  int64_t d_model_;
  bool normalize_;
  Param phi_;
  Param scale_;
};

}  // namespace

std::unique_ptr<Router> make_soft_moe_router(const RouterSpec& spec) {
  validate_spec(spec, /*check_top_k=*/false);
  OptionReader opts(spec);
  const int64_t slots_per_expert = opts.get_int("slots_per_expert", 1);
  const bool normalize = opts.get_bool("normalize", false);
  opts.finish();
  SY_CHECK(slots_per_expert >= 1, "{}: slots_per_expert = {}, expected >= 1", opts.where(),
           slots_per_expert);
  return std::make_unique<SoftMoeRouter>(spec, slots_per_expert, normalize);
}

}  // namespace sy::moe
