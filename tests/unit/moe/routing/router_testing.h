// Shared plumbing for the router tests: build a router from a spec, set its gate, run forward and
// backward with a fixed upstream gradient, and compare against tests/reference/routers.py.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "moe/routing/router.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::moe::test_routing {

std::unique_ptr<Router> build(const std::string& name, int64_t experts, int64_t top_k,
                              int64_t d_model, nlohmann::json options = nlohmann::json::object());

// The router's Param (params() or buffers()) whose name ends with `suffix`; fails if none.
Param& param(Router& router, const std::string& suffix);

struct RouterRun {
  Routing routing;
  Tensor d_x;     // f32 [T, D]
  Tensor d_gate;  // f32 [E, D] (undefined for routers without a gate)
};

// forward, then zeroed gradients and backward with d_weight.
RouterRun run(Router& router, const RouterInput& in, const Tensor& d_weight);

// Slot field reshaped to [T, K] as f32 / i64 for comparison with the reference.
Tensor expert_ids(const Routing& r, int64_t rows, int64_t cols);

double loss(const Routing& r, const std::string& name);
double coeff(const Routing& r, const std::string& name);
// A one-element f32 tensor.
Tensor scalar(double v);
double scalar_of(const Tensor& t);

// Expects equal integer tensors (any of i32/i64), reporting the first difference.
::testing::AssertionResult same_ids(const Tensor& actual, const Tensor& expected);

// Expects backward's gradients of x and of each of `params` (after run with d_weight) to match
// central differences of weight . d_weight + sum of coeff * loss over router.forward({.x = x}).
// The perturbations (1e-3) must keep every token's choices: a flipped choice would show as a
// mismatch of order 1.
void check_gradients(Router& router, Tensor& x, const Tensor& d_weight,
                     const std::vector<Param*>& params);

// Runs router `name` (with `options`) inside a MoeLayer of 4 experts (d_model 6, d_ff 5, top-2)
// initialised from Rng(4), after `set_params` has set the router's Params from the same Rng, on 7
// random tokens. Checks that the output is the experts mixed by its routing (a GivenRouter
// replaying that routing over the same expert weights gives the same bits), and that backward's
// gradients of the input and of the router Param named `checked_param` match central
// differences of probe . y + sum of coeff * loss.
void check_in_moe_layer(const std::string& name, nlohmann::json options,
                        const std::function<void(Router&, Rng&)>& set_params,
                        const std::string& checked_param);

using test::expect_error;

}  // namespace sy::moe::test_routing
