#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/ggml_types.h"
#include "core/rng.h"
#include "kernels/quant/quant.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

using Bytes = std::vector<uint8_t>;

using ::sy::test::error_of;

int64_t block_values(GgmlType type) { return ggml_type_info(type).block_values; }
int64_t block_bytes(GgmlType type) { return ggml_type_info(type).block_bytes; }

// Writes `value` (exactly representable) as a little-endian f16.
void put_f16(Bytes& b, size_t offset, float value) {
  const uint16_t h = f32_to_f16(value);
  ASSERT_EQ(f16_to_f32(h), value) << "test value not exact in f16";
  b[offset] = static_cast<uint8_t>(h & 0xff);
  b[offset + 1] = static_cast<uint8_t>(h >> 8);
}

float get_f16(const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

std::vector<float> dequant(GgmlType type, const Bytes& blocks) {
  const int64_t n = static_cast<int64_t>(blocks.size()) / block_bytes(type) * block_values(type);
  std::vector<float> out(static_cast<size_t>(n), -12345.0f);
  dequantize_row(type, blocks.data(), out.data(), n);
  return out;
}

void expect_values(const std::vector<float>& got, const std::vector<float>& want,
                   const char* what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && bad++ < 8) {
      ADD_FAILURE() << what << ": value " << i << " is " << got[i] << ", expected " << want[i];
    }
  }
}

// ---- (1) hand-built blocks -------------------------------------------------------------------

TEST(Quant, Q8_0HandBuiltBlock) {
  Bytes b(34, 0);
  put_f16(b, 0, 0.5f);
  std::vector<float> want(32);
  for (int i = 0; i < 32; ++i) {
    b[2 + i] = static_cast<uint8_t>(i * 8);  // as int8: 0, 8, ..., 120, -128, ..., -8
    want[i] = static_cast<float>(static_cast<int8_t>(i * 8)) * 0.5f;
  }
  expect_values(dequant(GgmlType::kQ8_0, b), want, "q8_0");
  EXPECT_EQ(dequant(GgmlType::kQ8_0, b)[16], -64.0f);  // byte 0x80 is -128
}

TEST(Quant, Q4_0AndQ4_1HandBuiltBlocks) {
  Bytes b(18, 0);
  put_f16(b, 0, -2.0f);
  std::vector<float> want(32);
  for (int j = 0; j < 16; ++j) {
    b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    want[j] = static_cast<float>(j - 8) * -2.0f;            // low nibble: value j
    want[j + 16] = static_cast<float>(15 - j - 8) * -2.0f;  // high nibble: value j + 16
  }
  expect_values(dequant(GgmlType::kQ4_0, b), want, "q4_0");
  EXPECT_EQ(dequant(GgmlType::kQ4_0, b)[0], 16.0f);
  EXPECT_EQ(dequant(GgmlType::kQ4_0, b)[16], -14.0f);

  Bytes c(20, 0);
  put_f16(c, 0, 0.25f);
  put_f16(c, 2, -1.5f);
  for (int j = 0; j < 16; ++j) {
    c[4 + j] = static_cast<uint8_t>(j | ((j ^ 5) << 4));
    want[j] = static_cast<float>(j) * 0.25f - 1.5f;
    want[j + 16] = static_cast<float>(j ^ 5) * 0.25f - 1.5f;
  }
  expect_values(dequant(GgmlType::kQ4_1, c), want, "q4_1");
  EXPECT_EQ(dequant(GgmlType::kQ4_1, c)[16], -0.25f);  // (0 ^ 5) * 0.25 - 1.5
}

