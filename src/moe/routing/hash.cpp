// `hash` (Roller et al. 2021, "Hash Layers", routing.md A9): expert = h(token id), fixed for the
// whole run, K = 1, weight 1. No parameters, no gradient to x, no losses, entropy NaN (there is
// no distribution). Needs RouterInput.token_ids.
// Options:
//   hash  "random"  a fixed pseudo-random map of ids to experts: splitmix64's bijective finaliser
//                   of (id XOR seed * golden ratio), mod E (the paper's random hash; a
//                   frequency-balanced hash needs corpus statistics and is not offered)
//         "modulo"  id mod E
//   seed  0         picks the random map
#include "moe/routing/common.h"
#include "moe/routing/options.h"

namespace sy::moe {
namespace {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class HashRouter : public Router {
 public:
  HashRouter(const RouterSpec& spec, bool modulo, uint64_t seed)
      : where_(router_where(spec)),
        experts_(spec.num_experts),
        d_model_(spec.d_model),
        modulo_(modulo),
        salt_(seed * 0x9e3779b97f4a7c15ull) {}

  std::string_view name() const override { return "hash"; }
  int64_t num_experts() const override { return experts_; }
  std::vector<Param*> params() override { return {}; }
  void init(Rng& /*rng*/) override {}

  // The expert of one token id (>= 0).
  int32_t expert_of(int64_t id) const {
    const auto u = static_cast<uint64_t>(id);
    const uint64_t h = modulo_ ? u : mix64(u ^ salt_);
    return static_cast<int32_t>(h % static_cast<uint64_t>(experts_));
  }

  Routing forward(const RouterInput& in) override {
    const int64_t tokens = check_router_input(in, d_model_, where_);
    SY_CHECK(in.token_ids.defined(), "{}: needs RouterInput.token_ids (i32 [{}]), got none", where_,
             tokens);
    in.token_ids.expect_dtype(DType::I32, (where_ + ": token_ids").c_str());
    in.token_ids.expect_shape({tokens}, (where_ + ": token_ids").c_str());
    Tensor idx = Tensor::zeros({tokens, 1}, DType::I32);
    Tensor weight = Tensor::zeros({tokens});
    weight.fill(1.0f);
    const int32_t* ids = in.token_ids.data<int32_t>();
    int32_t* ex = idx.mutable_data<int32_t>();
    for (int64_t t = 0; t < tokens; ++t) {
      SY_CHECK(ids[t] >= 0, "{}: token_ids[{}] = {}, expected >= 0", where_, t, ids[t]);
      ex[t] = expert_of(ids[t]);
    }
    return token_choice_slots(idx, std::move(weight));  // entropy stays NaN
  }

  void backward(const RouterInput& in, const Routing& routing, const RoutingGrad& grad,
                Tensor& /*d_x*/) override {
    check_router_input(in, d_model_, where_);
    check_d_weight(grad, routing, where_);  // weights are constant 1: nothing flows back
  }

 private:
  std::string where_;
  int64_t experts_;
  int64_t d_model_;
  bool modulo_;
  uint64_t salt_;
};

}  // namespace

std::unique_ptr<Router> make_hash_router(const RouterSpec& spec) {
  validate_spec(spec);
  SY_CHECK(spec.top_k == 1,
           "{}: top_k = {}, expected 1 (hash routing sends each token to one expert)",
           router_where(spec), spec.top_k);
  OptionReader opts(spec);
  const bool modulo = opts.get_string("hash", "random", {"random", "modulo"}) == "modulo";
  const int64_t seed = opts.get_int("seed", 0);
  opts.finish();
  return std::make_unique<HashRouter>(spec, modulo, static_cast<uint64_t>(seed));
}

}  // namespace sy::moe
