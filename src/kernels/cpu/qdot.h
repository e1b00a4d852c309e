// Raw bodies behind kernels/qmatmul.h: the quantized activation layouts, their quantizer, and one
// tile function per (instruction set, weight type). No validation beyond SY_DCHECK: the entry
// checks shapes, types and sizes.
//
// Activations are quantized into one of two row layouts, chosen by the weight type. Both are ours
// (never stored in files), laid out so the SIMD bodies load whole registers without shuffles.
//
// kA32 (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl and iq4_xs weights): blocks of 32 values,
// q_i = rint(x_i / d) with d = max|x| / 127,
// gathered in groups of 4 blocks (the last group zero-padded), 256 bytes per group:
//   bytes   0..63   values 0..15 of blocks 0, 1, 2, 3 (int8)       "lo"
//   bytes  64..127  values 16..31 of blocks 0, 1, 2, 3 (int8)      "hi"
//   bytes 128..191  int32 lane j (0..15): -c * (sum of lo[4j..4j+3] + sum of hi[4j..4j+3]), with
//                   c = 8 for q4_0, 16 for q5_0 and 128 for q8_0 and iq4: the start value that
//                   turns vpdpbusd's unsigned weight codes (q4_0 and q5_0 codes; q8_0 values, and
//                   iq4 table values, + 128) back into signed products; c = -1 for q4_1 and q5_1,
//                   whose bodies start from 0 and scale these code sums by the blocks' mins
//   bytes 192..255  f32 lane j: d of block j / 4
// So 32-bit lane j of a 64-byte vector always belongs to block j / 4 of the group.
//
// kA256 (q2_K, q3_K, q4_K, q5_K, q6_K weights): super-blocks of 256 values with one
// d = max|x| / 127, 384 bytes each:
//   bytes   0..255  int8 values in the weight format's order: natural for q2_K, q3_K and q6_K
//                   (act_k4_order false); for q4_K and q5_K
//                   the 32-value sub-blocks in the order 0, 2, 1, 3, 4, 6, 5, 7, which is the order
//                   of their 4-bit codes in 64-byte loads (low nibbles of 64 bytes = sub-blocks 0
//                   and 2, high nibbles = 1 and 3, ...)
//   bytes 256..287  int16 sums of the values in natural order, 16 at a time (ggml's q8_K bsums)
//   bytes 288..291  f32 d; 292..319 padding
//   bytes 320..383  f32 d * (sum j of the int16 sums), j = 0..15: the same sums scaled, so that a
//                   body can take the q2_K and q4_K mins and the q3_K and q6_K offsets out with
//                   one f32 multiply-add
//
// A block with a NaN or an infinity gets d = NaN and zero codes (its products become NaN); a block
// whose largest magnitude is below 2^-100 gets d = 0 and zero codes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/ggml_types.h"

namespace sy::kernels::cpu {

enum class ActLayout { kA32, kA256 };

inline constexpr int64_t kA32GroupValues = 128;
inline constexpr size_t kA32GroupBytes = 256;
inline constexpr int64_t kA256Values = 256;
inline constexpr size_t kA256Bytes = 384;
// Blocks whose largest magnitude is below this are taken as zeros.
inline constexpr float kActTiny = 0x1p-100f;
// kA256 position p (32 values each) of q4_K / q5_K activations holds sub-block kK4SubOrder[p].
inline constexpr int kK4SubOrder[8] = {0, 2, 1, 3, 4, 6, 5, 7};

// Layout for a supported quantized weight type (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, iq4_xs ->
// kA32; q2_K, q3_K, q4_K, q5_K, q6_K -> kA256).
ActLayout act_layout(GgmlType weight_type);
// Whether kA256 activations for `weight_type` take the q4_K / q5_K order (kK4SubOrder).
inline bool act_k4_order(GgmlType weight_type) {
  return weight_type == GgmlType::kQ4_K || weight_type == GgmlType::kQ5_K;
}
// Bytes of one quantized activation row of k values (k a whole number of the weight's blocks).
size_t act_row_bytes(GgmlType weight_type, int64_t k);
// c of the kA32 start values: 8 for q4_0, 16 for q5_0, -1 for q4_1 and q5_1, 128 for q8_0, iq4_nl
// and iq4_xs.
int act_a32_bias(GgmlType weight_type);
// Quantizes one row: x f32 [k] -> act_row_bytes(weight_type, k) bytes at out (64-byte aligned).
// The portable reference; the SIMD versions below write the same bytes and exist in x86-64
// builds only (the caller checks the CPU has AVX2+FMA+F16C, or AVX-512 F/BW/VL/DQ).
void quantize_act_row(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);
void quantize_act_row_avx2(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);
void quantize_act_row_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);
using ActQuantizeFn = void (*)(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);
// The values a quantized row stands for, in natural order: out[i] = d(block of i) * q_i.
void dequantize_act_row(GgmlType weight_type, const uint8_t* act, int64_t k, float* out);

