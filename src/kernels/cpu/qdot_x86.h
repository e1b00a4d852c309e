// Shared by the x86 bodies of the quantized dot products (qdot_avx2.cpp, qdot_avx512.cpp): the
// tile driver that walks a QdotTile in register-sized micro tiles, and small macros. Each body
// file compiles its code inside a target region (SY_QDOT_TARGET_BEGIN/END) so the library itself
// is built for the baseline ISA and the CPU is checked at run time before any of it runs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/ggml_types.h"
#include "kernels/cpu/qdot.h"
#include "kernels/quant/formats.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SY_QDOT_X86 1
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics initialise their "undefined" vectors from themselves, which its own
// uninitialised-use warnings flag inside the header (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#else
#define SY_QDOT_X86 0
#endif

#define SY_QDOT_INLINE inline __attribute__((always_inline))
#if defined(__clang__)
#define SY_QDOT_UNROLL _Pragma("unroll")
#else
#define SY_QDOT_UNROLL _Pragma("GCC unroll 16")
#endif

namespace sy::kernels::cpu {

// What a micro tile works on: rows [0, R) of w and tokens [0, T) of act, full K.
struct MicroArgs {
  const uint8_t* w;
  size_t ws;
  const uint8_t* act;
  size_t as;
  int64_t k;
  float* y;
  int64_t ys;
  bool accumulate;
  size_t ahead = 0;  // decode (one token): prefetch the weight bytes this far on (decode_ahead)
};

// Decode reads every weight byte once. One row at a time, the rows back to back, a tile is one
// forward stream, which the hardware prefetchers follow across pages; what they miss at a
// stream's start and at page crossings, software prefetches ask for at least kDecodeAheadBytes
// (and two rows) ahead, into L2: into L1 they would drop out before their turn. Streaming an
// OLMoE layer's experts (q4_0 P16) on a 2-core Zen 4 host, this read 25-29 GB/s, as fast as a
// plain read of the same bytes there; two interleaved rows with L1 prefetches two tiles ahead
// read 16-18 GB/s. The distance matters most for the bodies with the most work per byte (q4_K):
// OLMoE decode, runs alternating, medians q4_0 / q4_K: 2 KB ahead 25.0 / 23.6 GB/s, 6 KB
// 31.0 / 27.7; 8 and 12 KB no better than 6.
constexpr size_t kDecodeAheadBytes = 6144;
// q8_0 P16 rows read fastest nearer: two rows ahead (4352 bytes for K = 2048) rather than three.
// OLMoE-shaped MoE decode layer kernel (`bench kernels --filter moe_decode/q8_0`), runs
// alternating, fraction of the triad around each: 1-2 rows 1.07-1.18, 3-4 rows 0.92-1.04. The
// whole OLMoE q8_0 decode (`bench decode`), 3 runs each alternating: ratio 0.867-0.871 ->
// 0.945-1.056 with the distance set from the environment in a scratch build, 0.808-0.851 ->
// 0.874-0.879 for the binaries before and after this change. The same
// distance for q4_0 / q4_K rows (two or three rows, 2.3-3.5 KB) read 0.66-0.85 against 0.98-1.13
// at 6 KB.
constexpr size_t kDecodeAheadBytesQ8P16 = 2048;
inline size_t decode_ahead(size_t row_bytes, size_t min_bytes = kDecodeAheadBytes) {
  return row_bytes * std::max<size_t>(2, (min_bytes + row_bytes - 1) / row_bytes);
}
// The kBytes at p + ahead, into L2.
template <size_t kBytes>
SY_QDOT_INLINE void prefetch_ahead(const uint8_t* p, size_t ahead) {
  SY_QDOT_UNROLL
  for (size_t off = 0; off < kBytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + ahead + off), _MM_HINT_T1);
  }
}

inline MicroArgs micro_at(const QdotTile& a, int64_t r, int64_t t) {
  return {a.w + static_cast<size_t>(r) * a.w_stride,
          a.w_stride,
          a.act + static_cast<size_t>(t) * a.act_stride,
          a.act_stride,
          a.k,
          a.y + t * a.y_stride + r,
          a.y_stride,
          a.accumulate};
}

// Walks rows x tokens in groups of kR rows x kT tokens, calling micro.template operator()<R, T>(r,
// t) for each: the rows' weights stay in L1 while the token groups pass. Edges use R = 1 and
// T = 1, which compute every output with the same operations in the same order, so results do
// not depend on where the edges fall.
template <int kR, int kT, class Micro>
SY_QDOT_INLINE void walk_micro_tiles(int64_t rows, int64_t tokens, const Micro& micro) {
  for (int64_t r = 0; r < rows; r += kR) {
    const bool full = r + kR <= rows;
    const int64_t r_end = std::min<int64_t>(rows, r + kR);
    int64_t t = 0;
    for (; t + kT <= tokens; t += kT) {
      if (full) {
        micro.template operator()<kR, kT>(r, t);
      } else {
        for (int64_t rr = r; rr < r_end; ++rr) micro.template operator()<1, kT>(rr, t);
      }
    }
    for (; t < tokens; ++t) {
      if (full) {
        micro.template operator()<kR, 1>(r, t);
      } else {
        for (int64_t rr = r; rr < r_end; ++rr) micro.template operator()<1, 1>(rr, t);
      }
    }
  }
}

