// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
//
// Every op is written once, as a function of whole vectors; the loops below apply it to full
// vectors and then to the tail through a zero-padded buffer, so the tail is computed by the very
// same instructions as the body (no scalar twin that could drift).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/activations_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstring>

#include "kernels/cpu/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// ---- vector math ----------------------------------------------------------------------------

// 1 / a for finite a >= 1 (the only divisions here): the hardware estimate (12 or 14 bits)
// refined by one Newton step to ~1 ulp. A full-precision divide has a throughput that bounded
// these loops; this made SiLU, SwiGLU and tanh-GELU ~15% faster.
HWY_INLINE V Reciprocal(D d, V a) {
  const V r = hn::ApproximateReciprocal(a);
  return hn::Mul(r, hn::NegMulAdd(a, r, hn::Set(d, 2.0f)));
}

// 1 / (1 + exp(-x)), from e = exp(-|x|) so that exp never overflows.
HWY_INLINE V Sigmoid(D d, V x) {
  const V one = hn::Set(d, 1.0f);
  const V e = ExpNonPositive(d, hn::Neg(hn::Abs(x)));
  const V r = Reciprocal(d, hn::Add(one, e));
  return hn::IfThenElse(hn::Ge(x, hn::Zero(d)), r, hn::Mul(e, r));
}

// Sigmoid s and its derivative s (1 - s) = e / (1 + e)^2, the latter formed from e so it keeps
// full relative precision where s is close to 1 (1 - s would cancel).
HWY_INLINE V SigmoidAndSlope(D d, V x, V& slope) {
  const V one = hn::Set(d, 1.0f);
  const V e = ExpNonPositive(d, hn::Neg(hn::Abs(x)));
  const V r = Reciprocal(d, hn::Add(one, e));
  const V er = hn::Mul(e, r);
  slope = hn::Mul(er, r);
  return hn::IfThenElse(hn::Ge(x, hn::Zero(d)), r, er);
}

// q = Phi(-|x|) = erfc(|x| / sqrt(2)) / 2, the smaller tail of the standard normal CDF, with
// relative error ~3e-7 (|x| < 2) growing like x^2 ulps beyond: the conditioning of erfc itself.
// Form: erfc(z) = t * exp(P(t) - z^2) with t = 1 / (1 + z / 2); P is a degree-10 polynomial in
// t - 7/12 fitted (weighted least squares towards minimax) to log(erfc(z) / t) + z^2 over
// z in [0, 10]; its own error is 6e-9, the rest is f32 rounding. z^2 is computed as x * x / 2,
// one rounding fewer than (x / sqrt(2))^2.
HWY_INLINE V NormalTail(D d, V x) {
  // z is capped at 20, where erfc is long below f32 range (exp(-400)); the cap keeps t finite
  // and non-zero for x = +-inf, so the reciprocal's Newton step never sees inf * 0.
  const V z = hn::Min(hn::Mul(hn::Abs(x), hn::Set(d, 0.70710678118654752f)), hn::Set(d, 20.0f));
  const V t = Reciprocal(d, hn::MulAdd(z, hn::Set(d, 0.5f), hn::Set(d, 1.0f)));
  const V s = hn::Sub(t, hn::Set(d, 0.5833333134651184f));
  V p = hn::Set(d, -0.1382134109735489f);
  p = hn::MulAdd(p, s, hn::Set(d, 0.14555306732654572f));
  p = hn::MulAdd(p, s, hn::Set(d, 0.14008665084838867f));
  p = hn::MulAdd(p, s, hn::Set(d, -0.24530507624149323f));
  p = hn::MulAdd(p, s, hn::Set(d, -0.0523095577955246f));
  p = hn::MulAdd(p, s, hn::Set(d, 0.2952432632446289f));
  p = hn::MulAdd(p, s, hn::Set(d, -0.03471476584672928f));
  p = hn::MulAdd(p, s, hn::Set(d, -0.40739938616752625f));
  p = hn::MulAdd(p, s, hn::Set(d, 0.09069216996431351f));
  p = hn::MulAdd(p, s, hn::Set(d, 1.3687371015548706f));
  p = hn::MulAdd(p, s, hn::Set(d, -0.5585953593254089f));
  const V half_x2 = hn::Mul(hn::Mul(x, x), hn::Set(d, 0.5f));
  return hn::Mul(hn::Mul(t, hn::Set(d, 0.5f)), ExpNonPositive(d, hn::Sub(p, half_x2)));
}

