#include <gtest/gtest.h>

#include <vector>

#include "moe/dispatch.h"
#include "support/tensor_testing.h"

namespace sy::moe {
namespace {

std::vector<int32_t> vec(const Tensor& t) {
  const int32_t* p = t.data<int32_t>();
  return {p, p + t.numel()};
}

Routing sparse(const std::vector<int32_t>& token, const std::vector<int32_t>& expert,
               const std::vector<float>& weight, const std::vector<int32_t>& choice) {
  Routing r;
  r.token = test::i32_tensor(token);
  r.expert = test::i32_tensor(expert);
  r.weight = Tensor::from_f32({static_cast<int64_t>(weight.size())}, weight);
  r.choice = test::i32_tensor(choice);
  return r;
}

// 4 tokens, top-2 over 3 experts, slots t*2 + k.
Routing example() {
  return sparse({0, 0, 1, 1, 2, 2, 3, 3}, {1, 0, 1, 2, 0, 1, 1, 0},
                {0.6f, 0.4f, 0.3f, 0.7f, 0.9f, 0.1f, 0.8f, 0.2f}, {0, 1, 0, 1, 0, 1, 0, 1});
}

TEST(Dispatch, DroplessPlanGroupsByExpertInTokenOrder) {
  const DispatchPlan p = plan_dispatch(example(), 4, 3);
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 3, 7, 8}));
  EXPECT_EQ(vec(p.row_slot), (std::vector<int32_t>{1, 4, 7, 0, 2, 5, 6, 3}));
  EXPECT_EQ(vec(p.row_token), (std::vector<int32_t>{0, 2, 3, 0, 1, 2, 3, 1}));
  EXPECT_EQ(vec(p.row_expert), (std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 2}));
  EXPECT_EQ(vec(p.slot_row), (std::vector<int32_t>{3, 0, 4, 7, 1, 5, 6, 2}));
  EXPECT_EQ(p.token_offsets, (std::vector<int64_t>{0, 2, 4, 6, 8}));
  EXPECT_EQ(vec(p.token_rows), (std::vector<int32_t>{3, 0, 4, 7, 1, 5, 6, 2}));
  EXPECT_EQ(p.dropped, 0);
}

TEST(Dispatch, RowsFollowTokenOrderWhateverTheSlotOrder) {
  // Expert-choice style: expert-major slots, each expert's picks by rank, not token order.
  const Routing r = sparse({2, 0, 3, 1}, {0, 0, 1, 1}, {1, 1, 1, 1}, {0, 1, 0, 1});
  const DispatchPlan p = plan_dispatch(r, 4, 2);
  EXPECT_EQ(vec(p.row_token), (std::vector<int32_t>{0, 2, 1, 3}));
  EXPECT_EQ(vec(p.row_slot), (std::vector<int32_t>{1, 0, 3, 2}));
}

TEST(Dispatch, CapacityDropsByPositionThenToken) {
  // N = 8, E = 3, factor 0.75: capacity = ceil(0.75 * 8 / 3) = 2.
  EXPECT_EQ(expert_capacity(0.75, 4, 2, 3), 2);
  const DispatchPlan p =
      plan_dispatch(example(), 4, 3, {.capacity_factor = 0.75, .policy = DropPolicy::kPosition});
  // Expert 0 gets slots 1 (t0, 2nd), 4 (t2, 1st), 7 (t3, 2nd): keeps the first choice 4, then
  // the earlier token's second choice 1. Expert 1 gets 0, 2, 6 as first choices (t0, t1, t3)
  // and 5 as a second: keeps 0 and 2.
  EXPECT_EQ(vec(p.row_slot), (std::vector<int32_t>{1, 4, 0, 2, 3}));
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(p.dropped, 3);
  EXPECT_EQ(vec(p.slot_row), (std::vector<int32_t>{2, 0, 3, 4, 1, -1, -1, -1}));
  // Token 3 lost both of its slots: nothing in its row list.
  EXPECT_EQ(p.token_offsets, (std::vector<int64_t>{0, 2, 4, 5, 5}));
}

TEST(Dispatch, CapacityDropsByScore) {
  const DispatchPlan p =
      plan_dispatch(example(), 4, 3, {.capacity_factor = 0.75, .policy = DropPolicy::kScore});
  // Expert 0: weights 0.4 (s1), 0.9 (s4), 0.2 (s7) -> keeps s1, s4. Expert 1: 0.6 (s0),
  // 0.3 (s2), 0.1 (s5), 0.8 (s6) -> keeps s0, s6, in token order.
  EXPECT_EQ(vec(p.row_slot), (std::vector<int32_t>{1, 4, 0, 6, 3}));
  EXPECT_EQ(p.dropped, 3);
}

