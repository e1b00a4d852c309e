#include "moe/dispatch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <span>
#include <string>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/gemm.h"

namespace sy::moe {

namespace {

// A row range loop worth spreading over threads only when it moves enough bytes.
constexpr int64_t kParallelFloats = 1 << 14;
// Whether a loop over tokens, each summing its rows of d floats, runs on the thread team: one
// token (a decode step) has nothing to split.
bool split_by_token(int64_t tokens, int64_t rows, int64_t d) {
  return tokens > 1 && rows * d >= kParallelFloats;
}

void check_sparse(const Routing& r, int64_t num_tokens, int64_t num_experts) {
  r.token.expect_dtype(DType::I32, "plan_dispatch: routing.token");
  SY_CHECK(r.token.rank() == 1, "plan_dispatch: routing.token: shape {}, expected [N]",
           shape_str(r.token.shape()));
  const int64_t n = r.token.dim(0);
  r.expert.expect_dtype(DType::I32, "plan_dispatch: routing.expert");
  r.expert.expect_shape({n}, "plan_dispatch: routing.expert");
  r.weight.expect_dtype(DType::F32, "plan_dispatch: routing.weight");
  r.weight.expect_shape({n}, "plan_dispatch: routing.weight");
  if (r.choice.defined()) {
    r.choice.expect_dtype(DType::I32, "plan_dispatch: routing.choice");
    r.choice.expect_shape({n}, "plan_dispatch: routing.choice");
  }
  const int32_t* tok = r.token.data<int32_t>();
  const int32_t* exp = r.expert.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    SY_CHECK(tok[i] >= 0 && tok[i] < num_tokens,
             "plan_dispatch: slot {} has token {}, expected 0 <= token < {} (T)", i, tok[i],
             num_tokens);
    SY_CHECK(exp[i] >= 0 && exp[i] < num_experts,
             "plan_dispatch: slot {} has expert {}, expected 0 <= expert < {} (E)", i, exp[i],
             num_experts);
  }
}

DispatchPlan plan_dense(const Routing& r, int64_t num_tokens, int64_t num_experts) {
  SY_CHECK(r.slots_per_expert > 0,
           "plan_dispatch: dense routing needs slots_per_expert > 0, got {}", r.slots_per_expert);
  const int64_t s = num_experts * r.slots_per_expert;
  r.dispatch.expect_dtype(DType::F32, "plan_dispatch: routing.dispatch");
  r.dispatch.expect_shape({s, num_tokens}, "plan_dispatch: routing.dispatch");
  r.combine.expect_dtype(DType::F32, "plan_dispatch: routing.combine");
  r.combine.expect_shape({num_tokens, s}, "plan_dispatch: routing.combine");
  DispatchPlan plan;
  plan.num_tokens = num_tokens;
  plan.num_experts = num_experts;
  plan.dense = true;
  plan.offsets.resize(static_cast<size_t>(num_experts + 1));
  for (int64_t e = 0; e <= num_experts; ++e) plan.offsets[e] = e * r.slots_per_expert;
  return plan;
}

// The slots of `order` sorted stably by key[slot] into `sorted`; returns where each of the
// `buckets` keys starts there (buckets + 1 entries, the last n).
std::vector<int64_t> sort_by_key(std::span<const int32_t> order, const int32_t* key,
                                 int64_t buckets, std::vector<int32_t>& sorted) {
  std::vector<int64_t> start(static_cast<size_t>(buckets + 1), 0);
  for (const int32_t s : order) ++start[key[s] + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  sorted.resize(order.size());
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (const int32_t s : order) sorted[next[key[s]]++] = s;
  return start;
}

// Keeps at most `capacity` of an expert's slots (given in token order) by the policy's priority:
// the kept ones move to the front, still in token order. Returns how many are kept.
int64_t apply_capacity(std::span<int32_t> slots, int64_t capacity, const Routing& r,
                       DropPolicy policy, std::vector<char>& keep) {
  const auto count = static_cast<int64_t>(slots.size());
  if (count <= capacity) return count;
  // Token order, so the stable sorts break ties by token, then slot.
  std::vector<int32_t> order(slots.begin(), slots.end());
  if (policy == DropPolicy::kPosition) {
    if (r.choice.defined()) {
      const int32_t* choice = r.choice.data<int32_t>();
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return choice[a] < choice[b]; });
    }
  } else {
    const float* w = r.weight.data<float>();
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return w[a] > w[b]; });
  }
  for (int64_t i = 0; i < capacity; ++i) keep[order[i]] = 1;
  return std::remove_if(slots.begin(), slots.end(), [&](int32_t s) { return keep[s] == 0; }) -
         slots.begin();
}

}  // namespace