TEST(Quant, Q5_0AndQ5_1HandBuiltBlocks) {
  // qh as a little-endian u32: bits 0, 3 and 16 set: values 0, 3 and 16 get bit 4.
  Bytes b(22, 0);
  put_f16(b, 0, 1.0f);
  b[2] = 0x09;  // bits 0 and 3
  b[4] = 0x01;  // bit 16
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = dequant(GgmlType::kQ5_0, b);
  EXPECT_EQ(y[0], 0.0f);    // (0 | 16) - 16
  EXPECT_EQ(y[1], -15.0f);  // 1 - 16
  EXPECT_EQ(y[3], 3.0f);    // (3 | 16) - 16
  EXPECT_EQ(y[16], 15.0f);  // (15 | 16) - 16
  EXPECT_EQ(y[17], -2.0f);  // 14 - 16
  EXPECT_EQ(y[31], -16.0f);

  Bytes c(24, 0);
  put_f16(c, 0, 0.5f);
  put_f16(c, 2, 3.0f);
  c[4 + 3] = 0x80;  // bit 31: value 31
  c[4 + 1] = 0x02;  // bit 9: value 9
  for (int j = 0; j < 16; ++j) c[8 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> z = dequant(GgmlType::kQ5_1, c);
  EXPECT_EQ(z[0], 3.0f);
  EXPECT_EQ(z[9], (9 + 16) * 0.5f + 3.0f);
  EXPECT_EQ(z[16], 15 * 0.5f + 3.0f);
  EXPECT_EQ(z[31], (0 + 16) * 0.5f + 3.0f);
  EXPECT_EQ(z[30], 1 * 0.5f + 3.0f);
}

TEST(Quant, Q2_KHandBuiltBlock) {
  // Layout: scales[16] @0, qs[64] @16, d @80, dmin @82.
  Bytes b(84, 0);
  put_f16(b, 80, 2.0f);
  put_f16(b, 82, 0.25f);
  b[5] = 0x3a;   // sub-block 5 (values 80..95): scale 10, min 3
  b[13] = 0x51;  // sub-block 13 (values 208..223): scale 1, min 5
  // Value 85 = first half, 32 * 2 + 21: bits 4..5 of qs byte 21.
  b[16 + 21] = 3 << 4;
  // Value 220 = second half, 32 * 2 + 28: bits 4..5 of qs byte 32 + 28.
  b[16 + 32 + 28] = 2 << 4;
  std::vector<float> want(256, 0.0f);
  for (int i = 80; i < 96; ++i) want[i] = -0.75f;    // 2*10*0 - 0.25*3
  for (int i = 208; i < 224; ++i) want[i] = -1.25f;  // 2*1*0 - 0.25*5
  want[85] = 2.0f * 10 * 3 - 0.75f;
  want[220] = 2.0f * 1 * 2 - 1.25f;
  expect_values(dequant(GgmlType::kQ2_K, b), want, "q2_K");
}

TEST(Quant, Q3_KHandBuiltBlock) {
  // Layout: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. Stored scale s means s - 32.
  Bytes b(110, 0);
  put_f16(b, 108, 0.5f);
  // Scale 5 = -7 (stored 25 = 0b01'1001): low nibble of byte 5, top bits 2..3 of byte 9.
  // Scale 13 = 20 (stored 52 = 0b11'0100): high nibble of byte 5, top bits 6..7 of byte 9.
  b[96 + 5] = 0x49;
  b[96 + 9] = 0xc4;
  // Value 85 (sub-block 5) = first half, 32 * 2 + 21: low bits 4..5 of qs byte 21, high bit =
  // bit 2 of hmask[21].
  b[32 + 21] = 3 << 4;
  b[21] = 1 << 2;
  // Value 220 (sub-block 13) = second half, 32 * 2 + 28: bit 6 of hmask[28], low bits 1.
  b[32 + 32 + 28] = 1 << 4;
  b[28] = 1 << 6;
  // Value 221: low bits 2, high bit clear: q = 2 - 4.
  b[32 + 32 + 29] = 2 << 4;
  std::vector<float> want(256, 0.5f * -32 * -4);  // every other sub-block: scale -32, q = -4
  for (int i = 80; i < 96; ++i) want[i] = 0.5f * -7 * -4;
  for (int i = 208; i < 224; ++i) want[i] = 0.5f * 20 * -4;
  want[85] = 0.5f * -7 * 3;
  want[220] = 0.5f * 20 * 1;
  want[221] = 0.5f * 20 * -2;
  expect_values(dequant(GgmlType::kQ3_K, b), want, "q3_K");
}

// The 12 packed scale bytes shared by the q4_K and q5_K cases below: sub-block 0 scale 3 min 1,
// sub-block 1 scale 10 min 4, sub-block 5 scale 37 (0b10'0101) min 50 (0b11'0010), others 0.
void put_k4_scales(Bytes& b, size_t at) {
  b[at + 0] = 3;                       // sub 0 scale; top bits = sub 4 scale's (0)
  b[at + 4] = 1;                       // sub 0 min; top bits = sub 4 min's (0)
  b[at + 1] = 10 | (0b10 << 6);        // sub 1 scale | sub 5 scale's top bits
  b[at + 5] = 4 | (0b11 << 6);         // sub 1 min | sub 5 min's top bits
  b[at + 9] = 0b0101 | (0b0010 << 4);  // sub 5: scale low nibble | min low nibble
}

TEST(Quant, Q4_KHandBuiltBlock) {
  // Layout: d @0, dmin @2, scales[12] @4, qs[128] @16; chunk c of 64 values = qs bytes 32c..,
  // low nibbles first.
  Bytes b(144, 0);
  put_f16(b, 0, 1.0f);
  put_f16(b, 2, 0.5f);
  put_k4_scales(b, 4);
  b[16 + 3] = 2 | (15 << 4);  // value 3 (sub 0) = 2, value 35 (sub 1) = 15
  b[16 + 8] = 7 << 4;         // value 40 (sub 1) = 7
  b[16 + 64 + 3] = 9 << 4;    // value 163 = chunk 2, 32 + 3: sub 5
  std::vector<float> want(256, 0.0f);
  for (int i = 0; i < 32; ++i) want[i] = -0.5f;      // sub 0: 3 * 0 - 0.5 * 1
  for (int i = 32; i < 64; ++i) want[i] = -2.0f;     // sub 1: 10 * 0 - 0.5 * 4
  for (int i = 160; i < 192; ++i) want[i] = -25.0f;  // sub 5: 37 * 0 - 0.5 * 50
  want[3] = 3 * 2 - 0.5f;
  want[35] = 10 * 15 - 2.0f;
  want[40] = 10 * 7 - 2.0f;
  want[163] = 37 * 9 - 25.0f;
  expect_values(dequant(GgmlType::kQ4_K, b), want, "q4_K");
}

TEST(Quant, Q5_KHandBuiltBlock) {
  // Layout: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48; bit 4 of value i is bit
  // i / 32 of qh[i % 32].
  Bytes b(176, 0);
  put_f16(b, 0, 1.0f);
  put_f16(b, 2, 0.5f);
  put_k4_scales(b, 4);
  b[48 + 3] = 2 | (15 << 4);        // value 3 low bits 2, value 35 low bits 15
  b[48 + 8] = 7 << 4;               // value 40 low bits 7
  b[48 + 64 + 3] = 9 << 4;          // value 163 low bits 9
  b[16 + 3] = (1 << 0) | (1 << 5);  // bit 4 of values 3 and 163 (35 keeps it clear)
  b[16 + 8] = 1 << 1;               // bit 4 of value 40
  std::vector<float> want(256, 0.0f);
  for (int i = 0; i < 32; ++i) want[i] = -0.5f;
  for (int i = 32; i < 64; ++i) want[i] = -2.0f;
  for (int i = 160; i < 192; ++i) want[i] = -25.0f;
  want[3] = 3 * 18 - 0.5f;
  want[35] = 10 * 15 - 2.0f;
  want[40] = 10 * 23 - 2.0f;
  want[163] = 37 * 25 - 25.0f;
  expect_values(dequant(GgmlType::kQ5_K, b), want, "q5_K");
}

TEST(Quant, Q6_KHandBuiltBlock) {
  // Layout: ql[128] @0, qh[64] @128, int8 scales[16] @192, d @208; value = d * scale * (q - 32).
  Bytes b(210, 0);
  put_f16(b, 208, 0.25f);
  b[192 + 11] = static_cast<uint8_t>(-3);  // sub-block 11 = values 176..191
  b[192 + 6] = 100;                        // sub-block 6 = values 96..111
  // Value 180 = second half, group 1, l = 20: low nibble of ql[64 + 32 + 20], bits 2..3 of
  // qh[32 + 20]: q = 5 | (2 << 4) = 37.
  b[64 + 32 + 20] = 5;
  b[128 + 32 + 20] = 2 << 2;
  // Value 100 = first half, group 3, l = 4: high nibble of ql[32 + 4], bits 6..7 of qh[4]: 63.
  b[32 + 4] = 0xf0;
  b[128 + 4] = 3 << 6;
  std::vector<float> want(256, 0.0f);
  for (int i = 176; i < 192; ++i) want[i] = 0.25f * -3 * -32;
  for (int i = 96; i < 112; ++i) want[i] = 0.25f * 100 * -32;
  want[180] = 0.25f * -3 * 5;
  want[100] = 0.25f * 100 * 31;
  expect_values(dequant(GgmlType::kQ6_K, b), want, "q6_K");
}

TEST(Quant, Mxfp4HandBuiltBlocks) {
  const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  Bytes b(17 * 3, 0);
  b[0] = 130;  // scale 2^(130 - 127) = 8
  for (int j = 0; j < 16; ++j) b[1 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  b[17] = 0;     // scale 2^-127 (subnormal scale: 0.5 * 2^-127 = 2^-128)
  b[18] = 0x21;  // value 0 = 0.5, value 16 = 1.0
  b[34] = 255;   // ggml decodes e = 255 as 2^128: 0.5 * 2^128 = 2^127, 1.0 * 2^128 = inf
  b[35] = 0x21;
  const std::vector<float> y = dequant(GgmlType::kMXFP4, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], e2m1[j] * 8) << j;
    EXPECT_EQ(y[j + 16], e2m1[15 - j] * 8) << j;
  }
  EXPECT_EQ(std::bit_cast<uint32_t>(y[8]), 0u) << "code 8 (negative zero) decodes to +0 as in ggml";
  EXPECT_EQ(y[32], std::ldexp(1.0f, -128));
  EXPECT_EQ(y[48], std::ldexp(1.0f, -127));
  EXPECT_EQ(y[64], std::ldexp(1.0f, 127));
  EXPECT_EQ(y[80], std::numeric_limits<float>::infinity());
}

