// AVX-512 bodies of the quantized dot products and the AVX-512 activation quantizer. The micro
// tiles (qdot_avx512-inl.h) are compiled twice: for AVX-512 F/BW/VL (vpmaddubsw + vpmaddwd) and
// for the same plus VNNI (vpdpbusd, vpdpwssd). Only code inside the target regions uses AVX-512;
// the entry calls it after checking the CPU (kernels/qmatmul.cpp).
#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <iterator>
#include <vector>

#include "core/error.h"
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

// kI16 rows: codes and d exactly as quantize_a32 (one d per 32 values) or, with per256 (q4_K,
// q5_K, q6_K), quantize_a256 (one d per 256 values) makes them, transposed 16 blocks at a time.
// Bytes 512..575: -c * each block's code sum (int32), or with scaled (q4_K, q5_K, q6_K, q4_1, q5_1)
// d * that sum (f32, for the mins; q6_K does not read them).
void quantize_i16(const float* x, int64_t k, int c, bool per256, bool scaled, uint8_t* out) {
  const int64_t nb = k / 32;
  const int span = per256 ? 8 : 1;  // blocks that share one d
  const __m512i ones8 = _mm512_set1_epi8(1), ones16 = _mm512_set1_epi16(1);
  for (int64_t g = 0; g < (nb + 15) / 16; ++g) {
    alignas(64) int8_t codes[16][32] = {};
    alignas(64) float d[16] = {};
    for (int b0 = 0; b0 < 16 && 16 * g + b0 < nb; b0 += span) {
      const float* xs = x + 32 * (16 * g + b0);
      float ds = 0.0f, id = 0.0f;
      const bool coded = block_scale(xs, 32 * span, ds, id);
      for (int b = b0; b < b0 + span; ++b) {
        d[b] = ds;
        if (!coded) continue;
        const float* xb = xs + 32 * (b - b0);
        _mm_store_si128(reinterpret_cast<__m128i*>(codes[b]),
                        _mm512_cvtsepi32_epi8(codes16(xb, id)));
        _mm_store_si128(reinterpret_cast<__m128i*>(codes[b] + 16),
                        _mm512_cvtsepi32_epi8(codes16(xb + 16, id)));
      }
    }
    __m512i rows[8], cols[8];
    for (int r = 0; r < 8; ++r) {
      rows[r] = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_load_si256(reinterpret_cast<const __m256i*>(codes[r]))),
          _mm256_load_si256(reinterpret_cast<const __m256i*>(codes[r + 8])), 1);
    }
    transpose_16x8(rows, cols);
    uint8_t* o = out + g * kI16GroupBytes;
    __m512i sums = _mm512_setzero_si512();
    for (int i = 0; i < 8; ++i) {
      _mm512_store_si512(o + 64 * i, cols[i]);
      sums =
          _mm512_add_epi32(sums, _mm512_madd_epi16(_mm512_maddubs_epi16(ones8, cols[i]), ones16));
    }
    const __m512 dv = _mm512_load_ps(d);
    if (scaled) {
      _mm512_store_ps(reinterpret_cast<float*>(o + 512),
                      _mm512_mul_ps(dv, _mm512_cvtepi32_ps(sums)));
    } else {
      _mm512_store_si512(o + 512, _mm512_mullo_epi32(sums, _mm512_set1_epi32(-c)));
    }
    _mm512_store_ps(reinterpret_cast<float*>(o + 576), dv);
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

// ---- kI16 bodies (prefill): q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, iq4_nl, iq4_xs ----------
//
// A tile repacks its rows of W once into the kI16 order (per group of 16 blocks: 8 vectors of
// unsigned codes, 32-bit lane b = 4 codes of block b, then the 16 block scales as f32, and for
// q4_K, q5_K, q4_1 and q5_1 the 16 mins), and reuses them for all its tokens. Then every 32-bit
// lane of an int32 sum holds one block for the whole group, so 8 vpdpbusd per row and token end in
// one f32 step (convert, scale, add) for 16 blocks, where the kA32 bodies take one per 4 blocks and
// unpack each row's codes again for every few tokens.

// Weight types whose kI16 products take mins against the activations' scaled code sums instead of
// starting from their start values: q4_K, q5_K, q4_1, q5_1.
template <GgmlType kType>
constexpr bool kI16Mins = kType == GgmlType::kQ4_K || kType == GgmlType::kQ5_K ||
                          kType == GgmlType::kQ4_1 || kType == GgmlType::kQ5_1;

// Bytes of a repacked group: codes and scales, and for the kI16Mins types the mins too.
template <GgmlType kType>
constexpr size_t kRepGroupBytes = kI16Mins<kType> ? 640 : 576;