int64_t expert_capacity(double capacity_factor, int64_t tokens, int64_t top_k, int64_t experts) {
  SY_CHECK(capacity_factor > 0.0 && std::isfinite(capacity_factor),
           "expert_capacity: capacity_factor must be > 0, got {}", capacity_factor);
  SY_CHECK(experts > 0, "expert_capacity: experts must be > 0, got {}", experts);
  const double c = std::ceil(capacity_factor * static_cast<double>(tokens * top_k) /
                             static_cast<double>(experts));
  return std::max<int64_t>(1, static_cast<int64_t>(c));
}

DispatchPlan plan_dispatch(const Routing& routing, int64_t num_tokens, int64_t num_experts,
                           const CapacityOptions& opts) {
  SY_CHECK(num_experts > 0, "plan_dispatch: num_experts must be > 0, got {}", num_experts);
  SY_CHECK(num_tokens >= 0, "plan_dispatch: num_tokens must be >= 0, got {}", num_tokens);
  SY_CHECK(opts.capacity_factor >= 0.0 && std::isfinite(opts.capacity_factor),
           "plan_dispatch: capacity_factor must be > 0 for capacity mode or 0 for dropless, got {}",
           opts.capacity_factor);
  if (routing.dense()) return plan_dense(routing, num_tokens, num_experts);
  check_sparse(routing, num_tokens, num_experts);
  const int64_t n = routing.token.dim(0);
  const int32_t* tok = routing.token.data<int32_t>();
  const int32_t* exp = routing.expert.data<int32_t>();
  const bool capped = opts.capacity_factor > 0.0;
  if (capped && opts.policy == DropPolicy::kScore) {
    const float* w = routing.weight.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      SY_CHECK(!std::isnan(w[i]), "plan_dispatch: slot {} has a NaN weight (score drop policy)", i);
    }
  }

  // Two stable counting sorts: slots by token, then by expert, so each expert's slots come out
  // in token order (ties by slot index) whatever order the router emitted them in. Expert e's
  // slots are by_expert[exp_start[e], exp_start[e] + kept[e]): flat arrays rather than a vector
  // per expert, as a decode step routes 8 slots among 64 experts.
  std::vector<int32_t> all_slots(static_cast<size_t>(n));
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::vector<int32_t> by_token, by_expert;
  const std::vector<int64_t> tok_start = sort_by_key(all_slots, tok, num_tokens, by_token);
  const std::vector<int64_t> exp_start = sort_by_key(by_token, exp, num_experts, by_expert);
  std::vector<int64_t> kept(static_cast<size_t>(num_experts));
  for (int64_t e = 0; e < num_experts; ++e) kept[e] = exp_start[e + 1] - exp_start[e];

  DispatchPlan plan;
  plan.num_tokens = num_tokens;
  plan.num_experts = num_experts;
  if (capped) {
    const int64_t capacity = expert_capacity(opts.capacity_factor, n, 1, num_experts);
    std::vector<char> keep(static_cast<size_t>(n), 0);
    for (int64_t e = 0; e < num_experts; ++e) {
      const std::span<int32_t> slots(by_expert.data() + exp_start[e], static_cast<size_t>(kept[e]));
      kept[e] = apply_capacity(slots, capacity, routing, opts.policy, keep);
    }
  }
  plan.offsets.assign(static_cast<size_t>(num_experts + 1), 0);
  for (int64_t e = 0; e < num_experts; ++e) plan.offsets[e + 1] = plan.offsets[e] + kept[e];
  const int64_t rows = plan.offsets.back();
  plan.dropped = n - rows;
  // Every row of these is written below.
  plan.row_slot = Tensor::empty({rows}, DType::I32);
  plan.row_token = Tensor::empty({rows}, DType::I32);
  plan.row_expert = Tensor::empty({rows}, DType::I32);
  plan.slot_row = Tensor::empty({n}, DType::I32);
  int32_t* row_slot = plan.row_slot.mutable_data<int32_t>();
  int32_t* row_token = plan.row_token.mutable_data<int32_t>();
  int32_t* row_expert = plan.row_expert.mutable_data<int32_t>();
  int32_t* slot_row = plan.slot_row.mutable_data<int32_t>();
  std::fill(slot_row, slot_row + n, -1);
  for (int64_t e = 0; e < num_experts; ++e) {
    int64_t r = plan.offsets[e];
    for (int64_t i = exp_start[e]; i < exp_start[e] + kept[e]; ++i) {
      const int32_t s = by_expert[i];
      row_slot[r] = s;
      row_token[r] = tok[s];
      row_expert[r] = static_cast<int32_t>(e);
      slot_row[s] = static_cast<int32_t>(r);
      ++r;
    }
  }
  // Per-token kept rows, in slot order (by_token is grouped by token, slots ascending).
  plan.token_offsets.assign(static_cast<size_t>(num_tokens + 1), 0);
  plan.token_rows = Tensor::empty({rows}, DType::I32);
  int32_t* token_rows = plan.token_rows.mutable_data<int32_t>();
  int64_t k = 0;
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t j = tok_start[t]; j < tok_start[t + 1]; ++j) {
      const int32_t row = slot_row[by_token[j]];
      if (row >= 0) token_rows[k++] = row;
    }
    plan.token_offsets[t + 1] = k;
  }
  return plan;
}