TEST(Dispatch, ScoreTiesKeepTheEarlierToken) {
  const Routing r = sparse({0, 1, 2}, {0, 0, 0}, {0.5f, 0.5f, 0.5f}, {0, 0, 0});
  const DispatchPlan p =
      plan_dispatch(r, 3, 1, {.capacity_factor = 0.5, .policy = DropPolicy::kScore});
  EXPECT_EQ(vec(p.row_slot), (std::vector<int32_t>{0, 1}));
}

// Naive references in double for gather / scatter and their backward.
TEST(Dispatch, GatherScatterAndBackwardMatchLoops) {
  Rng rng(5);
  const int64_t t = 4, d = 5;
  for (const double cf : {0.0, 0.75}) {
    SCOPED_TRACE(cf);
    const Routing r = example();
    const DispatchPlan p = plan_dispatch(r, t, 3, {.capacity_factor = cf});
    const int64_t rows = p.rows();
    const Tensor x = test::random_normal({t, d}, rng);
    Tensor buf = Tensor::zeros({rows, d});
    gather_rows(buf, x, r, p);
    const Tensor y = test::random_normal({rows, d}, rng);  // stands in for the experts' output
    Tensor out = Tensor::zeros({t, d});
    out.fill(1.0f);  // scatter accumulates
    scatter_combine(out, y, r, p);
    const Tensor d_out = test::random_normal({t, d}, rng);
    Tensor d_y = Tensor::zeros({rows, d}), d_w = Tensor::zeros({8}), none;
    d_w.fill(5.0f);  // written, not accumulated
    scatter_combine_backward(d_y, d_w, none, d_out, y, r, p);
    Tensor d_x = Tensor::zeros({t, d});
    d_x.fill(1.0f);  // accumulated
    gather_rows_backward(d_x, none, d_y, x, r, p);

    Tensor e_buf = Tensor::zeros({rows, d}), e_out = Tensor::zeros({t, d}),
           e_dy = Tensor::zeros({rows, d}), e_dw = Tensor::zeros({8}), e_dx = Tensor::zeros({t, d});
    e_out.fill(1.0f);
    e_dx.fill(1.0f);
    const int32_t* slot_row = p.slot_row.data<int32_t>();
    for (int64_t s = 0; s < 8; ++s) {
      const int64_t row = slot_row[s];
      if (row < 0) continue;
      const int64_t tok = r.token.data<int32_t>()[s];
      const float w = r.weight.data<float>()[s];
      double dw = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        e_buf.mutable_data<float>()[row * d + c] = x.data<float>()[tok * d + c];
        e_out.mutable_data<float>()[tok * d + c] += w * y.data<float>()[row * d + c];
        const float g = d_out.data<float>()[tok * d + c];
        e_dy.mutable_data<float>()[row * d + c] = w * g;
        dw += static_cast<double>(g) * y.data<float>()[row * d + c];
        e_dx.mutable_data<float>()[tok * d + c] += w * g;
      }
      e_dw.mutable_data<float>()[s] = static_cast<float>(dw);
    }
    // Rounding only (sums of at most two terms).
    EXPECT_ALL_CLOSE(buf, e_buf, 0.0f, 0.0f);
    EXPECT_ALL_CLOSE(out, e_out, 1e-6f, 1e-6f);
    EXPECT_ALL_CLOSE(d_y, e_dy, 0.0f, 0.0f);
    EXPECT_ALL_CLOSE(d_w, e_dw, 1e-6f, 1e-6f);
    EXPECT_ALL_CLOSE(d_x, e_dx, 1e-6f, 1e-6f);
  }
}

