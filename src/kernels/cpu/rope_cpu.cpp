// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/rope_cpu.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rotates `half` pairs of one head: pair i is (x[i], x[i + half]) (NeoX) or (x[2i], x[2i+1])
// (interleaved). (a, b) -> (a c - b s, b c + a s), stored or added into out. out may equal x
// when not accumulating: each pair is loaded before it is stored.
void RotateHead(float* out, const float* x, const float* HWY_RESTRICT cos,
                const float* HWY_RESTRICT sin, size_t half, bool interleaved, bool accumulate) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  if (!interleaved) {
    for (; i + lanes <= half; i += lanes) {
      const auto a = hn::LoadU(d, x + i);
      const auto b = hn::LoadU(d, x + half + i);
      const auto c = hn::LoadU(d, cos + i);
      const auto s = hn::LoadU(d, sin + i);
      auto ra = hn::NegMulAdd(b, s, hn::Mul(a, c));
      auto rb = hn::MulAdd(a, s, hn::Mul(b, c));
      if (accumulate) {
        ra = hn::Add(ra, hn::LoadU(d, out + i));
        rb = hn::Add(rb, hn::LoadU(d, out + half + i));
      }
      hn::StoreU(ra, d, out + i);
      hn::StoreU(rb, d, out + half + i);
    }
  } else {
    for (; i + lanes <= half; i += lanes) {
      hn::Vec<decltype(d)> a, b;
      hn::LoadInterleaved2(d, x + 2 * i, a, b);
      const auto c = hn::LoadU(d, cos + i);
      const auto s = hn::LoadU(d, sin + i);
      auto ra = hn::NegMulAdd(b, s, hn::Mul(a, c));
      auto rb = hn::MulAdd(a, s, hn::Mul(b, c));
      if (accumulate) {
        hn::Vec<decltype(d)> oa, ob;
        hn::LoadInterleaved2(d, out + 2 * i, oa, ob);
        ra = hn::Add(ra, oa);
        rb = hn::Add(rb, ob);
      }
      hn::StoreInterleaved2(ra, rb, d, out + 2 * i);
    }
  }
  const size_t stride = interleaved ? 1 : half;  // distance from a pair's first to its second
  for (; i < half; ++i) {
    const size_t ia = interleaved ? 2 * i : i;
    const float a = x[ia];
    const float b = x[ia + stride];
    const float ra = a * cos[i] - b * sin[i];
    const float rb = b * cos[i] + a * sin[i];
    out[ia] = accumulate ? out[ia] + ra : ra;
    out[ia + stride] = accumulate ? out[ia + stride] + rb : rb;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>
#include <cstring>
#include <vector>

#include "core/threads.h"
#include "kernels/cpu/rope_cpu.h"

namespace sy::kernels::cpu {

HWY_EXPORT(RotateHead);

namespace {

// cos/sin of one position's angles (pos x inv_freq[i], times scale, sin also times sign). The
// last ones computed on this thread are kept: a decode step rotates the queries and keys of every
// layer at one position, and 64 double-precision sin/cos pairs took longer than the rotations.
class Angles {
 public:
  void compute(double pos, const float* inv_freq, int64_t half, double scale, float sign) {
    const auto n = static_cast<size_t>(half);
    if (valid_ && pos == pos_ && scale == scale_ && sign == sign_ && freq_.size() == n &&
        std::memcmp(freq_.data(), inv_freq, n * sizeof(float)) == 0) {
      return;
    }
    freq_.assign(inv_freq, inv_freq + n);
    cos_.resize(n);
    sin_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const double angle = pos * static_cast<double>(inv_freq[i]);
      cos_[i] = static_cast<float>(scale * std::cos(angle));
      sin_[i] = static_cast<float>(scale * sign * std::sin(angle));
    }
    pos_ = pos;
    scale_ = scale;
    sign_ = sign;
    valid_ = true;
  }
  const float* cos() const { return cos_.data(); }
  const float* sin() const { return sin_.data(); }

 private:
  bool valid_ = false;
  double pos_ = 0.0, scale_ = 0.0;
  float sign_ = 0.0f;
  std::vector<float> freq_, cos_, sin_;
};

}  // namespace

void rope_apply(float* out, const float* x, const int32_t* positions, int64_t position_offset,
                const float* inv_freq, const RopeShape& shape, bool interleaved, float sign,
                bool accumulate, double scale) {
  const int64_t half = shape.rotary_dim / 2;
  const int64_t head_dim = shape.head_dim;
  const int64_t row = shape.heads * head_dim;
  const bool parallel = shape.tokens * row >= kParallelMinElements;
  parallel_for(0, shape.tokens, parallel, [&](int64_t t) {
    // cos/sin of this token's angles, shared by all its heads.
    thread_local Angles angles;
    const auto pos = static_cast<double>(positions ? positions[t] : position_offset + t);
    angles.compute(pos, inv_freq, half, scale, sign);
    for (int64_t h = 0; h < shape.heads; ++h) {
      float* o = out + t * row + h * head_dim;
      const float* xi = x + t * row + h * head_dim;
      HWY_DYNAMIC_DISPATCH(RotateHead)
      (o, xi, angles.cos(), angles.sin(), static_cast<size_t>(half), interleaved, accumulate);
      for (int64_t j = shape.rotary_dim; j < head_dim; ++j) {
        o[j] = accumulate ? o[j] + xi[j] : xi[j];
      }
    }
  });
}

}  // namespace sy::kernels::cpu
#endif  // HWY_ONCE
