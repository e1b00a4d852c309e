// Random tensors, comparison with a max-difference report, finite differences, and a loop over
// every SIMD path compiled into this build that the CPU can run.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "core/ggml_types.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace sy::test {

// f32 tensor with entries uniform in [lo, hi).
Tensor random_uniform(Shape shape, Rng& rng, float lo = -1.0f, float hi = 1.0f);
// f32 tensor with N(0, stddev^2) entries.
Tensor random_normal(Shape shape, Rng& rng, float stddev = 1.0f);
// A [rows, cols] matrix of N(0, 1) entries quantized to `type` (kernels::quantize): its blocks
// as a u8 tensor, as a GGUF file holds them.
Tensor random_quantized_bytes(GgmlType type, int64_t rows, int64_t cols, Rng& rng);

// Passes when |actual - expected| <= atol + rtol * |expected| everywhere (shapes equal, f32).
// The failure message names the worst element, its index, both values and the mismatch count.
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, float atol,
                                     float rtol);
#define EXPECT_ALL_CLOSE(actual, expected, atol, rtol) \
  EXPECT_TRUE(::sy::test::all_close((actual), (expected), (atol), (rtol)))

// Central differences of a scalar loss with respect to every element of x (f32), evaluated in
// double by the caller's loss. x is perturbed in place and restored.
Tensor numeric_gradient(Tensor& x, const std::function<double()>& loss, float eps = 1e-3f);

// Dot product sum(a * b) in double, for building scalar losses from outputs.
double dot(const Tensor& a, const Tensor& b);

// i32 tensor [values.size()] holding values.
Tensor i32_tensor(const std::vector<int32_t>& values);
// i32 tensor of `shape` whose first values.size() elements are `values` (at most its size) and
// the rest 0.
Tensor i32_tensor(Shape shape, const std::vector<int32_t>& values);

// Whether a and b have the same shape, dtype and bytes (bit for bit: NaNs compare by payload).
bool same_bits(const Tensor& a, const Tensor& b);

// The message of the sy::Error fn throws, or "(no error)".
std::string error_of(const std::function<void()>& fn);
// Expects fn to throw sy::Error with exactly `message` / with a message containing `needle`.
void expect_error(const std::function<void()>& fn, const std::string& message);
void expect_error_containing(const std::function<void()>& fn, const std::string& needle);

// Calls fn once per SIMD target (Highway) compiled in and supported by this CPU, with that
// target forced; the target's name is in the gtest trace of any failure.
void for_each_simd_path(const std::function<void(const std::string& name)>& fn);

}  // namespace sy::test