// kI16 (q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K, iq4_nl and iq4_xs weights, prefill on
// AVX-512 VNNI): the codes and d of kA32 (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, iq4_xs) or kA256
// (q4_K, q5_K, q6_K: one d per 256 values), laid out for
// products of many tokens against weights that the tile repacks the same way (so that one f32 step
// serves 16 blocks instead of 4). Groups of 16 blocks of 32 values (the last group zero-padded),
// 640 bytes per group:
//   bytes   0..511  8 vectors of 64 bytes: in vector i, 32-bit lane b holds codes 4 i .. 4 i + 3
//                   of block b
//   bytes 512..575  q8_0, q4_0, q5_0, iq4: int32 lane b = -c * (sum of block b's codes), c as
//                   for kA32; q4_K, q5_K, q6_K, q4_1, q5_1: f32 lane b = d * (sum of block b's
//                   codes), for the mins
//   bytes 576..639  f32 lane b: d of block b
inline constexpr int64_t kI16GroupValues = 512;
inline constexpr size_t kI16GroupBytes = 640;
// Bytes of one kI16 row of k values (k a whole number of 32-value blocks).
size_t act_row_bytes_i16(int64_t k);
// Quantizes one row to kI16 (x86-64 builds; the caller checks AVX-512 F/BW/VL). Codes and d are
// those of quantize_act_row for the same weight type.
void quantize_act_row_i16_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out);
// The values a kI16 row stands for, in natural order (tests).
void dequantize_act_row_i16(const uint8_t* act, int64_t k, float* out);

// P16 weight rows (q8_0, q4_0, q4_K, iq4_nl, iq4_xs with K a multiple of 512; kernels/qmatmul.h
// packs them at
// load time): the same bytes per row as the ggml row, in an order where the kI16 bodies read
// whole 64-byte vectors of codes with no unpacking beyond the nibble split. A row is its codes
// region, then its scales region:
//   codes   groups of 16 blocks of 32 values (512 values): 32-bit lane b of vector i holds codes
//           4 i .. 4 i + 3 of block b (lanes in block order), as in kI16 activations.
//           q8_0: 8 vectors (512 bytes) per group, codes + 128 (unsigned).
//           q4_0, q4_K, iq4: 4 vectors (256 bytes) per group; byte j of a lane holds code 4 i + j
//           in its low nibble and code 16 + 4 i + j in its high nibble, so the low nibbles of
//           vector i are kI16 vector i and the high nibbles kI16 vector i + 4. For q4_0 the byte is
//           the ggml byte itself (qs[4 i + j] of the block), as for iq4_nl; for q4_K and iq4_xs the
//           blocks are the 32-value sub-blocks, 16 per group (two super-blocks), and for iq4_xs
//           the byte is again the ggml one. iq4 codes are table indices (the body looks them up).
//   scales  q8_0, q4_0, iq4_nl: the 16 f16 block scales of each group, 32 bytes per group in
//           block order. iq4_xs: 16 bytes per group, its two super-blocks' 8-byte heads (f16 d,
//           scales_h, scales_l) as they are.
//           q4_K: 32 bytes per group, the 6-bit scales sc_b and mins mn_b of its 16 sub-blocks
//           (the ggml super-block packs the same 96 bits another way) and the two super-blocks'
//           d and dmin: bytes 0..15 byte b = (sc_b & 15) | (mn_b & 15) << 4; bytes 16..23 byte
//           j = sc_j >> 4 | (sc_{j+8} >> 4) << 2 | (mn_j >> 4) << 4 | (mn_{j+8} >> 4) << 6;
//           bytes 24..31 f16 d, dmin of the first super-block, then of the second.
inline constexpr int64_t kP16GroupValues = 512;
// Whether a row of k values of weight_type has a P16 form.
bool p16_fits(GgmlType weight_type, int64_t k);
// One row (k values, p16_fits) from ggml blocks to P16 and back; both are ggml_row_bytes long.
void pack_row_p16(GgmlType weight_type, const uint8_t* ggml, int64_t k, uint8_t* out);
void unpack_row_p16(GgmlType weight_type, const uint8_t* p16, int64_t k, uint8_t* out);

// One tile of the product: y[t * y_stride + r] (=|+=) sum_i W[r, i] * a[t, i] for r < rows,
// t < tokens. W row r at w + r * w_stride (ggml blocks), activation row t at act + t * act_stride
// (one of the layouts above, 64-byte aligned).
struct QdotTile {
  const uint8_t* w = nullptr;
  size_t w_stride = 0;
  int64_t rows = 0;
  const uint8_t* act = nullptr;
  size_t act_stride = 0;
  int64_t tokens = 0;
  int64_t k = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  bool accumulate = false;
};
using QdotTileFn = void (*)(const QdotTile& tile);

// The tile body of each instruction set for a weight type, or nullptr when that set has none for
// it (or is not compiled into this build). The caller checks the CPU can run the set.
QdotTileFn qdot_tile_scalar(GgmlType weight_type);
QdotTileFn qdot_tile_avx2(GgmlType weight_type);
QdotTileFn qdot_tile_avx512(GgmlType weight_type, bool vnni);
// The AVX-512 VNNI tile against kI16 activations for q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K,
// q6_K, iq4_nl and iq4_xs weights (nullptr for other types or outside x86-64 builds): it repacks
// its rows of W into the kI16 order in a per-thread buffer, then runs register tiles of several
// rows x several tokens. For tiles of many tokens.
QdotTileFn qdot_tile_i16_vnni(GgmlType weight_type);
// The AVX-512 VNNI tile for P16 weights of q8_0, q4_0, q4_K against kI16 activations, any number
// of tokens (nullptr for other types or outside x86-64 builds). Every output is computed with the
// operations of qdot_tile_i16_vnni's bodies in the same order, whatever the token count.
QdotTileFn qdot_tile_p16_vnni(GgmlType weight_type);

}  // namespace sy::kernels::cpu
