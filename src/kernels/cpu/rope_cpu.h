// Raw RoPE body on contiguous [T, H, Dh] f32 buffers; no checks (kernels/rope.cpp checked).
// Parallel over tokens with OpenMP; SIMD through Highway's run-time target choice.
#pragma once

#include <cstdint>

namespace sy::kernels::cpu {

struct RopeShape {
  int64_t tokens, heads, head_dim, rotary_dim;
};

// Rotates every head of every token: out = R(sign * angle) x on the first rotary_dim dims,
// out = x on the rest. sign is +1 (forward) or -1 (backward). With accumulate, out += instead of
// out = (out must then not alias x); without, out may equal x. positions may be null: token t is
// then at position_offset + t. inv_freq has rotary_dim / 2 entries. cos and sin are multiplied by
// `scale` (YaRN's attention factor; 1 otherwise) before rounding to f32.
void rope_apply(float* out, const float* x, const int32_t* positions, int64_t position_offset,
                const float* inv_freq, const RopeShape& shape, bool interleaved, float sign,
                bool accumulate, double scale);

}  // namespace sy::kernels::cpu
