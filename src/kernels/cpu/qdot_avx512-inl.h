// AVX-512 micro tiles of the quantized dot products, included twice by qdot_avx512.cpp: once in
// namespace avx512_bw (kVnni = false: vpmaddubsw + vpmaddwd) and once in avx512_vnni (kVnni =
// true: vpdpbusd / vpdpwssd), each inside its own target region. No include guard on purpose.
//
// Register use: a micro tile holds R x T f32 accumulators (and for the K formats R x T int32
// accumulators per super-block) plus each row's unpacked codes and scales; the tile shapes below
// keep everything within the 32 zmm registers.

// ---- integer dot products ------------------------------------------------------------------

// acc + sums of 4 products u8 x s8 per 32-bit lane. Without VNNI the pairs go through int16, so u
// must be small enough that 2 * u * 127 fits (the 4-, 5- and 6-bit codes are).
SY_QDOT_INLINE __m512i dot_u8s8(__m512i acc, __m512i u, __m512i s) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(acc, u, s);
  } else {
    return _mm512_add_epi32(acc,
                            _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
  }
}

// acc + sums of 2 products s16 x s16 per 32-bit lane.
SY_QDOT_INLINE __m512i dot_s16(__m512i acc, __m512i a, __m512i b) {
  if constexpr (kVnni) {
    return _mm512_dpwssd_epi32(acc, a, b);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
  }
}

SY_QDOT_INLINE __m512i load512(const uint8_t* p) { return _mm512_loadu_si512(p); }
// The little-endian f16 at p, widened in a register (no call).
SY_QDOT_INLINE float f16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}
SY_QDOT_INLINE __m512i words(const uint16_t* p) { return _mm512_loadu_si512(p); }

// y[t * ys + r] (=|+=) the sum of accumulator (r, t)'s lanes.
template <int R, int T>
SY_QDOT_INLINE void store_sums(const MicroArgs& m, const __m512 (&acc)[R][T]) {
  SY_QDOT_UNROLL
  for (int t = 0; t < T; ++t) {
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      const float s = _mm512_reduce_add_ps(acc[r][t]);
      float* o = m.y + t * m.ys + r;
      *o = m.accumulate ? *o + s : s;
    }
  }
}

// Transposes 16 rows of 8 dwords: in[k] holds row k in its low 256 bits and row k + 8 in its high
// 256 bits (k = 0..7); out[i] gets dword i of row b in lane b (the kI16 order of qdot.h). Two
// rounds of in-lane unpacks transpose 4 x 4 pieces, a qword permute puts the lanes in order.
SY_QDOT_INLINE void transpose_16x8(const __m512i (&in)[8], __m512i (&out)[8]) {
  __m512i t[8], u[8];
  SY_QDOT_UNROLL
  for (int j = 0; j < 4; ++j) {
    t[2 * j] = _mm512_unpacklo_epi32(in[2 * j], in[2 * j + 1]);
    t[2 * j + 1] = _mm512_unpackhi_epi32(in[2 * j], in[2 * j + 1]);
  }
  // u[4 h + m]: rows 4 h .. 4 h + 3 (and + 8) of dwords m and m + 4, one per 128-bit lane.
  SY_QDOT_UNROLL
  for (int h = 0; h < 2; ++h) {
    u[4 * h] = _mm512_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
    u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
    u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
    u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
  }
  const __m512i first = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i second = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  SY_QDOT_UNROLL
  for (int m = 0; m < 4; ++m) {
    out[m] = _mm512_permutex2var_epi64(u[m], first, u[4 + m]);
    out[m + 4] = _mm512_permutex2var_epi64(u[m], second, u[4 + m]);
  }
}

// ---- q8_0, q4_0, iq4_nl and iq4_xs against kA32 activations -----------------------------------

// One row's group of 4 blocks, unpacked to the kA32 order: lo = values 0..15 of blocks 0..3, hi =
// values 16..31, dw = f32 lane j holding block j / 4's scale.
struct A32W {
  __m512i lo, hi;
  __m512 dw;
  __m512 mw;  // q4_1, q5_1: the blocks' mins, as dw
};

