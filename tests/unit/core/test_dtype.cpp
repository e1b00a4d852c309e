#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/rng.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy {
namespace {

float from_bits(uint32_t b) { return std::bit_cast<float>(b); }

// Values whose rounding is delicate: every tie between neighbouring f16 / bf16 values (ties go
// to the even neighbour), the values just beside those ties, the overflow and subnormal
// boundaries, signed zeros, infinities, plus random bit patterns over the whole f32 range.
std::vector<float> hard_values() {
  std::vector<float> v;
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // positive finite f16
    const float lo = f16_to_f32(static_cast<uint16_t>(h));
    const float hi = f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = lo + (hi - lo) / 2;  // exact in f32: f16 has 13 fewer mantissa bits
    v.insert(v.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f), -mid});
  }
  for (uint32_t b = 0; b < 0x7f80; b += 3) {  // bf16 ties and their neighbours
    const uint32_t tie = (b << 16) | 0x8000u;
    v.insert(v.end(), {from_bits(tie), from_bits(tie - 1), from_bits(tie + 1),
                       from_bits(tie | 0x80000000u)});
  }
  v.insert(v.end(), {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e10f, -1e10f,
                     std::numeric_limits<float>::infinity(),
                     -std::numeric_limits<float>::infinity(), 5.96e-8f, 2.98e-8f, 2.99e-8f,
                     std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                     from_bits(0x7f7fffffu), from_bits(0x7f7f8000u)});
  Rng rng(5);
  for (int i = 0; i < 100000; ++i) {
    const float f = from_bits(static_cast<uint32_t>(rng.next_u64()));
    if (!std::isnan(f)) v.push_back(f);
  }
  return v;
}

TEST(DType, RoundingToF16AndBf16MatchesNumpyAndTorchBitForBit) {
  const std::vector<float> values = hard_values();
  Tensor x = Tensor::from_f32({static_cast<int64_t>(values.size())}, values);
  Tensor h = Tensor::zeros({65536}, DType::I32);
  for (int32_t i = 0; i < 65536; ++i) h.mutable_data<int32_t>()[i] = i;
  auto ref = test::run_reference("dtype", {{"x", x}, {"h", h}});
  const int64_t* f16_ref = ref.at("f16_bits").data<int64_t>();
  const int64_t* bf16_ref = ref.at("bf16_bits").data<int64_t>();
  int f16_bad = 0, bf16_bad = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (f32_to_f16(values[i]) != f16_ref[i] && f16_bad++ < 5) {
      ADD_FAILURE() << "f16 of " << values[i] << " (bits " << std::hex
                    << std::bit_cast<uint32_t>(values[i]) << "): got " << f32_to_f16(values[i])
                    << ", numpy " << f16_ref[i];
    }
    if (f32_to_bf16(values[i]) != bf16_ref[i] && bf16_bad++ < 5) {
      ADD_FAILURE() << "bf16 of " << values[i] << " (bits " << std::hex
                    << std::bit_cast<uint32_t>(values[i]) << "): got " << f32_to_bf16(values[i])
                    << ", torch " << bf16_ref[i];
    }
  }
  EXPECT_EQ(f16_bad, 0);
  EXPECT_EQ(bf16_bad, 0);

  // Every f16 bit pattern widens exactly (NaNs stay NaN; payloads are not compared).
  const float* widened = ref.at("widened").data<float>();
  for (uint32_t b = 0; b < 65536; ++b) {
    const float ours = f16_to_f32(static_cast<uint16_t>(b));
    if (std::isnan(widened[b])) {
      EXPECT_TRUE(std::isnan(ours)) << "bits " << b;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(ours), std::bit_cast<uint32_t>(widened[b])) << "bits " << b;
    }
  }
}