// Decode (one token): the tile's rows one at a time, prefetching decode_ahead (see there).
template <class Micro>
SY_QDOT_INLINE void walk_decode_rows(const QdotTile& a, const Micro& micro,
                                     size_t ahead_bytes = kDecodeAheadBytes) {
  const size_t ahead = decode_ahead(a.w_stride, ahead_bytes);
  for (int64_t r = 0; r < a.rows; ++r) {
    MicroArgs m = micro_at(a, r, 0);
    m.ahead = ahead;
    micro(m);
  }
}

// Walks a tile with Kernel::micro<R, T>: one token a row at a time (walk_decode_rows), or several
// tokens in groups of Kernel::kRp rows x Kernel::kTp tokens (walk_micro_tiles).
template <class Kernel>
void run_tile(const QdotTile& a) {
  constexpr int kRp = Kernel::kRp, kTp = Kernel::kTp;
  if (a.tokens == 1) {
    walk_decode_rows(a, [](const MicroArgs& m) { Kernel::template micro<1, 1>(m); });
    return;
  }
  walk_micro_tiles<kRp, kTp>(a.rows, a.tokens, [&]<int R, int T>(int64_t r, int64_t t) {
    Kernel::template micro<R, T>(micro_at(a, r, t));
  });
}

// The tile body for `type` from one instruction set's kernel templates (the AVX2 ones or the
// AVX-512 ones): A32 for the 32-value formats, K45 for q4_K / q5_K, K16 for q2_K / q3_K / q6_K;
// nullptr for a type without one.
template <template <GgmlType> class A32, template <bool> class K45, template <GgmlType> class K16>
QdotTileFn tile_for_kernels(GgmlType type) {
  switch (type) {
    case GgmlType::kQ8_0:
      return run_tile<A32<GgmlType::kQ8_0>>;
    case GgmlType::kQ4_0:
      return run_tile<A32<GgmlType::kQ4_0>>;
    case GgmlType::kQ4_1:
      return run_tile<A32<GgmlType::kQ4_1>>;
    case GgmlType::kQ5_0:
      return run_tile<A32<GgmlType::kQ5_0>>;
    case GgmlType::kQ5_1:
      return run_tile<A32<GgmlType::kQ5_1>>;
    case GgmlType::kQ4_K:
      return run_tile<K45<false>>;
    case GgmlType::kQ5_K:
      return run_tile<K45<true>>;
    case GgmlType::kQ2_K:
      return run_tile<K16<GgmlType::kQ2_K>>;
    case GgmlType::kQ3_K:
      return run_tile<K16<GgmlType::kQ3_K>>;
    case GgmlType::kQ6_K:
      return run_tile<K16<GgmlType::kQ6_K>>;
    case GgmlType::kIQ4_NL:
      return run_tile<A32<GgmlType::kIQ4_NL>>;
    case GgmlType::kIQ4_XS:
      return run_tile<A32<GgmlType::kIQ4_XS>>;
    default:
      return nullptr;
  }
}

// What the x86 bodies of the kA32 weight formats (q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, iq4_xs)
// need to know of a block's layout.
template <GgmlType kType>
struct A32Format {
  static constexpr bool kXs = kType == GgmlType::kIQ4_XS;          // a group is half a super-block
  static constexpr bool kIq4 = kXs || kType == GgmlType::kIQ4_NL;  // codes index the iq4 table
  // w = d * q + m: an f16 min after d, and codes taken as they are (no offset)
  static constexpr bool kMin = kType == GgmlType::kQ4_1 || kType == GgmlType::kQ5_1;
  // bit 4 of the codes in a u32 qh
  static constexpr bool kFive = kType == GgmlType::kQ5_0 || kType == GgmlType::kQ5_1;
  // Codes that are signed values (q8_0, and iq4's table values): without VNNI they take the
  // |w| x sign(a) products; with it they are stored + 128, which the start values take out.
  static constexpr bool kSigned = kIq4 || kType == GgmlType::kQ8_0;
  static constexpr int kHead = 2 + (kMin ? 2 : 0);     // d (and m)
  static constexpr int kQh = kHead;                    // q5_0, q5_1: where qh is
  static constexpr int kQs = kHead + (kFive ? 4 : 0);  // where a block's codes start
  static constexpr int kBlockBytes = kType == GgmlType::kQ8_0 ? 34 : kQs + 16;  // iq4_xs: 136 / 8
  static constexpr size_t kGroupBytes = kXs ? 68 : 4 * kBlockBytes;
};