// q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl and iq4_xs (iq4_xs: a group is half a super-block, 4 of
// its sub-blocks).
template <GgmlType kType>
struct A32Kernel {
  using F = A32Format<kType>;
  static constexpr int kRp = 4, kTp = 4;

  // q5_0, q4_1, q5_1: word indices into the group's first 64 bytes (0..31) and its last 64
  // (32..63, the pair that _mm512_permutex2var_epi16 takes) of the u16 at byte `at` of the group.
  static constexpr uint16_t word_at(int at) {
    return static_cast<uint16_t>(at < 64 ? at / 2 : 32 + (at - (F::kGroupBytes - 64)) / 2);
  }
  // Words 0..3: the blocks' f16 d; 4..7: their f16 m (q4_1, q5_1).
  static constexpr std::array<uint16_t, 32> head_words() {
    std::array<uint16_t, 32> w{};
    for (int b = 0; b < 4; ++b) {
      w[b] = word_at(F::kBlockBytes * b);
      w[4 + b] = word_at(F::kBlockBytes * b + 2);
    }
    return w;
  }
  // Words 8 b and 8 b + 1 (128-bit lane b): block b's u32 qh.
  static constexpr std::array<uint16_t, 32> qh_words() {
    std::array<uint16_t, 32> w{};
    for (int i = 0; i < 32; ++i) w[i] = word_at(F::kBlockBytes * (i / 8) + F::kQh + 2 * (i % 2));
    return w;
  }
  alignas(64) static constexpr std::array<uint16_t, 32> kHeadWords = head_words();
  alignas(64) static constexpr std::array<uint16_t, 32> kQhWords = qh_words();