// iq4_nl: { f16 d; qs[16] } as q4_0's layout, value = d * table[code].
TEST(Quant, Iq4NlHandBuiltBlock) {
  const float table[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                           1,    13,   25,  38,  53,  69,  89,  113};
  Bytes b(18, 0);
  put_f16(b, 0, 0.5f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> want(32);
  for (int j = 0; j < 16; ++j) want[j] = 0.5f * table[j], want[16 + j] = 0.5f * table[15 - j];
  expect_values(dequant(GgmlType::kIQ4_NL, b), want, "iq4_nl");
}

// iq4_xs: { f16 d; u16 scales_h; u8 scales_l[4]; qs[128] }; sub-block j's 6-bit scale ls is the
// nibble j % 2 of scales_l[j / 2] topped by bits 2j, 2j + 1 of scales_h; value = d * (ls - 32) *
// table[code].
TEST(Quant, Iq4XsHandBuiltBlock) {
  Bytes b(136, 0);
  put_f16(b, 0, 0.25f);
  // Sub-block 5: ls = 0x7 | (2 << 4) = 39 -> scale 7; sub-block 2: ls = 0xf | (1 << 4) = 31 -> -1.
  b[4 + 2] = 0x70;                                 // scales_l[2] high nibble: sub-block 5
  b[4 + 1] = 0x0f;                                 // scales_l[1] low nibble: sub-block 2
  const uint16_t scales_h = (2 << 10) | (1 << 4);  // bits 10..11: sub-block 5; bits 4..5: 2
  b[2] = static_cast<uint8_t>(scales_h & 0xff);
  b[3] = static_cast<uint8_t>(scales_h >> 8);
  b[8 + 16 * 5 + 3] = 0xe2;  // sub-block 5: value 3 code 2 (-83), value 19 code 14 (89)
  b[8 + 16 * 2 + 0] = 0x0f;  // sub-block 2: value 0 code 15 (113), value 16 code 0 (-127)
  std::vector<float> want(256);
  for (int j = 0; j < 8; ++j) {  // every other sub-block has ls = 0: scale -32, codes 0 (-127)
    const float scale = j == 5 ? 7.0f : j == 2 ? -1.0f : -32.0f;
    for (int i = 0; i < 32; ++i) want[32 * j + i] = 0.25f * scale * -127.0f;
  }
  want[32 * 5 + 3] = 0.25f * 7 * -83;
  want[32 * 5 + 19] = 0.25f * 7 * 89;
  want[32 * 2 + 0] = 0.25f * -1 * 113;
  expect_values(dequant(GgmlType::kIQ4_XS, b), want, "iq4_xs");
}

// ---- (2) random blocks against the NumPy reference ---------------------------------------------

struct FormatCase {
  GgmlType type;
  std::vector<size_t> f16_fields;  // byte offsets of f16 scales, forced finite
};

const std::vector<FormatCase>& all_formats() {
  static const std::vector<FormatCase> formats = {
      {GgmlType::kQ8_0, {0}},   {GgmlType::kQ4_0, {0}},    {GgmlType::kQ4_1, {0, 2}},
      {GgmlType::kQ5_0, {0}},   {GgmlType::kQ5_1, {0, 2}}, {GgmlType::kQ2_K, {80, 82}},
      {GgmlType::kQ3_K, {108}}, {GgmlType::kQ4_K, {0, 2}}, {GgmlType::kQ5_K, {0, 2}},
      {GgmlType::kQ6_K, {208}}, {GgmlType::kMXFP4, {}},    {GgmlType::kIQ4_NL, {0}},
      {GgmlType::kIQ4_XS, {0}}, {GgmlType::kF32, {}},      {GgmlType::kF16, {}},
      {GgmlType::kBF16, {}},
  };
  return formats;
}

// Random bytes; every f16 scale field gets a random finite f16 (subnormals included).
Bytes random_blocks(const FormatCase& format, int64_t nblocks, Rng& rng) {
  const int64_t bytes = nblocks * block_bytes(format.type);
  Bytes b(static_cast<size_t>(bytes));
  for (auto& v : b) v = static_cast<uint8_t>(rng.next_u64());
  for (int64_t k = 0; k < nblocks; ++k) {
    for (size_t off : format.f16_fields) {
      auto h = static_cast<uint16_t>(rng.next_u64());
      if ((h & 0x7c00) == 0x7c00) h &= 0xbfff;  // inf/NaN exponent -> finite
      const size_t at = static_cast<size_t>(k * block_bytes(format.type)) + off;
      b[at] = static_cast<uint8_t>(h & 0xff);
      b[at + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
  if (format.type == GgmlType::kMXFP4) {  // every scale exponent, 0 and 255 included
    for (int64_t k = 0; k < nblocks; ++k) b[static_cast<size_t>(k * 17)] = static_cast<uint8_t>(k);
  }
  return b;
}

Tensor bytes_tensor(const Bytes& b) {
  Tensor t = Tensor::zeros({static_cast<int64_t>(b.size())}, DType::U8);
  std::memcpy(t.mutable_bytes(), b.data(), b.size());
  return t;
}

// Bit-for-bit equality, NaN matching any NaN (payloads of plain f16/f32 NaNs are not compared).
int count_bit_mismatches(const float* got, const float* want, int64_t n, const std::string& what) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(got[i]) && std::isnan(want[i])) continue;
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]) && bad++ < 5) {
      ADD_FAILURE() << what << ": value " << i << " is " << got[i] << " (bits " << std::hex
                    << std::bit_cast<uint32_t>(got[i]) << "), expected " << want[i] << " (bits "
                    << std::bit_cast<uint32_t>(want[i]) << ")" << std::dec;
    }
  }
  return bad;
}

