// Vector math shared by the Highway kernels, compiled once per SIMD target by every
// foreach_target file that includes it (Highway's "-inl.h" convention: the include guard
// toggles with HWY_TARGET_TOGGLE, so each target's pass sees the body once).
#if defined(SY_KERNELS_CPU_VEC_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SY_KERNELS_CPU_VEC_MATH_INL_H_
#undef SY_KERNELS_CPU_VEC_MATH_INL_H_
#else
#define SY_KERNELS_CPU_VEC_MATH_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <cmath>
#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {

// exp(x) for x <= 0 (valid up to x ~ 88), within 1 ulp, flushing results below 1.6e-38
// (x < -87) to 0; -inf gives 0. Shorter than hn::Exp because the callers' arguments are never
// positive (x - max, x - lse, log-probabilities, -|x|, -x^2/2): n = round(x / ln 2) comes from
// adding 1.5 * 2^23 (the rounded integer lands in the low mantissa bits), r = x - n ln 2 (ln 2
// split in two for exact reduction), exp(r) = 1 + r + r^2 q(r) with q a degree-4 polynomial
// fitted here (relative error 3e-9 on [-ln2/2, ln2/2]), and 2^n is applied by adding n to the
// exponent bits, which is exact while the result stays normal (hence the -87 cut).
template <class D, class V = hwy::HWY_NAMESPACE::Vec<D>>
HWY_INLINE V ExpNonPositive(D d, V x) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::RebindToSigned<D> di;
  const V magic = hn::Set(d, 12582912.0f);  // 1.5 * 2^23
  const V t = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), magic);
  const V n = hn::Sub(t, magic);
  V r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), x);
  r = hn::MulAdd(n, hn::Set(d, -1.428606765330187e-6f), r);
  V q = hn::Set(d, 0.0013814562698826194f);
  q = hn::MulAdd(q, r, hn::Set(d, 0.00836872961372137f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.04166838899254799f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.1666652113199234f));
  q = hn::MulAdd(q, r, hn::Set(d, 0.4999999403953552f));
  const V p = hn::Add(hn::MulAdd(q, hn::Mul(r, r), r), hn::Set(d, 1.0f));
  const V scaled =
      hn::BitCast(d, hn::Add(hn::BitCast(di, p), hn::ShiftLeft<23>(hn::BitCast(di, t))));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -87.0f)), scaled);
}

// s[i] = exp(s[i] - m) in place for i < n, hn::Exp on whole vectors and std::exp on the tail (the
// exp of the attention kernels' softmax rows, so their paths agree to f32 rounding); returns the
// sum of the results.
HWY_INLINE float ExpShiftedSum(float* HWY_RESTRICT s, size_t n, float m) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const auto vm = hn::Set(d, m);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, s + i), vm));
    hn::StoreU(e, d, s + i);
    acc = hn::Add(acc, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) {
    s[i] = std::exp(s[i] - m);
    sum += s[i];
  }
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#endif  // SY_KERNELS_CPU_VEC_MATH_INL_H_ toggle
