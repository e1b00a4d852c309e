// The portable P16 row packing (cpu/qdot.h): a permutation of each row's bytes, so pack and
// unpack are exact inverses.
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/qdot.h"
#include "kernels/quant/formats.h"

namespace sy::kernels::cpu {

namespace {

constexpr int64_t kGroupBlocks = kP16GroupValues / 32;

// Byte j of lane b of vector i of a 4-bit group: code 4 i + j of block b low, 16 + 4 i + j high.
// Here for q4_K sub-block b (of the group's two super-blocks at sb): the codes of sub-block s of a
// super-block are nibble s % 2 of qs bytes 32 (s / 2) .. + 31, so both nibbles of a packed byte
// come from the same nibble position of two qs bytes 16 apart.
size_t k4_qs_byte(int64_t b, int i, int j) {  // within the group's 2 x 144 bytes
  const int64_t sb = b / 8, s = b % 8;
  return static_cast<size_t>(sb * 144 + 16 + 32 * (s / 2) + 4 * i + j);
}

// The 16 scales and mins of two ggml q4_K super-blocks (heads at a and b) in the P16 encoding
// (cpu/qdot.h) at out, 32 bytes.
void encode_k4_scales(const uint8_t* a, const uint8_t* b, uint8_t* out) {
  int sc[16], mn[16];
  for (int j = 0; j < 16; ++j) quant::k_scale_min(j % 8, (j < 8 ? a : b) + 4, sc[j], mn[j]);
  for (int j = 0; j < 16; ++j) out[j] = static_cast<uint8_t>((sc[j] & 15) | (mn[j] & 15) << 4);
  for (int j = 0; j < 8; ++j) {
    out[16 + j] = static_cast<uint8_t>(sc[j] >> 4 | (sc[j + 8] >> 4) << 2 | (mn[j] >> 4) << 4 |
                                       (mn[j + 8] >> 4) << 6);
  }
  std::memcpy(out + 24, a, 4);
  std::memcpy(out + 28, b, 4);
}

// The inverse: the two ggml heads (d, dmin, 12 packed bytes; quant::k_scale_min reads them).
void decode_k4_scales(const uint8_t* in, uint8_t* a, uint8_t* b) {
  for (int s = 0; s < 2; ++s) {
    uint8_t* head = s == 0 ? a : b;
    std::memcpy(head, in + 24 + 4 * s, 4);
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      const int lane = 8 * s + j, hi = in[16 + j] >> (2 * s);
      sc[j] = (in[lane] & 15) | (hi & 3) << 4;
      mn[j] = (in[lane] >> 4) | ((hi >> 4) & 3) << 4;
    }
    uint8_t* p = head + 4;
    for (int j = 0; j < 4; ++j) {
      p[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
      p[j + 4] = static_cast<uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
      p[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
  }
}

}  // namespace

bool p16_fits(GgmlType weight_type, int64_t k) {
  const bool type_ok = weight_type == GgmlType::kQ8_0 || weight_type == GgmlType::kQ4_0 ||
                       weight_type == GgmlType::kQ4_K || weight_type == GgmlType::kIQ4_NL ||
                       weight_type == GgmlType::kIQ4_XS;
  return type_ok && k > 0 && k % kP16GroupValues == 0;
}

void pack_row_p16(GgmlType weight_type, const uint8_t* ggml, int64_t k, uint8_t* out) {
  SY_DCHECK(p16_fits(weight_type, k));
  const int64_t groups = k / kP16GroupValues;
  switch (weight_type) {
    case GgmlType::kQ8_0: {
      uint8_t* scales = out + k;
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t b = 0; b < kGroupBlocks; ++b) {
          const uint8_t* blk = ggml + (g * kGroupBlocks + b) * 34;
          std::memcpy(scales + 32 * g + 2 * b, blk, 2);
          for (int i = 0; i < 8; ++i) {
            for (int j = 0; j < 4; ++j) {
              out[512 * g + 64 * i + 4 * b + j] = static_cast<uint8_t>(blk[2 + 4 * i + j] ^ 0x80);
            }
          }
        }
      }
      return;
    }
    case GgmlType::kQ4_0:
    case GgmlType::kIQ4_NL: {
      uint8_t* scales = out + k / 2;
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t b = 0; b < kGroupBlocks; ++b) {
          const uint8_t* blk = ggml + (g * kGroupBlocks + b) * 18;
          std::memcpy(scales + 32 * g + 2 * b, blk, 2);
          for (int i = 0; i < 4; ++i)
            std::memcpy(out + 256 * g + 64 * i + 4 * b, blk + 2 + 4 * i, 4);
        }
      }
      return;
    }
    case GgmlType::kIQ4_XS: {
      uint8_t* heads = out + k / 2;
      for (int64_t g = 0; g < groups; ++g) {
        for (int s = 0; s < 2; ++s) {
          const uint8_t* sb = ggml + (2 * g + s) * 136;
          std::memcpy(heads + 16 * g + 8 * s, sb, 8);
          for (int64_t j = 0; j < 8; ++j) {
            for (int i = 0; i < 4; ++i) {
              std::memcpy(out + 256 * g + 64 * i + 4 * (8 * s + j), sb + 8 + 16 * j + 4 * i, 4);
            }
          }
        }
      }
      return;
    }
    case GgmlType::kQ4_K: {
      uint8_t* heads = out + k / 2;
      for (int64_t g = 0; g < groups; ++g) {
        const uint8_t* sbs = ggml + g * 2 * 144;
        encode_k4_scales(sbs, sbs + 144, heads + 32 * g);
        for (int64_t b = 0; b < kGroupBlocks; ++b) {
          const int shift = static_cast<int>(b % 2) * 4;  // odd sub-blocks: high nibbles
          for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) {
              const int lo = (sbs[k4_qs_byte(b, i, j)] >> shift) & 0xf;
              const int hi = (sbs[k4_qs_byte(b, i, j) + 16] >> shift) & 0xf;
              out[256 * g + 64 * i + 4 * b + j] = static_cast<uint8_t>(lo | (hi << 4));
            }
          }
        }
      }
      return;
    }
    default:
      SY_DCHECK(false);
  }
}