// Phi(x), the standard normal CDF: 1 - tail for x >= 0, tail below (no cancellation there).
HWY_INLINE V NormalCdf(D d, V x) {
  const V q = NormalTail(d, x);
  return hn::IfThenElse(hn::Ge(x, hn::Zero(d)), hn::Sub(hn::Set(d, 1.0f), q), q);
}

constexpr float kSqrt2OverPi = 0.79788456080286536f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1 / sqrt(2 pi)

struct SiluFwd {
  HWY_INLINE V operator()(D d, V x) const { return hn::Mul(x, Sigmoid(d, x)); }
};
struct SiluGrad {  // d silu / dx = s + x s (1 - s)
  HWY_INLINE V operator()(D d, V x) const {
    V slope;
    const V s = SigmoidAndSlope(d, x, slope);
    return hn::MulAdd(x, slope, s);
  }
};
struct GeluErfFwd {
  HWY_INLINE V operator()(D d, V x) const { return hn::Mul(x, NormalCdf(d, x)); }
};
struct GeluErfGrad {  // Phi(x) + x phi(x)
  HWY_INLINE V operator()(D d, V x) const {
    const V pdf = hn::Mul(ExpNonPositive(d, hn::Mul(hn::Mul(x, x), hn::Set(d, -0.5f))),
                          hn::Set(d, kInvSqrt2Pi));
    return hn::MulAdd(x, pdf, NormalCdf(d, x));
  }
};
// The tanh form, rewritten without cancellation: 0.5 (1 + tanh(u)) = sigmoid(2u), so
// gelu(x) = x * sigmoid(2u) with u = sqrt(2/pi) x (1 + 0.044715 x^2). Computing 1 + tanh(u)
// directly loses every digit for x below about -3, where tanh(u) is close to -1.
HWY_INLINE V GeluTanhArg2(D d, V x) {  // 2u
  return hn::Mul(hn::Mul(x, hn::Set(d, 2.0f * kSqrt2OverPi)),
                 hn::MulAdd(hn::Mul(x, x), hn::Set(d, kGeluCubic), hn::Set(d, 1.0f)));
}
struct GeluTanhFwd {
  HWY_INLINE V operator()(D d, V x) const { return hn::Mul(x, Sigmoid(d, GeluTanhArg2(d, x))); }
};
// d/dx [x s(2u)] = s + x * 2 s (1 - s) * du/dx, du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
struct GeluTanhGrad {
  HWY_INLINE V operator()(D d, V x) const {
    V slope;
    const V s = SigmoidAndSlope(d, GeluTanhArg2(d, x), slope);
    const V two_du =
        hn::Mul(hn::Set(d, 2.0f * kSqrt2OverPi),
                hn::MulAdd(hn::Mul(x, x), hn::Set(d, 3.0f * kGeluCubic), hn::Set(d, 1.0f)));
    return hn::MulAdd(hn::Mul(x, slope), two_du, s);
  }
};

// ---- loops: full vectors, then the tail through padded buffers -----------------------------

HWY_INLINE void CopyIn(float* HWY_RESTRICT buf, const float* HWY_RESTRICT src, size_t count) {
  std::memset(buf, 0, kMaxLanes * sizeof(float));
  std::memcpy(buf, src, count * sizeof(float));
}

// y = f(x).
template <class F>
HWY_INLINE void Map(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t n, F f) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(f(d, hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    HWY_ALIGN float bx[kMaxLanes];
    HWY_ALIGN float by[kMaxLanes];
    CopyIn(bx, x + i, n - i);
    hn::Store(f(d, hn::Load(d, bx)), d, by);
    std::memcpy(y + i, by, (n - i) * sizeof(float));
  }
}