  // p: 4 whole blocks (F::kGroupBytes readable); iq4_xs: the super-block, and which half.
  // xs_scales: iq4_xs's 8 sub-block scales of the super-block (iq4_xs_scales), unused otherwise.
  static SY_QDOT_INLINE A32W load(const uint8_t* p, int half, __m256 xs_scales) {
    A32W w;
    if constexpr (kType == GgmlType::kQ8_0) {
      const auto* v = reinterpret_cast<const __m256i*>(p + 2);
      const __m512i ab =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(v)),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 36)), 1);
      const __m512i cd = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 70))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 104)), 1);
      w.lo = _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(2, 0, 2, 0));
      w.hi = _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(3, 1, 3, 1));
      if constexpr (kVnni) {  // int8 -> uint8 + 128; the activations' start values take it out
        const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
        w.lo = _mm512_xor_si512(w.lo, bias);
        w.hi = _mm512_xor_si512(w.hi, bias);
      }
      // The f16 scales are the words at bytes 0, 34, 68 and 102.
      alignas(64) static constexpr uint16_t kIdx[32] = {0,  0,  0,  0,  17, 17, 17, 17,
                                                        34, 34, 34, 34, 51, 51, 51, 51};
      const __m512i h = _mm512_permutex2var_epi16(load512(p), words(kIdx), load512(p + 64));
      w.dw = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    } else {
      __m512i v;
      if constexpr (F::kXs) {  // the 4 sub-blocks' codes are 64 contiguous bytes
        v = load512(p + 8 + 64 * half);
      } else {
        const auto codes = [&](int b) {
          return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + F::kBlockBytes * b + F::kQs));
        };
        v = _mm512_castsi128_si512(codes(0));
        v = _mm512_inserti32x4(v, codes(1), 1);
        v = _mm512_inserti32x4(v, codes(2), 2);
        v = _mm512_inserti32x4(v, codes(3), 3);
      }
      const __m512i nib = _mm512_set1_epi8(0x0f);
      w.lo = _mm512_and_si512(v, nib);
      w.hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
      // q5_0, q4_1, q5_1: the group's first and last 64 bytes, where its scales, mins and qh are
      __m512i first = _mm512_setzero_si512(), last = _mm512_setzero_si512();
      if constexpr (F::kFive || F::kMin) {
        first = load512(p);
        last = load512(p + F::kGroupBytes - 64);
      }
      if constexpr (F::kFive) {  // bit 4 of value i: bit i of each block's u32 qh (lane = block)
        const __m512i qh = _mm512_permutex2var_epi16(first, words(kQhWords.data()), last);
        const __m512i bit = _mm512_set1_epi64(static_cast<int64_t>(0x8040201008040201ull));
        const __m512i lo_idx =
            _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
        const __m512i hi_idx = _mm512_add_epi8(lo_idx, _mm512_set1_epi8(2));
        const __m512i top = _mm512_set1_epi8(0x10);
        w.lo = _mm512_or_si512(
            w.lo, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, lo_idx), bit),
                                        top));
        w.hi = _mm512_or_si512(
            w.hi, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, hi_idx), bit),
                                        top));
      }
      if constexpr (F::kIq4) {  // the codes' values (+ 128 for vpdpbusd's unsigned operand)
        const __m512i t4 = _mm512_broadcast_i32x4(iq4_table(kVnni));
        w.lo = _mm512_shuffle_epi8(t4, w.lo);
        w.hi = _mm512_shuffle_epi8(t4, w.hi);
      }
      if constexpr (F::kXs) {  // lanes 4 j .. 4 j + 3: sub-block 4 half + j's scale
        const __m512i pick =
            _mm512_add_epi32(_mm512_set1_epi32(4 * half),
                             _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
        w.dw = _mm512_permutexvar_ps(pick, _mm512_castps256_ps512(xs_scales));
      } else if constexpr (F::kFive || F::kMin) {  // the f16 scales (and mins) of the blocks
        const __m256 eight = _mm256_cvtph_ps(_mm512_castsi512_si128(
            _mm512_permutex2var_epi16(first, words(kHeadWords.data()), last)));
        const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        w.dw = _mm512_permutexvar_ps(spread, _mm512_castps256_ps512(eight));
        if constexpr (F::kMin) {
          w.mw = _mm512_permutexvar_ps(_mm512_add_epi32(spread, _mm512_set1_epi32(4)),
                                       _mm512_castps256_ps512(eight));
        }
      } else {
        // The f16 scales are the words at bytes 0, 18, 36 and 54.
        alignas(64) static constexpr uint16_t kIdx[32] = {0,  0,  0,  0,  9,  9,  9,  9,
                                                          18, 18, 18, 18, 27, 27, 27, 27};
        w.dw = _mm512_cvtph_ps(
            _mm512_castsi512_si256(_mm512_permutexvar_epi16(words(kIdx), load512(p))));
      }
    }
    return w;
  }

  // acc += the group's products of one row and one token (ag: the token's group).
  static SY_QDOT_INLINE void step(__m512& acc, const A32W& w, const uint8_t* ag) {
    const __m512i alo = _mm512_load_si512(ag), ahi = _mm512_load_si512(ag + 64);
    __m512i sum;
    if constexpr (F::kSigned && !kVnni) {
      // Signed x signed through vpmaddubsw: |w| x (a with w's sign); |w| <= 128 keeps the pair
      // sums within int16.
      const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi16(1);
      const __m512i slo = _mm512_mask_sub_epi8(alo, _mm512_movepi8_mask(w.lo), zero, alo);
      const __m512i shi = _mm512_mask_sub_epi8(ahi, _mm512_movepi8_mask(w.hi), zero, ahi);
      sum = _mm512_add_epi32(
          _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w.lo), slo), one),
          _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w.hi), shi), one));
    } else if constexpr (kVnni) {
      sum = F::kMin ? _mm512_setzero_si512() : _mm512_load_si512(ag + 128);
      sum = _mm512_dpbusd_epi32(sum, w.lo, alo);
      sum = _mm512_dpbusd_epi32(sum, w.hi, ahi);
    } else {  // unsigned codes: pair sums stay below 2 * 2 * 31 * 127
      const __m512i p =
          _mm512_add_epi16(_mm512_maddubs_epi16(w.lo, alo), _mm512_maddubs_epi16(w.hi, ahi));
      sum = _mm512_madd_epi16(p, _mm512_set1_epi16(1));
      if constexpr (!F::kMin) sum = _mm512_add_epi32(sum, _mm512_load_si512(ag + 128));
    }
    const __m512 da = _mm512_load_ps(reinterpret_cast<const float*>(ag + 192));
    if constexpr (F::kMin) {  // (d * (q . a) + m * sum(a)) * d_a; the lanes at 128 hold sum(a)
      const __m512 mins = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(ag + 128)), w.mw);
      acc = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), w.dw, mins), da, acc);
      return;
    }
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(w.dw, da), acc);
  }

  template <int R, int T>
  static void micro(const MicroArgs& m) {
    __m512 acc[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    }
    const int64_t nb = m.k / 32, full = nb / 4;
    __m256 xs[R];  // iq4_xs: each row's scales of its current super-block, once per two groups
    for (int64_t g = 0; g < full; ++g) {
      A32W w[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        const uint8_t* row = m.w + r * m.ws;
        if constexpr (T == 1) prefetch_ahead<F::kGroupBytes>(row + g * F::kGroupBytes, m.ahead);
        if constexpr (F::kXs) {
          const uint8_t* blk = row + (g / 2) * 136;
          if (g % 2 == 0) xs[r] = iq4_xs_scales(blk);
          w[r] = load(blk, static_cast<int>(g % 2), xs[r]);
        } else {
          w[r] = load(row + g * F::kGroupBytes, 0, _mm256_setzero_ps());
        }
      }
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const uint8_t* ag = m.act + t * m.as + g * kA32GroupBytes;
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) step(acc[r][t], w[r], ag);
      }
    }
    // The last 1-3 blocks (iq4_xs rows are whole super-blocks), copied so the loads stay inside
    // the row.
    if (!F::kXs && nb % 4 != 0) {
      const size_t tail = static_cast<size_t>(nb % 4) * F::kBlockBytes;
      alignas(64) uint8_t buf[F::kGroupBytes] = {};
      A32W w[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        std::memcpy(buf, m.w + r * m.ws + full * F::kGroupBytes, tail);
        w[r] = load(buf, 0, _mm256_setzero_ps());
      }
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const uint8_t* ag = m.act + t * m.as + full * kA32GroupBytes;
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) step(acc[r][t], w[r], ag);
      }
    }
    store_sums<R, T>(m, acc);
  }
};

