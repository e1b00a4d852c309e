// Rotary position embedding (RoPE) on queries or keys, and its backward.
//
// Layout: x is f32 [T, H, Dh]: T tokens, H heads, Dh head dim, row-major (one token's heads are
// contiguous). A batch of sequences is packed along T with explicit per-token positions.
//
// The first rotary_dim (R) dims of each head rotate in R/2 pairs; dims R..Dh pass through
// unchanged (partial rotary, e.g. GPT-NeoX / Phi). Pair i rotates by angle pos * inv_freq[i],
// inv_freq[i] = theta^(-2i/R), i in [0, R/2):
//   kNeox        pairs (i, i + R/2)  (GPT-NeoX, HF Llama/Mixtral/Qwen "rotate_half")
//   kInterleaved pairs (2i, 2i + 1)  (GPT-J; llama.cpp's default mode)
//   (a, b) -> (a cos - b sin, b cos + a sin).
//
// Precision: inv_freq is computed the way HF transformers does it, in f32 (see rope_inv_freq),
// so checkpoints trained with HF see the same frequencies. The angle pos * inv_freq and its
// cos/sin are then computed in double and rounded once to f32: HF's all-f32 angle loses up to
// pos * 2^-24 rad (2.4e-4 at position 4096), we lose ~1e-7 at any position.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sy::kernels {

enum class RopeLayout {
  kNeox,         // pairs (i, i + R/2)
  kInterleaved,  // pairs (2i, 2i + 1)
};

struct RopeOptions {
  float theta = 10000.0f;  // base of the frequencies, > 0
  RopeLayout layout = RopeLayout::kNeox;
  int64_t rotary_dim = 0;         // R: even, <= Dh; 0 means Dh (rotate everything)
  int64_t position_offset = 0;    // without a positions tensor, token t sits at offset + t
                                  // (offset = tokens already in the KV cache when decoding)
  std::vector<float> inv_freq;    // R/2 frequencies replacing theta's (YaRN); empty: from theta
  float attention_factor = 1.0f;  // cos and sin are multiplied by it (YaRN's mscale ratio)
};

// YaRN context extension (Peng et al. 2023, arXiv 2309.00071), as DeepSeek-V2/V3 configure it
// (rope_scaling type "yarn"). Frequencies whose wavelength fits many times into the original
// context keep their value, those that fit less than once are divided by `factor`, and a linear
// ramp over the dims between the two correction dims blends them.
struct YarnOptions {
  float factor = 1.0f;                // context extension factor s
  int64_t original_max_position = 0;  // original_max_position_embeddings
  float beta_fast = 32.0f;            // rotations bounding the extrapolated band
  float beta_slow = 1.0f;             // rotations bounding the interpolated band
};
// inv_freq[i] = inter[i] * ramp[i] + extra[i] * (1 - ramp[i]), extra = rope_inv_freq(R, theta),
// inter = extra / factor, ramp[i] = clamp((i - low) / (high - low), 0, 1) with
// low = max(floor(d(beta_fast)), 0), high = min(ceil(d(beta_slow)), R - 1),
// d(r) = R * ln(original_max_position / (2 pi r)) / (2 ln theta). f32 as DeepSeek's reference code.
std::vector<float> rope_yarn_inv_freq(int64_t rotary_dim, float theta, const YarnOptions& yarn);
// YaRN's magnitude correction 0.1 * mscale * ln(factor) + 1 (1 when factor <= 1).
float yarn_mscale(float factor, float mscale);

// inv_freq[i] = 1 / theta^((2i) / R) for i in [0, R/2), evaluated like HF's
// `1.0 / (base ** (torch.arange(0, R, 2).float() / R))`: exponent and quotient in f32, the power
// rounded to f32.
std::vector<float> rope_inv_freq(int64_t rotary_dim, float theta);

// out:       f32 [T, H, Dh] written; may be the same tensor as x (rotation in place)
// x:         f32 [T, H, Dh]
// positions: i32 [T], each >= 0, or an undefined Tensor to use position_offset + t
void rope_forward(Tensor& out, const Tensor& x, const Tensor& positions,
                  const RopeOptions& opts = {});

// Backward of rope_forward (rotation by the negative angle; pass-through dims copy the gradient).
// d_x:   f32 [T, H, Dh] accumulated
// d_out: f32 [T, H, Dh]
// positions, opts as in forward.
void rope_backward(Tensor& d_x, const Tensor& d_out, const Tensor& positions,
                   const RopeOptions& opts = {});

}  // namespace sy::kernels