// d_x += d_y * f'(x).
template <class F>
HWY_INLINE void MapGrad(float* HWY_RESTRICT d_x, const float* HWY_RESTRICT d_y,
                        const float* HWY_RESTRICT x, size_t n, F grad) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V g = grad(d, hn::LoadU(d, x + i));
    hn::StoreU(hn::MulAdd(hn::LoadU(d, d_y + i), g, hn::LoadU(d, d_x + i)), d, d_x + i);
  }
  if (i < n) {
    HWY_ALIGN float bx[kMaxLanes];
    HWY_ALIGN float bg[kMaxLanes];
    CopyIn(bx, x + i, n - i);
    hn::Store(grad(d, hn::Load(d, bx)), d, bg);
    for (size_t j = 0; j < n - i; ++j) d_x[i + j] += d_y[i + j] * bg[j];
  }
}

void SiluForward(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t n) {
  Map(y, x, n, SiluFwd());
}
void SiluBackward(float* HWY_RESTRICT d_x, const float* HWY_RESTRICT d_y,
                  const float* HWY_RESTRICT x, size_t n) {
  MapGrad(d_x, d_y, x, n, SiluGrad());
}
void GeluForward(float* HWY_RESTRICT y, const float* HWY_RESTRICT x, size_t n, bool tanh_approx) {
  if (tanh_approx) {
    Map(y, x, n, GeluTanhFwd());
  } else {
    Map(y, x, n, GeluErfFwd());
  }
}
void GeluBackward(float* HWY_RESTRICT d_x, const float* HWY_RESTRICT d_y,
                  const float* HWY_RESTRICT x, size_t n, bool tanh_approx) {
  if (tanh_approx) {
    MapGrad(d_x, d_y, x, n, GeluTanhGrad());
  } else {
    MapGrad(d_x, d_y, x, n, GeluErfGrad());
  }
}

// out = silu(gate) * up over one span.
void SwiGluForward(float* HWY_RESTRICT out, const float* HWY_RESTRICT gate,
                   const float* HWY_RESTRICT up, size_t n) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V g = hn::LoadU(d, gate + i);
    hn::StoreU(hn::Mul(SiluFwd()(d, g), hn::LoadU(d, up + i)), d, out + i);
  }
  if (i < n) {
    HWY_ALIGN float bg[kMaxLanes];
    HWY_ALIGN float bu[kMaxLanes];
    HWY_ALIGN float bo[kMaxLanes];
    CopyIn(bg, gate + i, n - i);
    CopyIn(bu, up + i, n - i);
    hn::Store(hn::Mul(SiluFwd()(d, hn::Load(d, bg)), hn::Load(d, bu)), d, bo);
    std::memcpy(out + i, bo, (n - i) * sizeof(float));
  }
}

// d_gate += d_out * up * silu'(gate);  d_up += d_out * silu(gate), over one span. Sigmoid is
// computed once for both.
HWY_INLINE void SwiGluGradVec(D d, V g, V u, V dy, V& d_g, V& d_u) {
  V slope;
  const V s = SigmoidAndSlope(d, g, slope);
  const V silu = hn::Mul(g, s);
  const V dsilu = hn::MulAdd(g, slope, s);
  d_g = hn::MulAdd(hn::Mul(dy, u), dsilu, d_g);
  d_u = hn::MulAdd(dy, silu, d_u);
}

