// Raw body of kernels/cached_attention.h on contiguous f32 buffers; no checks.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

struct CachedAttentionShape {
  int64_t tokens, cached, q_heads, kv_heads, key_dim, value_dim;
};

void cached_attention(float* out, const float* q, const float* k, const float* v,
                      const CachedAttentionShape& shape, float scale, int64_t window);

}  // namespace sy::kernels::cpu
