// Linear with packed weights: where the quantized kernels run faster on P16 rows, Linear::packed
// reorders them at load time; every use of the matrix (products, row lookups, slices) must give
// what the ggml bytes give.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "model/linear.h"
#include "support/tensor_testing.h"

namespace sy::model {
namespace {

using ::sy::test::same_bits;

TEST(Linear, RepackedWeightsGiveTheSameRowsProductsAndSlices) {
  Rng rng(11);
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K}) {
    SCOPED_TRACE(std::string(ggml_type_info(type).name));
    const int64_t n = 300, k = 1024;
    const Tensor bytes = test::random_quantized_bytes(type, n, k, rng);
    const Linear plain = Linear::packed(type, n, k, bytes.clone(), false);
    const Linear re = Linear::packed(type, n, k, bytes.clone(), true);  // reordered in place
    // Bytes another tensor holds too are copied, not reordered under it.
    const Tensor shared = bytes.clone();
    const Linear copied = Linear::packed(type, n, k, shared, true);
    EXPECT_EQ(std::memcmp(shared.data<uint8_t>(), bytes.data<uint8_t>(), bytes.nbytes()), 0);
    EXPECT_EQ(std::memcmp(copied.data().data<uint8_t>(), re.data().data<uint8_t>(), bytes.nbytes()),
              0);
    EXPECT_EQ(plain.layout(), kernels::QuantLayout::kGgml);
    ASSERT_EQ(re.layout(), kernels::QuantLayout::kP16);
    ASSERT_NE(re.quant(), nullptr);
    EXPECT_EQ(re.quant()->layout, kernels::QuantLayout::kP16);
    EXPECT_EQ(re.nbytes(), plain.nbytes());

    std::vector<float> a(k), b(k);
    for (int64_t r : {0, 17, 299}) {
      plain.row(r, a.data());
      re.row(r, b.data());
      EXPECT_EQ(a, b) << "row " << r;
    }

    // Products: the same values up to the f32 order of the block sums (the VNNI body sums 16
    // blocks per step where the ggml body sums 4).
    const Tensor x = test::random_normal({3, k}, rng);
    const Tensor yp = plain.apply(x), yr = re.apply(x);
    double worst = 0.0;
    for (int64_t i = 0; i < yp.numel(); ++i) {
      worst = std::max(worst, double{std::fabs(yp.data<float>()[i] - yr.data<float>()[i])});
    }
    EXPECT_LT(worst, 1e-3) << "largest difference";

    // A slice of the repacked matrix is the same rows of it.
    const Linear part = re.slice_rows(100, 164);
    EXPECT_EQ(part.layout(), kernels::QuantLayout::kP16);
    const Tensor ys = part.apply(x);
    Tensor want = Tensor::empty({3, 64});
    for (int64_t t = 0; t < 3; ++t) {
      std::memcpy(want.mutable_data<float>() + t * 64, yr.data<float>() + t * n + 100,
                  64 * sizeof(float));
    }
    EXPECT_TRUE(same_bits(ys, want));
  }
}

TEST(Linear, MatricesWithoutAP16FormStayAsTheFileHasThem) {
  Rng rng(12);
  const Linear k6 = Linear::packed(
      GgmlType::kQ6_K, 8, 512, test::random_quantized_bytes(GgmlType::kQ6_K, 8, 512, rng), true);
  EXPECT_EQ(k6.layout(), kernels::QuantLayout::kGgml);
  const Linear narrow = Linear::packed(
      GgmlType::kQ4_0, 8, 256, test::random_quantized_bytes(GgmlType::kQ4_0, 8, 256, rng), true);
  EXPECT_EQ(narrow.layout(), kernels::QuantLayout::kGgml);
  ASSERT_NE(narrow.quant(), nullptr);
  EXPECT_EQ(narrow.quant()->layout, kernels::QuantLayout::kGgml);
}

}  // namespace
}  // namespace sy::model
