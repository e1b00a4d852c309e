#include "moe/moe_layer.h"

#include <cmath>
#include <utility>

#include "core/error.h"

namespace sy::moe {

namespace {

// Fills the router spec from the layer's options and checks what only the layer can check.
MoeLayerOptions validated(MoeLayerOptions o) {
  SY_CHECK(o.d_model > 0 && o.d_ff > 0 && o.num_experts > 0,
           "moe_layer: d_model, d_ff and num_experts must be > 0, got {}, {}, {}", o.d_model,
           o.d_ff, o.num_experts);
  RouterSpec& r = o.router;
  SY_CHECK(r.num_experts == 0 || r.num_experts == o.num_experts,
           "moe_layer: router.num_experts is {}, the layer has {} experts", r.num_experts,
           o.num_experts);
  SY_CHECK(r.d_model == 0 || r.d_model == o.d_model,
           "moe_layer: router.d_model is {}, the layer has d_model {}", r.d_model, o.d_model);
  r.num_experts = o.num_experts;
  r.d_model = o.d_model;
  if (r.prefix.empty()) r.prefix = o.prefix;
  SY_CHECK(r.top_k >= 1 && r.top_k <= o.num_experts,
           "moe_layer: top_k must be in [1, num_experts = {}], got {}", o.num_experts, r.top_k);
  SY_CHECK(std::isfinite(o.capacity.capacity_factor) && o.capacity.capacity_factor >= 0.0,
           "moe_layer: capacity_factor must be > 0 (capacity mode) or 0 (dropless), got {}",
           o.capacity.capacity_factor);
  SY_CHECK(o.shared_experts >= 0 && o.shared_d_ff >= 0,
           "moe_layer: shared_experts and shared_d_ff must be >= 0, got {}, {}", o.shared_experts,
           o.shared_d_ff);
  SY_CHECK(!o.shared_gate || o.shared_experts > 0,
           "moe_layer: shared_gate needs shared_experts > 0");
  return o;
}

}  // namespace

MoeLayer::MoeLayer(const MoeLayerOptions& opts) : MoeLayer(opts, std::unique_ptr<Router>()) {}

MoeLayer::MoeLayer(const MoeLayerOptions& opts, std::unique_ptr<Router> router)
    : MoeLayer(opts, std::move(router), nullptr) {}

std::unique_ptr<MoeLayer> MoeLayer::with_bank(const MoeLayerOptions& opts,
                                              std::unique_ptr<ExpertBank> bank) {
  SY_CHECK(bank != nullptr, "moe_layer.with_bank: no bank");
  // Not make_unique: the constructor is private.
  return std::unique_ptr<MoeLayer>(new MoeLayer(opts, nullptr, std::move(bank)));
}

MoeLayer::MoeLayer(const MoeLayerOptions& opts, std::unique_ptr<Router> router,
                   std::unique_ptr<ExpertBank> bank)
    : opts_(validated(opts)), router_(std::move(router)) {
  if (!router_) router_ = make_router(opts_.router);
  SY_CHECK(router_->num_experts() == opts_.num_experts,
           "moe_layer: router '{}' has {} experts, the layer {}", router_->name(),
           router_->num_experts(), opts_.num_experts);
  SY_CHECK(router_->causal() || !opts_.causal_model || opts_.allow_non_causal,
           "moe_layer: router '{}' is not causal (a token's routing depends on later tokens), so "
           "it would leak the future in a causal model; set allow_non_causal to use it anyway "
           "(research comparisons only; the run is marked non-causal)",
           router_->name());
  if (bank) {
    SY_CHECK(bank->num_experts() == opts_.num_experts && bank->d_model() == opts_.d_model &&
                 bank->d_ff() == opts_.d_ff && bank->activation() == opts_.activation,
             "moe_layer.with_bank: the bank has {} experts of [{} -> {}] ({}), the layer {} of "
             "[{} -> {}] ({})",
             bank->num_experts(), bank->d_model(), bank->d_ff(),
             activation_name(bank->activation()), opts_.num_experts, opts_.d_model, opts_.d_ff,
             activation_name(opts_.activation));
    experts_ = std::move(bank);
  } else {
    auto in_memory =
        std::make_unique<InMemoryExperts>(ExpertBankOptions{.num_experts = opts_.num_experts,
                                                            .d_model = opts_.d_model,
                                                            .d_ff = opts_.d_ff,
                                                            .activation = opts_.activation,
                                                            .prefix = opts_.prefix,
                                                            .parallelism = opts_.parallelism});
    in_memory_ = in_memory.get();
    experts_ = std::move(in_memory);
  }
  if (opts_.shared_experts > 0) {
    const int64_t width = opts_.shared_d_ff > 0 ? opts_.shared_d_ff : opts_.d_ff;
    shared_.emplace(SharedExpertsOptions{.d_model = opts_.d_model,
                                         .d_ff = opts_.shared_experts * width,
                                         .activation = opts_.activation,
                                         .gate = opts_.shared_gate,
                                         .prefix = opts_.prefix});
  }
}

InMemoryExperts& MoeLayer::experts() {
  SY_CHECK(in_memory_ != nullptr, "moe_layer: the experts are not an in-memory bank (with_bank)");
  return *in_memory_;
}

void MoeLayer::init(Rng& rng, float stddev) {
  router_->init(rng);
  experts().init(rng, stddev);
  if (shared_) shared_->init(rng, stddev);
}

std::vector<Param*> MoeLayer::params() {
  std::vector<Param*> out = router_->params();
  for (Param* p : experts_->params()) out.push_back(p);
  if (shared_) {
    for (Param* p : shared_->params()) out.push_back(p);
  }
  return out;
}

std::vector<Param*> MoeLayer::buffers() { return router_->buffers(); }

Tensor MoeLayer::forward(const Tensor& x, const Tensor& token_ids, bool training, Rng* rng,
                         int64_t seq_len) {
  x.expect_dtype(DType::F32, "moe_layer.forward: x");
  x.expect_shape({-1, opts_.d_model}, "moe_layer.forward: x");
  const int64_t t = x.dim(0), d = opts_.d_model;
  in_ = RouterInput{
      .x = x, .token_ids = token_ids, .seq_len = seq_len, .training = training, .rng = rng};

  routing_ = router_->forward(in_);
  plan_ = plan_dispatch(routing_, t, opts_.num_experts, opts_.capacity);
  buffer_out_ = Tensor::empty({plan_.rows(), d});
  if (!training && !plan_.dense) {
    // Inference: the bank gathers the rows itself, or reads them in place (a decode step's
    // experts all read the one token's row). backward gathers them if it is called.
    buffer_ = Tensor();
    experts_->forward_rows(buffer_out_, x, plan_.row_token, plan_.offsets, &experts_saved_);
  } else {
    buffer_ = Tensor::empty({plan_.rows(), d});
    gather_rows(buffer_, x, routing_, plan_);
    experts_->forward(buffer_out_, buffer_, plan_.offsets, &experts_saved_);
  }
  if (training && router_->wants_expert_outputs() && !plan_.dense) {
    router_->observe_expert_outputs(plan_.row_expert, buffer_out_);
  }
  Tensor y = Tensor::zeros({t, d});
  scatter_combine(y, buffer_out_, routing_, plan_);
  if (routing_.extra_out.defined()) {
    routing_.extra_out.expect_shape({t, d}, "moe_layer.forward: routing.extra_out");
    const float* e = routing_.extra_out.data<float>();
    float* o = y.mutable_data<float>();
    for (int64_t i = 0; i < t * d; ++i) o[i] += e[i];
  }
  if (shared_) shared_->forward(y, x, shared_saved_);
  stats_ = router_stats(routing_, plan_);
  have_forward_ = true;
  return y;
}

void MoeLayer::backward(const Tensor& d_y, Tensor& d_x) {
  SY_CHECK(have_forward_, "moe_layer.backward: no forward to differentiate");
  const Tensor& x = in_.x;
  d_y.expect_dtype(DType::F32, "moe_layer.backward: d_y");
  d_y.expect_shape(x.shape(), "moe_layer.backward: d_y");
  d_x.expect_dtype(DType::F32, "moe_layer.backward: d_x");
  d_x.expect_shape(x.shape(), "moe_layer.backward: d_x");
  const int64_t rows = plan_.rows(), d = opts_.d_model;

  if (shared_) shared_->backward(d_x, d_y, x, shared_saved_);
  RoutingGrad grad;
  grad.d_out = d_y;
  Tensor d_buffer_out = Tensor::empty({rows, d});
  if (plan_.dense) {
    grad.d_combine = Tensor::zeros(routing_.combine.shape());
    grad.d_dispatch = Tensor::zeros(routing_.dispatch.shape());
  } else {
    grad.d_weight = Tensor::zeros(routing_.weight.shape());
  }
  scatter_combine_backward(d_buffer_out, grad.d_weight, grad.d_combine, d_y, buffer_out_, routing_,
                           plan_);
  if (!buffer_.defined()) {  // an inference forward left the rows ungathered
    buffer_ = Tensor::empty({rows, d});
    gather_rows(buffer_, x, routing_, plan_);
  }
  Tensor d_buffer = Tensor::empty({rows, d});
  experts_->backward(d_buffer, d_buffer_out, buffer_, plan_.offsets, experts_saved_);
  gather_rows_backward(d_x, grad.d_dispatch, d_buffer, x, routing_, plan_);
  router_->backward(in_, routing_, grad, d_x);
}

}  // namespace sy::moe
