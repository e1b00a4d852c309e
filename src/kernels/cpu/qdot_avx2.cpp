// AVX2 bodies of the quantized dot products and the AVX2 activation quantizer: vpmaddubsw (u8 x
// s8 -> s16 pairs) + vpmaddwd into int32, f32 scales per block with FMA. The same structure as the
// AVX-512 bodies at half the width; everything AVX2 sits inside the target region and runs only
// after the entry has checked the CPU (kernels/qmatmul.cpp).
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/cpu/qdot.h"
#include "kernels/cpu/qdot_x86.h"
#include "kernels/quant/formats.h"

#if SY_QDOT_X86

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace sy::kernels::cpu::avx2 {

namespace {

SY_QDOT_INLINE __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
SY_QDOT_INLINE __m256i load256a(const uint8_t* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}
// The little-endian f16 at p, widened in a register (no call).
SY_QDOT_INLINE float f16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}
SY_QDOT_INLINE __m256i two128(const uint8_t* lo, const uint8_t* hi) {
  return _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(hi),
                             reinterpret_cast<const __m128i*>(lo));
}
SY_QDOT_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
SY_QDOT_INLINE int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}
// sum of 2 products of int16 pairs, as int32
SY_QDOT_INLINE __m256i madd_ones(__m256i pairs) {
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

template <int R, int T>
SY_QDOT_INLINE void store_sums(const MicroArgs& m, const __m256 (&acc)[R][T]) {
  SY_QDOT_UNROLL
  for (int t = 0; t < T; ++t) {
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      const float s = hsum(acc[r][t]);
      float* o = m.y + t * m.ys + r;
      *o = m.accumulate ? *o + s : s;
    }
  }
}

// ---- q8_0, q4_0, iq4_nl and iq4_xs against kA32 activations: a group is two pairs of blocks -

struct A32Pair {
  __m256i lo, hi;  // values 0..15 / 16..31 of the pair's two blocks
  __m256 dw;       // lanes 0-3: first block's scale, 4-7: second's
  __m256 mw;       // q4_1, q5_1: the blocks' mins, as dw
};

// q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl and iq4_xs (a group: 4 blocks of 32 values; iq4_xs: half
// a super-block).
template <GgmlType kType>
struct A32Kernel {
  using F = A32Format<kType>;
  static constexpr int kRp = 2, kTp = 3;