// ---- q4_K and q5_K against kA256 activations --------------------------------------------------

// The 8 scales and 8 mins of a q4_K / q5_K super-block (12 packed bytes at p) as bytes 0..7 and
// 8..15 of every 128-bit lane (k_scale_min in kernels/quant/formats.h, four bytes at a time), for
// vpshufb to spread into 16-bit scale vectors.
SY_QDOT_INLINE __m512i k_scales_mins(const uint8_t* p) {
  uint32_t u0 = 0, u1 = 0, u2 = 0;
  std::memcpy(&u0, p, 4);
  std::memcpy(&u1, p + 4, 4);
  std::memcpy(&u2, p + 8, 4);
  const uint64_t sc = (u0 & 0x3f3f3f3fu) |
                      static_cast<uint64_t>((u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u)) << 32;
  const uint64_t mn = (u1 & 0x3f3f3f3fu) |
                      static_cast<uint64_t>(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u))
                          << 32;
  return _mm512_broadcast_i32x4(_mm_set_epi64x(static_cast<int64_t>(mn), static_cast<int64_t>(sc)));
}

// vpshufb controls that turn byte j of a lane into the int16 word j (zero-extended) repeated.
#define SY_W(j) j, -128, j, -128, j, -128, j, -128, j, -128, j, -128, j, -128, j, -128
alignas(64) inline constexpr int8_t kK45Slice[4][64] = {{SY_W(0), SY_W(0), SY_W(2), SY_W(2)},
                                                        {SY_W(1), SY_W(1), SY_W(3), SY_W(3)},
                                                        {SY_W(4), SY_W(4), SY_W(6), SY_W(6)},
                                                        {SY_W(5), SY_W(5), SY_W(7), SY_W(7)}};
