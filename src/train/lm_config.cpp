#include "train/lm_config.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"
#include "train/json_keys.h"

namespace sy::train {

namespace {

constexpr const char* kWhere = "lm config";

// The router of MoE layer 0 built `width` wide. Its option checks do not depend on the width and
// its parameter count is affine in it, so narrow routers serve both (a full one could be
// gigabytes).
std::unique_ptr<moe::Router> narrow_router(const LmConfig& c, int64_t width) {
  moe::RouterSpec spec = c.router_spec(0);
  spec.d_model = width;
  return make_router(spec);
}

}  // namespace

moe::CapacityOptions LmMoeConfig::capacity() const {
  return {.capacity_factor = capacity_factor,
          .policy = drop_policy == "score" ? moe::DropPolicy::kScore : moe::DropPolicy::kPosition};
}

bool LmConfig::is_moe_layer(int64_t layer) const {
  return moe.num_experts > 0 && moe_every > 0 && layer >= first_k_dense &&
         (layer - first_k_dense) % moe_every == 0;
}

int64_t LmConfig::moe_layer_count() const {
  if (moe.num_experts <= 0 || moe_every <= 0 || n_layers <= first_k_dense) return 0;
  return (n_layers - first_k_dense - 1) / moe_every + 1;  // layers first_k_dense + i * moe_every
}

moe::RouterSpec LmConfig::router_spec(int64_t layer) const {
  moe::RouterSpec spec;  // field by field: g++ 12 warns on designated initializers with json
  spec.name = moe.router;
  spec.num_experts = moe.num_experts;
  spec.top_k = moe.top_k;
  spec.d_model = d_model;
  spec.prefix = fmt::format("model.layers.{}.mlp.", layer);
  spec.options = moe.router_options;
  return spec;
}

void LmConfig::validate() const {
  // Sizes within int32's range (as the checkpoint config readers take them) and at most
  // model::kMaxLayers layers, so that the checks and counts below cannot overflow or run long.
  const std::pair<const char*, int64_t> sizes[] = {{"vocab_size", vocab_size},
                                                   {"d_model", d_model},
                                                   {"n_heads", n_heads},
                                                   {"n_kv_heads", n_kv_heads},
                                                   {"head_dim", head_dim},
                                                   {"dense_ffn", dense_ffn},
                                                   {"first_k_dense", first_k_dense},
                                                   {"moe_every", moe_every},
                                                   {"seq_len", seq_len},
                                                   {"moe.num_experts", moe.num_experts},
                                                   {"moe.top_k", moe.top_k},
                                                   {"moe.expert_ffn", moe.expert_ffn},
                                                   {"moe.shared_experts", moe.shared_experts},
                                                   {"moe.shared_ffn", moe.shared_ffn}};
  for (const auto& [key, v] : sizes) {
    SY_CHECK(v <= model::kMaxConfigInt, "{}: {} = {}, expected at most {}", kWhere, key, v,
             model::kMaxConfigInt);
  }
  SY_CHECK(n_layers <= model::kMaxLayers, "{}: n_layers = {}, expected at most {}", kWhere,
           n_layers, model::kMaxLayers);
  auto positive = [](const char* key, int64_t v) {
    SY_CHECK(v >= 1, "{}: {} = {}, expected >= 1", kWhere, key, v);
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("seq_len", seq_len);
  SY_CHECK(n_kv_heads >= 0, "{}: n_kv_heads = {}, expected >= 1 (or 0: n_heads)", kWhere,
           n_kv_heads);
  SY_CHECK(n_heads % kv_heads() == 0, "{}: n_heads = {} is not a multiple of n_kv_heads = {}",
           kWhere, n_heads, kv_heads());
  SY_CHECK(head_dim >= 0, "{}: head_dim = {}, expected >= 2 (or 0: d_model / n_heads)", kWhere,
           head_dim);
  SY_CHECK(head_dim > 0 || d_model % n_heads == 0,
           "{}: head_dim = 0 needs d_model divisible by n_heads, got d_model = {}, n_heads = {}",
           kWhere, d_model, n_heads);
  SY_CHECK(head_size() >= 2 && head_size() % 2 == 0,
           "{}: head_dim = {}, expected an even number >= 2 (RoPE rotates pairs)", kWhere,
           head_size());
  SY_CHECK(std::isfinite(rope_theta) && rope_theta > 0.0, "{}: rope_theta = {}, expected > 0",
           kWhere, rope_theta);
  SY_CHECK(std::isfinite(norm_eps) && norm_eps > 0.0, "{}: norm_eps = {}, expected > 0", kWhere,
           norm_eps);
  SY_CHECK(std::isfinite(init_std) && init_std >= 0.0, "{}: init_std = {}, expected >= 0", kWhere,
           init_std);
  SY_CHECK(first_k_dense >= 0, "{}: first_k_dense = {}, expected >= 0", kWhere, first_k_dense);
  positive("moe_every", moe_every);
  SY_CHECK(moe.num_experts >= 0, "{}: moe.num_experts = {}, expected >= 0 (0: dense model)", kWhere,
           moe.num_experts);
  if (moe_layer_count() < n_layers) {
    SY_CHECK(dense_ffn >= 1, "{}: dense_ffn = {}, expected >= 1 ({} of the {} layers are dense)",
             kWhere, dense_ffn, n_layers - moe_layer_count(), n_layers);
  }
  if (moe_layer_count() > 0) {
    SY_CHECK(moe.top_k >= 1 && moe.top_k <= moe.num_experts,
             "{}: moe.top_k = {}, expected 1 <= top_k <= moe.num_experts = {}", kWhere, moe.top_k,
             moe.num_experts);
    positive("moe.expert_ffn", moe.expert_ffn);
    SY_CHECK(moe.shared_experts >= 0, "{}: moe.shared_experts = {}, expected >= 0", kWhere,
             moe.shared_experts);
    SY_CHECK(moe.shared_ffn >= 0, "{}: moe.shared_ffn = {}, expected >= 0 (0: expert_ffn)", kWhere,
             moe.shared_ffn);
    SY_CHECK(!moe.shared_gate || moe.shared_experts > 0,
             "{}: moe.shared_gate is set but moe.shared_experts = 0", kWhere);
    SY_CHECK(std::isfinite(moe.capacity_factor) && moe.capacity_factor >= 0.0,
             "{}: moe.capacity_factor = {}, expected > 0 (capacity) or 0 (dropless)", kWhere,
             moe.capacity_factor);
    SY_CHECK(moe.drop_policy == "position" || moe.drop_policy == "score",
             "{}: moe.drop_policy = \"{}\", expected \"position\" or \"score\"", kWhere,
             moe.drop_policy);
    // Building one router checks its name and options with the router's own messages.
    const auto router =
        with_context(std::string(kWhere) + ": moe", [&] { return narrow_router(*this, 1); });
    SY_CHECK(router->causal() || moe.allow_non_causal,
             "{}: moe.router '{}' is not causal (a token's routing depends on later tokens), so "
             "it would leak the future in a language model; set moe.allow_non_causal to use it "
             "anyway",
             kWhere, moe.router);
  }
  count_params(*this);  // refuses a model over kMaxLmParams
}

nlohmann::json LmConfig::to_json() const {
  nlohmann::json m = {{"num_experts", moe.num_experts},
                      {"top_k", moe.top_k},
                      {"expert_ffn", moe.expert_ffn},
                      {"shared_experts", moe.shared_experts},
                      {"shared_ffn", moe.shared_ffn},
                      {"shared_gate", moe.shared_gate},
                      {"router", moe.router},
                      {"router_options", moe.router_options},
                      {"capacity_factor", moe.capacity_factor},
                      {"drop_policy", moe.drop_policy},
                      {"allow_non_causal", moe.allow_non_causal}};
  return {{"vocab_size", vocab_size}, {"d_model", d_model},
          {"n_layers", n_layers},     {"n_heads", n_heads},
          {"n_kv_heads", n_kv_heads}, {"head_dim", head_dim},
          {"rope_theta", rope_theta}, {"qk_norm", qk_norm},
          {"norm_eps", norm_eps},     {"tie_embeddings", tie_embeddings},
          {"dense_ffn", dense_ffn},   {"first_k_dense", first_k_dense},
          {"moe_every", moe_every},   {"moe", m},
          {"init_std", init_std},     {"seq_len", seq_len}};
}

LmConfig LmConfig::from_json(const nlohmann::json& j) {
  LmConfig c;
  KeyReader r(kWhere, j, "");
  r.read("vocab_size", c.vocab_size);
  r.read("d_model", c.d_model);
  r.read("n_layers", c.n_layers);
  r.read("n_heads", c.n_heads);
  r.read("n_kv_heads", c.n_kv_heads);
  r.read("head_dim", c.head_dim);
  r.read("rope_theta", c.rope_theta);
  r.read("qk_norm", c.qk_norm);
  r.read("norm_eps", c.norm_eps);
  r.read("tie_embeddings", c.tie_embeddings);
  r.read("dense_ffn", c.dense_ffn);
  r.read("first_k_dense", c.first_k_dense);
  r.read("moe_every", c.moe_every);
  r.read("init_std", c.init_std);
  r.read("seq_len", c.seq_len);
  if (const nlohmann::json* m = r.find("moe")) {
    KeyReader mr(kWhere, *m, "moe.");
    LmMoeConfig& o = c.moe;
    mr.read("num_experts", o.num_experts);
    mr.read("top_k", o.top_k);
    mr.read("expert_ffn", o.expert_ffn);
    mr.read("shared_experts", o.shared_experts);
    mr.read("shared_ffn", o.shared_ffn);
    mr.read("shared_gate", o.shared_gate);
    mr.read("router", o.router);
    mr.read_object("router_options", o.router_options);
    mr.read("capacity_factor", o.capacity_factor);
    mr.read("drop_policy", o.drop_policy);
    mr.read("allow_non_causal", o.allow_non_causal);
    mr.finish();
  }
  r.finish();
  c.validate();
  return c;
}

namespace {

// The trainable values of the router of `c` built `width` wide.
int64_t router_param_count(const LmConfig& c, int64_t width) {
  const auto router = narrow_router(c, width);  // kept alive while its params are read
  int64_t n = 0;
  for (const Param* p : router->params()) n += p->value.numel();
  return n;
}

}  // namespace

LmParamCount count_params(const LmConfig& c) {
  // In long double (exact below 2^64): with sizes up to int32's range the products can pass
  // int64's, and a count over kMaxLmParams is refused rather than wrapped.
  using Count = long double;
  const Count d = c.d_model, hd = c.head_size();
  const Count q = c.n_heads * hd, kv = c.kv_heads() * hd;
  const Count moe_layers = c.moe_layer_count(), dense_layers = c.n_layers - c.moe_layer_count();
  Count total = c.vocab_size * d + d;  // embedding, final norm
  if (!c.tie_embeddings) total += c.vocab_size * d;
  Count layer = 2 * d + 2 * d * q + 2 * d * kv;  // two norms, q/o and k/v projections
  if (c.qk_norm) layer += 2 * hd;
  total += c.n_layers * layer + dense_layers * 3 * d * c.dense_ffn;
  Count inactive = 0;
  if (moe_layers > 0) {
    // Every router's parameters are affine in the width (d_model is one side of each of its
    // matrices), so two narrow routers give the count without building a full one.
    const Count r1 = router_param_count(c, 1), r2 = router_param_count(c, 2);
    const Count expert = 3 * d * c.moe.expert_ffn;
    const Count shared_width = c.moe.shared_ffn > 0 ? c.moe.shared_ffn : c.moe.expert_ffn;
    Count moe_layer = c.moe.num_experts * expert + 3 * d * c.moe.shared_experts * shared_width;
    if (c.moe.shared_gate) moe_layer += d;
    moe_layer += r1 + (r2 - r1) * (d - 1);
    total += moe_layers * moe_layer;
    inactive = moe_layers * (c.moe.num_experts - c.moe.top_k) * expert;
  }
  SY_CHECK(total <= static_cast<Count>(kMaxLmParams),
           "{}: the model would have {:.3g} parameters, more than the {:.3g} (2^40) allowed",
           kWhere, static_cast<double>(total), static_cast<double>(kMaxLmParams));
  return {.total = static_cast<int64_t>(total), .active = static_cast<int64_t>(total - inactive)};
}

}  // namespace sy::train