// Where block b (32 values) of a row at p starts, and its scale: q8_0, q4_0, q5_0 and iq4_nl blocks
// begin with their f16 d; iq4_xs's 32-value sub-block b % 8 of super-block b / 8 has its 16
// bytes of codes at 8 + 16 (b % 8) and the scale d * (ls - 32).
template <GgmlType kType>
SY_QDOT_INLINE const uint8_t* block_at(const uint8_t* p, int64_t b) {
  if constexpr (kType == GgmlType::kIQ4_XS) return p + (b / 8) * 136 + 8 + 16 * (b % 8);
  return p + A32Format<kType>::kBlockBytes * b;
}
template <GgmlType kType>
SY_QDOT_INLINE float block_scale(const uint8_t* p, int64_t b) {
  if constexpr (kType == GgmlType::kIQ4_XS) {
    const uint8_t* blk = p + (b / 8) * 136;
    return f16_at(blk) * static_cast<float>(quant::iq4_xs_scale(blk, static_cast<int>(b % 8)) - 32);
  }
  return f16_at(block_at<kType>(p, b));
}

// Codes of block b of a row (blocks at p) as 32 unsigned bytes in value order: q8_0 + 128, the
// q4_0 nibbles (low nibbles are values 0..15, high nibbles 16..31), q5_0's nibbles with bit 4
// from qh, or the iq4 table values of the nibbles + 128.
template <GgmlType kType>
SY_QDOT_INLINE __m256i block_codes(const uint8_t* p, int64_t b) {
  if constexpr (kType == GgmlType::kQ8_0) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 34 * b + 2));
    return _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
  } else {
    const uint8_t* blk = block_at<kType>(p, b);
    const uint8_t* qs = blk + (kType == GgmlType::kIQ4_XS ? 0 : A32Format<kType>::kQs);
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i nib = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(v, nib), hi = _mm_and_si128(_mm_srli_epi16(v, 4), nib);
    if constexpr (A32Format<kType>::kIq4) {
      const __m128i table = iq4_table(true);
      lo = _mm_shuffle_epi8(table, lo);
      hi = _mm_shuffle_epi8(table, hi);
    }
    if constexpr (A32Format<kType>::kFive) {  // bit 4 of value i: bit i of the u32 qh
      uint32_t qh = 0;
      std::memcpy(&qh, blk + A32Format<kType>::kQh, 4);
      __m256i top_lo = _mm256_setzero_si256(), top_hi = _mm256_setzero_si256();
      q5_high_bits(qh, 0, top_lo, top_hi);
      lo = _mm_or_si128(lo, _mm256_castsi256_si128(top_lo));
      hi = _mm_or_si128(hi, _mm256_castsi256_si128(top_hi));
    }
    return _mm256_set_m128i(hi, lo);
  }
}

// Bit `bit` of each of the 32 bytes of v, moved to bit 4 (0 or 16). The 16-bit shifts carry bits
// across the bytes of a word, but none of them into bit 4.
SY_QDOT_INLINE __m256i bit_to_16(__m256i v, int bit) {
  const __m256i moved = bit <= 4 ? _mm256_slli_epi16(v, 4 - bit) : _mm256_srli_epi16(v, bit - 4);
  return _mm256_and_si256(moved, _mm256_set1_epi8(0x10));
}

// q4_K / q5_K: the codes of the 32-value sub-blocks 2 p and 2 p + 1 of the super-block at blk
// (low and high nibbles of the same 32 bytes; q5_K adds bits 2 p and 2 p + 1 of its qh bytes as
// bit 4).
template <GgmlType kType>
SY_QDOT_INLINE void k_pair_codes(const uint8_t* blk, int p, __m256i& even, __m256i& odd) {
  constexpr bool kFive = kType == GgmlType::kQ5_K;
  const __m256i v =
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + (kFive ? 48 : 16) + 32 * p));
  const __m256i nib = _mm256_set1_epi8(0x0f);
  even = _mm256_and_si256(v, nib);
  odd = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
  if constexpr (kFive) {
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
    even = _mm256_or_si256(even, bit_to_16(qh, 2 * p));
    odd = _mm256_or_si256(odd, bit_to_16(qh, 2 * p + 1));
  }
}

// Walks a K-quant row (nb blocks of 32 values at p, nb a multiple of 8) a group of two
// super-blocks (block_bytes each) at a time: fill(blk, sub, s) writes the 8 blocks of codes of
// super-block s of the group (at blk) to sub[0..8) and keeps its scales; a last group of one
// super-block gets zero codes for the other. Then store(g, cols) writes group g from its codes in
// the kI16 order (transpose_16x8).
template <class Fill, class Store>
SY_QDOT_INLINE void repack_k_groups(const uint8_t* p, int64_t nb, size_t block_bytes,
                                    const Fill& fill, const Store& store) {
  for (int64_t g = 0; g < (nb + 15) / 16; ++g) {
    __m256i sub[16];
    for (int s = 0; s < 2; ++s) {
      if (16 * g + 8 * s < nb) {
        fill(p + static_cast<size_t>(2 * g + s) * block_bytes, sub + 8 * s, s);
      } else {
        for (int j = 0; j < 8; ++j) sub[8 * s + j] = _mm256_setzero_si256();
      }
    }
    __m512i rows[8], cols[8];
    for (int r = 0; r < 8; ++r) {
      rows[r] = _mm512_inserti64x4(_mm512_castsi256_si512(sub[r]), sub[r + 8], 1);
    }
    transpose_16x8(rows, cols);
    store(g, cols);
  }
}