#undef SY_W
// Mins 8..15 each twice (m0 m0 m1 m1 ...), in line with the per-16 activation sums.
alignas(32) inline constexpr int8_t kK45Mins[32] = {
    8,  -128, 8,  -128, 9,  -128, 9,  -128, 10, -128, 10, -128, 11, -128, 11, -128,
    12, -128, 12, -128, 13, -128, 13, -128, 14, -128, 14, -128, 15, -128, 15, -128};

// d and dmin (the two f16 at p) broadcast.
SY_QDOT_INLINE void k_d_dmin(const uint8_t* p, __m512& d, __m512& dmin) {
  uint32_t bits = 0;
  std::memcpy(&bits, p, 4);
  const __m128 two = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(bits)));
  d = _mm512_broadcastss_ps(two);
  dmin = _mm512_broadcastss_ps(_mm_movehdup_ps(two));
}

template <bool kFive>
struct K45Kernel {
  static constexpr int kBytes = kFive ? 176 : 144;
  static constexpr int kQs = kFive ? 48 : 16;
  static constexpr int kRp = 2, kTp = 4;

  // Slice s (0..3) of a super-block: 64 codes, sub-blocks (0, 2), (1, 3), (4, 6), (5, 7) as the
  // low / high nibbles of bytes 0..63 / 64..127 of qs; bit 4 (q5_K) from qh.
  static SY_QDOT_INLINE __m512i codes(const uint8_t* blk, int s) {
    const __m512i raw = load512(blk + kQs + 64 * (s / 2));
    const __m512i nib = _mm512_set1_epi8(0x0f);
    __m512i c =
        s % 2 == 0 ? _mm512_and_si512(raw, nib) : _mm512_and_si512(_mm512_srli_epi16(raw, 4), nib);
    if constexpr (kFive) {
      const __m512i qh =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
      const int sub_a = 4 * (s / 2) + s % 2;  // sub-blocks in the low / high 32 bytes
      const __m512i bits = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_set1_epi8(static_cast<char>(1 << sub_a))),
          _mm256_set1_epi8(static_cast<char>(1 << (sub_a + 2))), 1);
      c = _mm512_mask_add_epi8(c, _mm512_test_epi8_mask(qh, bits), c, _mm512_set1_epi8(16));
    }
    return c;
  }

  template <int R, int T>
  static void micro(const MicroArgs& m) {
    __m512 acc[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    }
    for (int64_t sb = 0; sb < m.k / 256; ++sb) {
      const uint8_t* blk[R];
      __m512i sm[R];
      __m512i isum[R][T];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        blk[r] = m.w + r * m.ws + sb * kBytes;
        if constexpr (T == 1) prefetch_ahead<kBytes>(blk[r], m.ahead);
        sm[r] = k_scales_mins(blk[r] + 4);
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) isum[r][t] = _mm512_setzero_si512();
      }
      SY_QDOT_UNROLL
      for (int s = 0; s < 4; ++s) {
        __m512i c[R], sv[R];
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          c[r] = codes(blk[r], s);
          sv[r] =
              _mm512_shuffle_epi8(sm[r], load512(reinterpret_cast<const uint8_t*>(kK45Slice[s])));
        }
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512i a = _mm512_load_si512(m.act + t * m.as + sb * kA256Bytes + 64 * s);
          SY_QDOT_UNROLL
          for (int r = 0; r < R; ++r) {
            isum[r][t] = dot_s16(isum[r][t], _mm512_maddubs_epi16(c[r], a), sv[r]);
          }
        }
      }
      // The mins: dmin * min_j, f32 lane i for the 16 values i of sub-block i / 2, against the
      // activations' scaled per-16 sums (bytes 320..383).
      __m512 dw[R], mins[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        __m512 dmin;
        k_d_dmin(blk[r], dw[r], dmin);
        const __m256i m16 =
            _mm256_shuffle_epi8(_mm512_castsi512_si256(sm[r]),
                                _mm256_load_si256(reinterpret_cast<const __m256i*>(kK45Mins)));
        mins[r] = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(m16)));
      }
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const uint8_t* at = m.act + t * m.as + sb * kA256Bytes;
        const __m512 da = _mm512_set1_ps(*reinterpret_cast<const float*>(at + 288));
        const __m512 scaled_sums = _mm512_load_ps(reinterpret_cast<const float*>(at + 320));
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          acc[r][t] =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][t]), _mm512_mul_ps(dw[r], da), acc[r][t]);
          acc[r][t] = _mm512_fnmadd_ps(mins[r], scaled_sums, acc[r][t]);
        }
      }
    }
    store_sums<R, T>(m, acc);
  }
};

