// The scale searches behind the K-format quantizers (q2_K .. q6_K), shared by their files. Internal
// to kernels/quant.
//
// Each follows the published ggml reference quantizer (ggml-quants.c, quantize_row_<fmt>_ref and
// the helpers it calls; named beside each function) step for step in f32, in the same order, so
// the blocks are byte-identical to ggml's for finite inputs as long as the compiler does not fuse
// a*b + c into one FMA (the project's x86-64 builds do not). Where ggml's own code is undefined
// (non-finite inputs, |value| > 2^22 - 1 in its rounding trick) these functions stay defined: they
// clamp or give an unspecified but in-range code.
#pragma once

#include <bit>
#include <cstdint>

namespace sy::kernels::quant {

// Round to the nearest integer, ties to even, as ggml's nearest_int: adding 1.5 * 2^23 makes the
// f32 addition do the rounding, and the integer is read back from the mantissa bits. Exact for
// |v| <= 2^22 - 1; larger magnitudes are clamped there first, and NaN gives a value in
// [-2^22, 2^22) (every caller clamps the result to a small code range).
inline int nearest_int(float v) {
  constexpr float kLimit = 4194303.0f;
  if (v > kLimit) {
    v = kLimit;
  } else if (v < -kLimit) {
    v = -kLimit;
  }
  const float biased = v + 12582912.0f;
  return static_cast<int>(std::bit_cast<uint32_t>(biased) & 0x007fffffu) - 0x00400000;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Four groups at a time, one per lane of a 16-byte vector (GCC/Clang vector extensions: SSE2 on
// x86-64). Each lane runs the scalar algorithm unchanged, every sum still accumulated value by
// value, so a lane's result is bit-identical to the group done alone; vectorising across groups,
// never across the values of one group, is what keeps ggml's summation order. (The searches are
// latency-bound chains of dependent f32 adds: four chains side by side run ~3x faster.)
using F4 = float __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));

// Value i of four groups of n: out[i][g] = x[g * n + i].
inline void load_lanes(const float* x, int n, F4* out) {
  for (int i = 0; i < n; ++i) out[i] = F4{x[i], x[n + i], x[2 * n + i], x[3 * n + i]};
}

inline F4 abs4(F4 v) { return std::bit_cast<F4>(std::bit_cast<I4>(v) & 0x7fffffff); }

// ggml make_qkx2_quants on four groups: fits value = scale * L - the_min (L in 0..nmax,
// the_min >= 0) to the n values x under `weights`, trying iscale = (nmax + rmin + rdelta * is) /
// (max - min) for is = 0..nstep after the plain min/max fit and keeping the one of least weighted
// error (squared, or absolute when use_mad). x, weights: [n] (load_lanes layout). Writes the codes
// (as floats) to L[n] (Laux: n vectors of scratch) and the mins to the_min; returns the scales.
F4 fit_scale_min4(int n, int nmax, const F4* x, const F4* weights, F4* L, F4* the_min, F4* Laux,
                  float rmin, float rdelta, int nstep, bool use_mad);

// ggml make_qx_quants with rmse_type 1 and no importance weights, on four groups: fits
// value = scale * (L - nmax) (L in 0..2 nmax - 1) to x under weights x^2, trying
// iscale = -(nmax + 0.1 is) / max for is = -9..9 (max = the value of largest magnitude). Writes
// the codes (as floats) to L[n] (Laux: scratch) and returns the (signed) scales; a group whose
// largest magnitude is below 1e-15 gets scale 0 and L = 0.
F4 fit_scale_signed4(int n, int nmax, const F4* x, F4* L, F4* Laux);

// ggml make_q3_quants with do_rmse, one group: as fit_scale_signed4's first guess, then up to 5
// rounds that move single codes while that lowers the x^2-weighted error. Writes the codes
// (L - nmax in -nmax..nmax - 1, stored + nmax; 0 for an all-zero group) to L[n].
float fit_scale_q3(int n, int nmax, const float* x, int8_t* L);

// What q4_K and q5_K share (ggml quantize_row_q4_K_ref / q5_K_ref up to the bit packing): for one
// super-block of 256 values, fits each sub-block of 32 with fit_scale_min (weights
// sqrt(mean x^2) + |x|), stores d, dmin (f16) and the 6-bit scales and mins to head[0..16) in the
// q4_K / q5_K layout, and writes each value's code (0..nmax) to L[256].
void quantize_k_scale_min_block(const float* x, int nmax, float rmin, int nstep, uint8_t* head,
                                uint8_t* L);

}  // namespace sy::kernels::quant
