// Raw attention bodies on contiguous row-major buffers; no checks (kernels/attention.cpp
// checked). Layouts as in kernels/attention.h with B explicit.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

struct AttentionShape {
  int64_t batch, tokens, q_heads, kv_heads, head_dim;
  float scale;
  bool causal;
};

// out [B, T, Hq, Dh] and lse [B, Hq, T] written.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& shape);

// d_q [B, T, Hq, Dh], d_k and d_v [B, T, Hkv, Dh] accumulated.
void attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out, const float* q,
                        const float* k, const float* v, const float* out, const float* lse,
                        const AttentionShape& shape);

}  // namespace sy::kernels::cpu