TEST(Quant, RandomBlocksDecodeBitForBitLikeNumpy) {
  Rng rng(11);
  std::vector<Bytes> inputs;
  std::vector<test::ReferenceCase> cases;
  for (const FormatCase& format : all_formats()) {
    // 256 blocks of the 32-value formats (all mxfp4 exponents), 64 super-blocks of the K ones.
    const int64_t nblocks = block_values(format.type) == 256 ? 64 : 256;
    inputs.push_back(random_blocks(format, nblocks, rng));
    cases.push_back({{{"blocks", bytes_tensor(inputs.back())}},
                     {{"op", "dequantize"}, {"type", ggml_type_info(format.type).name}}});
  }
  const auto ref = test::run_reference_cases("ggml_quant", cases);
  for (size_t c = 0; c < cases.size(); ++c) {
    const GgmlType type = all_formats()[c].type;
    const std::string name(ggml_type_info(type).name);
    const std::vector<float> ours = dequant(type, inputs[c]);
    const Tensor& want = ref[c].at("y");
    ASSERT_EQ(want.numel(), static_cast<int64_t>(ours.size())) << name;
    EXPECT_EQ(count_bit_mismatches(ours.data(), want.data<float>(), want.numel(), name), 0) << name;
    // The tensor entry (rows of 2 blocks) decodes the same bytes the same way.
    const int64_t cols = 2 * block_values(type);
    const Tensor t = dequantize(inputs[c].data(), inputs[c].size(), type,
                                {static_cast<int64_t>(ours.size()) / cols, cols});
    EXPECT_EQ(count_bit_mismatches(t.data<float>(), ours.data(), t.numel(), name + " tensor"), 0);
  }
}