namespace {

void check_rows(const Tensor& t, int64_t rows, int64_t d, const char* what) {
  t.expect_dtype(DType::F32, what);
  t.expect_shape({rows, d}, what);
}

// dst row r (of rows, d floats each) = src row row_token[r].
void copy_token_rows(float* dst, const float* src, const int32_t* row_token, int64_t rows,
                     int64_t d) {
  parallel_for(0, rows, rows * d >= kParallelFloats, [&](int64_t r) {
    std::memcpy(dst + r * d, src + row_token[r] * d, static_cast<size_t>(d) * sizeof(float));
  });
}

// A sparse plan's routing: slot count must match what the plan was built from.
void check_plan(const Routing& r, const DispatchPlan& plan, const char* op) {
  SY_CHECK(plan.dense == r.dense(), "{}: the plan is {} but the routing is {}", op,
           plan.dense ? "dense" : "sparse", r.dense() ? "dense" : "sparse");
  SY_CHECK(!plan.offsets.empty(), "{}: empty plan (call plan_dispatch first)", op);
  if (!plan.dense) {
    SY_CHECK(r.token.defined() && r.token.numel() == plan.slot_row.numel(),
             "{}: routing has {} slots, the plan was built for {}", op, r.token.numel(),
             plan.slot_row.numel());
  }
}

}  // namespace

void gather_rows(Tensor& buffer, const Tensor& x, const Routing& routing,
                 const DispatchPlan& plan) {
  check_plan(routing, plan, "gather_rows");
  x.expect_dtype(DType::F32, "gather_rows: x");
  SY_CHECK(x.rank() == 2 && x.dim(0) == plan.num_tokens,
           "gather_rows: x: shape {}, expected [{}, D]", shape_str(x.shape()), plan.num_tokens);
  const int64_t d = x.dim(1);
  const int64_t rows = plan.rows();
  check_rows(buffer, rows, d, "gather_rows: buffer");
  if (plan.dense) {
    kernels::gemm(buffer, routing.dispatch, x);
    return;
  }
  copy_token_rows(buffer.mutable_data<float>(), x.data<float>(), plan.row_token.data<int32_t>(),
                  rows, d);
}

Tensor gather_token_rows(const Tensor& x, const Tensor& row_token, const char* what) {
  x.expect_dtype(DType::F32, (std::string(what) + ": x").c_str());
  SY_CHECK(x.rank() == 2, "{}: x: shape {}, expected [T, D]", what, shape_str(x.shape()));
  row_token.expect_dtype(DType::I32, (std::string(what) + ": row_token").c_str());
  SY_CHECK(row_token.rank() == 1, "{}: row_token: shape {}, expected [R]", what,
           shape_str(row_token.shape()));
  const int64_t rows = row_token.dim(0), t = x.dim(0), d = x.dim(1);
  const int32_t* tok = row_token.data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    SY_CHECK(tok[r] >= 0 && tok[r] < t, "{}: row_token[{}] = {}, expected 0 <= token < {} (T)",
             what, r, tok[r], t);
  }
  Tensor buffer = Tensor::empty({rows, d});
  copy_token_rows(buffer.mutable_data<float>(), x.data<float>(), tok, rows, d);
  return buffer;
}

void gather_rows_backward(Tensor& d_x, Tensor& d_dispatch, const Tensor& d_buffer, const Tensor& x,
                          const Routing& routing, const DispatchPlan& plan) {
  check_plan(routing, plan, "gather_rows_backward");
  x.expect_dtype(DType::F32, "gather_rows_backward: x");
  SY_CHECK(x.rank() == 2 && x.dim(0) == plan.num_tokens,
           "gather_rows_backward: x: shape {}, expected [{}, D]", shape_str(x.shape()),
           plan.num_tokens);
  const int64_t t_count = plan.num_tokens, d = x.dim(1);
  check_rows(d_x, t_count, d, "gather_rows_backward: d_x");
  check_rows(d_buffer, plan.rows(), d, "gather_rows_backward: d_buffer");
  if (plan.dense) {
    // buffer = dispatch @ x: d_x += dispatch^T d_buffer, d_dispatch += d_buffer x^T.
    kernels::gemm(d_x, routing.dispatch, d_buffer, {.trans_a = true, .accumulate = true});
    if (d_dispatch.defined()) {
      kernels::gemm(d_dispatch, d_buffer, x, {.trans_b = true, .accumulate = true});
    }
    return;
  }
  const float* g = d_buffer.data<float>();
  float* out = d_x.mutable_data<float>();
  const int32_t* token_rows = plan.token_rows.data<int32_t>();
  const int64_t* off = plan.token_offsets.data();
  parallel_for(0, t_count, split_by_token(t_count, plan.rows(), d), [&](int64_t t) {
    float* o = out + t * d;
    for (int64_t j = off[t]; j < off[t + 1]; ++j) {
      const float* src = g + static_cast<int64_t>(token_rows[j]) * d;
      for (int64_t c = 0; c < d; ++c) o[c] += src[c];
    }
  });
}

