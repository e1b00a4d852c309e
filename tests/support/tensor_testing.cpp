#include "support/tensor_testing.h"

#include <hwy/targets.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/quant/quant.h"

namespace sy::test {

Tensor random_uniform(Shape shape, Rng& rng, float lo, float hi) {
  Tensor t = Tensor::zeros(std::move(shape));
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(lo, hi);
  return t;
}

Tensor random_normal(Shape shape, Rng& rng, float stddev) {
  Tensor t = Tensor::zeros(std::move(shape));
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal(0.0f, stddev);
  return t;
}

Tensor random_quantized_bytes(GgmlType type, int64_t rows, int64_t cols, Rng& rng) {
  const std::vector<uint8_t> q = kernels::quantize(random_normal({rows, cols}, rng), type);
  Tensor bytes = Tensor::empty({static_cast<int64_t>(q.size())}, DType::U8);
  std::memcpy(bytes.mutable_data<uint8_t>(), q.data(), q.size());
  return bytes;
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, float atol,
                                     float rtol) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape()) << " vs expected "
                                         << shape_str(expected.shape());
  }
  const Tensor a = actual.to_f32();
  const Tensor e = expected.to_f32();
  const float* pa = a.data<float>();
  const float* pe = e.data<float>();
  int64_t bad = 0;
  int64_t worst = -1;
  double worst_excess = -1.0;
  double max_abs = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double diff = std::fabs(static_cast<double>(pa[i]) - pe[i]);
    const double allowed = atol + rtol * std::fabs(static_cast<double>(pe[i]));
    max_abs = std::max(max_abs, std::isnan(diff) ? INFINITY : diff);
    const bool ok = diff <= allowed || (std::isinf(pa[i]) && pa[i] == pe[i]);
    if (!ok) {
      ++bad;
      const double excess = std::isnan(diff) ? INFINITY : diff - allowed;
      if (excess > worst_excess) {
        worst_excess = excess;
        worst = i;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << a.numel() << " elements differ beyond atol=" << atol
         << " rtol=" << rtol << "; worst at flat index " << worst << ": got " << pa[worst]
         << ", expected " << pe[worst] << "; max |diff| " << max_abs;
}

Tensor numeric_gradient(Tensor& x, const std::function<double()>& loss, float eps) {
  Tensor grad = Tensor::zeros(x.shape());
  float* px = x.mutable_data<float>();
  float* pg = grad.mutable_data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float saved = px[i];
    px[i] = saved + eps;
    const double up = loss();
    px[i] = saved - eps;
    const double down = loss();
    px[i] = saved;
    pg[i] = static_cast<float>((up - down) / (2.0 * static_cast<double>(eps)));
  }
  return grad;
}

double dot(const Tensor& a, const Tensor& b) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  double s = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(pa[i]) * pb[i];
  return s;
}

void for_each_simd_path(const std::function<void(const std::string& name)>& fn) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    const std::string name = hwy::TargetName(target);
    SCOPED_TRACE("SIMD path " + name);
    fn(name);
  }
  hwy::SetSupportedTargetsForTest(0);
}

Tensor i32_tensor(const std::vector<int32_t>& values) {
  return i32_tensor({static_cast<int64_t>(values.size())}, values);
}

Tensor i32_tensor(Shape shape, const std::vector<int32_t>& values) {
  Tensor t = Tensor::zeros(std::move(shape), DType::I32);
  SY_CHECK(static_cast<int64_t>(values.size()) <= t.numel(), "i32_tensor: {} values for shape {}",
           values.size(), shape_str(t.shape()));
  std::copy(values.begin(), values.end(), t.mutable_data<int32_t>());
  return t;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_error(const std::function<void()>& fn, const std::string& message) {
  EXPECT_EQ(error_of(fn), message);
}

void expect_error_containing(const std::function<void()>& fn, const std::string& needle) {
  const std::string e = error_of(fn);
  EXPECT_NE(e, "(no error)") << "expected an error containing: " << needle;
  EXPECT_NE(e.find(needle), std::string::npos) << e;
}

}  // namespace sy::test
