#include "kernels/cached_attention.h"

#include <cmath>

#include "kernels/cpu/cached_attention_cpu.h"

namespace sy::kernels {

namespace {

// The operands' names in messages, per entry point (literals: a decode step calls this per layer).
struct Names {
  const char *op, *q, *k, *v, *out;
};
constexpr Names kPositionMajor{"cached_attention", "cached_attention: q", "cached_attention: k",
                               "cached_attention: v", "cached_attention: out"};
constexpr Names kHeadMajor{"cached_attention_heads", "cached_attention_heads: q",
                           "cached_attention_heads: k", "cached_attention_heads: v",
                           "cached_attention_heads: out"};

// Checks the operands (k and v laid out as `heads_first` says) and runs the kernel.
void run_cached_attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                          int64_t cached, bool heads_first, const CachedAttentionOptions& opts) {
  const Names& n = heads_first ? kHeadMajor : kPositionMajor;
  const char* op = n.op;
  q.expect_dtype(DType::F32, n.q);
  const bool f16 = k.dtype() == DType::F16;
  k.expect_dtype(f16 ? DType::F16 : DType::F32, n.k);
  v.expect_dtype(k.dtype(), n.v);
  out.expect_dtype(DType::F32, n.out);
  const char* layout = heads_first ? "[Hkv, C, Dk], [Hkv, C, Dv]" : "[S, Hkv, Dk], [S, Hkv, Dv]";
  SY_CHECK(q.rank() == 3 && k.rank() == 3 && v.rank() == 3,
           "{}: q {}, k {}, v {}, expected [T, Hq, Dk], {}", op, shape_str(q.shape()),
           shape_str(k.shape()), shape_str(v.shape()), layout);
  // Dimension indices of positions and kv heads.
  const int pos = heads_first ? 1 : 0, head = heads_first ? 0 : 1;
  const cpu::CachedAttentionShape shape{.tokens = q.dim(0),
                                        .cached = heads_first ? cached : k.dim(0),
                                        .q_heads = q.dim(1),
                                        .kv_heads = k.dim(head),
                                        .key_dim = q.dim(2),
                                        .value_dim = v.dim(2),
                                        .head_capacity = heads_first ? k.dim(1) : 0};
  SY_CHECK(k.dim(2) == shape.key_dim, "{}: k head dim {}, expected q's {}", op, k.dim(2),
           shape.key_dim);
  SY_CHECK(v.dim(pos) == k.dim(pos) && v.dim(head) == shape.kv_heads,
           "{}: v is {}, expected {} positions and {} kv heads as k {} has", op,
           shape_str(v.shape()), k.dim(pos), shape.kv_heads, shape_str(k.shape()));
  SY_CHECK(shape.kv_heads > 0 && shape.q_heads % shape.kv_heads == 0,
           "{}: {} query heads, {} kv heads; expected a multiple", op, shape.q_heads,
           shape.kv_heads);
  SY_CHECK(shape.cached >= shape.tokens, "{}: {} cached positions for {} new tokens", op,
           shape.cached, shape.tokens);
  SY_CHECK(!heads_first || shape.cached <= shape.head_capacity,
           "{}: {} cached positions, but k holds {} per head", op, shape.cached,
           shape.head_capacity);
  SY_CHECK(opts.window >= 0, "{}: window is {}, expected >= 0", op, opts.window);
  out.expect_shape({shape.tokens, shape.q_heads, shape.value_dim}, n.out);
  const float scale =
      opts.scale != 0.0f ? opts.scale : 1.0f / std::sqrt(static_cast<float>(shape.key_dim));
  if (shape.tokens == 0) return;
  const void* kp = f16 ? static_cast<const void*>(k.data<uint16_t>())
                       : static_cast<const void*>(k.data<float>());
  const void* vp = f16 ? static_cast<const void*>(v.data<uint16_t>())
                       : static_cast<const void*>(v.data<float>());
  cpu::cached_attention(out.mutable_data<float>(), q.data<float>(), kp, vp, f16, shape, scale,
                        opts.window);
}

}  // namespace

void cached_attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                      const CachedAttentionOptions& opts) {
  run_cached_attention(out, q, k, v, 0, false, opts);
}

void cached_attention_heads(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                            int64_t cached, const CachedAttentionOptions& opts) {
  run_cached_attention(out, q, k, v, cached, true, opts);
}

}  // namespace sy::kernels
