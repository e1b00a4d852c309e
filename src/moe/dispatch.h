// From a Routing to a dispatch plan, and the data movement around the experts:
//   plan_dispatch -> gather_rows -> (experts) -> scatter_combine
// each with its backward. Sparse routing: slots are stably sorted by expert into one contiguous
// buffer with per-expert offsets (MegaBlocks' layout on the CPU), so each expert runs one GEMM.
// Dense routing (Soft MoE): the buffer rows are the S slots, filled by a GEMM with dispatch.
//
// Legend: T tokens, D width, E experts, N routing slots, R buffer rows (kept slots, or S).
#pragma once

#include <vector>

#include "core/tensor.h"
#include "moe/routing/router.h"

namespace sy::moe {

enum class DropPolicy {
  kPosition,  // keep all first choices before second choices, then earlier tokens (Switch)
  kScore,     // each expert keeps its highest-weight slots (Megatron's "probs" policy)
};

struct CapacityOptions {
  // 0: dropless (every slot kept). > 0: each expert keeps at most
  // capacity = ceil(capacity_factor * T * K / E) slots (K = N / T for token-choice routing);
  // a dropped slot contributes nothing, so the residual connection carries the token.
  double capacity_factor = 0.0;
  DropPolicy policy = DropPolicy::kPosition;
};

// ceil(capacity_factor * tokens * top_k / experts), at least 1; error for factor <= 0.
int64_t expert_capacity(double capacity_factor, int64_t tokens, int64_t top_k, int64_t experts);

struct DispatchPlan {
  int64_t num_tokens = 0;
  int64_t num_experts = 0;
  std::vector<int64_t> offsets;  // E + 1: expert e owns buffer rows [offsets[e], offsets[e+1])
  // Sparse routing only:
  Tensor row_slot;    // i32 [R] routing slot of each buffer row; rows of an expert in token order
  Tensor row_token;   // i32 [R] token of each buffer row
  Tensor row_expert;  // i32 [R] expert of each buffer row
  Tensor slot_row;    // i32 [N] buffer row of each slot, -1 when the slot was dropped
  // The kept rows of each token, in slot order: token t owns token_rows[token_offsets[t] ..
  // token_offsets[t+1]). Scatter and gather's backward walk it, so each token's rows are added
  // in one fixed order by one thread (deterministic, no atomics).
  std::vector<int64_t> token_offsets;  // T + 1
  Tensor token_rows;                   // i32 [R]
  int64_t dropped = 0;                 // slots dropped by capacity
  bool dense = false;
  int64_t rows() const { return offsets.empty() ? 0 : offsets.back(); }
};

// Validates the routing (shapes and dtypes agree, ids in range, capacity_factor >= 0, no NaN
// weight under the score policy) and builds the plan. Rows of an expert are in token order
// (ties by slot). Capacity keeps, per expert, the first C slots by the policy's priority:
// kPosition orders by (choice, token, slot), kScore by (weight descending, token, slot).
// An undefined `choice` counts as 0 for every slot. Dense routing ignores capacity.
DispatchPlan plan_dispatch(const Routing& routing, int64_t num_tokens, int64_t num_experts,
                           const CapacityOptions& opts = {});

// buffer: f32 [R, D] written: row r = x[row_token[r]] (sparse) or dispatch @ x (dense).
void gather_rows(Tensor& buffer, const Tensor& x, const Routing& routing, const DispatchPlan& plan);
// Rows row_token[r] of x: f32 [R, D] (x f32 [T, D], row_token i32 [R]), as gather_rows copies
// a sparse plan's rows, for expert banks given the rows ungathered (ExpertBank::forward_rows).
// Errors name `what` and the first token out of range.
Tensor gather_token_rows(const Tensor& x, const Tensor& row_token, const char* what);
// d_x: f32 [T, D] accumulated; d_dispatch (dense only) f32 [S, T] accumulated.
void gather_rows_backward(Tensor& d_x, Tensor& d_dispatch, const Tensor& d_buffer, const Tensor& x,
                          const Routing& routing, const DispatchPlan& plan);

// out: f32 [T, D] accumulated: out[token] += weight * buffer_out[row] (sparse), or
// out += combine @ buffer_out (dense). Rows are added in a fixed order per token.
void scatter_combine(Tensor& out, const Tensor& buffer_out, const Routing& routing,
                     const DispatchPlan& plan);
// d_buffer_out: f32 [R, D] written; d_weight f32 [N] written (0 for dropped slots), or
// d_combine f32 [T, S] written (dense).
void scatter_combine_backward(Tensor& d_buffer_out, Tensor& d_weight, Tensor& d_combine,
                              const Tensor& d_out, const Tensor& buffer_out, const Routing& routing,
                              const DispatchPlan& plan);

}  // namespace sy::moe
