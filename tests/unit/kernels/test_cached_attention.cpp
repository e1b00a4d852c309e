#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cached_attention.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::kernels {
namespace {

struct Case {
  int64_t tokens, cached, q_heads, kv_heads, key_dim, value_dim;
  CachedAttentionOptions opts;
  bool f16 = false;  // keys and values stored as f16 (the inference cache)
};

// x rounded to f16 and back, so the reference sees exactly what the f16 cache holds.
Tensor round_f16(const Tensor& x) { return x.to(DType::F16).to_f32(); }

// x [S, H, D] as a head-major cache of `capacity` positions per head, [H, capacity, D], the
// positions past S NaN so that reading one shows in the output.
Tensor heads_first(const Tensor& x, int64_t capacity) {
  const int64_t s = x.dim(0), h = x.dim(1), d = x.dim(2);
  Tensor out = Tensor::empty({h, capacity, d});
  out.fill(NAN);
  const float* src = x.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t p = 0; p < s; ++p) {
    for (int64_t g = 0; g < h; ++g) {
      std::copy(src + (p * h + g) * d, src + (p * h + g + 1) * d, dst + (g * capacity + p) * d);
    }
  }
  return out;
}

// Checks cached_attention on each shape against the PyTorch reference, on every SIMD path and
// once per thread count (0: the default team); and cached_attention_heads on the same keys and
// values in a head-major cache with room for 5 more positions.
void check_against_reference(const std::vector<Case>& shapes, uint64_t seed,
                             const std::vector<int>& thread_counts) {
  Rng rng(seed);
  std::vector<test::ReferenceCase> cases;
  for (const Case& s : shapes) {
    Tensor k = test::random_normal({s.cached, s.kv_heads, s.key_dim}, rng);
    Tensor v = test::random_normal({s.cached, s.kv_heads, s.value_dim}, rng);
    if (s.f16) k = round_f16(k), v = round_f16(v);
    cases.push_back(
        {{{"q", test::random_normal({s.tokens, s.q_heads, s.key_dim}, rng)}, {"k", k}, {"v", v}},
         {{"scale", s.opts.scale}, {"window", s.opts.window}}});
  }
  const auto refs = test::run_reference_cases("cached_attention", cases);
  const int saved = omp_get_max_threads();
  test::for_each_simd_path([&](const std::string&) {
    for (const int threads : thread_counts) {
      omp_set_num_threads(threads > 0 ? threads : saved);
      for (size_t i = 0; i < shapes.size(); ++i) {
        const Case& s = shapes[i];
        SCOPED_TRACE(::testing::Message() << "case " << i << ", threads " << threads);
        Tensor out = Tensor::zeros({s.tokens, s.q_heads, s.value_dim});
        const DType kv = s.f16 ? DType::F16 : DType::F32;
        const Tensor& k = cases[i].inputs.at("k");
        const Tensor& v = cases[i].inputs.at("v");
        cached_attention(out, cases[i].inputs.at("q"), k.to(kv), v.to(kv), s.opts);
        EXPECT_ALL_CLOSE(out, refs[i].at("out"), 1e-5f, 1e-5f);
        Tensor by_head = Tensor::zeros({s.tokens, s.q_heads, s.value_dim});
        cached_attention_heads(by_head, cases[i].inputs.at("q"),
                               heads_first(k, s.cached + 5).to(kv),
                               heads_first(v, s.cached + 5).to(kv), s.cached, s.opts);
        EXPECT_ALL_CLOSE(by_head, refs[i].at("out"), 1e-5f, 1e-5f);
      }
    }
  });
  omp_set_num_threads(saved);
}

// Scores are Dk-term f32 dot products of N(0,1) values, scaled to O(1), and outputs convex
// combinations of v rows: f32 rounding leaves ~1e-6; a masking or grouping error is O(0.1).
TEST(CachedAttention, MatchesPyTorch) {
  const std::vector<Case> shapes = {
      {1, 1, 1, 1, 4, 4, {}},                // first token
      {1, 9, 4, 2, 8, 8, {}},                // decode step, GQA
      {5, 5, 2, 2, 3, 3, {}},                // prefill, odd dim
      {3, 11, 4, 1, 6, 6, {.scale = 0.3f}},  // chunk after a prefix, MQA, explicit scale
      {4, 12, 4, 4, 24, 16, {}},             // MLA: Dk != Dv
      {6, 20, 2, 1, 8, 8, {.window = 4}},    // sliding window
      {1, 40, 2, 2, 8, 8, {.window = 7}},    // window in a decode step
      {64, 96, 8, 2, 64, 64, {}},            // bigger: parallel path
      // Up to 4 new tokens attend straight from the cache (f32 or f16, no widened copy).
      {1, 70, 4, 1, 20, 12, {}, true},              // f16 decode: lane tails of Dk and Dv
      {2, 33, 4, 2, 72, 72, {}},                    // f32, two tokens, Dv = 4 vectors + tail
      {3, 50, 8, 2, 64, 64, {.window = 20}, true},  // f16 window, three tokens
      {1, 300, 16, 16, 128, 128, {}, true},         // OLMoE-like decode: parallel over positions
      {4, 200, 32, 8, 128, 128, {.scale = 0.1f}, true},  // Mixtral-like GQA, four tokens
      {64, 96, 8, 2, 64, 64, {}, true},                  // f16 prefill: blocked path
      // Decode 16 heads per vector (AVX-512): a Dk of 32 + 16 lanes, several 64-key blocks, and
      // the Mixtral-8-layer bench shape (32 heads of 32, 8 kv heads), f32 and f16.
      {1, 150, 16, 4, 48, 48, {}, true},
      {2, 300, 32, 8, 32, 32, {}},
      {1, 576, 32, 8, 32, 32, {.scale = 0.5f}, true},
      // Grouped-query decode: a kv head's piece of a key row is widened once for its group's
      // heads (head dims 32, 64, 128), and its value rows summed for up to 4 heads at a time.
      {1, 100, 16, 8, 64, 64, {}, true},   // group 2, Dk of 4 vectors
      {1, 90, 32, 4, 128, 128, {}, true},  // group 8: two batches of 4 heads per value row
      {1, 70, 48, 16, 32, 32, {}, true},   // group 3: kv heads straddle the 16-head batches
      {2, 60, 48, 16, 32, 32, {}},         // the same in f32, two tokens
      {1, 80, 7, 1, 20, 44, {}, true},     // group 7 (4 + 2 + 1 heads), lane tails
      {1, 80, 6, 2, 16, 40, {}},           // group 3 (2 + 1), Dv of 2 vectors + a tail
      // Groups of 16 and 32 query heads (head-major: 16 heads per reduction).
      {1, 130, 32, 2, 64, 64, {}, true},
      {2, 50, 32, 1, 32, 32, {}},
  };
  check_against_reference(shapes, 5, {0});
}