// One q4_K or q5_K row (nb sub-blocks of 32 at p, nb a multiple of 8) in the kI16 order: per
// group of two super-blocks the codes, then d * scale and dmin * min of each sub-block as f32.
template <GgmlType kType>
void repack_row_k(const uint8_t* p, int64_t nb, uint8_t* out) {
  alignas(64) float dw[16] = {}, dm[16] = {};
  repack_k_groups(
      p, nb, kType == GgmlType::kQ5_K ? 176 : 144,
      [&](const uint8_t* blk, __m256i* sub, int s) {
        for (int q = 0; q < 4; ++q) k_pair_codes<kType>(blk, q, sub[2 * q], sub[2 * q + 1]);
        const float d = f16_at(blk), dmin = f16_at(blk + 2);
        for (int j = 0; j < 8; ++j) {
          int sc = 0, mn = 0;
          quant::k_scale_min(j, blk + 4, sc, mn);
          dw[8 * s + j] = d * static_cast<float>(sc);
          dm[8 * s + j] = dmin * static_cast<float>(mn);
        }
      },
      [&](int64_t g, const __m512i(&cols)[8]) {
        uint8_t* o = out + g * kRepGroupBytes<kType>;
        for (int i = 0; i < 8; ++i) _mm512_store_si512(o + 64 * i, cols[i]);
        _mm512_store_ps(reinterpret_cast<float*>(o + 512), _mm512_load_ps(dw));
        _mm512_store_ps(reinterpret_cast<float*>(o + 576), _mm512_load_ps(dm));
        std::fill(std::begin(dw), std::end(dw), 0.0f);  // zero for a half last group
        std::fill(std::begin(dm), std::end(dm), 0.0f);
      });
}

// One row of W (nb blocks at p) in the kI16 order at out (groups x kRepGroupBytes, the padding
// blocks of the last group zero).
template <GgmlType kType>
void repack_row(const uint8_t* p, int64_t nb, uint8_t* out) {
  if constexpr (kType == GgmlType::kQ4_K || kType == GgmlType::kQ5_K) {
    repack_row_k<kType>(p, nb, out);
    return;
  }
  for (int64_t g = 0; g < (nb + 15) / 16; ++g) {
    const int64_t b0 = 16 * g, n = std::min<int64_t>(16, nb - b0);
    __m512i rows[8], cols[8];
    for (int r = 0; r < 8; ++r) {
      const __m256i lo = r < n ? block_codes<kType>(p, b0 + r) : _mm256_setzero_si256();
      const __m256i hi = r + 8 < n ? block_codes<kType>(p, b0 + r + 8) : _mm256_setzero_si256();
      rows[r] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    transpose_16x8(rows, cols);
    uint8_t* o = out + g * kRepGroupBytes<kType>;
    for (int i = 0; i < 8; ++i) _mm512_store_si512(o + 64 * i, cols[i]);
    alignas(64) float dw[16] = {}, dm[16] = {};
    for (int64_t b = 0; b < n; ++b) dw[b] = block_scale<kType>(p, b0 + b);
    _mm512_store_ps(reinterpret_cast<float*>(o + 512), _mm512_load_ps(dw));
    if constexpr (kI16Mins<kType>) {  // q4_1, q5_1: - m, as the products subtract dm * sums
      for (int64_t b = 0; b < n; ++b) dm[b] = -f16_at(block_at<kType>(p, b0 + b) + 2);
      _mm512_store_ps(reinterpret_cast<float*>(o + 576), _mm512_load_ps(dm));
    }
  }
}

// acc = 0: the bodies' f32 accumulators before their first group.
template <int R, int T>
SY_QDOT_INLINE void zero_acc(__m512 (&acc)[R][T]) {
  SY_QDOT_UNROLL
  for (int r = 0; r < R; ++r) {
    SY_QDOT_UNROLL
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
}

// The integer sums of one group of kI16 activations (ag, token rows as bytes apart) start at
// the activations' start values (q8_0, q4_0: -c * code sums) or at 0 (the kI16Mins types, whose
// mins are taken out in f32).
template <bool kMins, int R, int T>
SY_QDOT_INLINE void i16_start_sums(__m512i (&sum)[R][T], const uint8_t* ag, size_t as) {
  SY_QDOT_UNROLL
  for (int t = 0; t < T; ++t) {
    const __m512i start = kMins ? _mm512_setzero_si512() : _mm512_load_si512(ag + t * as + 512);
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) sum[r][t] = start;
  }
}

// The f32 step of one group for one weight row: acc[t] += sum[t] * (dw * d of the activations),
// and for the kI16Mins types - dm (q4_K, q5_K: dmin * min of each sub-block) x the activations'
// scaled sums. micro_i16 and micro_p16 both end their groups here, so each output takes the same
// operations in the same order in either body.
template <bool kMins, int T>
SY_QDOT_INLINE void i16_finish_row(__m512 (&acc)[T], const __m512i (&sum)[T], __m512 dw, __m512 dm,
                                   const uint8_t* ag, size_t as) {
  SY_QDOT_UNROLL
  for (int t = 0; t < T; ++t) {
    const __m512 da = _mm512_load_ps(reinterpret_cast<const float*>(ag + t * as + 576));
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[t]), _mm512_mul_ps(dw, da), acc[t]);
    if constexpr (kMins) {
      const __m512 sums = _mm512_load_ps(reinterpret_cast<const float*>(ag + t * as + 512));
      acc[t] = _mm512_fnmadd_ps(dm, sums, acc[t]);
    }
  }
}

