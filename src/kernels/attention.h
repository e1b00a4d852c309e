// Scaled dot-product attention for training (causal by default), with grouped-query attention,
// and its backward.
//
// Legend: B sequences, T tokens per sequence, Hq query heads, Hkv key/value heads, Dh head dim.
// Tensors are row-major [B, T, H, Dh] (one token's heads contiguous, the layout q/k/v have
// after the projection GEMM), or [T, H, Dh] for one sequence (B = 1). All sequences of a batch
// have the same T; sequences of different lengths are separate calls (there is no padding mask).
//
// GQA: Hq is a multiple of Hkv, and query head h reads kv head h / (Hq / Hkv) (Hkv = Hq is
// plain multi-head, Hkv = 1 multi-query attention).
//   out[t, h] = sum_s P[h, t, s] v[s, g(h)],  P[h, t, :] = softmax_s(scale * q[t, h] . k[s, g(h)])
// with s restricted to s <= t when causal.
//
// Saved state, flash-attention style: forward keeps only the log-sum-exp of every score row, and
// backward recomputes the probabilities from q, k and lse one block of queries at a time, so
// memory stays O(T * H) instead of O(T^2 * H). Work runs per (sequence, head) on OpenMP threads,
// with the block products done by OpenBLAS.
#pragma once

#include "core/tensor.h"

namespace sy::kernels {

struct AttentionOptions {
  float scale = 0.0f;  // score scale; 0 means 1 / sqrt(Dh)
  bool causal = true;  // token t attends to tokens s <= t only
};

// out: f32 [B, T, Hq, Dh] written
// lse: f32 [B, Hq, T] written (log-sum-exp of the scaled, masked scores of each query row);
//      saved for backward. For rank-3 inputs out is [T, Hq, Dh] and lse [Hq, T].
// q:   f32 [B, T, Hq, Dh]
// k:   f32 [B, T, Hkv, Dh]
// v:   f32 [B, T, Hkv, Dh]
void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionOptions& opts = {});

// d_q: f32 [B, T, Hq, Dh]  accumulated
// d_k: f32 [B, T, Hkv, Dh] accumulated (summed over the Hq / Hkv query heads sharing each kv
//      head, in head order, so the result does not depend on the thread count)
// d_v: f32 [B, T, Hkv, Dh] accumulated (same)
// d_out: f32 [B, T, Hq, Dh]
// q, k, v, opts as given to forward; out and lse as forward returned them.
void attention_backward(Tensor& d_q, Tensor& d_k, Tensor& d_v, const Tensor& d_out, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionOptions& opts = {});

}  // namespace sy::kernels
