#include "router_testing.h"

#include "moe/moe_layer.h"
#include "support/moe_testing.h"
#include "support/tensor_testing.h"

namespace sy::moe::test_routing {

std::unique_ptr<Router> build(const std::string& name, int64_t experts, int64_t top_k,
                              int64_t d_model, nlohmann::json options) {
  RouterSpec spec;
  spec.name = name;
  spec.num_experts = experts;
  spec.top_k = top_k;
  spec.d_model = d_model;
  spec.prefix = "layers.0.mlp.";
  spec.options = std::move(options);
  return make_router(spec);
}

Param& param(Router& router, const std::string& suffix) {
  auto all = router.params();
  for (Param* p : router.buffers()) all.push_back(p);
  for (Param* p : all) {
    if (p->name.size() >= suffix.size() &&
        p->name.compare(p->name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return *p;
    }
  }
  throw Error("no parameter ending in " + suffix);
}

void check_gradients(Router& router, Tensor& x, const Tensor& d_weight,
                     const std::vector<Param*>& params) {
  auto objective = [&] {
    const Routing r = router.forward({.x = x});
    double total = test::dot(r.weight, d_weight);
    for (const AuxLoss& l : r.losses) total += l.coeff * l.value;
    return total;
  };
  const Tensor num_x = test::numeric_gradient(x, objective);
  std::vector<Tensor> num;
  for (Param* p : params) num.push_back(test::numeric_gradient(p->value, objective));
  const RouterRun r = run(router, {.x = x}, d_weight);
  // f32 central differences with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(r.d_x, num_x, 3e-3f, 3e-3f);
  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE(params[i]->name);
    EXPECT_ALL_CLOSE(params[i]->grad, num[i], 3e-3f, 3e-3f);
  }
}

void check_in_moe_layer(const std::string& name, nlohmann::json options,
                        const std::function<void(Router&, Rng&)>& set_params,
                        const std::string& checked_param) {
  Rng rng(4);
  MoeLayerOptions o;
  o.d_model = 6;
  o.d_ff = 5;
  o.num_experts = 4;
  o.prefix = "model.layers.0.mlp.";
  o.router.name = name;
  o.router.top_k = 2;
  o.router.options = std::move(options);
  MoeLayer layer(o);
  layer.init(rng, 0.5f);
  set_params(layer.router(), rng);
  Tensor x = test::random_normal({7, 6}, rng);
  const Tensor probe = test::random_normal({7, 6}, rng);
  auto objective = [&] {
    double total = test::dot(layer.forward(x, Tensor(), false, nullptr), probe);
    for (const AuxLoss& l : layer.routing().losses) total += l.coeff * l.value;
    return total;
  };
  const Tensor num_x = test::numeric_gradient(x, objective);
  Param& checked = param(layer.router(), checked_param);
  const Tensor num_checked = test::numeric_gradient(checked.value, objective);
  const Tensor y = layer.forward(x, Tensor(), false, nullptr);
  EXPECT_EQ(layer.routing().expert.numel(), 14);
  MoeLayer given(o, std::make_unique<test::GivenRouter>(layer.routing(), 4));
  for (Param* p : given.params()) {
    for (Param* q : layer.params()) {
      if (q->name == p->name) p->value = q->value.clone();
    }
  }
  EXPECT_ALL_CLOSE(given.forward(x, Tensor(), false, nullptr), y, 0.0f, 0.0f);
  EXPECT_GT(test::dot(y, y), 1e-6);
  for (Param* p : layer.params()) p->grad.fill(0.0f);
  Tensor d_x = Tensor::zeros({7, 6});
  layer.backward(probe, d_x);
  // f32 central differences with eps 1e-3 carry ~1e-3 error.
  EXPECT_ALL_CLOSE(d_x, num_x, 3e-3f, 3e-3f);
  EXPECT_ALL_CLOSE(checked.grad, num_checked, 3e-3f, 3e-3f);
}

RouterRun run(Router& router, const RouterInput& in, const Tensor& d_weight) {
  RouterRun out;
  out.routing = router.forward(in);
  for (Param* p : router.params()) p->grad.fill(0.0f);
  out.d_x = Tensor::zeros(in.x.shape());
  RoutingGrad grad;
  grad.d_weight = d_weight;
  router.backward(in, out.routing, grad, out.d_x);
  if (!router.params().empty()) out.d_gate = router.params().front()->grad.clone();
  return out;
}

Tensor expert_ids(const Routing& r, int64_t rows, int64_t cols) {
  return r.expert.reshape({rows, cols});
}

double loss(const Routing& r, const std::string& name) {
  for (const AuxLoss& l : r.losses) {
    if (l.name == name) return l.value;
  }
  throw Error("no loss named " + name);
}

double coeff(const Routing& r, const std::string& name) {
  for (const AuxLoss& l : r.losses) {
    if (l.name == name) return l.coeff;
  }
  throw Error("no loss named " + name);
}

Tensor scalar(double v) { return Tensor::from_f32({1}, {static_cast<float>(v)}); }

double scalar_of(const Tensor& t) { return t.to_f32().data<float>()[0]; }

namespace {
int64_t id_at(const Tensor& t, int64_t i) {
  if (t.dtype() == DType::I64) return t.data<int64_t>()[i];
  return t.data<int32_t>()[i];
}
}  // namespace

::testing::AssertionResult same_ids(const Tensor& actual, const Tensor& expected) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << shape_str(actual.shape()) << " vs " << shape_str(expected.shape());
  }
  int64_t mismatches = 0, first = -1;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    if (id_at(actual, i) != id_at(expected, i)) {
      if (first < 0) first = i;
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " ids differ; first at flat index " << first << ": "
         << id_at(actual, first) << " vs expected " << id_at(expected, first);
}

}  // namespace sy::moe::test_routing