// Rows [0, R) of the repacked W (rows rs bytes apart) x tokens [0, T) of kI16 activations.
template <GgmlType kType, int R, int T>
void micro_i16(const uint8_t* w, size_t rs, const MicroArgs& m, int64_t groups) {
  constexpr bool kMins = kI16Mins<kType>;  // unsigned codes, no start values; mins
  __m512 acc[R][T];
  zero_acc(acc);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* wg = w + g * kRepGroupBytes<kType>;
    const uint8_t* ag = m.act + g * kI16GroupBytes;
    __m512i sum[R][T];
    i16_start_sums<kMins>(sum, ag, m.as);
    SY_QDOT_UNROLL
    for (int i = 0; i < 8; ++i) {
      __m512i wv[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) wv[r] = _mm512_load_si512(wg + r * rs + 64 * i);
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const __m512i av = _mm512_load_si512(ag + t * m.as + 64 * i);
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) sum[r][t] = _mm512_dpbusd_epi32(sum[r][t], wv[r], av);
      }
    }
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m512 dw = _mm512_load_ps(reinterpret_cast<const float*>(wg + r * rs + 512));
      const __m512 dm = kMins ? _mm512_load_ps(reinterpret_cast<const float*>(wg + r * rs + 576))
                              : _mm512_setzero_ps();
      i16_finish_row<kMins>(acc[r], sum[r], dw, dm, ag, m.as);
    }
  }
  store_sums<R, T>(m, acc);
}

// The tile's rows of W, each repacked by repack(row, out) into rs bytes of a per-thread buffer
// (64-byte aligned); returns the first.
template <class Repack>
uint8_t* repacked_rows(const QdotTile& a, size_t rs, const Repack& repack) {
  thread_local std::vector<uint8_t> storage;
  if (storage.size() < rs * static_cast<size_t>(a.rows) + 64) {
    storage.resize(rs * static_cast<size_t>(a.rows) + 64);
  }
  uint8_t* w = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
  for (int64_t r = 0; r < a.rows; ++r) {
    repack(a.w + static_cast<size_t>(r) * a.w_stride, w + static_cast<size_t>(r) * rs);
  }
  return w;
}

// Repacks the tile's rows into a per-thread buffer, then walks it in micro tiles of 4 rows x 3
// tokens (walk_micro_tiles).
template <GgmlType kType>
void run_tile_i16(const QdotTile& a) {
  const int64_t nb = a.k / 32, groups = (nb + 15) / 16;
  const size_t rs = static_cast<size_t>(groups) * kRepGroupBytes<kType>;
  uint8_t* w = repacked_rows(
      a, rs, [nb](const uint8_t* row, uint8_t* out) { repack_row<kType>(row, nb, out); });
  walk_micro_tiles<4, 3>(a.rows, a.tokens, [&]<int R, int T>(int64_t r, int64_t t) {
    micro_i16<kType, R, T>(w + static_cast<size_t>(r) * rs, rs, micro_at(a, r, t), groups);
  });
}

// ---- q6_K against kI16 activations (prefill) ---------------------------------------------------
//
// q6_K's 16 scales a super-block each cover 16 values, half a kI16 block: vectors 0..3 of a group
// hold the first 16 values of every block, vectors 4..7 the second 16. So a row and token keep
// two sums, one per half, and a group ends in two f32 steps. The repacked codes are signed
// (q - 32, in -32..31) and the activations' codes are taken + 128, vpdpbusd's unsigned operand;
// each sum starts at -128 times its half's codes summed, which the repacking computes once.
// A repacked group (768 bytes): the codes as kI16 vectors (512), d * scale of each block's first
// half, then of its second (f32, 2 x 64), then the two start values (int32, 2 x 64).
constexpr size_t kQ6RepGroupBytes = 768;