TEST(Quant, LargeTensorsDecodeInParallelLikeRowByRow) {
  Rng rng(12);
  const FormatCase q4k{GgmlType::kQ4_K, {0, 2}};
  const int64_t rows = 96, cols = 1024;  // 98304 values: above the parallel threshold
  const Bytes b = random_blocks(q4k, rows * cols / 256, rng);
  const Tensor t = dequantize(b.data(), b.size(), GgmlType::kQ4_K, {2, rows / 2, cols});
  ASSERT_EQ(t.shape(), (Shape{2, rows / 2, cols}));
  std::vector<float> row(static_cast<size_t>(cols));
  const int64_t row_bytes = ggml_row_bytes(GgmlType::kQ4_K, cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(GgmlType::kQ4_K, b.data() + r * row_bytes, row.data(), cols);
    ASSERT_EQ(count_bit_mismatches(t.data<float>() + r * cols, row.data(), cols, "row"), 0) << r;
  }
}

TEST(Quant, PlainShapesAndEmptyTensors) {
  const float v = 2.5f;
  const Tensor scalar = dequantize(&v, 4, GgmlType::kF32, {});
  EXPECT_EQ(scalar.shape(), Shape{});
  EXPECT_EQ(scalar.data<float>()[0], 2.5f);
  const Tensor empty = dequantize(nullptr, 0, GgmlType::kQ8_0, {0, 64});
  EXPECT_EQ(empty.shape(), (Shape{0, 64}));
  EXPECT_EQ(dequantize(nullptr, 0, GgmlType::kQ4_K, {3, 0}).shape(), (Shape{3, 0}));
  dequantize_row(GgmlType::kF32, nullptr, nullptr, 0);  // nothing to do, nothing touched
  quantize_row(GgmlType::kQ8_0, nullptr, nullptr, 0);
  EXPECT_TRUE(quantize(Tensor::zeros({0, 32}), GgmlType::kQ8_0).empty());
  EXPECT_TRUE(quantize(Tensor(), GgmlType::kF32).empty());
}