void unpack_row_p16(GgmlType weight_type, const uint8_t* p16, int64_t k, uint8_t* out) {
  SY_DCHECK(p16_fits(weight_type, k));
  const int64_t groups = k / kP16GroupValues;
  switch (weight_type) {
    case GgmlType::kQ8_0: {
      const uint8_t* scales = p16 + k;
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t b = 0; b < kGroupBlocks; ++b) {
          uint8_t* blk = out + (g * kGroupBlocks + b) * 34;
          std::memcpy(blk, scales + 32 * g + 2 * b, 2);
          for (int i = 0; i < 8; ++i) {
            for (int j = 0; j < 4; ++j) {
              blk[2 + 4 * i + j] = static_cast<uint8_t>(p16[512 * g + 64 * i + 4 * b + j] ^ 0x80);
            }
          }
        }
      }
      return;
    }
    case GgmlType::kQ4_0:
    case GgmlType::kIQ4_NL: {
      const uint8_t* scales = p16 + k / 2;
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t b = 0; b < kGroupBlocks; ++b) {
          uint8_t* blk = out + (g * kGroupBlocks + b) * 18;
          std::memcpy(blk, scales + 32 * g + 2 * b, 2);
          for (int i = 0; i < 4; ++i)
            std::memcpy(blk + 2 + 4 * i, p16 + 256 * g + 64 * i + 4 * b, 4);
        }
      }
      return;
    }
    case GgmlType::kIQ4_XS: {
      const uint8_t* heads = p16 + k / 2;
      for (int64_t g = 0; g < groups; ++g) {
        for (int s = 0; s < 2; ++s) {
          uint8_t* sb = out + (2 * g + s) * 136;
          std::memcpy(sb, heads + 16 * g + 8 * s, 8);
          for (int64_t j = 0; j < 8; ++j) {
            for (int i = 0; i < 4; ++i) {
              std::memcpy(sb + 8 + 16 * j + 4 * i, p16 + 256 * g + 64 * i + 4 * (8 * s + j), 4);
            }
          }
        }
      }
      return;
    }
    case GgmlType::kQ4_K: {
      const uint8_t* heads = p16 + k / 2;
      for (int64_t g = 0; g < groups; ++g) {
        uint8_t* sbs = out + g * 2 * 144;
        decode_k4_scales(heads + 32 * g, sbs, sbs + 144);
        std::memset(sbs + 16, 0, 128);
        std::memset(sbs + 144 + 16, 0, 128);
        for (int64_t b = 0; b < kGroupBlocks; ++b) {
          const int shift = static_cast<int>(b % 2) * 4;
          for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) {
              const int v = p16[256 * g + 64 * i + 4 * b + j];
              uint8_t& lo = sbs[k4_qs_byte(b, i, j)];
              uint8_t& hi = sbs[k4_qs_byte(b, i, j) + 16];
              lo = static_cast<uint8_t>(lo | ((v & 0xf) << shift));
              hi = static_cast<uint8_t>(hi | ((v >> 4) << shift));
            }
          }
        }
      }
      return;
    }
    default:
      SY_DCHECK(false);
  }
}

}  // namespace sy::kernels::cpu
