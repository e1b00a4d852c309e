// Causal attention of new tokens over a KV cache, for inference (prefill and decode).
//
// The cache holds S positions, the last T of which belong to the T new queries: query t sits at
// position p(t) = S - T + t and attends to the keys s with s <= p(t) (and p(t) - s < window when a
// sliding window is set). Grouped-query attention as in attention.h: query head h reads kv head
// h / (Hq / Hkv). Keys and values may have different head dims (multi-head latent attention:
// Dk = nope + rope dims, Dv = v_head_dim).
//
// Legend: T new tokens, S cached positions (S >= T), Hq query heads, Hkv kv heads, Dk key/query
// head dim, Dv value head dim.
//
// Numerics: scores, the softmax and the weighted sum are accumulated in f32 with the row maximum
// subtracted, one (token, head) row per OpenMP work item, so results do not depend on threads.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sy::kernels {

struct CachedAttentionOptions {
  float scale = 0.0f;  // score scale; 0 means 1 / sqrt(Dk)
  int64_t window = 0;  // sliding window (Mistral): keys with p(t) - s >= window are hidden; 0: none
};

// out: f32 [T, Hq, Dv] written
// q:   f32 [T, Hq, Dk]
// k:   f32 [S, Hkv, Dk] (the cache's first S rows)
// v:   f32 [S, Hkv, Dv]
void cached_attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                      const CachedAttentionOptions& opts = {});

}  // namespace sy::kernels