// ---- (3) reference quantizers: bytes like NumPy's, round trip within the format's bound -------

// Per-block inputs that stress the quantizers: random normal blocks plus all zeros, a constant,
// an outlier, all negative, rounding ties for q8_0 and values small enough that d is an f16
// subnormal.
std::vector<float> quantizer_inputs(Rng& rng) {
  std::vector<float> x;
  x.reserve(32 * 46);
  for (int i = 0; i < 32 * 40; ++i) x.push_back(rng.normal());
  x.insert(x.end(), 32, 0.0f);
  x.insert(x.end(), 32, -0.75f);
  for (int i = 0; i < 32; ++i) x.push_back(i == 7 ? 1000.0f : rng.normal());
  for (int i = 0; i < 32; ++i) x.push_back(-std::fabs(rng.normal()) - 0.1f);
  const float ties[8] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -126.5f, 0};
  for (int i = 0; i < 32; ++i) x.push_back(ties[i % 8]);
  for (int i = 0; i < 32; ++i) x.push_back(rng.normal() * 1e-6f);
  return x;
}

// What the reference quantizers derive from a block of 32 values before coding it: the f32 scale
// d and (q4_1, q5_1) the min m, both stored as f16.
struct BlockScale {
  float d = 0;
  float m = 0;
  int max_code = 0;  // largest |code| the value is multiplied by: 127, 8, 16, 15 or 31
  bool symmetric = false;
};

BlockScale block_scale(GgmlType type, const float* x) {
  float amax = 0, max = 0, lo = x[0], hi = x[0];
  for (int k = 0; k < 32; ++k) {
    if (amax < std::fabs(x[k])) {
      amax = std::fabs(x[k]);
      max = x[k];
    }
    lo = std::min(lo, x[k]);
    hi = std::max(hi, x[k]);
  }
  switch (type) {
    case GgmlType::kQ8_0:
      return {amax / 127, 0, 127, false};
    case GgmlType::kQ4_0:
      return {max / -8, 0, 8, true};
    case GgmlType::kQ5_0:
      return {max / -16, 0, 16, true};
    case GgmlType::kQ4_1:
      return {(hi - lo) / 15, lo, 15, false};
    default:
      return {(hi - lo) / 31, lo, 31, false};
  }
}

// The largest error a correct quantizer may leave on value i of block `x`: half a step of the f32
// scale, plus the error of storing the scale (and min) as f16 times the largest code, plus a few
// f32 roundings. q4_0 and q5_0 put the extreme value m at code 0 (-half * d = m); a value near -m
// would need code 2 * half and is capped one below, so it may be off by a whole step.
float error_bound(GgmlType type, const float* x, int i) {
  const BlockScale s = block_scale(type, x);
  float amax = 0;
  for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float d16 = f16_to_f32(f32_to_f16(s.d)), m16 = f16_to_f32(f32_to_f16(s.m));
  const float slack = 4e-6f * amax;  // f32 roundings in x / d, the code choice and q * d + m
  const float half = static_cast<float>(s.max_code);
  const bool capped = s.symmetric && s.d != 0 && x[i] * (1 / s.d) + half + 0.5f >= 2 * half;
  return std::fabs(s.d) * (capped ? 1.0f : 0.5f) + half * std::fabs(d16 - s.d) +
         std::fabs(m16 - s.m) + slack;
}

