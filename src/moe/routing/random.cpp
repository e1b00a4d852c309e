// `random`: each token goes to K distinct experts drawn uniformly from in.rng (a baseline and a
// sanity check: any learned router should beat it). Weight 1/K; no parameters, no gradient to
// x, no losses; entropy 1 (the draw is uniform). Draws per token in token order, expert j of
// token t being rng.below(E - j) into a partial Fisher-Yates shuffle of 0..E-1, so the routing is
// a function of the rng's seed and state. Slots token-major in draw order. No options.
#include <numeric>

#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

class RandomRouter : public Router {
 public:
  explicit RandomRouter(const RouterSpec& spec)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        top_k_(spec.top_k),
        d_model_(spec.d_model) {}

  std::string_view name() const override { return "random"; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {}; }
  void init(Rng& /*rng*/) override {}

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    SY_CHECK(in.rng != nullptr, "{}: needs RouterInput.rng (random routing draws from it)", where_);
    Tensor idx = Tensor::zeros({tokens, top_k_}, DType::I32);
    Tensor weight = Tensor::zeros({tokens * top_k_});
    weight.fill(1.0f / static_cast<float>(top_k_));
    std::vector<int32_t> perm(static_cast<size_t>(experts_));
    int32_t* id = idx.mutable_data<int32_t>();
    for (int64_t t = 0; t < tokens; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      for (int64_t j = 0; j < top_k_; ++j) {
        const auto pick = static_cast<int64_t>(in.rng->below(static_cast<uint64_t>(experts_ - j)));
        std::swap(perm[static_cast<size_t>(j)], perm[static_cast<size_t>(j + pick)]);
        id[t * top_k_ + j] = perm[static_cast<size_t>(j)];
      }
    }
    Routing r = token_choice_slots(idx, std::move(weight));
    r.entropy = tokens == 0 ? NAN : (experts_ == 1 ? 0.0 : 1.0);
    return r;
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& /*d_x*/) override {
    check_router_input(in, d_model_, where_);
    check_d_weight(grad, routing, where_);  // the weights are constants: nothing flows back
  }

 private:
  std::string where_;
  int64_t experts_;
  int64_t top_k_;
  int64_t d_model_;
};

}  // namespace

std::unique_ptr<Router> make_random_router(const RouterSpec& spec) {
  validate_spec(spec);
  OptionReader opts(spec);
  opts.finish();
  return std::make_unique<RandomRouter>(spec);
}

}  // namespace sy::moe
