// Vectorised f16 <-> f32 conversions for convert_f16_to_f32 (exact) and convert_f32_to_f16
// (rounded to nearest even, with the scalar function's NaNs), so every target gives the same bits.
// Highway compiles this file once per SIMD target and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/dtype_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace sy {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Widens the first n - n % lanes values; returns how many it did.
size_t WidenF16(const uint16_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, size_t n) {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
  // Highway 1.0's emulated widening turns f16 infinity into 65536 (no inf/NaN case); the
  // scalar loop of the caller is exact.
  (void)src, (void)dst, (void)n;
  return 0;
#else
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const size_t lanes = hn::Lanes(df);
  const auto* in = reinterpret_cast<const hwy::float16_t*>(src);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, in + i)), df, dst + i);
  }
  return i;
#endif
}

// Narrows the first n - n % lanes values to f16 (round to nearest even, as f32_to_f16), except
// that a vector holding a NaN stops it (f32_to_f16 chooses NaN payloads its own way); returns how
// many it did. A prefill writes every layer's keys and values through here.
size_t NarrowF16(const float* HWY_RESTRICT src, uint16_t* HWY_RESTRICT dst, size_t n) {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
  (void)src, (void)dst, (void)n;
  return 0;
#else
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const size_t lanes = hn::Lanes(df);
  auto* out = reinterpret_cast<hwy::float16_t*>(dst);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(df, src + i);
    if (!hn::AllFalse(df, hn::IsNaN(v))) break;
    hn::StoreU(hn::DemoteTo(dh, v), dh, out + i);
  }
  return i;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace sy
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "core/dtype.h"

namespace sy {

HWY_EXPORT(WidenF16);
HWY_EXPORT(NarrowF16);

void convert_f16_to_f32(const uint16_t* src, float* dst, size_t n) {
  size_t i = HWY_DYNAMIC_DISPATCH(WidenF16)(src, dst, n);
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void convert_f32_to_f16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  while (i < n) {
    i += HWY_DYNAMIC_DISPATCH(NarrowF16)(src + i, dst + i, n - i);
    if (i < n) {  // a NaN, the tail, or a target without a vector path: one value at a time
      dst[i] = f32_to_f16(src[i]);
      ++i;
    }
  }
}

}  // namespace sy
#endif  // HWY_ONCE