// What the x86 bodies of the kA256 formats with 16 scales a super-block, one per 16 values in
// natural order (q2_K, q3_K, q6_K), need to know of a block's layout. A value is
// d * scale_j * (code - kOffset) (q2_K: minus dmin * min_j).
template <GgmlType kType>
struct K16Format {
  static constexpr bool kQ2 = kType == GgmlType::kQ2_K, kQ3 = kType == GgmlType::kQ3_K;
  static constexpr int kBytes = kQ2 ? 84 : kQ3 ? 110 : 210;
  static constexpr int kD = kQ2 ? 80 : kQ3 ? 108 : 208;        // f16 d (q2_K: then dmin)
  static constexpr int kOffsetShift = kQ2 ? -1 : kQ3 ? 2 : 5;  // log2 kOffset (-1: none)
  static constexpr float kOffset = kQ2 ? 0.0f : kQ3 ? 4.0f : 32.0f;
};

#if SY_QDOT_X86
// The 16 scales (q2_K: and the 16 mins) of a K16Format super-block as int16 words.
template <GgmlType kType>
__attribute__((target("avx2"))) SY_QDOT_INLINE __m256i k16_scales(const uint8_t* blk) {
  if constexpr (kType == GgmlType::kQ2_K) {  // low nibbles of bytes 0..15
    return _mm256_and_si256(
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk))),
        _mm256_set1_epi16(0xf));
  } else if constexpr (kType == GgmlType::kQ3_K) {  // quant::q3_k_scale for j = 0..15 at once
    const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 96));
    const __m128i nib = _mm_set1_epi8(0xf);
    // low 4 bits: the low nibbles of bytes 0..7, then their high nibbles
    const __m128i low = _mm_unpacklo_epi64(_mm_and_si128(packed, nib),
                                           _mm_and_si128(_mm_srli_epi16(packed, 4), nib));
    // top 2 bits of scale j: bits 2 (j / 4) .. + 1 of byte 8 + j % 4 (dword j / 4 shifted by 2 j /
    // 4)
    uint32_t top_bytes = 0;
    std::memcpy(&top_bytes, blk + 104, 4);
    const __m128i top = _mm_and_si128(
        _mm_srlv_epi32(_mm_set1_epi32(static_cast<int>(top_bytes)), _mm_setr_epi32(0, 2, 4, 6)),
        _mm_set1_epi8(3));
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_or_si128(low, _mm_slli_epi16(top, 4))),
                            _mm256_set1_epi16(32));
  } else {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
  }
}
__attribute__((target("avx2"))) SY_QDOT_INLINE __m256i q2_k_mins(const uint8_t* blk) {
  return _mm256_cvtepu8_epi16(
      _mm_and_si128(_mm_srli_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)), 4),
                    _mm_set1_epi8(0xf)));
}

// The iq4 table (quant::kIq4Values) as 16 bytes: signed values, or + 128 as vpdpbusd's unsigned
// operand (the activations' start values take the 128 out).
__attribute__((target("avx2"))) SY_QDOT_INLINE __m128i iq4_table(bool plus_128) {
  const __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(quant::kIq4Values));
  return plus_128 ? _mm_xor_si128(values, _mm_set1_epi8(static_cast<char>(0x80))) : values;
}

// q5_0: bit 4 of the codes of two blocks whose u32 qh fields are h0 and h1 (bit i: value i), as
// bytes 0x10 or 0 in q4_0's nibble order: lo holds values 0..15 (128-bit lane 0: the first
// block, lane 1: the second), hi values 16..31.
__attribute__((target("avx2"))) SY_QDOT_INLINE void q5_high_bits(uint32_t h0, uint32_t h1,
                                                                 __m256i& lo, __m256i& hi) {
  const __m256i qh =
      _mm256_setr_epi32(static_cast<int>(h0), 0, 0, 0, static_cast<int>(h1), 0, 0, 0);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i lo_idx = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0,
                                          0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m256i hi_idx = _mm256_add_epi8(lo_idx, _mm256_set1_epi8(2));
  const __m256i top = _mm256_set1_epi8(0x10);
  lo = _mm256_and_si256(
      _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, lo_idx), bit), bit), top);
  hi = _mm256_and_si256(
      _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, hi_idx), bit), bit), top);
}

// iq4_xs: the 8 sub-block scales d * (ls_j - 32) of the super-block at p, as iq4_xs_scale
// (kernels/quant/formats.h) gives them one at a time: ls_j is nibble j of the u32 scales_l (bits
// 4j..4j+3) topped by bits 2j, 2j + 1 of scales_h. For the AVX2 and AVX-512 bodies (both targets
// include AVX2 and F16C).
__attribute__((target("avx2,f16c"))) SY_QDOT_INLINE __m256 iq4_xs_scales(const uint8_t* p) {
  uint32_t low_bits = 0;
  std::memcpy(&low_bits, p + 4, 4);
  const int high_bits = p[2] | (p[3] << 8);
  const __m256i low =
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(low_bits)),
                                         _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                       _mm256_set1_epi32(0xf));
  const __m256i high = _mm256_and_si256(
      _mm256_srlv_epi32(_mm256_set1_epi32(high_bits), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
      _mm256_set1_epi32(3));
  const __m256i ls = _mm256_or_si256(low, _mm256_slli_epi32(high, 4));
  const float d = _cvtsh_ss(static_cast<uint16_t>(p[0] | (p[1] << 8)));
  return _mm256_mul_ps(_mm256_set1_ps(d),
                       _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))));
}
#endif

}  // namespace sy::kernels::cpu