  // Pair q (0, 1) of the group at p (iq4_xs: p is the super-block, `half` which 4 sub-blocks).
  // xs_scales: iq4_xs's 8 sub-block scales of the super-block (iq4_xs_scales), unused otherwise.
  static SY_QDOT_INLINE A32Pair load(const uint8_t* p, int q, int half, __m256 xs_scales) {
    A32Pair w;
    const uint8_t* b0 = p + 2 * q * F::kBlockBytes;  // the pair's blocks (not iq4_xs)
    const uint8_t* b1 = b0 + F::kBlockBytes;
    if constexpr (kType == GgmlType::kQ8_0) {
      w.lo = two128(b0 + 2, b1 + 2);
      w.hi = two128(b0 + 18, b1 + 18);
    } else {
      const int j0 = 4 * half + 2 * q;  // iq4_xs: the pair's first sub-block
      const __m256i v = F::kXs ? load256(p + 8 + 16 * j0) : two128(b0 + F::kQs, b1 + F::kQs);
      const __m256i nib = _mm256_set1_epi8(0x0f);
      w.lo = _mm256_and_si256(v, nib);
      w.hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
      if constexpr (F::kFive) {  // bit 4 of value i: bit i of the block's u32 qh
        uint32_t h0 = 0, h1 = 0;
        std::memcpy(&h0, b0 + F::kQh, 4);
        std::memcpy(&h1, b1 + F::kQh, 4);
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        q5_high_bits(h0, h1, lo, hi);
        w.lo = _mm256_or_si256(w.lo, lo);
        w.hi = _mm256_or_si256(w.hi, hi);
      }
      if constexpr (F::kIq4) {  // the codes' values
        const __m256i table = _mm256_broadcastsi128_si256(iq4_table(false));
        w.lo = _mm256_shuffle_epi8(table, w.lo);
        w.hi = _mm256_shuffle_epi8(table, w.hi);
      }
      if constexpr (F::kXs) {  // lanes 0-3: sub-block j0's scale, 4-7: j0 + 1's
        const __m256i pick =
            _mm256_add_epi32(_mm256_set1_epi32(j0), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
        w.dw = _mm256_permutevar8x32_ps(xs_scales, pick);
        return w;
      }
    }
    if constexpr (F::kMin) {  // each block's d and m, one u32: [d0, m0, d1, m1]
      uint32_t h0 = 0, h1 = 0;
      std::memcpy(&h0, b0, 4);
      std::memcpy(&h1, b1, 4);
      const __m256 four = _mm256_castps128_ps256(
          _mm_cvtph_ps(_mm_setr_epi32(static_cast<int>(h0), static_cast<int>(h1), 0, 0)));
      w.dw = _mm256_permutevar8x32_ps(four, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
      w.mw = _mm256_permutevar8x32_ps(four, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3));
      return w;
    }
    const int d = b0[0] | (b0[1] << 8) | (b1[0] << 16) | (b1[1] << 24);
    const __m128 two = _mm_cvtph_ps(_mm_cvtsi32_si128(d));
    w.dw = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(two),
                                    _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    return w;
  }

  // acc += the products of one row's pair and one token (ap: the token's group + 32 q).
  static SY_QDOT_INLINE void step(__m256& acc, const A32Pair& w, const uint8_t* ag, int q) {
    const __m256i alo = load256a(ag + 32 * q), ahi = load256a(ag + 64 + 32 * q);
    __m256i sum;
    if constexpr (F::kSigned) {  // |w| x (a with w's sign); |w| <= 128 keeps pair sums in int16
      sum = _mm256_add_epi32(
          madd_ones(_mm256_maddubs_epi16(_mm256_abs_epi8(w.lo), _mm256_sign_epi8(alo, w.lo))),
          madd_ones(_mm256_maddubs_epi16(_mm256_abs_epi8(w.hi), _mm256_sign_epi8(ahi, w.hi))));
    } else {  // unsigned codes: pair sums stay below 2 * 2 * 31 * 127
      const __m256i p =
          _mm256_add_epi16(_mm256_maddubs_epi16(w.lo, alo), _mm256_maddubs_epi16(w.hi, ahi));
      sum = madd_ones(p);
      if constexpr (!F::kMin) sum = _mm256_add_epi32(sum, load256a(ag + 128 + 32 * q));
    }
    const __m256 da = _mm256_load_ps(reinterpret_cast<const float*>(ag + 192 + 32 * q));
    if constexpr (F::kMin) {  // (d * (q . a) + m * sum(a)) * d_a; the lanes at 128 hold sum(a)
      const __m256 mins = _mm256_mul_ps(_mm256_cvtepi32_ps(load256a(ag + 128 + 32 * q)), w.mw);
      acc = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), w.dw, mins), da, acc);
      return;
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(w.dw, da), acc);
  }

  template <int R, int T>
  static SY_QDOT_INLINE void group(__m256 (&acc)[R][T], const uint8_t* const (&rows)[R],
                                   const MicroArgs& m, size_t act_offset, int half,
                                   const __m256 (&xs)[R]) {
    SY_QDOT_UNROLL
    for (int q = 0; q < 2; ++q) {
      A32Pair w[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) w[r] = load(rows[r], q, half, xs[r]);
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) step(acc[r][t], w[r], m.act + t * m.as + act_offset, q);
      }
    }
  }

  template <int R, int T>
  static void micro(const MicroArgs& m) {
    __m256 acc[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    }
    const int64_t nb = m.k / 32, full = nb / 4;
    const uint8_t* rows[R];
    __m256 xs[R] = {};  // iq4_xs: each row's scales of its current super-block, once per 2 groups
    for (int64_t g = 0; g < full; ++g) {
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint8_t* row = m.w + r * m.ws;
        rows[r] = F::kXs ? row + (g / 2) * 136 : row + g * F::kGroupBytes;
        if constexpr (F::kXs) {
          if (g % 2 == 0) xs[r] = iq4_xs_scales(rows[r]);
        }
        if constexpr (T == 1) prefetch_ahead<F::kGroupBytes>(row + g * F::kGroupBytes, m.ahead);
      }
      group<R, T>(acc, rows, m, g * kA32GroupBytes, static_cast<int>(g % 2), xs);
    }
    // The last 1-3 blocks (iq4_xs rows are whole super-blocks), copied so the loads stay inside
    // the row.
    if (!F::kXs && nb % 4 != 0) {
      const size_t tail = static_cast<size_t>(nb % 4) * F::kBlockBytes;
      alignas(32) uint8_t buf[R][F::kGroupBytes] = {};
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        std::memcpy(buf[r], m.w + r * m.ws + full * F::kGroupBytes, tail);
        rows[r] = buf[r];
      }
      group<R, T>(acc, rows, m, full * kA32GroupBytes, 0, xs);
    }
    store_sums<R, T>(m, acc);
  }
};