// One q6_K row (nb blocks of 32 at p, nb a multiple of 8) in that order.
void repack_row_q6(const uint8_t* p, int64_t nb, uint8_t* out) {
  using Q6 = K16Kernel<GgmlType::kQ6_K>;
  const __m512i ones = _mm512_set1_epi8(1), offset = _mm512_set1_epi8(32);
  alignas(64) float first[16] = {}, second[16] = {};
  repack_k_groups(
      p, nb, 210,
      [&](const uint8_t* blk, __m256i* sub, int s) {
        for (int q = 0; q < 4; ++q) {  // values 64 q .. 64 q + 63: blocks 2 q and 2 q + 1
          const __m512i c = _mm512_sub_epi8(Q6::codes(blk, q), offset);
          sub[2 * q] = _mm512_castsi512_si256(c);
          sub[2 * q + 1] = _mm512_extracti64x4_epi64(c, 1);
        }
        const float d = f16_at(blk + 208);
        for (int j = 0; j < 8; ++j) {
          first[8 * s + j] = d * static_cast<float>(static_cast<int8_t>(blk[192 + 2 * j]));
          second[8 * s + j] = d * static_cast<float>(static_cast<int8_t>(blk[192 + 2 * j + 1]));
        }
      },
      [&](int64_t g, const __m512i(&cols)[8]) {
        uint8_t* o = out + g * kQ6RepGroupBytes;
        __m512i sum_first = _mm512_setzero_si512(), sum_second = _mm512_setzero_si512();
        for (int i = 0; i < 8; ++i) {
          _mm512_store_si512(o + 64 * i, cols[i]);
          if (i < 4) {
            sum_first = _mm512_dpbusd_epi32(sum_first, ones, cols[i]);
          } else {
            sum_second = _mm512_dpbusd_epi32(sum_second, ones, cols[i]);
          }
        }
        _mm512_store_ps(reinterpret_cast<float*>(o + 512), _mm512_load_ps(first));
        _mm512_store_ps(reinterpret_cast<float*>(o + 576), _mm512_load_ps(second));
        const __m512i zero = _mm512_setzero_si512();
        _mm512_store_si512(o + 640, _mm512_sub_epi32(zero, _mm512_slli_epi32(sum_first, 7)));
        _mm512_store_si512(o + 704, _mm512_sub_epi32(zero, _mm512_slli_epi32(sum_second, 7)));
        std::fill(std::begin(first), std::end(first), 0.0f);  // zero for a half last group
        std::fill(std::begin(second), std::end(second), 0.0f);
      });
}

// Rows [0, R) of the repacked q6_K W (rows rs bytes apart) x tokens [0, T) of kI16 activations.
template <int R, int T>
void micro_q6_i16(const uint8_t* w, size_t rs, const MicroArgs& m, int64_t groups) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[R][T];
  zero_acc(acc);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* wg = w + g * kQ6RepGroupBytes;
    const uint8_t* ag = m.act + g * kI16GroupBytes;
    __m512i first[R][T], second[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m512i s0 = _mm512_load_si512(wg + r * rs + 640);
      const __m512i s1 = _mm512_load_si512(wg + r * rs + 704);
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        first[r][t] = s0;
        second[r][t] = s1;
      }
    }
    SY_QDOT_UNROLL
    for (int i = 0; i < 8; ++i) {
      __m512i wv[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) wv[r] = _mm512_load_si512(wg + r * rs + 64 * i);
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const __m512i av = _mm512_xor_si512(_mm512_load_si512(ag + t * m.as + 64 * i), flip);
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          if (i < 4) {
            first[r][t] = _mm512_dpbusd_epi32(first[r][t], av, wv[r]);
          } else {
            second[r][t] = _mm512_dpbusd_epi32(second[r][t], av, wv[r]);
          }
        }
      }
    }
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m512 d0 = _mm512_load_ps(reinterpret_cast<const float*>(wg + r * rs + 512));
      const __m512 d1 = _mm512_load_ps(reinterpret_cast<const float*>(wg + r * rs + 576));
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const __m512 da = _mm512_load_ps(reinterpret_cast<const float*>(ag + t * m.as + 576));
        acc[r][t] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(first[r][t]), _mm512_mul_ps(d0, da), acc[r][t]);
        acc[r][t] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(second[r][t]), _mm512_mul_ps(d1, da), acc[r][t]);
      }
    }
  }
  store_sums<R, T>(m, acc);
}

// As run_tile_i16, with two sums per row and token, in tiles of 2 rows x 4 tokens: 24 sums and
// partial products in registers. `bench kernels --filter prefill512/q6_K` (GFLOP/s): 4 x 2 tiles
// 382-384, 3 x 3 351-368, 2 x 3 335-343, 2 x 4 443-447; the K16 body before it 237-251.
void run_tile_q6_i16(const QdotTile& a) {
  const int64_t nb = a.k / 32, groups = (nb + 15) / 16;
  const size_t rs = static_cast<size_t>(groups) * kQ6RepGroupBytes;
  uint8_t* w =
      repacked_rows(a, rs, [nb](const uint8_t* row, uint8_t* out) { repack_row_q6(row, nb, out); });
  walk_micro_tiles<2, 4>(a.rows, a.tokens, [&]<int R, int T>(int64_t r, int64_t t) {
    micro_q6_i16<R, T>(w + static_cast<size_t>(r) * rs, rs, micro_at(a, r, t), groups);
  });
}

// ---- P16 weights (q8_0, q4_0, q4_K, iq4_nl, iq4_xs packed at load time) against kI16 activations
//
// The rows are already in the kI16 order (cpu/qdot.h), so a token's product reads each 64-byte
// vector of codes once: 4 (4-bit) or 8 (q8_0) loads and 8 vpdpbusd per 512 values and row, then
// one f32 step for 16 blocks. Each output takes the operations of micro_i16 in the same order.

