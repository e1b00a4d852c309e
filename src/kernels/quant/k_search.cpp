// The scale searches of ggml's K-quant reference quantizers, written from ggml-quants.c. Every
// running sum is accumulated in the order ggml uses and every expression is evaluated with the
// same association (e.g. w * x * l is (w * x) * l), because the searches compare errors and a
// single differently rounded sum can pick another candidate and change the bytes.
#include "kernels/quant/k_search.h"

#include <cmath>
#include <cstdint>

#include "kernels/quant/formats.h"

namespace sy::kernels::quant {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml GROUP_MAX_EPS: below this a group is all zero

// The value of largest magnitude (the first one on ties), 0 when all are zero; amax its magnitude.
float signed_absmax(int n, const float* x, float& amax) {
  float max = 0;
  amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Lane-wise helpers. Comparisons give -1 (true) or 0 per lane.
F4 broadcast(float v) { return F4{v, v, v, v}; }

F4 select(I4 mask, F4 yes, F4 no) {
  return std::bit_cast<F4>((mask & std::bit_cast<I4>(yes)) | (~mask & std::bit_cast<I4>(no)));
}

bool any(I4 mask) { return (mask[0] | mask[1] | mask[2] | mask[3]) != 0; }

// clamp(nearest_int(v), lo, hi) as a float: clamping first gives the same result (lo and hi are
// integers) and keeps the rounding trick in range; (v + 1.5 * 2^23) - 1.5 * 2^23 is then v
// rounded to an integer, ties to even, exactly as nearest_int. NaN becomes lo.
F4 nearest_clamped(F4 v, float lo, float hi) {
  const F4 magic = broadcast(12582912.0f);
  v = select(v > lo, v, broadcast(lo));
  v = select(v < hi, v, broadcast(hi));
  return (v + magic) - magic;
}

}  // namespace

F4 fit_scale_min4(int n, int nmax, const F4* x, const F4* weights, F4* L, F4* the_min, F4* Laux,
                  float rmin, float rdelta, int nstep, bool use_mad) {
  const F4 zero = broadcast(0.0f), one = broadcast(1.0f);
  const auto fmax_code = static_cast<float>(nmax);
  F4 min = x[0];
  F4 max = x[0];
  F4 sum_w = weights[0];
  F4 sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = select(x[i] < min, x[i], min);
    max = select(x[i] > max, x[i], max);
    const F4 w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  min = select(min > 0.0f, zero, min);
  // ggml returns scale 0, codes 0 for a group with max == min; such a lane runs along with
  // max - min replaced by 1 (all its x - min are 0, so no candidate is ever taken) and is
  // overwritten at the end.
  const I4 flat = max == min;
  F4 iscale = fmax_code / select(flat, one, max - min);
  F4 scale = 1.0f / iscale;
  F4 best_error = zero;
  for (int i = 0; i < n; ++i) {
    const F4 l = nearest_clamped(iscale * (x[i] - min), 0.0f, fmax_code);
    L[i] = l;
    F4 diff = scale * l + min - x[i];
    diff = use_mad ? abs4(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    const float numerator = rmin + rdelta * static_cast<float>(is) + fmax_code;
    iscale = numerator / select(flat, one, max - min);
    F4 sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < n; ++i) {
      const F4 l = nearest_clamped(iscale * (x[i] - min), 0.0f, fmax_code);
      Laux[i] = l;
      const F4 w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const F4 D = sum_w * sum_l2 - sum_l * sum_l;
    const I4 fits = D > 0.0f;
    if (!any(fits)) continue;
    F4 this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    F4 this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    const I4 positive_min = this_min > 0.0f;
    this_min = select(positive_min, zero, this_min);
    this_scale = select(positive_min, sum_xl / sum_l2, this_scale);
    F4 cur_error = zero;
    for (int i = 0; i < n; ++i) {
      F4 diff = this_scale * Laux[i] + this_min - x[i];
      diff = use_mad ? abs4(diff) : diff * diff;
      cur_error += weights[i] * diff;
    }
    const I4 take = fits & (cur_error < best_error);
    if (!any(take)) continue;
    for (int i = 0; i < n; ++i) L[i] = select(take, Laux[i], L[i]);
    best_error = select(take, cur_error, best_error);
    scale = select(take, this_scale, scale);
    min = select(take, this_min, min);
  }
  for (int i = 0; i < n; ++i) L[i] = select(flat, zero, L[i]);
  *the_min = -min;
  return select(flat, zero, scale);
}

F4 fit_scale_signed4(int n, int nmax, const F4* x, F4* L, F4* Laux) {
  const F4 zero = broadcast(0.0f);
  const auto fmax_code = static_cast<float>(nmax);
  const float lo = -fmax_code, hi = fmax_code - 1;
  F4 max = zero, amax = zero;  // the value of largest magnitude, first on ties
  for (int i = 0; i < n; ++i) {
    const F4 ax = abs4(x[i]);
    const I4 larger = ax > amax;
    amax = select(larger, ax, amax);
    max = select(larger, x[i], max);
  }
  const I4 tiny = amax < kGroupMaxEps;  // ggml returns scale 0, codes 0 for these
  max = select(tiny, broadcast(1.0f), max);

  F4 iscale = -fmax_code / max;
  F4 sumlx = zero, suml2 = zero;
  for (int i = 0; i < n; ++i) {
    const F4 l = nearest_clamped(iscale * x[i], lo, hi);
    L[i] = l + fmax_code;
    const F4 w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  F4 scale = select(suml2 != 0.0f, sumlx / suml2, zero);
  F4 best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fmax_code + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = zero;
    for (int i = 0; i < n; ++i) {
      const F4 l = nearest_clamped(iscale * x[i], lo, hi);
      Laux[i] = l;
      const F4 w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    const I4 take = (suml2 > 0.0f) & (sumlx * sumlx > best * suml2);
    if (!any(take)) continue;
    for (int i = 0; i < n; ++i) L[i] = select(take, Laux[i] + fmax_code, L[i]);
    scale = select(take, sumlx / suml2, scale);
    best = select(take, scale * sumlx, best);
  }
  for (int i = 0; i < n; ++i) L[i] = select(tiny, zero, L[i]);
  return select(tiny, zero, scale);
}

float fit_scale_q3(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0;
  const float max = signed_absmax(n, x, amax);
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    const auto fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const auto old_l = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * old_l;
      if (slx > 0) {
        float sl2 = suml2 - w * old_l * old_l;
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const auto fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

void quantize_k_scale_min_block(const float* x, int nmax, float rmin, int nstep, uint8_t* head,
                                uint8_t* L) {
  constexpr int kSub = 32;
  float scales[8], mins[8];
  for (int half = 0; half < 2; ++half) {  // sub-blocks 4 * half .. 4 * half + 3, one per lane
    F4 xs[kSub], weights[kSub], codes[kSub], aux[kSub];
    load_lanes(x + 4 * kSub * half, kSub, xs);
    F4 sum_x2 = broadcast(0.0f);
    for (const F4& v : xs) sum_x2 += v * v;
    const F4 mean_x2 = sum_x2 / static_cast<float>(kSub);
    const F4 av_x = {std::sqrt(mean_x2[0]), std::sqrt(mean_x2[1]), std::sqrt(mean_x2[2]),
                     std::sqrt(mean_x2[3])};
    for (int l = 0; l < kSub; ++l) weights[l] = av_x + abs4(xs[l]);
    F4 the_min;
    const F4 scale =
        fit_scale_min4(kSub, nmax, xs, weights, codes, &the_min, aux, rmin, 0.1f, nstep, false);
    for (int g = 0; g < 4; ++g) {
      scales[4 * half + g] = scale[g];
      mins[4 * half + g] = the_min[g];
      for (int l = 0; l < kSub; ++l) {
        L[kSub * (4 * half + g) + l] = static_cast<uint8_t>(codes[l][g]);
      }
    }
  }
  float max_scale = 0, max_min = 0;  // after taking out the min, scales are positive
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }

  // The 6-bit scales and mins, relative to the largest of each. ggml stores the rounded value in
  // a uint8_t before capping it at 63, so a (rare) negative scale wraps and caps at 63 too.
  uint8_t* packed = head + 4;
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    auto ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    auto lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {  // low nibbles in byte j + 4, top 2 bits in the spare bits of bytes j - 4 and j
      packed[j + 4] = static_cast<uint8_t>((ls & 0xf) | ((lm & 0xf) << 4));
      packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((ls >> 4) << 6));
      packed[j] = static_cast<uint8_t>(packed[j] | ((lm >> 4) << 6));
    }
  }
  store_f16(head, max_scale / 63.0f);
  store_f16(head + 2, max_min / 63.0f);

  // Final codes against the stored (rounded) scales; a sub-block whose scale is 0 keeps the codes
  // of its fit, as in ggml.
  const float d_all = load_f16(head), dmin_all = load_f16(head + 2);
  for (int j = 0; j < 8; ++j) {
    int sc = 0, m = 0;
    k_scale_min(j, packed, sc, m);
    const float d = d_all * static_cast<float>(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int i = 0; i < kSub; ++i) {
      L[kSub * j + i] =
          static_cast<uint8_t>(clamp_int(nearest_int((x[kSub * j + i] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace sy::kernels::quant
