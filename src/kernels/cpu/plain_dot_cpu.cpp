// Highway compiles this file once per SIMD target (foreach_target) and dispatches at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/plain_dot_cpu.cpp"
#include "kernels/cpu/plain_dot_cpu.h"

#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace sy::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Weight j of a row at p as f32.
template <PlainKind kKind>
HWY_INLINE float WidenOne(const uint8_t* p, size_t j) {
  if constexpr (kKind == PlainKind::kF32) {
    float v = 0.0f;
    std::memcpy(&v, p + 4 * j, 4);
    return v;
  } else {
    uint16_t v = 0;
    std::memcpy(&v, p + 2 * j, 2);
    return kKind == PlainKind::kBF16 ? bf16_to_f32(v) : f16_to_f32(v);
  }
}

// Lanes(df) weights from weight j of a row at p, as f32: bf16 is the top half of an f32; f16
// through the target's conversion.
template <PlainKind kKind, class DF>
HWY_INLINE hn::Vec<DF> Widen(DF df, const uint8_t* HWY_RESTRICT p, size_t j) {
  if constexpr (kKind == PlainKind::kF32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(p) + j);
  } else if constexpr (kKind == PlainKind::kBF16) {
    const hn::RebindToUnsigned<DF> du32;
    const hn::Rebind<uint16_t, DF> du16;
    const auto* h = reinterpret_cast<const uint16_t*>(p) + j;
    return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, h))));
  } else {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p) + j));
  }
}

// Rows [0, rows) against kT tokens (see plain_dot_tile). Per token two partial sums take the
// even and the odd vectors of the row, so one row's loads and conversions serve every token and
// the FMA chains stay short.
template <PlainKind kKind, int kT>
void DotRowsT(const uint8_t* HWY_RESTRICT w, size_t ws, size_t rows, const float* HWY_RESTRICT x,
              size_t xs, size_t k, float* HWY_RESTRICT y, size_t ys, bool accumulate) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df);
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* row = w + r * ws;
    hn::Vec<decltype(df)> even[kT], odd[kT];
    for (int t = 0; t < kT; ++t) even[t] = odd[t] = hn::Zero(df);
    size_t i = 0;
    for (; i + 2 * lanes <= k; i += 2 * lanes) {
      const auto w0 = Widen<kKind>(df, row, i);
      const auto w1 = Widen<kKind>(df, row, i + lanes);
      for (int t = 0; t < kT; ++t) {
        even[t] = hn::MulAdd(w0, hn::LoadU(df, x + t * xs + i), even[t]);
        odd[t] = hn::MulAdd(w1, hn::LoadU(df, x + t * xs + i + lanes), odd[t]);
      }
    }
    if (i + lanes <= k) {
      const auto w0 = Widen<kKind>(df, row, i);
      for (int t = 0; t < kT; ++t) even[t] = hn::MulAdd(w0, hn::LoadU(df, x + t * xs + i), even[t]);
      i += lanes;
    }
    for (int t = 0; t < kT; ++t) {
      float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(even[t], odd[t])));
      for (size_t j = i; j < k; ++j) s += WidenOne<kKind>(row, j) * x[t * xs + j];
      float& out = y[t * ys + r];
      out = accumulate ? out + s : s;
    }
  }
}

template <PlainKind kKind>
void DotRows(const uint8_t* w, size_t ws, size_t rows, const float* x, size_t xs, size_t tokens,
             size_t k, float* y, size_t ys, bool accumulate) {
  switch (tokens) {
    case 1:
      return DotRowsT<kKind, 1>(w, ws, rows, x, xs, k, y, ys, accumulate);
    case 2:
      return DotRowsT<kKind, 2>(w, ws, rows, x, xs, k, y, ys, accumulate);
    case 3:
      return DotRowsT<kKind, 3>(w, ws, rows, x, xs, k, y, ys, accumulate);
    default:
      return DotRowsT<kKind, 4>(w, ws, rows, x, xs, k, y, ys, accumulate);
  }
}

// The exported body: rows [0, rows) of weights of `kind` (a PlainKind as an int).
void PlainDotRows(int kind, const uint8_t* w, size_t ws, size_t rows, const float* x, size_t xs,
                  size_t tokens, size_t k, float* y, size_t ys, bool accumulate) {
  switch (static_cast<PlainKind>(kind)) {
    case PlainKind::kF32:
      return DotRows<PlainKind::kF32>(w, ws, rows, x, xs, tokens, k, y, ys, accumulate);
    case PlainKind::kBF16:
      return DotRows<PlainKind::kBF16>(w, ws, rows, x, xs, tokens, k, y, ys, accumulate);
    case PlainKind::kF16:
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
      // Highway 1.0's emulated f16 widening has no infinity or NaN case: one value at a time.
      for (size_t r = 0; r < rows; ++r) {
        for (size_t t = 0; t < tokens; ++t) {
          float s = 0.0f;
          for (size_t j = 0; j < k; ++j)
            s += WidenOne<PlainKind::kF16>(w + r * ws, j) * x[t * xs + j];
          float& out = y[t * ys + r];
          out = accumulate ? out + s : s;
        }
      }
      return;
#else
      return DotRows<PlainKind::kF16>(w, ws, rows, x, xs, tokens, k, y, ys, accumulate);
#endif
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sy::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>

namespace sy::kernels::cpu {

HWY_EXPORT(PlainDotRows);

namespace {

template <PlainKind kKind>
void plain_tile(const QdotTile& a) {
  for (int64_t t0 = 0; t0 < a.tokens; t0 += kPlainDotMaxTokens) {
    const int64_t nt = std::min(kPlainDotMaxTokens, a.tokens - t0);
    HWY_DYNAMIC_DISPATCH(PlainDotRows)
    (static_cast<int>(kKind), a.w, a.w_stride, static_cast<size_t>(a.rows),
     reinterpret_cast<const float*>(a.act + static_cast<size_t>(t0) * a.act_stride),
     a.act_stride / 4, static_cast<size_t>(nt), static_cast<size_t>(a.k), a.y + t0 * a.y_stride,
     static_cast<size_t>(a.y_stride), a.accumulate);
  }
}
}  // namespace

QdotTileFn plain_dot_tile(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return plain_tile<PlainKind::kF32>;
    case GgmlType::kF16:
      return plain_tile<PlainKind::kF16>;
    case GgmlType::kBF16:
      return plain_tile<PlainKind::kBF16>;
    default:
      return nullptr;
  }
}

void copy_act_row_f32(GgmlType /*weight_type*/, const float* x, int64_t k, uint8_t* out) {
  std::memcpy(out, x, static_cast<size_t>(k) * sizeof(float));
}

}  // namespace sy::kernels::cpu
#endif