// ---- q2_K, q3_K and q6_K against kA256 activations --------------------------------------------

// vpshufb controls: 128-bit lane k gets int16 word k (even slices) or 4 + k (odd slices).
#define SY_W(j)                                                                                    \
  2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), \
      2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1, 2 * (j), 2 * (j) + 1
alignas(64) inline constexpr int8_t kQ6Slice[2][64] = {{SY_W(0), SY_W(1), SY_W(2), SY_W(3)},
                                                       {SY_W(4), SY_W(5), SY_W(6), SY_W(7)}};
#undef SY_W

// q2_K, q3_K and q6_K: 16 scales a super-block, one per 16 values in natural order.
template <GgmlType kType>
struct K16Kernel {
  using F = K16Format<kType>;
  static constexpr int kRp = 2, kTp = 4;

  // Bytes lo in the low 32 bytes, hi in the high 32.
  static SY_QDOT_INLINE __m512i halves(int lo, int hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(static_cast<char>(lo))),
                              _mm256_set1_epi8(static_cast<char>(hi)), 1);
  }

  // Slice s (0..3): values 64 s .. 64 s + 63 as unsigned codes (q6_K 0..63, q3_K 0..7, q2_K
  // 0..3).
  static SY_QDOT_INLINE __m512i codes(const uint8_t* blk, int s) {
    if constexpr (F::kQ2 || F::kQ3) {
      // 2 low bits: bits 2 g, 2 g + 1 of the half's 32 qs bytes, g = 2 (s % 2) in the low 32
      // bytes and g + 1 in the high 32
      const __m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(blk + (F::kQ2 ? 16 : 32) + 32 * (s / 2))));
      const int g = 2 * (s % 2);
      const __m512i low = _mm512_and_si512(
          _mm512_srlv_epi16(
              qs, _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(2 * g)),
                                     _mm256_set1_epi16(static_cast<int16_t>(2 * g + 2)), 1)),
          _mm512_set1_epi8(3));
      if constexpr (F::kQ2) return low;
      // q3_K: + 4 where bit 4 (s / 2) + g of the value's hmask byte is set
      const __m512i hm =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
      const int bit = 4 * (s / 2) + g;
      return _mm512_mask_add_epi8(low, _mm512_test_epi8_mask(hm, halves(1 << bit, 1 << (bit + 1))),
                                  low, _mm512_set1_epi8(4));
    } else {
      // q6_K: low nibbles (s even) or high nibbles (s odd) of ql bytes 64 (s / 2) .. + 63, top
      // bits from qh bytes 32 (s / 2) .. + 31
      const __m512i ql = load512(blk + 64 * (s / 2));
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * (s / 2))));
      const __m512i nib = _mm512_set1_epi8(0x0f);
      if (s % 2 == 0) {  // values 0..31 take qh bits 0-1 (<< 4), values 32..63 bits 2-3 (<< 2)
        const __m512i top =
            _mm512_sllv_epi16(_mm512_and_si512(qh, halves(0x03, 0x0c)),
                              _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1));
        return _mm512_or_si512(_mm512_and_si512(ql, nib), top);
      }
      // values 64..95 take qh bits 4-5 (in place), values 96..127 bits 6-7 (>> 2)
      const __m512i top =
          _mm512_srlv_epi16(_mm512_and_si512(qh, halves(0x30, 0xc0)),
                            _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1));
      return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), nib), top);
    }
  }

  template <int R, int T>
  static void micro(const MicroArgs& m) {
    __m512 acc[R][T];
    SY_QDOT_UNROLL
    for (int r = 0; r < R; ++r) {
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    }
    for (int64_t sb = 0; sb < m.k / 256; ++sb) {
      const uint8_t* blk[R];
      __m512i sc[R], sc_lo[R], sc_hi[R];  // scales as int16; words 0..7 / 8..15 in every lane
      __m512i isum[R][T];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        blk[r] = m.w + r * m.ws + sb * F::kBytes;
        if constexpr (T == 1) prefetch_ahead<F::kBytes>(blk[r], m.ahead);
        sc[r] = _mm512_castsi256_si512(k16_scales<kType>(blk[r]));
        sc_lo[r] = _mm512_broadcast_i32x4(_mm512_castsi512_si128(sc[r]));
        sc_hi[r] =
            _mm512_broadcast_i32x4(_mm256_extracti128_si256(_mm512_castsi512_si256(sc[r]), 1));
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) isum[r][t] = _mm512_setzero_si512();
      }
      SY_QDOT_UNROLL
      for (int s = 0; s < 4; ++s) {
        __m512i c[R], sv[R];
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          c[r] = codes(blk[r], s);
          sv[r] = _mm512_shuffle_epi8(s < 2 ? sc_lo[r] : sc_hi[r],
                                      load512(reinterpret_cast<const uint8_t*>(kQ6Slice[s % 2])));
        }
        SY_QDOT_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m512i a = _mm512_load_si512(m.act + t * m.as + sb * kA256Bytes + 64 * s);
          SY_QDOT_UNROLL
          for (int r = 0; r < R; ++r) {
            isum[r][t] = dot_s16(isum[r][t], _mm512_maddubs_epi16(c[r], a), sv[r]);
          }
        }
      }
      // codes are value + kOffset: take kOffset * d * sum_j scale_j * (d_a * sum a)_j back out
      // (q2_K: dmin * sum_j min_j * (d_a * sum a)_j), in f32 against the activations' scaled
      // per-16 sums (bytes 320..383)
      __m512 dw[R], offset[R];
      SY_QDOT_UNROLL
      for (int r = 0; r < R; ++r) {
        const float d = f16_at(blk[r] + F::kD);
        dw[r] = _mm512_set1_ps(d);
        if constexpr (F::kQ2) {
          offset[r] = _mm512_mul_ps(_mm512_set1_ps(-f16_at(blk[r] + F::kD + 2)),
                                    _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(q2_k_mins(blk[r]))));
        } else {
          offset[r] = _mm512_mul_ps(
              _mm512_set1_ps(-F::kOffset * d),
              _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(sc[r]))));
        }
      }
      SY_QDOT_UNROLL
      for (int t = 0; t < T; ++t) {
        const uint8_t* at = m.act + t * m.as + sb * kA256Bytes;
        const __m512 da = _mm512_set1_ps(*reinterpret_cast<const float*>(at + 288));
        const __m512 scaled_sums = _mm512_load_ps(reinterpret_cast<const float*>(at + 320));
        SY_QDOT_UNROLL
        for (int r = 0; r < R; ++r) {
          acc[r][t] =
              _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][t]), _mm512_mul_ps(dw[r], da), acc[r][t]);
          acc[r][t] = _mm512_fmadd_ps(offset[r], scaled_sums, acc[r][t]);
        }
      }
    }
    store_sums<R, T>(m, acc);
  }
};

inline QdotTileFn tile_for(GgmlType type) {
  return tile_for_kernels<A32Kernel, K45Kernel, K16Kernel>(type);
}
