#include "router_testing.h"

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
