// LinearExperts::forward_rows reads x's rows in place when each expert's rows are consecutive rows
// of x (a decode step: every expert reads the one token's row), and gathers them otherwise: either
// way, bit for bit what forward gives on the gathered buffer.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <string>

#include "core/rng.h"
#include "model/blocks/linear_experts.h"
#include "moe/dispatch.h"
#include "support/tensor_testing.h"

namespace sy::model {
namespace {

Linear random_linear(GgmlType type, bool packed, int64_t rows, int64_t cols, Rng& rng) {
  if (type == GgmlType::kF32) return Linear::dense(test::random_normal({rows, cols}, rng));
  return Linear::packed(type, rows, cols, test::random_quantized_bytes(type, rows, cols, rng),
                        packed);
}

// One random [rows, cols] matrix of `type` per expert.
std::vector<Linear> random_experts(GgmlType type, bool packed, int64_t e, int64_t rows,
                                   int64_t cols, Rng& rng) {
  std::vector<Linear> out;
  for (int64_t j = 0; j < e; ++j) out.push_back(random_linear(type, packed, rows, cols, rng));
  return out;
}

using ::sy::test::same_bits;

Tensor nan_filled(int64_t rows, int64_t cols) {
  Tensor t = Tensor::empty({rows, cols});
  std::fill_n(t.mutable_data<float>(), t.numel(), NAN);
  return t;
}

struct Routed {
  const char* name;
  std::vector<int64_t> offsets;  // E + 1
  std::vector<int32_t> row_token;
};

TEST(LinearExperts, ForwardRowsMatchesForwardOnTheGatheredRows) {
  Rng rng(5);
  const int64_t e = 6, d = 256, f = 256, t = 5;
  const Tensor x = test::random_normal({t, d}, rng);
  const std::vector<Routed> cases = {
      // One token (a decode step): experts 1, 2 and 4 all read row 3, in place.
      {"decode", {0, 0, 1, 2, 2, 3, 3}, {3, 3, 3}},
      // Runs of consecutive rows: in place.
      {"runs", {0, 3, 3, 3, 5, 5, 6}, {0, 1, 2, 2, 3, 4}},
      // Expert 1 reads rows 0 and 2: gathered.
      {"gathered", {0, 1, 3, 3, 3, 4, 4}, {4, 0, 2, 1}},
  };
  const int saved_threads = omp_get_max_threads();
  for (const auto& [type, packed] :
       std::vector<std::pair<GgmlType, bool>>{{GgmlType::kF32, false},
                                              {GgmlType::kQ8_0, false},
                                              {GgmlType::kQ8_0, true},
                                              {GgmlType::kQ4_0, true},
                                              {GgmlType::kQ4_K, true},
                                              {GgmlType::kQ6_K, false}}) {
    SCOPED_TRACE(std::string(ggml_type_info(type).name) + (packed ? " P16" : ""));
    LinearExperts experts(d, f, random_experts(type, packed, e, f, d, rng),
                          random_experts(type, packed, e, f, d, rng),
                          random_experts(type, packed, e, d, f, rng));
    for (const Routed& c : cases) {
      for (int threads : {1, 2}) {
        SCOPED_TRACE(std::string(c.name) + ", threads " + std::to_string(threads));
        omp_set_num_threads(threads);
        const int64_t rows = c.offsets.back();
        const Tensor row_token = test::i32_tensor(c.row_token);
        Tensor in_place = nan_filled(rows, d);
        experts.forward_rows(in_place, x, row_token, c.offsets, nullptr);
        Tensor gathered = nan_filled(rows, d);
        experts.forward(gathered, moe::gather_token_rows(x, row_token, "test"), c.offsets, nullptr);
        EXPECT_TRUE(same_bits(in_place, gathered));
        EXPECT_FALSE(std::isnan(gathered.data<float>()[rows * d - 1]));
      }
    }
  }
  omp_set_num_threads(saved_threads);
}

TEST(LinearExperts, ForwardRowsRefusesBadTokens) {
  Rng rng(6);
  const int64_t e = 2, d = 32, f = 32;
  LinearExperts experts(d, f, random_experts(GgmlType::kF32, false, e, f, d, rng),
                        random_experts(GgmlType::kF32, false, e, f, d, rng),
                        random_experts(GgmlType::kF32, false, e, d, f, rng));
  const Tensor x = test::random_normal({3, d}, rng);
  Tensor out = Tensor::zeros({2, d});
  EXPECT_EQ(test::error_of([&] {
              experts.forward_rows(out, x, test::i32_tensor({0, 3}), {0, 1, 2}, nullptr);
            }),
            "LinearExperts.forward_rows: row_token[1] = 3, expected 0 <= token < 3 (T)");
  EXPECT_EQ(test::error_of([&] {
              experts.forward_rows(out, x, test::i32_tensor({0, -1}), {0, 2, 2}, nullptr);
            }),
            "LinearExperts.forward_rows: row_token[1] = -1, expected 0 <= token < 3 (T)");
  const Tensor f32_tokens = Tensor::zeros({2});
  EXPECT_EQ(test::error_of([&] { moe::gather_token_rows(x, f32_tokens, "gather"); }),
            "gather: row_token: dtype f32, expected i32");
  EXPECT_EQ(test::error_of([&] {
              moe::gather_token_rows(x.reshape({3 * d}), test::i32_tensor({0}), "gather");
            }),
            "gather: x: shape [96], expected [T, D]");
  EXPECT_EQ(test::error_of([&] {
              experts.forward_rows(out, x, test::i32_tensor({0}), {0, 1, 2}, nullptr);
            }),
            "LinearExperts.forward_rows: row_token: shape [1], expected [2]");
  EXPECT_EQ(test::error_of([&] {
              experts.forward_rows(out, x, test::i32_tensor({0, 1}), {0, 2, 2}, nullptr);
            }),
            "(no error)");
}

}  // namespace
}  // namespace sy::model
