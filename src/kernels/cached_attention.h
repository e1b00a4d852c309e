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
// Keys and values are f32 or f16 (the inference KV cache; converted to f32 as read).
// Numerics, f32 throughout: prefill (more than 4 new tokens) takes each query head's blocks of
// 128 queries over the keys in tiles of 256 positions, with an online softmax (running max and
// sum, rescaled as the max grows) between the scores' GEMM and the values' GEMM (OpenBLAS); the
// work items are independent, so results do not depend on the thread count. Decode steps (up to
// 4 new tokens) split each token's keys across the threads and merge their partial softmax
// states, flash-decoding style; over a head-major cache they share out (kv head, key range)
// pairs instead. Memory beyond the output is a few tiles per thread.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sy::kernels {

// Calls of up to this many new tokens are decode steps (see above); more are prefill.
inline constexpr int64_t kCachedAttentionDecodeTokens = 4;

struct CachedAttentionOptions {
  float scale = 0.0f;  // score scale; 0 means 1 / sqrt(Dk)
  int64_t window = 0;  // sliding window (Mistral): keys with p(t) - s >= window are hidden; 0: none
};

// out: f32 [T, Hq, Dv] written
// q:   f32 [T, Hq, Dk]
// k:   f32 or f16 [S, Hkv, Dk] (the cache's first S rows)
// v:   same dtype as k, [S, Hkv, Dv]
void cached_attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                      const CachedAttentionOptions& opts = {});

// The same over a head-major cache (the model's KV cache, model/kv_cache.h): k [Hkv, C, Dk] and
// v [Hkv, C, Dv], each kv head's C >= S positions back to back, of which the first S = cached
// are read. Decode steps then take each kv head's keys and values as two sequential streams
// (see cpu/cached_attention_cpu.cpp, attend_heads).
void cached_attention_heads(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                            int64_t cached, const CachedAttentionOptions& opts = {});

}  // namespace sy::kernels