// A P16 row's q4_K group scales at h (cpu/qdot.h): f32 lane b of dw = d * scale of sub-block b,
// of dm = dmin * its min (lanes 0..7: the first super-block's d and dmin, 8..15 the second's).
SY_QDOT_INLINE void k4_group_scales(const uint8_t* h, __m512& dw, __m512& dm) {
  const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h));
  const __m128i top8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(h + 16));
  // Byte j of the top bits serves lanes j and j + 8: the high half shifted right by 2.
  const __m128i top = _mm_unpacklo_epi64(top8, _mm_srli_epi16(top8, 2));
  const __m128i nib = _mm_set1_epi8(15), two = _mm_set1_epi8(3);
  const __m128i sc =
      _mm_or_si128(_mm_and_si128(low, nib), _mm_slli_epi16(_mm_and_si128(top, two), 4));
  // The mins' top bits are already bits 4-5 of each byte.
  const __m128i mn = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(low, 4), nib),
                                  _mm_and_si128(top, _mm_set1_epi8(0x30)));
  const __m512 f = _mm512_castps128_ps512(
      _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(h + 24))));
  const __m512 d =
      _mm512_permutexvar_ps(_mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0), f);
  const __m512 dmin =
      _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1), f);
  dw = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sc)));
  dm = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(mn)));
}

// iq4: the 4-bit codes of a P16 vector (as bytes) turned into table values + 128, vpdpbusd's
// unsigned operand; other types' codes as they are.
template <GgmlType kType>
SY_QDOT_INLINE __m512i p16_code_values(__m512i codes) {
  if constexpr (A32Format<kType>::kIq4) {
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(iq4_table(true)), codes);
  }
  return codes;
}

// Bytes of a P16 row's scales per group: iq4_xs keeps its two 8-byte super-block heads.
template <GgmlType kType>
constexpr size_t kP16GroupScaleBytes = kType == GgmlType::kIQ4_XS ? 16 : 32;

// Bytes of the codes region of a P16 row of k values.
template <GgmlType kType>
constexpr size_t p16_codes_bytes(int64_t k) {
  return static_cast<size_t>(kType == GgmlType::kQ8_0 ? k : k / 2);
}

// The f32 scales of group g of a P16 row at w (k values): dw, and for q4_K dm.
template <GgmlType kType>
SY_QDOT_INLINE void p16_scales(const uint8_t* w, int64_t k, int64_t g, __m512& dw, __m512& dm) {
  const uint8_t* s = w + p16_codes_bytes<kType>(k) + kP16GroupScaleBytes<kType> * g;
  if constexpr (kType == GgmlType::kQ4_K) {
    k4_group_scales(s, dw, dm);
  } else if constexpr (kType == GgmlType::kIQ4_XS) {  // lanes 0..7: the first super-block's
    dw = _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(iq4_xs_scales(s))),
                           _mm256_castps_pd(iq4_xs_scales(s + 8)), 1));
    dm = _mm512_setzero_ps();
  } else {
    dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
    dm = _mm512_setzero_ps();
  }
}

// Decode asks for q4_0 rows twice: at decode_ahead and again at half that distance.
//
// Why: q4_0's group step does the least work per byte of these bodies, and at high bandwidth its
// rows read slower than q4_K's of the same size (same bytes, same prefetches). Earlier
// measurements found that anything slowing the step closed the gap: idle vector ops added after
// the scales (16 vpaddd: OLMoE decode median ratio 0.886 -> 0.904; 24: 0.945), or q4_K's scale
// decoding as dead work (0.93). Prefetching every other line instead of every line cut the ratio
// (0.84-0.90 -> 0.79-0.84), so the rows depend on the software prefetches. What fits all of it:
// a fast step keeps more demand loads waiting for memory, these hold the core's miss buffers,
// and prefetches issued meanwhile are dropped. A second request for the same lines, nearer, gets
// the dropped ones fetched before the loads reach them, without slowing the step.
//
// Measured (`bench decode --filter olmoe/<type>`, a scratch build switched by an environment
// variable, runs alternating; ratio of the bandwidth bound):
// - q4_0: 0.877-0.907 (8 runs) -> 0.916-0.969 (8 runs: 3 with the second request at half the
//   distance, 5 at a fixed 3 KB); at a fixed 2 KB 0.923-0.955 (5). At a ~50 GB/s triad the
//   experts' products took 1076-1088 ms a run against 1163-1181 with one request.
// - q8_0 (its one request at two rows is already near): 0.940-0.957 -> 0.855-0.896, so not there.
// - q4_K (0.889-0.926 / 0.889-0.946) and iq4_xs (0.852-0.866 / 0.844-0.877): no change, so
//   left as they were.
// - `bench kernels --filter decode/q4_0`, 5 runs each: the single matrix 1.024 -> 1.058 of the
//   triad (medians), the MoE layer 1.014 -> 1.004.
template <GgmlType kType>
constexpr bool kP16AskTwice = kType == GgmlType::kQ4_0;

