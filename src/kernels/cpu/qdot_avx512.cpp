// AVX-512 bodies of the quantized dot products and the AVX-512 activation quantizer. The micro
// tiles (qdot_avx512-inl.h) are compiled twice: for AVX-512 F/BW/VL (vpmaddubsw + vpmaddwd) and
// for the same plus VNNI (vpdpbusd, vpdpwssd). Only code inside the target regions uses AVX-512;
// the entry calls it after checking the CPU (kernels/qmatmul.cpp).
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/cpu/qdot.h"
#include "kernels/cpu/qdot_x86.h"
#include "kernels/quant/formats.h"

#if SY_QDOT_X86

// ---- AVX-512 F/BW/VL -------------------------------------------------------------------------
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")
#endif

namespace sy::kernels::cpu::avx512_bw {

constexpr bool kVnni = false;
#include "kernels/cpu/qdot_avx512-inl.h"  // NOLINT(bugprone-suspicious-include)

// The scale of n values (n / 16 vectors at x): d and 1 / d as qdot.h defines them; false when the
// block is all zeros for the codes (non-finite: d = NaN, or tiny: d = 0).
bool block_scale(const float* x, int n, float& d, float& id) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  __m512 amax = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int i = 0; i < n; i += 16) {
    const __m512 a = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(x + i)), abs_mask));
    bad |= _mm512_cmp_ps_mask(a, _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ);  // inf or NaN
    amax = _mm512_max_ps(amax, a);
  }
  const float m = _mm512_reduce_max_ps(amax);
  if (bad != 0 || m < kActTiny) {
    d = bad != 0 ? NAN : 0.0f;
    return false;
  }
  d = m / 127.0f;
  id = 127.0f / m;
  return true;
}

// 16 codes of x * id as int32 (rounded to nearest even by the default MXCSR mode).
SY_QDOT_INLINE __m512i codes16(const float* x, float id) {
  return _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(id)));
}

// Everything of a group is assembled in registers and stored once: reading back pieces just
// stored (to sum them) would stall on store forwarding.
void quantize_a32(const float* x, int64_t k, int c, uint8_t* out) {
  const int64_t nb = k / 32;
  const __m512i ones = _mm512_set1_epi8(1), neg_c = _mm512_set1_epi16(static_cast<int16_t>(-c));
  for (int64_t g = 0; g < (nb + 3) / 4; ++g) {
    uint8_t* o = out + g * kA32GroupBytes;
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    __m512 dv = _mm512_setzero_ps();
    for (int j = 0; j < 4 && 4 * g + j < nb; ++j) {
      const float* xb = x + 32 * (4 * g + j);
      const auto lanes = static_cast<__mmask16>(0xf << (4 * j));
      float d = 0.0f, id = 0.0f;
      if (block_scale(xb, 32, d, id)) {
        lo = _mm512_mask_broadcast_i32x4(lo, lanes, _mm512_cvtsepi32_epi8(codes16(xb, id)));
        hi = _mm512_mask_broadcast_i32x4(hi, lanes, _mm512_cvtsepi32_epi8(codes16(xb + 16, id)));
      }
      dv = _mm512_mask_broadcastss_ps(dv, lanes, _mm_set_ss(d));
    }
    const __m512i pairs =
        _mm512_add_epi16(_mm512_maddubs_epi16(ones, lo), _mm512_maddubs_epi16(ones, hi));
    _mm512_store_si512(o, lo);
    _mm512_store_si512(o + 64, hi);
    _mm512_store_si512(o + 128, _mm512_madd_epi16(pairs, neg_c));
    _mm512_store_ps(reinterpret_cast<float*>(o + 192), dv);
  }
}

void quantize_a256(const float* x, int64_t k, bool k4_order, uint8_t* out) {
  for (int64_t s = 0; s < k / 256; ++s) {
    uint8_t* o = out + s * kA256Bytes;
    const float* xs = x + s * 256;
    float d = 0.0f, id = 0.0f;
    const bool coded = block_scale(xs, 256, d, id);
    __m512i sums = _mm512_setzero_si512();  // int32 lane j: sum of values 16 j .. 16 j + 15
    for (int j = 0; j < 16; ++j) {
      const int sub = j / 2;
      const int pos = k4_order ? kK4SubOrder[sub] : sub;  // the order is its own inverse
      __m128i q = _mm_setzero_si128();
      if (coded) {
        const __m512i v = codes16(xs + 16 * j, id);
        q = _mm512_cvtsepi32_epi8(v);
        sums = _mm512_mask_set1_epi32(sums, static_cast<__mmask16>(1u << j),
                                      _mm512_reduce_add_epi32(v));
      }
      _mm_store_si128(reinterpret_cast<__m128i*>(o + 32 * pos + 16 * (j % 2)), q);
    }
    _mm256_store_si256(reinterpret_cast<__m256i*>(o + 256), _mm512_cvtepi32_epi16(sums));
    std::memset(o + 288, 0, 32);
    std::memcpy(o + 288, &d, 4);
    _mm512_store_ps(reinterpret_cast<float*>(o + 320),
                    _mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sums)));
  }
}

}  // namespace sy::kernels::cpu::avx512_bw

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// ---- AVX-512 F/BW/VL + VNNI ------------------------------------------------------------------
#if defined(__clang__)
#pragma clang attribute push(                                                      \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
#endif

namespace sy::kernels::cpu::avx512_vnni {

constexpr bool kVnni = true;
#include "kernels/cpu/qdot_avx512-inl.h"  // NOLINT(bugprone-suspicious-include)

}  // namespace sy::kernels::cpu::avx512_vnni

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace sy::kernels::cpu {

QdotTileFn qdot_tile_avx512(GgmlType weight_type, bool vnni) {
  return vnni ? avx512_vnni::tile_for(weight_type) : avx512_bw::tile_for(weight_type);
}

void quantize_act_row_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  if (act_layout(weight_type) == ActLayout::kA32) {
    avx512_bw::quantize_a32(x, k, act_a32_bias(weight_type), out);
  } else {
    avx512_bw::quantize_a256(x, k, weight_type != GgmlType::kQ6_K, out);
  }
}

}  // namespace sy::kernels::cpu

#else  // not x86-64: no AVX-512 bodies

namespace sy::kernels::cpu {

QdotTileFn qdot_tile_avx512(GgmlType /*weight_type*/, bool /*vnni*/) { return nullptr; }

void quantize_act_row_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  quantize_act_row(weight_type, x, k, out);
}

}  // namespace sy::kernels::cpu

#endif