void SwiGluBackward(float* HWY_RESTRICT d_gate, float* HWY_RESTRICT d_up,
                    const float* HWY_RESTRICT d_out, const float* HWY_RESTRICT gate,
                    const float* HWY_RESTRICT up, size_t n) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    V dg = hn::LoadU(d, d_gate + i);
    V du = hn::LoadU(d, d_up + i);
    SwiGluGradVec(d, hn::LoadU(d, gate + i), hn::LoadU(d, up + i), hn::LoadU(d, d_out + i), dg, du);
    hn::StoreU(dg, d, d_gate + i);
    hn::StoreU(du, d, d_up + i);
  }
  if (i < n) {
    const size_t rest = n - i;
    HWY_ALIGN float bg[kMaxLanes];
    HWY_ALIGN float bu[kMaxLanes];
    HWY_ALIGN float bdy[kMaxLanes];
    HWY_ALIGN float bdg[kMaxLanes];
    HWY_ALIGN float bdu[kMaxLanes];
    CopyIn(bg, gate + i, rest);
    CopyIn(bu, up + i, rest);
    CopyIn(bdy, d_out + i, rest);
    CopyIn(bdg, d_gate + i, rest);
    CopyIn(bdu, d_up + i, rest);
    V dg = hn::Load(d, bdg);
    V du = hn::Load(d, bdu);
    SwiGluGradVec(d, hn::Load(d, bg), hn::Load(d, bu), hn::Load(d, bdy), dg, du);
    hn::Store(dg, d, bdg);
    hn::Store(du, d, bdu);
    std::memcpy(d_gate + i, bdg, rest * sizeof(float));
    std::memcpy(d_up + i, bdu, rest * sizeof(float));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>

#include "core/threads.h"
#include "kernels/cpu/activations_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(SiluForward);
HWY_EXPORT(SiluBackward);
HWY_EXPORT(GeluForward);
HWY_EXPORT(GeluBackward);
HWY_EXPORT(SwiGluForward);
HWY_EXPORT(SwiGluBackward);

namespace {
// Elements per OpenMP work item: large enough that dispatch and scheduling are noise, small
// enough that a few hundred thousand elements still spread over every thread.
constexpr int64_t kChunk = 16384;

// Runs body(row, first_col, count) over tiles of at most kChunk columns of each row, in parallel
// when there are kParallelMinElements or more.
template <typename Body>
void for_tiles(int64_t rows, int64_t cols, Body&& body) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t per_row = (cols + kChunk - 1) / kChunk;
  const int64_t tiles = rows * per_row;
  parallel_for(0, tiles, tiles > 1 && rows * cols >= kParallelMinElements, [&](int64_t t) {
    const int64_t r = t / per_row;
    const int64_t c = (t % per_row) * kChunk;
    body(r, c, static_cast<size_t>(std::min(kChunk, cols - c)));
  });
}
}  // namespace

void silu_forward(float* y, const float* x, int64_t n) {
  for_tiles(1, n, [&](int64_t, int64_t c, size_t count) {
    HWY_DYNAMIC_DISPATCH(SiluForward)(y + c, x + c, count);
  });
}

void silu_backward(float* d_x, const float* d_y, const float* x, int64_t n) {
  for_tiles(1, n, [&](int64_t, int64_t c, size_t count) {
    HWY_DYNAMIC_DISPATCH(SiluBackward)(d_x + c, d_y + c, x + c, count);
  });
}

void gelu_forward(float* y, const float* x, int64_t n, bool tanh_approx) {
  for_tiles(1, n, [&](int64_t, int64_t c, size_t count) {
    HWY_DYNAMIC_DISPATCH(GeluForward)(y + c, x + c, count, tanh_approx);
  });
}

void gelu_backward(float* d_x, const float* d_y, const float* x, int64_t n, bool tanh_approx) {
  for_tiles(1, n, [&](int64_t, int64_t c, size_t count) {
    HWY_DYNAMIC_DISPATCH(GeluBackward)(d_x + c, d_y + c, x + c, count, tanh_approx);
  });
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t rows, int64_t cols,
                    int64_t in_stride) {
  for_tiles(rows, cols, [&](int64_t r, int64_t c, size_t count) {
    const int64_t in = r * in_stride + c;
    HWY_DYNAMIC_DISPATCH(SwiGluForward)(out + r * cols + c, gate + in, up + in, count);
  });
}

void swiglu_forward_span(float* out, const float* gate, const float* up, int64_t n) {
  if (n > 0) HWY_DYNAMIC_DISPATCH(SwiGluForward)(out, gate, up, static_cast<size_t>(n));
}

void swiglu_backward(float* d_gate, float* d_up, const float* d_out, const float* gate,
                     const float* up, int64_t rows, int64_t cols, int64_t in_stride) {
  for_tiles(rows, cols, [&](int64_t r, int64_t c, size_t count) {
    const int64_t in = r * in_stride + c;
    HWY_DYNAMIC_DISPATCH(SwiGluBackward)
    (d_gate + in, d_up + in, d_out + r * cols + c, gate + in, up + in, count);
  });
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