// Rows [0, R) x tokens [0, T) straight from the P16 rows. Inlined into the row loops: for one
// token a call per row cost about 5% of OLMoE decode (short rows of 576-1152 bytes).
template <GgmlType kType, int R, int T>
SY_QDOT_INLINE void micro_p16(const MicroArgs& m) {
  constexpr bool kMins = kType == GgmlType::kQ4_K;
  constexpr bool kNibbles = kType != GgmlType::kQ8_0;
  constexpr size_t kGroupCodes = kNibbles ? 256 : 512;
  const int64_t groups = m.k / kP16GroupValues;
  const __m512i nib = _mm512_set1_epi8(0x0f);
  __m512 acc[R][T];
  zero_acc(acc);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* ag = m.act + g * kI16GroupBytes;
    __m512i sum[R][T];
    i16_start_sums<kMins>(sum, ag, m.as);
    if constexpr (T == 1) {  // decode (see decode_ahead, and kP16AskTwice above)
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint8_t* codes = m.w + r * m.ws + g * kGroupCodes;
        const uint8_t* scales =
            m.w + r * m.ws + p16_codes_bytes<kType>(m.k) + kP16GroupScaleBytes<kType> * g;
        prefetch_ahead<kGroupCodes>(codes, m.ahead);
        prefetch_ahead<kP16GroupScaleBytes<kType>>(scales, m.ahead);
        if constexpr (kP16AskTwice<kType>) {
          const size_t again = m.ahead / 2 / 64 * 64;
          prefetch_ahead<kGroupCodes>(codes, again);
          prefetch_ahead<kP16GroupScaleBytes<kType>>(scales, again);
        }
      }
    }
    if constexpr (kNibbles) {
      SY_QDOT_UNROLL
      for (int i = 0; i < 4; ++i) {
        __m512i lo[R], hi[R];
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          const __m512i raw = _mm512_loadu_si512(m.w + r * m.ws + g * kGroupCodes + 64 * i);
          lo[r] = p16_code_values<kType>(_mm512_and_si512(raw, nib));
          hi[r] = p16_code_values<kType>(_mm512_and_si512(_mm512_srli_epi16(raw, 4), nib));
        }
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512i alo = _mm512_load_si512(ag + t * m.as + 64 * i);
          const __m512i ahi = _mm512_load_si512(ag + t * m.as + 64 * (i + 4));
          SY_QDOT_UNROLL
          for (int r = 0; r < R; ++r) {
            sum[r][t] = _mm512_dpbusd_epi32(sum[r][t], lo[r], alo);
            sum[r][t] = _mm512_dpbusd_epi32(sum[r][t], hi[r], ahi);
          }
        }
      }
    } else {
      SY_QDOT_UNROLL
      for (int i = 0; i < 8; ++i) {
        __m512i wv[R];
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          wv[r] = _mm512_loadu_si512(m.w + r * m.ws + g * kGroupCodes + 64 * i);
        }
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512i av = _mm512_load_si512(ag + t * m.as + 64 * i);
          SY_QDOT_UNROLL
          for (int r = 0; r < R; ++r) sum[r][t] = _mm512_dpbusd_epi32(sum[r][t], wv[r], av);
        }
      }
    }
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      __m512 dw, dm;
      p16_scales<kType>(m.w + r * m.ws, m.k, g, dw, dm);
      i16_finish_row<kMins>(acc[r], sum[r], dw, dm, ag, m.as);
    }
  }
  store_sums<R, T>(m, acc);
}

// One P16 row (k values at p) in micro_i16's repacked order at out: the codes widened to bytes,
// the scales (and q4_K mins) as f32.
template <GgmlType kType>
void repack_row_from_p16(const uint8_t* p, int64_t k, uint8_t* out) {
  constexpr size_t kGroupCodes = kType == GgmlType::kQ8_0 ? 512 : 256;
  const __m512i nib = _mm512_set1_epi8(0x0f);
  for (int64_t g = 0; g < k / kP16GroupValues; ++g) {
    uint8_t* o = out + g * kRepGroupBytes<kType>;
    const uint8_t* c = p + g * kGroupCodes;
    if constexpr (kType == GgmlType::kQ8_0) {
      std::memcpy(o, c, 512);
    } else {
      for (int i = 0; i < 4; ++i) {
        const __m512i raw = _mm512_loadu_si512(c + 64 * i);
        _mm512_store_si512(o + 64 * i, p16_code_values<kType>(_mm512_and_si512(raw, nib)));
        _mm512_store_si512(o + 64 * (i + 4), p16_code_values<kType>(
                                                 _mm512_and_si512(_mm512_srli_epi16(raw, 4), nib)));
      }
    }
    __m512 dw, dm;
    p16_scales<kType>(p, k, g, dw, dm);
    _mm512_store_ps(reinterpret_cast<float*>(o + 512), dw);
    if constexpr (kType == GgmlType::kQ4_K) _mm512_store_ps(reinterpret_cast<float*>(o + 576), dm);
  }
}

