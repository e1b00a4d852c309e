#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/topk_cpu.h"
#include "kernels/topk.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

// A random permutation of 0..n-1 scaled into (-1, 1): distinct values, so torch's order is
// unique and the comparison is exact.
Tensor distinct_rows(int64_t rows, int64_t cols, Rng& rng) {
  Tensor x = Tensor::zeros({rows, cols});
  float* p = x.mutable_data<float>();
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) perm[static_cast<size_t>(c)] = c;
    for (int64_t c = cols - 1; c > 0; --c) {
      std::swap(perm[static_cast<size_t>(c)],
                perm[static_cast<size_t>(rng.below(static_cast<uint64_t>(c + 1)))]);
    }
    for (int64_t c = 0; c < cols; ++c) {
      p[r * cols + c] = (static_cast<float>(perm[static_cast<size_t>(c)]) + 0.5f) /
                            static_cast<float>(cols) * 2.0f -
                        1.0f;
    }
  }
  return x;
}

Tensor to_i64(const Tensor& t) {
  Tensor out = Tensor::zeros(t.shape(), DType::I64);
  for (int64_t i = 0; i < t.numel(); ++i) out.mutable_data<int64_t>()[i] = t.data<int32_t>()[i];
  return out;
}

::testing::AssertionResult same_ints(const Tensor& actual_i32, const Tensor& expected_i64) {
  if (actual_i32.shape() != expected_i64.shape()) {
    return ::testing::AssertionFailure() << "shape " << shape_str(actual_i32.shape())
                                         << " vs expected " << shape_str(expected_i64.shape());
  }
  const Tensor a = to_i64(actual_i32);
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (a.data<int64_t>()[i] != expected_i64.data<int64_t>()[i]) {
      return ::testing::AssertionFailure()
             << "first difference at flat index " << i << ": got " << a.data<int64_t>()[i]
             << ", expected " << expected_i64.data<int64_t>()[i];
    }
  }
  return ::testing::AssertionSuccess();
}

struct TopKCase {
  int64_t rows, cols, k;
};

// Values are copies of inputs and gradients single additions, so everything compares exactly;
// K up to 32 takes the repeated-maximum path (on every SIMD target), above it the sort path.
TEST(TopK, MatchesPyTorchOnDistinctValues) {
  const std::vector<TopKCase> shapes = {{1, 1, 1},    {5, 7, 1},     {5, 7, 7},
                                        {3, 64, 8},   {4096, 64, 8}, {9, 256, 32},
                                        {9, 256, 33}, {6, 256, 256}, {7, 100, 2}};
  Rng rng(4);
  std::vector<test::ReferenceCase> cases;
  cases.reserve(shapes.size());
  for (const TopKCase& s : shapes) {
    cases.push_back({{{"x", distinct_rows(s.rows, s.cols, rng)},
                      {"d_values", test::random_normal({s.rows, s.k}, rng)}},
                     {{"k", s.k}}});
  }
  const auto refs = test::run_reference_cases("topk", cases);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const TopKCase& s = shapes[i];
    SCOPED_TRACE(::testing::Message() << "T " << s.rows << " E " << s.cols << " K " << s.k);
    Tensor values = Tensor::zeros({s.rows, s.k});
    Tensor indices = Tensor::zeros({s.rows, s.k}, DType::I32);
    test::for_each_simd_path([&](const std::string&) {
      values.fill(0.0f);
      topk_forward(values, indices, cases[i].inputs.at("x"));
      EXPECT_ALL_CLOSE(values, refs[i].at("values"), 0.0f, 0.0f);
      EXPECT_TRUE(same_ints(indices, refs[i].at("indices")));
    });
    Tensor d_x = Tensor::zeros({s.rows, s.cols});
    d_x.fill(0.5f);  // backward accumulates
    topk_backward(d_x, cases[i].inputs.at("d_values"), indices);
    Tensor expected = refs[i].at("d_x").clone();
    for (int64_t j = 0; j < expected.numel(); ++j) expected.mutable_data<float>()[j] += 0.5f;
    EXPECT_ALL_CLOSE(d_x, expected, 0.0f, 0.0f);
  }
}

void expect_topk(const Tensor& x, int64_t k, const std::vector<float>& want_values,
                 const std::vector<int32_t>& want_indices) {
  const int64_t rows = x.dim(0);
  Tensor values = Tensor::zeros({rows, k});
  Tensor indices = Tensor::zeros({rows, k}, DType::I32);
  test::for_each_simd_path([&](const std::string&) {
    topk_forward(values, indices, x);
    for (int64_t j = 0; j < rows * k; ++j) {
      const auto jj = static_cast<size_t>(j);
      EXPECT_EQ(values.data<float>()[j], want_values[jj]) << "at flat index " << j;
      EXPECT_EQ(indices.data<int32_t>()[j], want_indices[jj]) << "at flat index " << j;
    }
  });
}

