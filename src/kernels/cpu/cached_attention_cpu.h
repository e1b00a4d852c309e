// Raw body of kernels/cached_attention.h on contiguous buffers; no checks.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

struct CachedAttentionShape {
  int64_t tokens, cached, q_heads, kv_heads, key_dim, value_dim;
  // 0: position-major k [S, Hkv, Dk], v [S, Hkv, Dv]. Otherwise head-major k [Hkv, C, Dk],
  // v [Hkv, C, Dv] with C = head_capacity >= S positions per head, of which [0, S) are read.
  int64_t head_capacity = 0;
};

// q f32 [T, Hq, Dk]; k and v (laid out as the shape says) f32 (kv_f16 false) or IEEE f16 bits
// (kv_f16 true); out f32 [T, Hq, Dv].
void cached_attention(float* out, const float* q, const void* k, const void* v, bool kv_f16,
                      const CachedAttentionShape& shape, float scale, int64_t window);

}  // namespace sy::kernels::cpu