// ---- q2_K, q3_K, q4_K, q5_K and q6_K against kA256 activations -------------------------------

// Words 2j, 2j + 1 of each 128-bit lane: the shuffle that broadcasts int16 j of a lane.
SY_QDOT_INLINE __m256i word_bcast(int j) {
  return _mm256_set1_epi16(static_cast<int16_t>((2 * j) | ((2 * j + 1) << 8)));
}

template <bool kFive>
struct K45Kernel {
  static constexpr int kBytes = kFive ? 176 : 144;
  static constexpr int kQs = kFive ? 48 : 16;
  static constexpr int kRp = 1, kTp = 4;

  // The codes of sub-block j (32 values).
  static SY_QDOT_INLINE __m256i codes(const uint8_t* blk, int j) {
    const __m256i raw = load256(blk + kQs + 32 * (j / 2));
    const __m256i nib = _mm256_set1_epi8(0x0f);
    __m256i c =
        j % 2 == 0 ? _mm256_and_si256(raw, nib) : _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
    if constexpr (kFive) {
      const __m256i bit =
          _mm256_and_si256(_mm256_srli_epi16(load256(blk + 16), j), _mm256_set1_epi8(1));
      c = _mm256_or_si256(c, _mm256_slli_epi16(bit, 4));
    }
    return c;
  }

  template <int R, int T>
  static void micro(const MicroArgs& m) {
    __m256 acc[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    }
    for (int64_t sb = 0; sb < m.k / 256; ++sb) {
      const uint8_t* blk[R];
      __m256i sc[R];  // scales 0..7 in both lanes
      __m256i md[R];  // mins, each twice: m0 m0 m1 m1 ... m7 m7
      __m256i isum[R][T];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        blk[r] = m.w + r * m.ws + sb * kBytes;
        if constexpr (T == 1) prefetch_ahead<kBytes>(blk[r], m.ahead);
        uint32_t u0 = 0, u1 = 0, u2 = 0;
        std::memcpy(&u0, blk[r] + 4, 4);
        std::memcpy(&u1, blk[r] + 8, 4);
        std::memcpy(&u2, blk[r] + 12, 4);
        const uint64_t scales =
            (u0 & 0x3f3f3f3fu) |
            static_cast<uint64_t>((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
        const uint64_t mins =
            (u1 & 0x3f3f3f3fu) |
            static_cast<uint64_t>(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u)) << 32;
        const __m128i s16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(scales)));
        const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mins)));
        sc[r] = _mm256_broadcastsi128_si256(s16);
        md[r] = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) isum[r][t] = _mm256_setzero_si256();
      }
      SY_QDOT_UNROLL
      for (int j = 0; j < 8; ++j) {
        __m256i c[R], sv[R];
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          c[r] = codes(blk[r], j);
          sv[r] = _mm256_shuffle_epi8(sc[r], word_bcast(j));
        }
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256i a = load256a(m.act + t * m.as + sb * kA256Bytes + 32 * kK4SubOrder[j]);
          SY_QDOT_UNROLL
          for (int r = 0; r < R; ++r) {
            isum[r][t] = _mm256_add_epi32(isum[r][t],
                                          _mm256_madd_epi16(_mm256_maddubs_epi16(c[r], a), sv[r]));
          }
        }
      }
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const uint8_t* at = m.act + t * m.as + sb * kA256Bytes;
        const __m256i bsums = load256a(at + 256);
        const __m256 da = _mm256_set1_ps(*reinterpret_cast<const float*>(at + 288));
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          const __m256 d = _mm256_mul_ps(_mm256_set1_ps(f16_at(blk[r])), da);
          const __m256 dmin = _mm256_mul_ps(_mm256_set1_ps(f16_at(blk[r] + 2)), da);
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][t]), d, acc[r][t]);
          acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(md[r], bsums)), dmin,
                                       acc[r][t]);
        }
      }
    }
    store_sums<R, T>(m, acc);
  }
};

// q2_K, q3_K and q6_K: 16 scales a super-block, one per 16 values in natural order.
template <GgmlType kType>
struct K16Kernel {
  using F = K16Format<kType>;
  static constexpr int kRp = 1, kTp = 4;