// Hand-computed: equal values come out lowest column first, on both selection paths; -0 and +0
// tie; -inf columns are picked last, in column order.
TEST(TopK, BreaksTiesByLowerIndex) {
  const Tensor x = Tensor::from_f32({2, 6}, {1, 3, 3, -INFINITY, 3, 2,  //
                                             0, -0.0f, 0, 5, 0, 5});
  expect_topk(x, 4, {3, 3, 3, 2, 5, 5, 0, -0.0f}, {1, 2, 4, 5, 3, 5, 0, 1});
  // K = E: a full sort.
  expect_topk(x, 6, {3, 3, 3, 2, 1, -INFINITY, 5, 5, 0, -0.0f, 0, 0},
              {1, 2, 4, 5, 0, 3, 3, 5, 0, 1, 2, 4});
  // Several -inf picked (after the finite ones), across a vector boundary on every target.
  std::vector<float> inf_row(21, -INFINITY);
  inf_row[17] = 4.0f;
  inf_row[3] = 4.0f;
  expect_topk(Tensor::from_f32({1, 21}, inf_row), 5, {4, 4, -INFINITY, -INFINITY, -INFINITY},
              {3, 17, 0, 1, 2});
  // K = 1 on a wide row of equal values: column 0.
  expect_topk(Tensor::from_f32({1, 70}, std::vector<float>(70, 0.25f)), 1, {0.25f}, {0});

  // The sort path (K > 32): 40 columns, all equal but column 7; ties keep column order.
  std::vector<float> wide(40, 1.0f);
  wide[7] = 2.0f;
  std::vector<float> want_v(34, 1.0f);
  want_v[0] = 2.0f;
  std::vector<int32_t> want_i(34);
  for (int32_t j = 0; j < 34; ++j)
    want_i[static_cast<size_t>(j)] = j == 0 ? 7 : (j <= 7 ? j - 1 : j);
  expect_topk(Tensor::from_f32({1, 40}, wide), 34, want_v, want_i);
}

// The body reports the first NaN and still selects every row without one, the rows after it
// included (its contract: only rows with a NaN get unspecified output).
TEST(TopK, BodyFillsTheRowsWithoutNaN) {
  const int64_t rows = 4, cols = 37;
  for (int64_t k : {2, 36}) {  // the vector path and the sorting path
    SCOPED_TRACE("k = " + std::to_string(k));
    std::vector<float> x(static_cast<size_t>(rows * cols));
    for (int64_t i = 0; i < rows * cols; ++i)
      x[static_cast<size_t>(i)] = static_cast<float>(i % cols);
    x[1 * cols + 5] = NAN;
    std::vector<float> values(static_cast<size_t>(rows * k), -1.0f);
    std::vector<int32_t> indices(static_cast<size_t>(rows * k), -1);
    EXPECT_EQ(cpu::topk_forward(values.data(), indices.data(), x.data(), rows, cols, k),
              1 * cols + 5);
    for (int64_t r : {0, 2, 3}) {
      for (int64_t j = 0; j < k; ++j) {
        const auto at = static_cast<size_t>(r * k + j);
        EXPECT_EQ(indices[at], cols - 1 - j) << "row " << r << " rank " << j;
        EXPECT_EQ(values[at], static_cast<float>(cols - 1 - j)) << "row " << r << " rank " << j;
      }
    }
  }
}

TEST(TopK, RejectsBadShapesAndNaN) {
  const Tensor x = Tensor::zeros({3, 4});
  Tensor values = Tensor::zeros({3, 5});
  Tensor indices = Tensor::zeros({3, 5}, DType::I32);
  EXPECT_EQ(test::error_of([&] { topk_forward(values, indices, x); }),
            "topk_forward: K = 5 (values shape [3, 5]), expected 1 <= K <= E = 4");
  Tensor v2 = Tensor::zeros({3, 2});
  Tensor i2 = Tensor::zeros({3, 2});  // f32, not i32
  EXPECT_EQ(test::error_of([&] { topk_forward(v2, i2, x); }),
            "topk_forward: indices: dtype f32, expected i32");
  // NaN in a vector-wide part of the row and in a scalar tail, on both paths.
  Tensor xn = Tensor::zeros({5, 37});
  xn.mutable_data<float>()[3 * 37 + 30] = NAN;
  xn.mutable_data<float>()[3 * 37 + 2] = NAN;
  xn.mutable_data<float>()[4 * 37 + 36] = NAN;
  for (int64_t k : {2, 36}) {
    Tensor vn = Tensor::zeros({5, k});
    Tensor in = Tensor::zeros({5, k}, DType::I32);
    test::for_each_simd_path([&](const std::string&) {
      EXPECT_EQ(test::error_of([&] { topk_forward(vn, in, xn); }), "topk_forward: x[3, 2] is NaN");
    });
  }
  Tensor d_x = Tensor::zeros({3, 4});
  Tensor bad_idx = Tensor::zeros({3, 2}, DType::I32);
  bad_idx.mutable_data<int32_t>()[3] = 4;
  EXPECT_EQ(test::error_of([&] { topk_backward(d_x, v2, bad_idx); }),
            "topk_backward: indices[1, 1] = 4, expected < E = 4");
}

}  // namespace
}  // namespace sy::kernels
