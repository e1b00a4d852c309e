#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/sanitizer.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "io/atomic_file.h"
#include "support/tensor_testing.h"

namespace sy {
namespace {

using ::sy::test::error_of;

TEST(Tensor, ShapeRowsColsAndTypedAccess) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.rows(), 6);
  EXPECT_EQ(t.cols(), 4);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data<float>()) % 64, 0u);  // SIMD-aligned
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  EXPECT_EQ(error_of([&] { (void)t.data<int32_t>(); }), "tensor of dtype f32 accessed as i32");
  EXPECT_EQ(error_of([&] { (void)t.dim(3); }), "dim 3 out of range for shape [2, 3, 4]");
}

TEST(Tensor, SliceRowsSharesStorageAndReshapeChecksCount) {
  Tensor t = Tensor::from_f32({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor s = t.slice_rows(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data<float>()[0], 2.0f);
  s.mutable_data<float>()[0] = 42.0f;  // a view: writes show through
  EXPECT_EQ(t.data<float>()[2], 42.0f);
  EXPECT_EQ(t.reshape({2, 4}).data<float>()[4], 4.0f);
  EXPECT_EQ(error_of([&] {
              (void)t.reshape({3, 3});
            }),
            "reshape from [4, 2] to [3, 3]: element counts differ (8 vs 9)");
  EXPECT_EQ(error_of([&] { (void)t.slice_rows(3, 5); }),
            "slice_rows [3, 5) out of range for shape [4, 2]");
  Tensor c = t.clone();
  c.mutable_data<float>()[0] = -1.0f;  // a copy: the original is untouched
  EXPECT_EQ(t.data<float>()[0], 0.0f);
}

TEST(Tensor, ConversionsRoundTripThroughHalfTypes) {
  Tensor t = Tensor::from_f32({3}, {1.0f, -2.5f, 65504.0f});
  for (DType d : {DType::F16, DType::BF16}) {
    Tensor h = t.to(d);
    EXPECT_EQ(h.dtype(), d);
    EXPECT_EQ(h.nbytes(), 6u);
    Tensor back = h.to_f32();
    EXPECT_EQ(back.data<float>()[0], 1.0f);
    EXPECT_EQ(back.data<float>()[1], -2.5f);
  }
  EXPECT_EQ(t.to(DType::F16).to_f32().data<float>()[2], 65504.0f);
  EXPECT_EQ(t.to(DType::BF16).to_f32().data<float>()[2], 65536.0f);  // nearest bf16
}

TEST(Tensor, ExpectShapeAndDtypeMessages) {
  Tensor t = Tensor::zeros({2, 3});
  t.expect_shape({2, -1}, "x");  // wildcard accepts
  EXPECT_EQ(error_of([&] {
              t.expect_shape({2, 4}, "attention: q");
            }),
            "attention: q: shape [2, 3], expected [2, 4]");
  EXPECT_EQ(error_of([&] { t.expect_dtype(DType::BF16, "w"); }), "w: dtype f32, expected bf16");
}

TEST(Storage, RecycledBuffersComeBackZeroed) {
  // 2 MiB and 8 KiB (a decode step's [1, 2048] activation) of f32, both above the 4 KiB
  // recycling threshold; 1 KiB is below it and must still come back zeroed.
  for (const int64_t n : {int64_t{1} << 19, int64_t{2048}, int64_t{256}}) {
    const Shape shape = {n};
    const void* first = nullptr;
    {
      Tensor t = Tensor::zeros(shape);
      t.fill(1.5f);
      first = t.bytes();
    }
    const Tensor again = Tensor::zeros(shape);
    if (Storage::recycle_budget() > 0 && n * 4 >= 4096) {
      EXPECT_EQ(again.bytes(), first) << "buffer of " << n << " floats not recycled";
    }
    const float* p = again.data<float>();
    for (int64_t i = 0; i < again.numel(); ++i) ASSERT_EQ(p[i], 0.0f) << "at " << i << " of " << n;
  }
}

// empty() skips the zero fill. Sanitizer builds fill it with 0xff instead, so code that reads an
// empty() tensor before writing it sees NaN there and fails its tests.
TEST(Tensor, EmptyHasTheShapeAndIsPoisonedUnderSanitizers) {
  for (const DType dtype : {DType::F32, DType::F16, DType::I32}) {
    const Tensor t = Tensor::empty({3, 1000}, dtype);
    EXPECT_EQ(t.shape(), (Shape{3, 1000}));
    EXPECT_EQ(t.dtype(), dtype);
    ASSERT_NE(t.bytes(), nullptr);
    if (kSanitizerBuild) {
      const std::byte* b = t.bytes();
      for (size_t i = 0; i < t.nbytes(); ++i) ASSERT_EQ(b[i], std::byte{0xff}) << "byte " << i;
    }
  }
  if (kSanitizerBuild) {
    EXPECT_TRUE(std::isnan(Tensor::empty({4}).data<float>()[3]));
  }
  const Tensor none = Tensor::empty({0, 5});
  EXPECT_EQ(none.numel(), 0);
}

// Blocks of 2 MiB and more (weights, KV caches) start on a 2 MiB boundary, where transparent huge
// pages can back them; smaller ones keep the 64-byte alignment.
TEST(Storage, LargeBlocksStartOnAHugePageBoundary) {
  const auto address = [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.bytes()); };
  const Tensor big =
      Tensor::zeros({(int64_t{3} << 20) / 4 + 3});  // an OLMoE q4_0 attention matrix is 2.4 MB
  const Tensor small = Tensor::zeros({1000});
  EXPECT_EQ(address(small) % 64, 0u);
  EXPECT_EQ(address(big) % 64, 0u);
  const char* env = std::getenv("SY_HUGE_PAGES");  // NOLINT(concurrency-mt-unsafe)
  if (!kSanitizerBuild && (env == nullptr || std::string(env) != "0")) {
    EXPECT_EQ(address(big) % (size_t{2} << 20), 0u);
  }
  EXPECT_EQ(big.data<float>()[big.numel() - 1], 0.0f);
}

TEST(Storage, MapsAFileRegionReadOnly) {
  const std::string path = ::testing::TempDir() + "/sy_storage_map.bin";
  std::string bytes(10000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  io::write_file_atomic(path, bytes);
  // An offset that is not page-aligned must still land on the right byte.
  auto s = Storage::map_file(path, 4099, 100);
  ASSERT_TRUE(s->is_mapped());
  EXPECT_EQ(s->size(), 100u);
  EXPECT_EQ(s->origin(), path);
  for (size_t i = 0; i < 100; ++i) {
    ASSERT_EQ(static_cast<char>(s->data()[i]), bytes[4099 + i]) << i;
  }
  EXPECT_NE(error_of([&] { s->mutable_data(); }).find("read-only"), std::string::npos);
  Tensor v = Tensor::view_of(s, 0, {25}, DType::F32);
  EXPECT_NE(error_of([&] { v.mutable_data<float>(); }).find("read-only"), std::string::npos);
  s->lock_resident();  // may be refused by RLIMIT_MEMLOCK, but must not fail
  EXPECT_EQ(Storage::map_file(path)->size(), 10000u);  // bytes == 0: to the end
  EXPECT_NE(error_of([&] { Storage::map_file(path, 9990, 100); }).find(path), std::string::npos);
  EXPECT_NE(error_of([&] { Storage::map_file(path + ".missing"); }).find(".missing"),
            std::string::npos);
  EXPECT_NE(error_of([&] { Tensor::view_of(s, 8, {25}, DType::F32); }).find("100"),
            std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace sy
