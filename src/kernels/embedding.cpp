#include "kernels/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/threads.h"

namespace sy::kernels {

namespace {

// Validates ids against the vocabulary size; returns T.
int64_t check_ids(const Tensor& ids, int64_t vocab, const char* op) {
  ids.expect_dtype(DType::I32, op);
  SY_CHECK(ids.rank() == 1, "{}: ids: shape {}, expected [T]", op, shape_str(ids.shape()));
  const int32_t* p = ids.data<int32_t>();
  for (int64_t t = 0; t < ids.numel(); ++t) {
    SY_CHECK(p[t] >= 0 && p[t] < vocab,
             "{}: ids[{}] = {} is out of range for a vocabulary of V = {} rows", op, t, p[t],
             vocab);
  }
  return ids.numel();
}

// Columns per task in the backward: wide enough that threads never share a cache line of
// d_table, narrow enough that a small D still spreads over a few threads.
constexpr int64_t kColumnBlock = 64;

}  // namespace

void embedding_forward(Tensor& out, const Tensor& table, const Tensor& ids) {
  table.expect_dtype(DType::F32, "embedding_forward: table");
  SY_CHECK(table.rank() == 2, "embedding_forward: table: shape {}, expected [V, D]",
           shape_str(table.shape()));
  const int64_t vocab = table.dim(0), width = table.dim(1);
  const int64_t tokens = check_ids(ids, vocab, "embedding_forward");
  out.expect_dtype(DType::F32, "embedding_forward: out");
  out.expect_shape({tokens, width}, "embedding_forward: out");
  const float* src = table.data<float>();
  const int32_t* id = ids.data<int32_t>();
  float* dst = out.mutable_data<float>();
  const auto row_bytes = static_cast<size_t>(width) * sizeof(float);
  parallel_for(0, tokens, tokens * width >= kParallelMinElements, [&](int64_t t) {
    std::memcpy(dst + t * width, src + static_cast<int64_t>(id[t]) * width, row_bytes);
  });
}

void embedding_backward(Tensor& d_table, const Tensor& d_out, const Tensor& ids) {
  d_table.expect_dtype(DType::F32, "embedding_backward: d_table");
  SY_CHECK(d_table.rank() == 2, "embedding_backward: d_table: shape {}, expected [V, D]",
           shape_str(d_table.shape()));
  const int64_t vocab = d_table.dim(0), width = d_table.dim(1);
  const int64_t tokens = check_ids(ids, vocab, "embedding_backward");
  d_out.expect_dtype(DType::F32, "embedding_backward: d_out");
  d_out.expect_shape({tokens, width}, "embedding_backward: d_out");
  const float* g = d_out.data<float>();
  const int32_t* id = ids.data<int32_t>();
  float* dt = d_table.mutable_data<float>();
  const int64_t blocks = (width + kColumnBlock - 1) / kColumnBlock;
  // Each task owns a column block of every table row and walks the tokens in order.
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t c0 = b * kColumnBlock;
    const int64_t c1 = std::min(width, c0 + kColumnBlock);
    for (int64_t t = 0; t < tokens; ++t) {
      float* row = dt + static_cast<int64_t>(id[t]) * width;
      const float* gr = g + t * width;
      for (int64_t c = c0; c < c1; ++c) row[c] += gr[c];
    }
  }
}

}  // namespace sy::kernels