  // Values 32 g .. 32 g + 31 of half h as unsigned codes (q6_K 0..63, q3_K 0..7, q2_K 0..3).
  static SY_QDOT_INLINE __m256i codes(const uint8_t* blk, int h, int g) {
    if constexpr (F::kQ2 || F::kQ3) {  // 2 low bits: bits 2g, 2g + 1 of the half's 32 qs bytes
      const __m256i low =
          _mm256_and_si256(_mm256_srli_epi16(load256(blk + (F::kQ2 ? 16 : 32) + 32 * h), 2 * g),
                           _mm256_set1_epi8(3));
      if constexpr (F::kQ2) return low;
      // q3_K: + 4 where bit 4 h + g of the value's hmask byte is set
      const __m256i high =
          _mm256_and_si256(_mm256_srli_epi16(load256(blk), 4 * h + g), _mm256_set1_epi8(1));
      return _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
    } else {
      const __m256i ql = load256(blk + 64 * h + 32 * (g % 2));
      const __m256i qh = load256(blk + 128 + 32 * h);
      const __m256i low =
          _mm256_and_si256(g < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0f));
      const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), _mm256_set1_epi8(3));
      return _mm256_or_si256(low, _mm256_slli_epi16(top, 4));
    }
  }

  template <int R, int T>
  static void micro(const MicroArgs& m) {
    __m256 acc[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    }
    // In-lane shuffle: lane 0 repeats word 0 of each dword pair, lane 1 word 1.
    const __m256i split = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,  //
                                           2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    for (int64_t sb = 0; sb < m.k / 256; ++sb) {
      const uint8_t* blk[R];
      __m256i sc[R];
      __m256i isum[R][T];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        blk[r] = m.w + r * m.ws + sb * F::kBytes;
        if constexpr (T == 1) prefetch_ahead<F::kBytes>(blk[r], m.ahead);
        sc[r] = k16_scales<kType>(blk[r]);
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) isum[r][t] = _mm256_setzero_si256();
      }
      SY_QDOT_UNROLL
      for (int h = 0; h < 2; ++h) {
        SY_QDOT_UNROLL
        for (int g = 0; g < 4; ++g) {
          const int sub = 8 * h + 2 * g;  // sub-blocks sub, sub + 1 (16 values each)
          __m256i c[R], sv[R];
          SY_QDOT_UNROLL
          for (int r = 0; r < R; ++r) {
            c[r] = codes(blk[r], h, g);
            sv[r] = _mm256_shuffle_epi8(
                _mm256_permutevar8x32_epi32(sc[r], _mm256_set1_epi32(sub / 2)), split);
          }
          SY_QDOT_UNROLL
          for (int t = 0; t < T; ++t) {
            const __m256i a = load256a(m.act + t * m.as + sb * kA256Bytes + 128 * h + 32 * g);
            SY_QDOT_UNROLL
            for (int r = 0; r < R; ++r) {
              isum[r][t] = _mm256_add_epi32(
                  isum[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(c[r], a), sv[r]));
            }
          }
        }
      }
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const uint8_t* at = m.act + t * m.as + sb * kA256Bytes;
        const __m256i bsums = load256a(at + 256);
        const __m256 da = _mm256_set1_ps(*reinterpret_cast<const float*>(at + 288));
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          __m256i total = isum[r][t];
          if constexpr (F::kOffsetShift >= 0) {
            // codes are value + kOffset: take kOffset * sum_j scale_j * (sum a)_j back out
            const __m256i scn =
                _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc[r], F::kOffsetShift));
            total = _mm256_add_epi32(total, _mm256_madd_epi16(scn, bsums));
          }
          const __m256 d = _mm256_mul_ps(_mm256_set1_ps(f16_at(blk[r] + F::kD)), da);
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), d, acc[r][t]);
          if constexpr (F::kQ2) {  // - dmin * sum_j min_j * (sum a)_j
            const __m256i mins = _mm256_madd_epi16(q2_k_mins(blk[r]), bsums);
            const __m256 dmin = _mm256_mul_ps(_mm256_set1_ps(f16_at(blk[r] + F::kD + 2)), da);
            acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), dmin, acc[r][t]);
          }
        }
      }
    }
    store_sums<R, T>(m, acc);
  }
};

// ---- the activation quantizer ------------------------------------------------------------------

// d and 1 / d of n values (a multiple of 8) as qdot.h defines them; false when the codes are zero.
bool block_scale(const float* x, int n, float& d, float& id) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 amax = _mm256_setzero_ps();
  int bad = 0;
  for (int i = 0; i < n; i += 8) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask);
    bad |= _mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ));
    amax = _mm256_max_ps(amax, a);
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float m = _mm_cvtss_f32(m4);
  if (bad != 0 || m < kActTiny) {
    d = bad != 0 ? NAN : 0.0f;
    return false;
  }
  d = m / 127.0f;
  id = 127.0f / m;
  return true;
}

