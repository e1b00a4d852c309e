#include <gtest/gtest.h>

#include "core/error.h"
#include "core/ggml_types.h"

namespace sy {
namespace {

// Bits per weight from inference.md section 8 (ggml-common.h): bytes * 8 / values.
TEST(GgmlTypes, BlockSizesGiveThePublishedBitsPerWeight) {
  const std::pair<GgmlType, double> bpw[] = {
      {GgmlType::kQ8_0, 8.5},    {GgmlType::kQ4_0, 4.5},   {GgmlType::kQ4_1, 5.0},
      {GgmlType::kQ5_0, 5.5},    {GgmlType::kQ4_K, 4.5},   {GgmlType::kQ5_K, 5.5},
      {GgmlType::kQ6_K, 6.5625}, {GgmlType::kQ2_K, 2.625}, {GgmlType::kQ3_K, 3.4375},
      {GgmlType::kMXFP4, 4.25},  {GgmlType::kF16, 16.0},   {GgmlType::kBF16, 16.0}};
  for (const auto& [type, bits] : bpw) {
    const GgmlTypeInfo& info = ggml_type_info(type);
    EXPECT_DOUBLE_EQ(8.0 * info.block_bytes / info.block_values, bits) << info.name;
  }
}

TEST(GgmlTypes, LooksUpIdsAndSizesRows) {
  ASSERT_TRUE(ggml_type_info(12).has_value());
  EXPECT_EQ(ggml_type_info(12)->name, "q4_K");
  EXPECT_FALSE(ggml_type_info(4).has_value());  // q4_2, removed from ggml
  EXPECT_FALSE(ggml_type_info(1000).has_value());
  EXPECT_EQ(ggml_row_bytes(GgmlType::kQ4_K, 512), 288);
  EXPECT_EQ(ggml_row_bytes(GgmlType::kF32, 7), 28);
  try {
    ggml_row_bytes(GgmlType::kQ8_0, 33);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "q8_0: a row of 33 values is not a whole number of 32-value blocks");
  }
}

}  // namespace
}  // namespace sy