TEST(DType, NanStaysNanAndRoundTripsAreExact) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(nan))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(nan))));
  // A signalling NaN whose payload sits only in the low bits must not turn into infinity.
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));
  for (uint32_t b = 0; b < 65536; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    if (!std::isnan(f16_to_f32(bits))) {
      EXPECT_EQ(f32_to_f16(f16_to_f32(bits)), bits);
    }
    if (!std::isnan(bf16_to_f32(bits))) {
      EXPECT_EQ(f32_to_bf16(bf16_to_f32(bits)), bits);
    }
  }
}

TEST(DType, BulkConversionsAgreeWithScalarOnes) {
  Rng rng(9);
  std::vector<float> src(1031);  // odd length exercises any vector tail
  for (float& f : src) f = rng.normal(0.0f, 100.0f);
  std::vector<uint16_t> h(src.size()), b(src.size());
  std::vector<float> back(src.size());
  convert_f32_to_f16(src.data(), h.data(), src.size());
  convert_f32_to_bf16(src.data(), b.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(h[i], f32_to_f16(src[i]));
    EXPECT_EQ(b[i], f32_to_bf16(src[i]));
  }
  convert_f16_to_f32(h.data(), back.data(), h.size());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(back[i], f16_to_f32(h[i]));
  convert_bf16_to_f32(b.data(), back.data(), b.size());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(back[i], bf16_to_f32(b[i]));
}

TEST(DType, NamesRoundTripAndUnknownNameIsAClearError) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::U8}) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  }
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  try {
    dtype_from_name("f8");
    FAIL() << "expected sy::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
}

// The vectorised bulk widening gives the scalar conversion's value for every f16 bit pattern
// (NaNs stay NaN), on every compiled SIMD path, at every offset of a vector.
TEST(Dtype, BulkF16ToF32MatchesScalarOnEveryPattern) {
  std::vector<uint16_t> all(65536 + 7);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  test::for_each_simd_path([&](const std::string& path) {
    for (const size_t offset : {size_t{0}, size_t{3}}) {
      const size_t n = all.size() - offset;
      std::vector<float> out(n);
      convert_f16_to_f32(all.data() + offset, out.data(), n);
      for (size_t i = 0; i < n; ++i) {
        const float want = f16_to_f32(all[offset + i]);
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(out[i])) << path << " bits " << all[offset + i];
        } else {
          ASSERT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(want))
              << path << " bits " << all[offset + i];
        }
      }
    }
  });
}

// The vectorised bulk narrowing rounds as f32_to_f16 does, bit for bit, on every compiled SIMD
// path: every f16 value, every midpoint between neighbours (ties to even), values around the
// overflow edge and the subnormals, a sweep of f32 bit patterns, and NaNs among them.
TEST(Dtype, BulkF32ToF16MatchesScalarOnEveryPath) {
  std::vector<float> src;
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // positive finite f16 values and their negatives
    const float v = f16_to_f32(static_cast<uint16_t>(h));
    const float next = f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = std::bit_cast<float>(
        (std::bit_cast<uint32_t>(v) + std::bit_cast<uint32_t>(next)) / 2);  // the tie, exactly
    for (float x : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      src.push_back(x);
      src.push_back(-x);
    }
  }
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 65521) {
    src.push_back(std::bit_cast<float>(static_cast<uint32_t>(bits)));
  }
  for (float x : {65504.0f, 65519.99f, 65520.0f, 1e6f, INFINITY, -INFINITY, 1e-30f, 5.96e-8f}) {
    src.push_back(x);
  }
  for (size_t i = 0; i < src.size(); i += 997) src[i] = NAN;
  test::for_each_simd_path([&](const std::string& path) {
    for (const size_t offset : {size_t{0}, size_t{3}}) {
      const size_t n = src.size() - offset;
      std::vector<uint16_t> out(n);
      convert_f32_to_f16(src.data() + offset, out.data(), n);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i], f32_to_f16(src[offset + i]))
            << path << " value " << src[offset + i] << " bits "
            << std::bit_cast<uint32_t>(src[offset + i]);
      }
    }
  });
}

}  // namespace
}  // namespace sy