TEST(Quant, ReferenceQuantizersMatchNumpyAndRoundTripWithinBound) {
  Rng rng(13);
  const std::vector<float> x = quantizer_inputs(rng);
  const auto n = static_cast<int64_t>(x.size());
  const GgmlType types[] = {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                            GgmlType::kQ5_1};
  std::vector<test::ReferenceCase> cases;
  for (GgmlType type : types) {
    cases.push_back({{{"x", Tensor::from_f32({n}, x)}},
                     {{"op", "quantize"}, {"type", ggml_type_info(type).name}}});
  }
  const auto ref = test::run_reference_cases("ggml_quant", cases);
  for (size_t c = 0; c < std::size(types); ++c) {
    const GgmlType type = types[c];
    const std::string name(ggml_type_info(type).name);
    Bytes ours(static_cast<size_t>(ggml_row_bytes(type, n)));
    quantize_row(type, x.data(), ours.data(), n);
    const Tensor& want = ref[c].at("blocks");
    ASSERT_EQ(want.numel(), static_cast<int64_t>(ours.size())) << name;
    int bad = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      if (ours[i] != want.data<int64_t>()[i] && bad++ < 5) {
        ADD_FAILURE() << name << ": byte " << i << " (block " << i / block_bytes(type) << ") is "
                      << int{ours[i]} << ", numpy " << want.data<int64_t>()[i];
      }
    }
    // The tensor entry gives the same bytes.
    EXPECT_EQ(quantize(Tensor::from_f32({n / 64, 64}, x), type), ours) << name;

    const std::vector<float> back = dequant(type, ours);
    int capped = 0;
    for (int64_t k = 0; k < n / 32; ++k) {
      const float* xb = x.data() + k * 32;
      const uint8_t* block = ours.data() + k * block_bytes(type);
      // The stored scale (and min) are the f16 roundings of what the definition computes.
      const BlockScale s = block_scale(type, xb);
      EXPECT_EQ(block[0] | (block[1] << 8), f32_to_f16(s.d)) << name << " block " << k << " d";
      if (type == GgmlType::kQ4_1 || type == GgmlType::kQ5_1) {
        EXPECT_EQ(block[2] | (block[3] << 8), f32_to_f16(s.m)) << name << " block " << k << " m";
      }
      for (int i = 0; i < 32; ++i) {
        const float got = back[static_cast<size_t>(k * 32 + i)];
        EXPECT_LE(std::fabs(got - xb[i]), error_bound(type, xb, i))
            << name << " block " << k << " value " << i << ": x " << xb[i] << " -> " << got;
        capped += std::fabs(got - xb[i]) > 0.6f * std::fabs(s.d);
      }
    }
    if (type == GgmlType::kQ4_0 || type == GgmlType::kQ5_0) {
      EXPECT_GT(capped, 0) << name << ": the inputs never exercised the capped code";
    }
  }
}

TEST(Quant, Q8_0RoundsHalfAwayFromZeroAndZeroBlocksStoreZero) {
  // amax 127 gives d = 1 exactly, so each code is roundf of the value itself.
  std::vector<float> x(32, 0.0f);
  const float ties[8] = {127, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -126.5f, 0};
  for (int i = 0; i < 32; ++i) x[i] = ties[i % 8];
  Bytes b(34);
  quantize_row(GgmlType::kQ8_0, x.data(), b.data(), 32);
  EXPECT_EQ(get_f16(b.data()), 1.0f);
  const int want[8] = {127, 3, -3, 1, -1, 2, -127, 0};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(static_cast<int8_t>(b[2 + i]), want[i]) << i;

  // An all-zero block: q4_0's d is 0 / -8 = -0, stored as the f16 0x8000, as in ggml.
  const std::vector<float> zeros(32, 0.0f);
  Bytes q(18);
  quantize_row(GgmlType::kQ4_0, zeros.data(), q.data(), 32);
  EXPECT_EQ(q[0], 0x00);
  EXPECT_EQ(q[1], 0x80);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(q[2 + j], 0x88) << j;  // code 8 = value 0
}

TEST(Quant, PlainTypesQuantizeByRoundingToNearestEven) {
  Rng rng(14);
  std::vector<float> x(100);
  for (float& v : x) v = rng.normal() * 1000.0f;
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
    Bytes b(static_cast<size_t>(ggml_row_bytes(type, 100)));
    quantize_row(type, x.data(), b.data(), 100);
    const std::vector<float> back = dequant(type, b);
    for (int i = 0; i < 100; ++i) {
      const float want = type == GgmlType::kF32   ? x[i]
                         : type == GgmlType::kF16 ? f16_to_f32(f32_to_f16(x[i]))
                                                  : bf16_to_f32(f32_to_bf16(x[i]));
      EXPECT_EQ(back[i], want) << ggml_type_info(type).name << " " << i;
    }
  }
}

