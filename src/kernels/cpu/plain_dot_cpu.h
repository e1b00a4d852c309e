// Raw bodies of the plain-weight products for a few tokens (decode): rows of f32, f16 or bf16
// weights widened to f32 as they are read and dotted with f32 activations, with no f32 copy.
// No checks beyond SY_DCHECK: kernels/qmatmul.cpp checked shapes and sizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_types.h"
#include "kernels/cpu/qdot.h"

namespace sy::kernels::cpu {

// The most tokens kernels/qmatmul.cpp gives these bodies: more go through OpenBLAS.
inline constexpr int64_t kPlainDotMaxTokens = 4;

// The weight types of the bodies, as they name them.
enum class PlainKind { kF32, kF16, kBF16 };

// The tile body for f32, f16 or bf16 weights (cpu/qdot.h's QdotTile, on the calling thread, for
// kernels/qmatmul.cpp's units): y[t * y_stride + r] = (or += with accumulate) sum_i w_r[i] * x_t[i]
// for the tile's rows (any alignment) and tokens, kPlainDotMaxTokens at a time. The activations
// x_t are the f32 rows themselves, which copy_act_row_f32 writes (an ActQuantizeFn). Each output
// is summed in one order (two partial sums over alternate vectors, then the tail), whatever the
// number of tokens.
QdotTileFn plain_dot_tile(GgmlType type);
void copy_act_row_f32(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);

}  // namespace sy::kernels::cpu