// Prefill (more than 4 new tokens) walks each block of 128 queries' keys in tiles of 256
// positions with an online softmax. These cases span several tiles and blocks: the running max
// and sum carried from tile to tile, rows that see nothing in a later tile (positions before
// it), the diagonal inside a tile, windows starting mid-tile, partial last blocks, GQA, Dk != Dv,
// f32 and f16, on 1, 2 and 3 threads.
TEST(CachedAttention, PrefillWalksKeyTiles) {
  const std::vector<Case> shapes = {
      {300, 300, 2, 2, 8, 8, {}},                      // prompt: the diagonal in tile 2
      {64, 264, 2, 2, 8, 8, {}, true},                 // rows 200-255 see none of tile 2
      {70, 600, 4, 2, 32, 24, {.window = 300}, true},  // window across tiles, GQA, Dk != Dv
      {130, 700, 2, 1, 16, 16, {.scale = 0.2f}},       // three tiles, blocks of 128 and 2
      {100, 100, 2, 2, 8, 8, {.window = 5}, true},     // small window: few keys per row
      {65, 1100, 16, 16, 128, 128, {}, true},          // OLMoE heads, a chunk after 1035
  };
  check_against_reference(shapes, 7, {1, 2, 3});
}

// Decode (up to 4 new tokens) splits each token's keys into one contiguous range per thread and
// merges the threads' partial softmax states. Every case reads at least 256 KB of keys and
// values, so it runs on the whole team: with 1, 2, 3 and 5 threads the ranges differ in length,
// fall inside one 64-key block or span several, and some are empty.
TEST(CachedAttention, DecodeSplitsKeysAcrossThreads) {
  const std::vector<Case> shapes = {
      {1, 301, 4, 4, 64, 64, {}},                        // odd count: ranges of unequal length
      {1, 1, 16, 16, 2048, 2048, {}},                    // one position: other ranges empty
      {4, 40, 16, 16, 256, 256, {.window = 3}},          // window below the thread count
      {2, 500, 16, 4, 128, 64, {.window = 150}, true},   // window inside the cache, GQA, Dk != Dv
      {3, 260, 8, 4, 72, 40, {.scale = 0.2f}},           // three tokens, lane tails, group 2
      {4, 700, 16, 16, 128, 128, {}, true},              // OLMoE shape, four tokens, many blocks
      {2, 400, 32, 8, 128, 128, {.window = 100}, true},  // Mixtral-like, window, two tokens
      // Head-major: fewer (token, kv head) pairs than threads cut each head's keys into chunks.
      {1, 600, 8, 1, 64, 64, {}, true},                // one kv head, group 8
      {2, 300, 4, 2, 128, 32, {.window = 200}, true},  // four pairs, window
  };
  check_against_reference(shapes, 6, {1, 2, 3, 5});
}

TEST(CachedAttention, RejectsBadShapes) {
  Tensor q = Tensor::zeros({2, 4, 8}), k = Tensor::zeros({1, 2, 8}), v = Tensor::zeros({1, 2, 8});
  Tensor out = Tensor::zeros({2, 4, 8});
  EXPECT_THROW(cached_attention(out, q, k, v), Error);  // fewer cached rows than tokens
  Tensor k3 = Tensor::zeros({4, 3, 8}), v3 = Tensor::zeros({4, 3, 8});
  EXPECT_THROW(cached_attention(out, q, k3, v3), Error);  // 4 heads over 3 kv heads
  // Head-major [Hkv, C, D]: more cached positions than C, or v with another capacity.
  Tensor kh = Tensor::zeros({2, 4, 8}), vh = Tensor::zeros({2, 4, 8});
  EXPECT_THROW(cached_attention_heads(out, q, kh, vh, 5), Error);
  EXPECT_NO_THROW(cached_attention_heads(out, q, kh, vh, 4));
  Tensor vh5 = Tensor::zeros({2, 5, 8});
  EXPECT_THROW(cached_attention_heads(out, q, kh, vh5, 4), Error);
}

}  // namespace
}  // namespace sy::kernels