TEST(Dispatch, DenseModeMixesTokensIntoSlots) {
  Rng rng(9);
  const int64_t t = 5, d = 3, e = 2, spe = 2, s = e * spe;
  Routing r;
  r.dispatch = test::random_uniform({s, t}, rng, 0.0f, 1.0f);
  r.combine = test::random_uniform({t, s}, rng, 0.0f, 1.0f);
  r.slots_per_expert = spe;
  const DispatchPlan p = plan_dispatch(r, t, e);
  EXPECT_TRUE(p.dense);
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 2, 4}));
  const Tensor x = test::random_normal({t, d}, rng);
  Tensor buf = Tensor::zeros({s, d});
  gather_rows(buf, x, r, p);
  const Tensor y = test::random_normal({s, d}, rng);
  Tensor out = Tensor::zeros({t, d});
  scatter_combine(out, y, r, p);
  const Tensor d_out = test::random_normal({t, d}, rng);
  Tensor d_y = Tensor::zeros({s, d}), d_comb = Tensor::zeros({t, s}), none;
  scatter_combine_backward(d_y, none, d_comb, d_out, y, r, p);
  Tensor d_x = Tensor::zeros({t, d}), d_disp = Tensor::zeros({s, t});
  gather_rows_backward(d_x, d_disp, d_y, x, r, p);

  auto at = [](const Tensor& m, int64_t i, int64_t j) { return m.data<float>()[i * m.dim(1) + j]; };
  Tensor e_buf = Tensor::zeros({s, d}), e_out = Tensor::zeros({t, d}), e_dy = Tensor::zeros({s, d}),
         e_dc = Tensor::zeros({t, s}), e_dx = Tensor::zeros({t, d}), e_dd = Tensor::zeros({s, t});
  for (int64_t i = 0; i < s; ++i) {
    for (int64_t c = 0; c < d; ++c) {
      double b = 0, g = 0;
      for (int64_t k = 0; k < t; ++k) {
        b += at(r.dispatch, i, k) * at(x, k, c);
        g += at(r.combine, k, i) * at(d_out, k, c);
      }
      e_buf.mutable_data<float>()[i * d + c] = static_cast<float>(b);
      e_dy.mutable_data<float>()[i * d + c] = static_cast<float>(g);
    }
  }
  for (int64_t k = 0; k < t; ++k) {
    for (int64_t c = 0; c < d; ++c) {
      double o = 0, dx = 0;
      for (int64_t i = 0; i < s; ++i) {
        o += at(r.combine, k, i) * at(y, i, c);
        dx += at(r.dispatch, i, k) * at(e_dy, i, c);
      }
      e_out.mutable_data<float>()[k * d + c] = static_cast<float>(o);
      e_dx.mutable_data<float>()[k * d + c] = static_cast<float>(dx);
    }
    for (int64_t i = 0; i < s; ++i) {
      double dc = 0, dd = 0;
      for (int64_t c = 0; c < d; ++c) {
        dc += at(d_out, k, c) * at(y, i, c);
        dd += at(e_dy, i, c) * at(x, k, c);
      }
      e_dc.mutable_data<float>()[k * s + i] = static_cast<float>(dc);
      e_dd.mutable_data<float>()[i * t + k] = static_cast<float>(dd);
    }
  }
  // Short f32 dot products (<= 5 terms of magnitude ~1).
  for (const auto& [a, b] : {std::pair{&buf, &e_buf},
                             {&out, &e_out},
                             {&d_y, &e_dy},
                             {&d_comb, &e_dc},
                             {&d_x, &e_dx},
                             {&d_disp, &e_dd}}) {
    EXPECT_ALL_CLOSE(*a, *b, 1e-5f, 1e-5f);
  }
}

using test::expect_error;

TEST(Dispatch, RejectsBadRoutingAndCapacity) {
  expect_error([] { plan_dispatch(example(), 4, 2); },
               "plan_dispatch: slot 3 has expert 2, expected 0 <= expert < 2 (E)");
  expect_error([] { plan_dispatch(example(), 3, 3); },
               "plan_dispatch: slot 6 has token 3, expected 0 <= token < 3 (T)");
  expect_error([] { plan_dispatch(example(), 4, 3, {.capacity_factor = -1.0}); },
               "plan_dispatch: capacity_factor must be > 0 for capacity mode or 0 for dropless, "
               "got -1");
  expect_error([] { expert_capacity(0.0, 4, 2, 8); },
               "expert_capacity: capacity_factor must be > 0, got 0");
  Routing r = example();
  r.weight = Tensor::zeros({7});
  expect_error([&] { plan_dispatch(r, 4, 3); },
               "plan_dispatch: routing.weight: shape [7], expected [8]");
  EXPECT_EQ(expert_capacity(1.0, 4096, 2, 8), 1024);
  EXPECT_EQ(expert_capacity(1.25, 10, 1, 4), 4);
  EXPECT_EQ(expert_capacity(0.01, 10, 1, 4), 1);
}

}  // namespace
}  // namespace sy::moe
