// Raw bodies of the plain-weight products for a few tokens (decode): rows of f32, f16 or bf16
// weights widened to f32 as they are read and dotted with f32 activations, with no f32 copy.
// No checks beyond SY_DCHECK: kernels/qmatmul.cpp checked shapes and sizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_types.h"
#include "kernels/cpu/qdot.h"

namespace sy::kernels::cpu {

// The most tokens plain_dot_rows takes in one call.
inline constexpr int64_t kPlainDotMaxTokens = 4;

// The weight types of plain_dot_rows, as its bodies name them.
enum class PlainKind { kF32, kF16, kBF16 };

// y[t * ys + r] = (or += with accumulate) sum_i w_r[i] * x_t[i] for rows r < rows (row r: k
// values of `type`, f32, f16 or bf16, at w + r * ws bytes, any alignment) and tokens t < tokens
// (x_t: k f32 at x + t * xs). Each output is summed in one order (two partial sums over
// alternate vectors, then the tail), whatever the thread count or the number of tokens. Rows are
// split across threads when `parallel`.
void plain_dot_rows(GgmlType type, const uint8_t* w, size_t ws, int64_t rows, const float* x,
                    int64_t xs, int64_t tokens, int64_t k, float* y, int64_t ys, bool accumulate,
                    bool parallel);

// The same products as tile bodies for kernels/qmatmul.cpp's units (cpu/qdot.h's QdotTile, on the
// calling thread, kPlainDotMaxTokens tokens at a time), for f32, f16 and bf16; the activations
// are the f32 rows themselves, which copy_act_row_f32 writes (an ActQuantizeFn).
QdotTileFn plain_dot_tile(GgmlType type);
void copy_act_row_f32(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);

}  // namespace sy::kernels::cpu
