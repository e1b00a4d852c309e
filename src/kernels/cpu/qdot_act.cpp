// The portable activation quantizer (the reference the SIMD quantizers match byte for byte) and
// the layout helpers of cpu/qdot.h.
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/qdot.h"

namespace sy::kernels::cpu {

namespace {

// x * id rounded to the nearest integer, ties to even, for |x * id| <= 127.5: adding 1.5 * 2^23
// leaves no fraction bits, so the sum is rounded by the FPU's default mode (nearest-even), exactly
// as the SIMD bodies' cvtps2dq rounds.
inline int round_code(float v) {
  constexpr float kMagic = 0x1.8p23f;
  return static_cast<int>((v + kMagic) - kMagic);
}

// d and the codes of n values; the rules of qdot.h (NaN/inf -> d = NaN, codes 0; tiny -> 0).
// The largest magnitude is taken on the bit patterns (|x| orders as its bits do, and inf / NaN
// sort above every finite value), which compilers vectorise where a float max with its NaN rules
// would stay scalar.
void quantize_block(const float* x, int n, int8_t* q, float& d) {
  int32_t top = 0;
  for (int i = 0; i < n; ++i) {
    const auto bits = static_cast<int32_t>(std::bit_cast<uint32_t>(x[i]) & 0x7fffffffu);
    top = bits > top ? bits : top;
  }
  const float amax = std::bit_cast<float>(static_cast<uint32_t>(top));
  const bool finite = top < 0x7f800000;
  if (!finite || amax < kActTiny) {
    d = finite ? 0.0f : NAN;
    std::memset(q, 0, static_cast<size_t>(n));
    return;
  }
  d = amax / 127.0f;
  const float id = 127.0f / amax;
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(round_code(x[i] * id));
}

void quantize_a32(const float* x, int64_t k, int c, uint8_t* out) {
  const int64_t nb = k / 32;
  const int64_t groups = (nb + 3) / 4;
  for (int64_t g = 0; g < groups; ++g) {
    uint8_t* o = out + g * kA32GroupBytes;
    std::memset(o, 0, kA32GroupBytes);
    for (int j = 0; j < 4 && 4 * g + j < nb; ++j) {
      int8_t q[32];
      float d = 0.0f;
      quantize_block(x + (4 * g + j) * 32, 32, q, d);
      std::memcpy(o + 16 * j, q, 16);
      std::memcpy(o + 64 + 16 * j, q + 16, 16);
      for (int l = 0; l < 4; ++l) {
        int s = 0;
        for (int i = 0; i < 4; ++i) s += q[4 * l + i] + q[16 + 4 * l + i];
        const int32_t init = -c * s;
        std::memcpy(o + 128 + 4 * (4 * j + l), &init, 4);
        std::memcpy(o + 192 + 4 * (4 * j + l), &d, 4);
      }
    }
  }
}

void quantize_a256(const float* x, int64_t k, bool k4_order, uint8_t* out) {
  for (int64_t s = 0; s < k / 256; ++s) {
    uint8_t* o = out + s * kA256Bytes;
    std::memset(o, 0, kA256Bytes);
    int8_t q[256];
    float d = 0.0f;
    quantize_block(x + s * 256, 256, q, d);
    for (int p = 0; p < 8; ++p) {
      const int sub = k4_order ? kK4SubOrder[p] : p;
      std::memcpy(o + 32 * p, q + 32 * sub, 32);
    }
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[16 * j + i];
      const auto bs = static_cast<int16_t>(sum);
      const float scaled = d * static_cast<float>(sum);
      std::memcpy(o + 256 + 2 * j, &bs, 2);
      std::memcpy(o + 320 + 4 * j, &scaled, 4);
    }
    std::memcpy(o + 288, &d, 4);
  }
}

}  // namespace

ActLayout act_layout(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kIQ4_NL:
    case GgmlType::kIQ4_XS:
      return ActLayout::kA32;
    default:
      return ActLayout::kA256;
  }
}

int act_a32_bias(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::kQ4_0:
      return 8;
    case GgmlType::kQ5_0:
      return 16;
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
      return -1;
    default:
      return 128;
  }
}

size_t act_row_bytes(GgmlType weight_type, int64_t k) {
  if (act_layout(weight_type) == ActLayout::kA32) {
    return static_cast<size_t>((k / 32 + 3) / 4) * kA32GroupBytes;
  }
  return static_cast<size_t>(k / 256) * kA256Bytes;
}

void quantize_act_row(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  if (act_layout(weight_type) == ActLayout::kA32) {
    quantize_a32(x, k, act_a32_bias(weight_type), out);
  } else {
    quantize_a256(x, k, act_k4_order(weight_type), out);
  }
}

size_t act_row_bytes_i16(int64_t k) {
  return static_cast<size_t>((k / 32 + 15) / 16) * kI16GroupBytes;
}

void dequantize_act_row_i16(const uint8_t* act, int64_t k, float* out) {
  for (int64_t b = 0; b < k / 32; ++b) {
    const uint8_t* g = act + (b / 16) * kI16GroupBytes;
    const int lane = static_cast<int>(b % 16);
    float d = 0.0f;
    std::memcpy(&d, g + 576 + 4 * lane, 4);
    for (int i = 0; i < 32; ++i) {
      const auto code = static_cast<int8_t>(g[64 * (i / 4) + 4 * lane + i % 4]);
      out[32 * b + i] = d * static_cast<float>(code);
    }
  }
}

void dequantize_act_row(GgmlType weight_type, const uint8_t* act, int64_t k, float* out) {
  if (act_layout(weight_type) == ActLayout::kA32) {
    for (int64_t b = 0; b < k / 32; ++b) {
      const uint8_t* o = act + (b / 4) * kA32GroupBytes;
      const int j = static_cast<int>(b % 4);
      float d = 0.0f;
      std::memcpy(&d, o + 192 + 16 * j, 4);
      for (int i = 0; i < 32; ++i) {
        const uint8_t byte = i < 16 ? o[16 * j + i] : o[64 + 16 * j + i - 16];
        out[32 * b + i] = d * static_cast<float>(static_cast<int8_t>(byte));
      }
    }
    return;
  }
  const bool k4_order = act_k4_order(weight_type);
  for (int64_t s = 0; s < k / 256; ++s) {
    const uint8_t* o = act + s * kA256Bytes;
    float d = 0.0f;
    std::memcpy(&d, o + 288, 4);
    for (int p = 0; p < 8; ++p) {
      const int sub = k4_order ? kK4SubOrder[p] : p;
      for (int l = 0; l < 32; ++l) {
        out[256 * s + 32 * sub + l] = d * static_cast<float>(static_cast<int8_t>(o[32 * p + l]));
      }
    }
  }
}

}  // namespace sy::kernels::cpu