// 32 codes of x * id in order, and the sums of values 0..15 and 16..31 (as int32).
SY_QDOT_INLINE __m256i codes32(const float* x, float id, int& sum_lo, int& sum_hi) {
  const __m256 v = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; ++i)
    q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), v));
  sum_lo = hsum_i32(_mm256_add_epi32(q[0], q[1]));
  sum_hi = hsum_i32(_mm256_add_epi32(q[2], q[3]));
  const __m256i b =
      _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Each pair of blocks is assembled in registers and stored once: reading back pieces just stored
// (to sum them) would stall on store forwarding.
void quantize_a32(const float* x, int64_t k, int c, uint8_t* out) {
  const int64_t nb = k / 32;
  const __m256i ones = _mm256_set1_epi8(1), neg_c = _mm256_set1_epi16(static_cast<int16_t>(-c));
  for (int64_t g = 0; g < (nb + 3) / 4; ++g) {
    uint8_t* o = out + g * kA32GroupBytes;
    for (int q = 0; q < 2; ++q) {
      __m256i codes[2];
      float d[2];
      for (int j = 0; j < 2; ++j) {
        const int64_t b = 4 * g + 2 * q + j;
        codes[j] = _mm256_setzero_si256();
        d[j] = 0.0f;
        float id = 0.0f;
        int s0 = 0, s1 = 0;
        if (b < nb && block_scale(x + 32 * b, 32, d[j], id)) {
          codes[j] = codes32(x + 32 * b, id, s0, s1);
        }
      }
      const __m256i lo = _mm256_permute2x128_si256(codes[0], codes[1], 0x20);
      const __m256i hi = _mm256_permute2x128_si256(codes[0], codes[1], 0x31);
      const __m256i pairs =
          _mm256_add_epi16(_mm256_maddubs_epi16(ones, lo), _mm256_maddubs_epi16(ones, hi));
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * q), lo);
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 64 + 32 * q), hi);
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 128 + 32 * q),
                         _mm256_madd_epi16(pairs, neg_c));
      _mm256_store_ps(reinterpret_cast<float*>(o + 192 + 32 * q),
                      _mm256_setr_m128(_mm_set1_ps(d[0]), _mm_set1_ps(d[1])));
    }
  }
}

void quantize_a256(const float* x, int64_t k, bool k4_order, uint8_t* out) {
  for (int64_t s = 0; s < k / 256; ++s) {
    uint8_t* o = out + s * kA256Bytes;
    const float* xs = x + s * 256;
    float d = 0.0f, id = 0.0f;
    const bool coded = block_scale(xs, 256, d, id);
    std::memset(o + 256, 0, kA256Bytes - 256);
    for (int sub = 0; sub < 8; ++sub) {
      __m256i q = _mm256_setzero_si256();
      int s0 = 0, s1 = 0;
      if (coded) q = codes32(xs + 32 * sub, id, s0, s1);
      const auto b0 = static_cast<int16_t>(s0), b1 = static_cast<int16_t>(s1);
      const float f0 = d * static_cast<float>(s0), f1 = d * static_cast<float>(s1);
      std::memcpy(o + 256 + 4 * sub, &b0, 2);
      std::memcpy(o + 258 + 4 * sub, &b1, 2);
      std::memcpy(o + 320 + 8 * sub, &f0, 4);
      std::memcpy(o + 324 + 8 * sub, &f1, 4);
      const int pos = k4_order ? kK4SubOrder[sub] : sub;  // the order is its own inverse
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * pos), q);
    }
    std::memcpy(o + 288, &d, 4);
  }
}

}  // namespace

QdotTileFn tile_for(GgmlType type) {
  return tile_for_kernels<A32Kernel, K45Kernel, K16Kernel>(type);
}

void quantize_row(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  if (act_layout(weight_type) == ActLayout::kA32) {
    quantize_a32(x, k, act_a32_bias(weight_type), out);
  } else {
    quantize_a256(x, k, act_k4_order(weight_type), out);
  }
}

}  // namespace sy::kernels::cpu::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace sy::kernels::cpu {

QdotTileFn qdot_tile_avx2(GgmlType weight_type) { return avx2::tile_for(weight_type); }

void quantize_act_row_avx2(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  avx2::quantize_row(weight_type, x, k, out);
}

}  // namespace sy::kernels::cpu

#else  // not x86-64: no AVX2 bodies

namespace sy::kernels::cpu {

QdotTileFn qdot_tile_avx2(GgmlType /*weight_type*/) { return nullptr; }

void quantize_act_row_avx2(GgmlType weight_type, const float* x, int64_t k, uint8_t* out) {
  quantize_act_row(weight_type, x, k, out);
}

}  // namespace sy::kernels::cpu

#endif