TEST(Quant, RegistryListsWhatItCanDo) {
  for (const FormatCase& format : all_formats()) {
    EXPECT_TRUE(can_dequantize(format.type)) << ggml_type_info(format.type).name;
    ASSERT_NE(find_quant_format(format.type), nullptr);
    EXPECT_EQ(find_quant_format(format.type)->type, format.type);
  }
  for (GgmlType type : {GgmlType::kQ8_K, GgmlType::kQ8_1, GgmlType::kIQ2_XXS, GgmlType::kI8,
                        GgmlType::kF64, GgmlType::kTQ1_0}) {
    EXPECT_FALSE(can_dequantize(type)) << ggml_type_info(type).name;
    EXPECT_EQ(find_quant_format(type), nullptr);
  }
  for (GgmlType type :
       {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
        GgmlType::kF16, GgmlType::kQ2_K, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    EXPECT_TRUE(can_quantize(type)) << ggml_type_info(type).name;
  }
  EXPECT_FALSE(can_quantize(GgmlType::kMXFP4));
  EXPECT_TRUE(can_quantize(GgmlType::kIQ4_XS));
}

// ---- (4) errors -------------------------------------------------------------------------------

TEST(Quant, SizeAndTypeErrorsSayWhatAndWhy) {
  const Bytes b(1024, 0);
  EXPECT_EQ(error_of([&] {
              dequantize(b.data(), 570, GgmlType::kQ4_K, {4, 256});
            }),
            "dequantize: q4_K tensor of shape [4, 256]: takes 576 bytes (4 rows of 144), got 570");
  EXPECT_EQ(error_of([&] { dequantize(b.data(), 36, GgmlType::kQ8_0, {32}); }),
            "dequantize: q8_0 tensor of shape [32]: takes 34 bytes (1 rows of 34), got 36");
  EXPECT_EQ(error_of([&] {
              dequantize(b.data(), 576, GgmlType::kQ4_K, {4, 100});
            }),
            "dequantize: q4_K tensor of shape [4, 100]: rows of 100 values are not a whole number "
            "of 256-value blocks");
  EXPECT_EQ(error_of([&] {
              dequantize(b.data(), 34, GgmlType::kQ8_0, {-1, 32});
            }),
            "dequantize: q8_0 tensor of shape [-1, 32]: dimension 0 is negative");
  EXPECT_EQ(error_of([&] {
              dequantize(b.data(), 34, GgmlType::kQ8_0, {1, -32});
            }),
            "dequantize: q8_0 tensor of shape [1, -32]: dimension 1 is negative");
  EXPECT_EQ(error_of([&] {
              dequantize(b.data(), 34, GgmlType::kQ8_0, {int64_t{1} << 40, int64_t{1} << 40});
            }),
            "dequantize: q8_0 tensor of shape [1099511627776, 1099511627776]: too many values");
  EXPECT_EQ(error_of([&] {
              dequantize(nullptr, 34, GgmlType::kQ8_0, {1, 32});
            }),
            "dequantize: q8_0 tensor of shape [1, 32]: data is null");
  const std::string supported =
      "(supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, "
      "mxfp4, iq4_nl, iq4_xs)";
  EXPECT_EQ(error_of([&] { dequantize(b.data(), 292, GgmlType::kQ8_K, {256}); }),
            "dequantize: ggml type q8_K cannot be dequantized " + supported);
  EXPECT_EQ(error_of([&] { dequantize(b.data(), 4, static_cast<GgmlType>(4), {1}); }),
            "dequantize: ggml type id 4 cannot be dequantized " + supported);

  std::vector<float> out(64);
  EXPECT_EQ(error_of([&] { dequantize_row(GgmlType::kQ8_0, b.data(), out.data(), 33); }),
            "dequantize_row: q8_0: 33 values are not a whole number of 32-value blocks");
  EXPECT_EQ(error_of([&] { dequantize_row(GgmlType::kI8, b.data(), out.data(), 4); }),
            "dequantize_row: ggml type i8 cannot be dequantized " + supported);

  Bytes q(64);
  const std::string quantizers =
      "(supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, "
      "iq4_nl, iq4_xs)";
  EXPECT_EQ(error_of([&] { quantize_row(GgmlType::kMXFP4, out.data(), q.data(), 32); }),
            "quantize_row: ggml type mxfp4 has no quantizer " + quantizers);
  EXPECT_EQ(error_of([&] { quantize_row(GgmlType::kQ4_0, out.data(), q.data(), 48); }),
            "quantize_row: q4_0: 48 values are not a whole number of 32-value blocks");

  std::vector<float> values(64, 1.0f);
  values[37] = std::nanf("");
  EXPECT_EQ(error_of([&] {
              quantize(Tensor::from_f32({2, 32}, values), GgmlType::kQ8_0);
            }),
            "quantize: f32 tensor of shape [2, 32] to q8_0: element 37 (row 1, column 5) is nan");
  values[37] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(error_of([&] {
              quantize(Tensor::from_f32({2, 32}, values), GgmlType::kQ5_1);
            }),
            "quantize: f32 tensor of shape [2, 32] to q5_1: element 37 (row 1, column 5) is -inf");
  EXPECT_EQ(quantize(Tensor::from_f32({2, 32}, values), GgmlType::kF16).size(), 128u)
      << "plain types keep infinities";
  EXPECT_EQ(error_of([&] {
              quantize(Tensor::from_f32({2, 32}, values), GgmlType::kMXFP4);
            }),
            "quantize: ggml type mxfp4 has no quantizer " + quantizers);
  const std::vector<float> odd(48, 1.0f);
  EXPECT_EQ(error_of([&] {
              quantize(Tensor::from_f32({3, 16}, odd), GgmlType::kQ8_0);
            }),
            "quantize: f32 tensor of shape [3, 16] to q8_0: rows of 16 values are not a whole "
            "number of 32-value blocks");
  EXPECT_EQ(error_of([&] { quantize(Tensor::zeros({32}, DType::I32), GgmlType::kQ8_0); }),
            "quantize: x: dtype i32, expected f32");
}

}  // namespace
}  // namespace sy::kernels