// Decode and small batches: straight from the rows; from kI16MinTokens on, the
// rows are widened once into a per-thread buffer and shared by the tokens as run_tile_i16 does.
template <GgmlType kType>
void run_tile_p16(const QdotTile& a) {
  if (a.tokens < 8) {
    if (a.tokens == 1) {
      walk_decode_rows(
          a, [](const MicroArgs& m) { micro_p16<kType, 1, 1>(m); },
          kType == GgmlType::kQ8_0 ? kDecodeAheadBytesQ8P16 : kDecodeAheadBytes);
      return;
    }
    walk_micro_tiles<4, 2>(a.rows, a.tokens, [&]<int R, int T>(int64_t r, int64_t t) {
      micro_p16<kType, R, T>(micro_at(a, r, t));
    });
    return;
  }
  const int64_t groups = a.k / kP16GroupValues;
  const size_t rs = static_cast<size_t>(groups) * kRepGroupBytes<kType>;
  uint8_t* w = repacked_rows(a, rs, [k = a.k](const uint8_t* row, uint8_t* out) {
    repack_row_from_p16<kType>(row, k, out);
  });
  walk_micro_tiles<4, 3>(a.rows, a.tokens, [&]<int R, int T>(int64_t r, int64_t t) {
    micro_i16<kType, R, T>(w + static_cast<size_t>(r) * rs, rs, micro_at(a, r, t), groups);
  });
}

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

QdotTileFn qdot_tile_p16_vnni(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::kQ8_0:
      return avx512_vnni::run_tile_p16<GgmlType::kQ8_0>;
    case GgmlType::kQ4_0:
      return avx512_vnni::run_tile_p16<GgmlType::kQ4_0>;
    case GgmlType::kQ4_K:
      return avx512_vnni::run_tile_p16<GgmlType::kQ4_K>;
    case GgmlType::kIQ4_NL:
      return avx512_vnni::run_tile_p16<GgmlType::kIQ4_NL>;
    case GgmlType::kIQ4_XS:
      return avx512_vnni::run_tile_p16<GgmlType::kIQ4_XS>;
    default:
      return nullptr;
  }
}

QdotTileFn qdot_tile_i16_vnni(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::kQ8_0:
      return avx512_vnni::run_tile_i16<GgmlType::kQ8_0>;
    case GgmlType::kQ4_0:
      return avx512_vnni::run_tile_i16<GgmlType::kQ4_0>;
    case GgmlType::kQ4_1:
      return avx512_vnni::run_tile_i16<GgmlType::kQ4_1>;
    case GgmlType::kQ5_0:
      return avx512_vnni::run_tile_i16<GgmlType::kQ5_0>;
    case GgmlType::kQ5_1:
      return avx512_vnni::run_tile_i16<GgmlType::kQ5_1>;
    case GgmlType::kQ4_K:
      return avx512_vnni::run_tile_i16<GgmlType::kQ4_K>;
    case GgmlType::kQ5_K:
      return avx512_vnni::run_tile_i16<GgmlType::kQ5_K>;
    case GgmlType::kQ6_K:
      return avx512_vnni::run_tile_q6_i16;
    case GgmlType::kIQ4_NL:
      return avx512_vnni::run_tile_i16<GgmlType::kIQ4_NL>;
    case GgmlType::kIQ4_XS:
      return avx512_vnni::run_tile_i16<GgmlType::kIQ4_XS>;
    default:
      return nullptr;
  }
}

void quantize_act_row_i16_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  const bool per256 = weight_type == GgmlType::kQ4_K || weight_type == GgmlType::kQ5_K ||
                      weight_type == GgmlType::kQ6_K;
  const bool scaled = per256 || weight_type == GgmlType::kQ4_1 || weight_type == GgmlType::kQ5_1;
  avx512_bw::quantize_i16(x, k, scaled ? 0 : act_a32_bias(weight_type), per256, scaled, out);
}

void quantize_act_row_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  if (act_layout(weight_type) == ActLayout::kA32) {
    avx512_bw::quantize_a32(x, k, act_a32_bias(weight_type), out);
  } else {
    avx512_bw::quantize_a256(x, k, act_k4_order(weight_type), out);
  }
}

}  // namespace sy::kernels::cpu

#else  // not x86-64: no AVX-512 bodies

namespace sy::kernels::cpu {

QdotTileFn qdot_tile_avx512(GgmlType /*weight_type*/, bool /*vnni*/) { return nullptr; }
QdotTileFn qdot_tile_i16_vnni(GgmlType /*weight_type*/) { return nullptr; }
QdotTileFn qdot_tile_p16_vnni(GgmlType /*weight_type*/) { return nullptr; }

void quantize_act_row_i16_avx512(GgmlType /*weight_type*/, const float* /*x*/, int64_t /*k*/,
                                 uint8_t* /*out*/) {
  SY_CHECK(false, "quantize_act_row_i16_avx512: not an x86-64 build");
}

void quantize_act_row_avx512(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  quantize_act_row(weight_type, x, k, out);
}

}  // namespace sy::kernels::cpu

#endif
