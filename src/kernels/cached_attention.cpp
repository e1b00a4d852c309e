#include "kernels/cached_attention.h"

#include <cmath>

#include "kernels/cpu/cached_attention_cpu.h"

namespace sy::kernels {

void cached_attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                      const CachedAttentionOptions& opts) {
  constexpr const char* op = "cached_attention";
  q.expect_dtype(DType::F32, "cached_attention: q");
  const bool f16 = k.dtype() == DType::F16;
  k.expect_dtype(f16 ? DType::F16 : DType::F32, "cached_attention: k");
  v.expect_dtype(k.dtype(), "cached_attention: v");
  out.expect_dtype(DType::F32, "cached_attention: out");
  SY_CHECK(q.rank() == 3 && k.rank() == 3 && v.rank() == 3,
           "{}: q {}, k {}, v {}, expected [T, Hq, Dk], [S, Hkv, Dk], [S, Hkv, Dv]", op,
           shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  const cpu::CachedAttentionShape shape{q.dim(0), k.dim(0), q.dim(1), k.dim(1), q.dim(2), v.dim(2)};
  SY_CHECK(k.dim(2) == shape.key_dim, "{}: k head dim {}, expected q's {}", op, k.dim(2),
           shape.key_dim);
  SY_CHECK(v.dim(0) == shape.cached && v.dim(1) == shape.kv_heads,
           "{}: v is {}, expected [S = {}, Hkv = {}, Dv]", op, shape_str(v.shape()), shape.cached,
           shape.kv_heads);
  SY_CHECK(shape.kv_heads > 0 && shape.q_heads % shape.kv_heads == 0,
           "{}: {} query heads, {} kv heads; expected a multiple", op, shape.q_heads,
           shape.kv_heads);
  SY_CHECK(shape.cached >= shape.tokens, "{}: {} cached positions for {} new tokens", op,
           shape.cached, shape.tokens);
  SY_CHECK(opts.window >= 0, "{}: window is {}, expected >= 0", op, opts.window);
  out.expect_shape({shape.tokens, shape.q_heads, shape.value_dim}, "cached_attention: out");
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

}  // namespace sy::kernels