void scatter_combine(Tensor& out, const Tensor& buffer_out, const Routing& routing,
                     const DispatchPlan& plan) {
  check_plan(routing, plan, "scatter_combine");
  out.expect_dtype(DType::F32, "scatter_combine: out");
  SY_CHECK(out.rank() == 2 && out.dim(0) == plan.num_tokens,
           "scatter_combine: out: shape {}, expected [{}, D]", shape_str(out.shape()),
           plan.num_tokens);
  const int64_t d = out.dim(1);
  check_rows(buffer_out, plan.rows(), d, "scatter_combine: buffer_out");
  if (plan.dense) {
    kernels::gemm(out, routing.combine, buffer_out, {.accumulate = true});
    return;
  }
  const float* src = buffer_out.data<float>();
  const float* w = routing.weight.data<float>();
  const int32_t* row_slot = plan.row_slot.data<int32_t>();
  const int32_t* token_rows = plan.token_rows.data<int32_t>();
  const int64_t* off = plan.token_offsets.data();
  float* dst = out.mutable_data<float>();
  parallel_for(0, plan.num_tokens, split_by_token(plan.num_tokens, plan.rows(), d), [&](int64_t t) {
    float* o = dst + t * d;
    for (int64_t j = off[t]; j < off[t + 1]; ++j) {
      const int64_t r = token_rows[j];
      const float wt = w[row_slot[r]];
      const float* s = src + r * d;
      for (int64_t c = 0; c < d; ++c) o[c] += wt * s[c];
    }
  });
}

void scatter_combine_backward(Tensor& d_buffer_out, Tensor& d_weight, Tensor& d_combine,
                              const Tensor& d_out, const Tensor& buffer_out, const Routing& routing,
                              const DispatchPlan& plan) {
  check_plan(routing, plan, "scatter_combine_backward");
  d_out.expect_dtype(DType::F32, "scatter_combine_backward: d_out");
  SY_CHECK(d_out.rank() == 2 && d_out.dim(0) == plan.num_tokens,
           "scatter_combine_backward: d_out: shape {}, expected [{}, D]", shape_str(d_out.shape()),
           plan.num_tokens);
  const int64_t d = d_out.dim(1), rows = plan.rows();
  check_rows(buffer_out, rows, d, "scatter_combine_backward: buffer_out");
  check_rows(d_buffer_out, rows, d, "scatter_combine_backward: d_buffer_out");
  if (plan.dense) {
    // out += combine @ buffer_out: d_buffer_out = combine^T d_out, d_combine = d_out buffer_out^T.
    kernels::gemm(d_buffer_out, routing.combine, d_out, {.trans_a = true});
    if (d_combine.defined()) kernels::gemm(d_combine, d_out, buffer_out, {.trans_b = true});
    return;
  }
  const int64_t n = plan.slot_row.numel();
  if (d_weight.defined()) {
    d_weight.expect_dtype(DType::F32, "scatter_combine_backward: d_weight");
    d_weight.expect_shape({n}, "scatter_combine_backward: d_weight");
  }
  const float* g = d_out.data<float>();
  const float* y = buffer_out.data<float>();
  const float* w = routing.weight.data<float>();
  const int32_t* row_slot = plan.row_slot.data<int32_t>();
  const int32_t* row_token = plan.row_token.data<int32_t>();
  float* db = d_buffer_out.mutable_data<float>();
  float* dw = d_weight.defined() ? d_weight.mutable_data<float>() : nullptr;
  if (dw != nullptr) std::fill(dw, dw + n, 0.0f);
  parallel_for(0, rows, rows * d >= kParallelFloats, [&](int64_t r) {
    const int64_t s = row_slot[r];
    const float* go = g + static_cast<int64_t>(row_token[r]) * d;
    const float* yr = y + r * d;
    float* dr = db + r * d;
    const float wt = w[s];
    double acc = 0.0;
    for (int64_t c = 0; c < d; ++c) {
      dr[c] = wt * go[c];
      acc += static_cast<double>(go[c]) * yr[c];
    }
    if (dw != nullptr) dw[s] = static_cast<float>(acc);
  });
}

}  // namespace sy::moe
