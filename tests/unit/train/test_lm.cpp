#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/threads.h"
#include "support/reference.h"
#include "support/tensor_testing.h"
#include "train/lm.h"

namespace sy::train {
namespace {

// Bounds against the float64 PyTorch model. The f32 forward chains ~20 reductions of <= 64 terms
// through 2-3 layers: the loss carries ~1e-7 relative rounding, and every gradient element's
// error stays near 1e-6 of the largest element of its tensor. Bounds 1e-5 (loss, relative) and
// 1e-4 (gradients, max abs error / max abs reference value) leave 10-100x margin; a wrong term
// anywhere (a missed aux-loss gradient, a transposed weight, a RoPE pair off by one) shows at
// >= 1e-2.
constexpr double kLossRtol = 1e-5;
constexpr double kGradRel = 1e-4;

LmConfig tiny_config(const std::string& router, nlohmann::json options) {
  LmConfig c;
  c.vocab_size = 50;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  c.dense_ffn = 48;
  c.first_k_dense = 1;
  c.moe.num_experts = 8;
  c.moe.top_k = 2;
  c.moe.expert_ffn = 16;
  c.moe.router = router;
  c.moe.router_options = std::move(options);
  c.init_std = 0.1;
  c.seq_len = 8;
  return c;
}

using ::sy::test::i32_tensor;

// Tokens uniform in [0, V); targets likewise with about `ignored` of them -100.
void random_batch(Tensor& tokens, Tensor& targets, int64_t b, int64_t t, int64_t v, Rng& rng,
                  float ignored = 0.25f) {
  tokens = Tensor::zeros({b, t}, DType::I32);
  targets = Tensor::zeros({b, t}, DType::I32);
  int32_t* tok = tokens.mutable_data<int32_t>();
  int32_t* tgt = targets.mutable_data<int32_t>();
  for (int64_t i = 0; i < b * t; ++i) {
    tok[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(v)));
    tgt[i] = rng.uniform() < ignored ? -100 : static_cast<int32_t>(rng.below(v));
  }
}

// Max |got - want| over the tensor, against max |want| (the tensor's scale).
::testing::AssertionResult grad_close(const Tensor& got, const Tensor& want, double rel) {
  if (got.shape() != want.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << shape_str(got.shape()) << " vs " << shape_str(want.shape());
  }
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  double scale = 0.0, err = 0.0;
  int64_t worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(w[i])));
    const double e = std::fabs(static_cast<double>(g[i]) - w[i]);
    if (e > err) {
      err = e;
      worst = i;
    }
  }
  if (err <= rel * scale + 1e-12) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max abs error " << err << " at element " << worst << " (got " << g[worst] << ", want "
         << w[worst] << "), scale " << scale << ", bound " << rel * scale;
}

struct LmCase {
  std::string name;
  LmConfig config;
};

std::vector<LmCase> reference_cases() {
  std::vector<LmCase> cases;
  {  // Qwen3-like: QK-norm, untied head, one shared expert, both router losses.
    LmConfig c = tiny_config("topk_softmax", {{"aux_loss_coeff", 0.01}, {"z_loss_coeff", 1e-3}});
    c.qk_norm = true;
    c.moe.shared_experts = 1;
    c.moe.shared_ffn = 16;
    cases.push_back({"topk_softmax_qknorm_untied_shared", c});
  }
  {  // OLMoE/Qwen2-like: raw top-k weights, tied head, gated shared expert, capacity by score.
    LmConfig c = tiny_config("topk_softmax", {{"normalize", false}, {"aux_loss_coeff", 0.02}});
    c.n_layers = 3;
    c.tie_embeddings = true;
    c.moe.shared_experts = 1;
    c.moe.shared_ffn = 24;
    c.moe.shared_gate = true;
    c.moe.capacity_factor = 1.25;
    c.moe.drop_policy = "score";
    cases.push_back({"topk_softmax_raw_tied_gated_shared_capacity", c});
  }
  {  // DeepSeek-V3-like: sigmoid scores, group-limited, scaled weights, sequence balance loss.
    LmConfig c = tiny_config("deepseek", {{"n_group", 2},
                                          {"topk_group", 1},
                                          {"routed_scaling_factor", 2.5},
                                          {"seq_aux_coeff", 0.01}});
    c.n_layers = 3;
    c.qk_norm = true;
    c.tie_embeddings = true;
    c.moe.shared_experts = 1;
    cases.push_back({"deepseek_groups_qknorm_tied_shared", c});
  }
  {
    LmConfig c = tiny_config("deepseek", nlohmann::json::object());
    cases.push_back({"deepseek_defaults_untied", c});
  }
  {  // Switch with capacity 1.0 (drops by position); MoE in layer 0 only (moe_every 2).
    LmConfig c = tiny_config("switch", {{"jitter_eps", 0.0}, {"z_loss_coeff", 1e-3}});
    c.moe.top_k = 1;
    c.first_k_dense = 0;
    c.moe_every = 2;
    c.qk_norm = true;
    c.moe.capacity_factor = 1.0;
    cases.push_back({"switch_capacity_moe_every_2", c});
  }
  return cases;
}

// The model of a case, initialised, with decisive routers (gate weights x10, so no token's
// choice is a near tie) and, for DeepSeek, a nonzero selection bias.
std::unique_ptr<MoeLm> make_model(const LmConfig& c, Rng& rng) {
  auto model = std::make_unique<MoeLm>(c);
  model->init(rng);
  for (moe::MoeLayer* layer : model->moe_layers()) {
    for (Param* p : layer->router().params()) {
      float* v = p->value.mutable_data<float>();
      for (int64_t i = 0; i < p->value.numel(); ++i) v[i] *= 10.0f;
    }
    for (Param* p : layer->buffers()) {
      float* v = p->value.mutable_data<float>();
      for (int64_t i = 0; i < p->value.numel(); ++i) v[i] = rng.uniform(-0.1f, 0.1f);
    }
  }
  return model;
}

TEST(MoeLm, MatchesPyTorchLossAndEveryGradient) {
  const auto specs = reference_cases();
  Rng rng(7);
  std::vector<std::unique_ptr<MoeLm>> models;
  std::vector<float> losses;
  std::vector<test::ReferenceCase> cases;
  for (const LmCase& c : specs) {
    models.push_back(make_model(c.config, rng));
    MoeLm& m = *models.back();
    test::ReferenceCase rc;
    random_batch(rc.inputs["tokens"], rc.inputs["targets"], 2, 8, c.config.vocab_size, rng);
    m.zero_grad();
    losses.push_back(m.forward_backward(rc.inputs["tokens"], rc.inputs["targets"], &rng, true));
    for (Param* p : m.params()) rc.inputs[p->name] = p->value;
    for (Param* p : m.buffers()) rc.inputs[p->name] = p->value;
    rc.params = {{"config", c.config.to_json()}};
    cases.push_back(rc);
  }
  const auto refs = test::run_reference_cases("moe_lm", cases);
  for (size_t i = 0; i < specs.size(); ++i) {
    SCOPED_TRACE(specs[i].name);
    MoeLm& m = *models[i];
    const auto& ref = refs[i];
    const double want = ref.at("loss").data<float>()[0];
    EXPECT_NEAR(losses[i], want, kLossRtol * std::fabs(want));
    EXPECT_NEAR(m.stats().ce, ref.at("ce").data<float>()[0], kLossRtol * std::fabs(want));
    EXPECT_NEAR(m.stats().aux, ref.at("aux").data<float>()[0], kLossRtol * std::fabs(want));
    EXPECT_GT(m.stats().aux, 0.0);
    EXPECT_TRUE(grad_close(m.logits(), ref.at("logits"), kGradRel));
    // Same experts chosen (else the comparison below would be meaningless).
    const auto layers = m.moe_layers();
    ASSERT_EQ(layers.size(), m.stats().layers.size());
    for (size_t j = 0; j < layers.size(); ++j) {
      const int64_t l = m.stats().layers[j].layer;
      const Tensor& got = layers[j]->routing().expert;
      const Tensor& want_e = ref.at("experts_" + std::to_string(l));
      ASSERT_EQ(got.numel(), want_e.numel());
      int64_t differ = 0;
      for (int64_t s = 0; s < got.numel(); ++s) {
        differ += got.data<int32_t>()[s] != want_e.data<int64_t>()[s] ? 1 : 0;
      }
      EXPECT_EQ(differ, 0) << "layer " << l;
    }
    int64_t checked = 0;
    for (Param* p : m.params()) {
      SCOPED_TRACE(p->name);
      ASSERT_TRUE(ref.count("d_" + p->name)) << "the reference has no gradient for it";
      EXPECT_TRUE(grad_close(p->grad, ref.at("d_" + p->name), kGradRel));
      ++checked;
    }
    int64_t ref_grads = 0;
    for (const auto& entry : ref) ref_grads += entry.first.rfind("d_", 0) == 0 ? 1 : 0;
    EXPECT_EQ(checked, ref_grads) << "every reference gradient is compared";
  }
  // The capacity cases really dropped slots.
  EXPECT_GT(models[1]->stats().layers[0].router.dropped_fraction, 0.0);
  EXPECT_GT(models[4]->stats().layers[0].router.dropped_fraction, 0.0);
}

TEST(MoeLm, BackwardMatchesFiniteDifferences) {
  LmConfig c = tiny_config("topk_softmax", {{"aux_loss_coeff", 0.05}, {"z_loss_coeff", 1e-2}});
  c.qk_norm = true;
  c.moe.shared_experts = 1;
  c.d_model = 16;
  c.dense_ffn = 16;
  c.moe.expert_ffn = 8;
  Rng rng(3);
  auto model = make_model(c, rng);
  Tensor tokens, targets;
  random_batch(tokens, targets, 2, 5, c.vocab_size, rng);
  model->zero_grad();
  model->forward_backward(tokens, targets, nullptr, true);
  // The loss in double from the f32 logits (the f32 mean itself would quantise the differences).
  auto loss = [&] {
    model->forward_backward(tokens, targets, nullptr, false);
    const int64_t v = c.vocab_size;
    double sum = 0.0;
    int64_t valid = 0;
    for (int64_t t = 0; t < tokens.numel(); ++t) {
      const int32_t target = targets.data<int32_t>()[t];
      if (target < 0) continue;
      const float* row = model->logits().data<float>() + t * v;
      double mx = row[0], z = 0.0;
      for (int64_t k = 0; k < v; ++k) mx = std::max(mx, static_cast<double>(row[k]));
      for (int64_t k = 0; k < v; ++k) z += std::exp(row[k] - mx);
      sum += mx + std::log(z) - row[target];
      ++valid;
    }
    return sum / static_cast<double>(valid) + model->stats().aux;
  };
  // Steps of 1e-2 for smooth parameters; 1e-3 for the router gate, small enough to keep every
  // token's top-2 (the gates are decisive, see make_model). f32 rounding in the forward leaves
  // up to ~3e-5 of noise in the differences (measured); a wrong term is >= 1e-3.
  const std::vector<std::pair<std::string, float>> checks = {
      {"model.norm.weight", 1e-2f},
      {"model.layers.0.self_attn.q_norm.weight", 1e-2f},
      {"model.layers.1.self_attn.k_proj.weight", 1e-2f},
      {"model.layers.1.mlp.gate.weight", 1e-3f}};
  for (const auto& [name, eps] : checks) {
    SCOPED_TRACE(name);
    Param* param = nullptr;
    for (Param* p : model->params()) {
      if (p->name == name) param = p;
    }
    ASSERT_NE(param, nullptr);
    const Tensor numeric = test::numeric_gradient(param->value, loss, eps);
    EXPECT_ALL_CLOSE(param->grad, numeric, 1e-4f, 1e-2f);
  }
}

// Loss and gradients of one forward_backward from a fresh model (seeded).
std::vector<Tensor> run_once(const LmConfig& c, uint64_t seed, float* loss) {
  Rng rng(seed);
  MoeLm model(c);
  model.init(rng);
  Tensor tokens, targets;
  random_batch(tokens, targets, 3, 8, c.vocab_size, rng);
  std::vector<Tensor> out;
  for (int step = 0; step < 2; ++step) {  // the second step reuses every buffer
    model.zero_grad();
    *loss = model.forward_backward(tokens, targets, &rng, true);
    model.end_step();
  }
  for (Param* p : model.params()) out.push_back(p->grad.clone());
  for (Param* p : model.buffers()) out.push_back(p->value.clone());
  out.push_back(model.logits().clone());
  return out;
}

using ::sy::test::same_bits;

TEST(MoeLm, SameSeedGivesTheSameLossAndGradientsBitForBit) {
  // Switch with jitter draws from the rng; deepseek updates its bias in end_step.
  std::vector<LmConfig> configs = {tiny_config("switch", nlohmann::json::object()),
                                   tiny_config("deepseek", nlohmann::json::object())};
  configs[0].moe.top_k = 1;
  configs[0].moe.capacity_factor = 1.0;
  configs[1].qk_norm = true;
  const int threads = num_threads();
  // Bit-identical for a fixed thread count (OpenBLAS and the per-thread partial sums of weight
  // gradients are reproducible for a given count; across counts they round differently).
  for (int t : {1, std::max(2, threads)}) {
    set_num_threads(t);
    for (const LmConfig& c : configs) {
      SCOPED_TRACE(c.moe.router + " threads " + std::to_string(t));
      float loss_a = 0, loss_b = 0;
      const auto a = run_once(c, 11, &loss_a);
      const auto b = run_once(c, 11, &loss_b);
      EXPECT_EQ(loss_a, loss_b);  // exact
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i])) << "tensor " << i;
      float loss_c = 0;
      run_once(c, 12, &loss_c);
      EXPECT_NE(loss_a, loss_c);
    }
  }
  set_num_threads(threads);
}

TEST(MoeLm, IgnoredTargetsCountNothing) {
  const LmConfig c = tiny_config("topk_softmax", {{"aux_loss_coeff", 0.01}});
  Rng rng(5);
  MoeLm model(c);
  model.init(rng);
  Tensor tokens, targets;
  random_batch(tokens, targets, 2, 8, c.vocab_size, rng, 0.0f);
  // All ignored: no cross-entropy, no head gradient; the aux loss still trains the routers.
  Tensor none = i32_tensor({2, 8}, std::vector<int32_t>(16, -100));
  model.zero_grad();
  const float loss = model.forward_backward(tokens, none, nullptr, true);
  EXPECT_EQ(model.stats().ce, 0.0);
  EXPECT_EQ(model.stats().valid_tokens, 0);
  EXPECT_EQ(model.stats().tokens, 16);
  EXPECT_FLOAT_EQ(loss, static_cast<float>(model.stats().aux));
  for (Param* p : model.params()) {
    double norm = 0.0;
    for (int64_t i = 0; i < p->grad.numel(); ++i) norm += std::fabs(p->grad.data<float>()[i]);
    if (p->name == "lm_head.weight" || p->name == "model.norm.weight") {
      EXPECT_EQ(norm, 0.0) << p->name;
    }
    if (p->name == "model.layers.1.mlp.gate.weight") {
      EXPECT_GT(norm, 0.0) << p->name;
    }
  }
  // One valid target: the loss is that token's cross-entropy, whatever the ignored ones hold.
  Tensor one = i32_tensor({2, 8}, std::vector<int32_t>(16, -100));
  one.mutable_data<int32_t>()[11] = targets.data<int32_t>()[11];
  model.forward_backward(tokens, one, nullptr, false);
  EXPECT_EQ(model.stats().valid_tokens, 1);
  const float* row = model.logits().data<float>() + 11 * c.vocab_size;
  double mx = row[0], sum = 0.0;
  for (int64_t v = 0; v < c.vocab_size; ++v) mx = std::max(mx, static_cast<double>(row[v]));
  for (int64_t v = 0; v < c.vocab_size; ++v) sum += std::exp(row[v] - mx);
  EXPECT_NEAR(model.stats().ce, mx + std::log(sum) - row[targets.data<int32_t>()[11]], 1e-5);
}

TEST(MoeLm, SequencesOfABatchAreIndependent) {
  // The second sequence's logits do not depend on the first sequence (positions restart, no
  // attention across sequences): run [a; b] and [c; b] and compare b's logits. Dropless routing
  // keeps the experts per token independent too.
  LmConfig c = tiny_config("topk_softmax", nlohmann::json::object());
  c.qk_norm = true;
  Rng rng(9);
  MoeLm model(c);
  model.init(rng);
  Tensor tokens, targets, other, unused;
  random_batch(tokens, targets, 2, 8, c.vocab_size, rng);
  random_batch(other, unused, 2, 8, c.vocab_size, rng);
  std::memcpy(other.mutable_data<int32_t>() + 8, tokens.data<int32_t>() + 8, 8 * sizeof(int32_t));
  model.forward_backward(tokens, targets, nullptr, false);
  const Tensor first = model.logits().slice_rows(8, 16).clone();
  model.forward_backward(other, targets, nullptr, false);
  EXPECT_ALL_CLOSE(model.logits().slice_rows(8, 16), first, 1e-5f, 1e-5f);
  // And alone, as a batch of one, it gives the same logits.
  Tensor alone = i32_tensor({1, 8}, {});
  std::memcpy(alone.mutable_data<int32_t>(), tokens.data<int32_t>() + 8, 8 * sizeof(int32_t));
  model.forward_backward(alone, targets.reshape({16}).slice_rows(8, 16).reshape({1, 8}), nullptr,
                         false);
  EXPECT_ALL_CLOSE(model.logits(), first, 1e-5f, 1e-5f);
}

TEST(MoeLm, NamesParametersLikeHuggingFace) {
  LmConfig c = tiny_config("deepseek", nlohmann::json::object());
  c.qk_norm = true;
  c.moe.shared_experts = 1;
  MoeLm model(c);
  std::vector<std::string> names;
  for (Param* p : model.params()) names.push_back(p->name + (p->decay ? "" : " (no decay)"));
  EXPECT_EQ(names, (std::vector<std::string>{
                       "model.embed_tokens.weight",
                       "model.layers.0.input_layernorm.weight (no decay)",
                       "model.layers.0.self_attn.q_proj.weight",
                       "model.layers.0.self_attn.k_proj.weight",
                       "model.layers.0.self_attn.v_proj.weight",
                       "model.layers.0.self_attn.o_proj.weight",
                       "model.layers.0.self_attn.q_norm.weight (no decay)",
                       "model.layers.0.self_attn.k_norm.weight (no decay)",
                       "model.layers.0.post_attention_layernorm.weight (no decay)",
                       "model.layers.0.mlp.gate_proj.weight",
                       "model.layers.0.mlp.up_proj.weight",
                       "model.layers.0.mlp.down_proj.weight",
                       "model.layers.1.input_layernorm.weight (no decay)",
                       "model.layers.1.self_attn.q_proj.weight",
                       "model.layers.1.self_attn.k_proj.weight",
                       "model.layers.1.self_attn.v_proj.weight",
                       "model.layers.1.self_attn.o_proj.weight",
                       "model.layers.1.self_attn.q_norm.weight (no decay)",
                       "model.layers.1.self_attn.k_norm.weight (no decay)",
                       "model.layers.1.post_attention_layernorm.weight (no decay)",
                       "model.layers.1.mlp.gate.weight",
                       "model.layers.1.mlp.experts.gate_proj.weight",
                       "model.layers.1.mlp.experts.up_proj.weight",
                       "model.layers.1.mlp.experts.down_proj.weight",
                       "model.layers.1.mlp.shared_experts.gate_proj.weight",
                       "model.layers.1.mlp.shared_experts.up_proj.weight",
                       "model.layers.1.mlp.shared_experts.down_proj.weight",
                       "model.norm.weight (no decay)",
                       "lm_head.weight",
                   }));
  ASSERT_EQ(model.buffers().size(), 1U);
  EXPECT_EQ(model.buffers()[0]->name, "model.layers.1.mlp.gate.e_score_correction_bias");
  int64_t total = 0;
  for (Param* p : model.params()) total += p->value.numel();
  EXPECT_EQ(count_params(c).total, total);
  // Active: 2 of 8 routed experts of 3 * 32 * 16 weights each.
  EXPECT_EQ(count_params(c).active, total - 6 * 3 * 32 * 16);
  c.tie_embeddings = true;
  c.qk_norm = false;
  MoeLm tied(c);
  int64_t tied_total = 0;
  for (Param* p : tied.params()) tied_total += p->value.numel();
  EXPECT_EQ(tied.params().back()->name, "model.norm.weight");
  EXPECT_EQ(count_params(c).total, tied_total);
}

TEST(MoeLm, CountParamsMatchesTheModelForEveryRouter) {
  // count_params takes the router's parameters from routers of width 1 and 2; the model builds
  // them at d_model = 32.
  for (const std::string& name : moe::router_names()) {
    SCOPED_TRACE(name);
    LmConfig c = tiny_config(name, nlohmann::json::object());
    c.moe.allow_non_causal = true;
    if (name == "hash" || name == "switch") c.moe.top_k = 1;  // top-1 routers
    MoeLm model(c);
    int64_t total = 0;
    for (const Param* p : model.params()) total += p->value.numel();
    EXPECT_EQ(count_params(c).total, total);
  }
}

TEST(MoeLm, PlainGradientStepsLowerTheLoss) {
  // End to end: gradient descent on one batch with a loss-free-balanced router (end_step every
  // step) memorises it. A sign error or a lost gradient path would stall or diverge.
  LmConfig c = tiny_config("deepseek", {{"bias_update_rate", 1e-2}});
  c.qk_norm = true;
  c.moe.shared_experts = 1;
  Rng rng(21);
  MoeLm model(c);
  model.init(rng);
  Tensor tokens, targets;
  random_batch(tokens, targets, 2, 8, c.vocab_size, rng, 0.0f);
  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < 30; ++step) {
    model.zero_grad();
    last = model.forward_backward(tokens, targets, nullptr, true);
    if (step == 0) first = last;
    for (Param* p : model.params()) {
      float* v = p->value.mutable_data<float>();
      const float* g = p->grad.data<float>();
      for (int64_t i = 0; i < p->value.numel(); ++i) v[i] -= 0.5f * g[i];
    }
    model.end_step();
  }
  EXPECT_GT(first, 3.5f);  // about log(50) at init
  EXPECT_LT(last, 0.5f * first);
  // The selection bias moved (end_step reached the router).
  double bias = 0.0;
  for (int64_t i = 0; i < model.buffers()[0]->value.numel(); ++i) {
    bias += std::fabs(model.buffers()[0]->value.data<float>()[i]);
  }
  EXPECT_GT(bias, 0.0);
}

using test::expect_error;

TEST(MoeLm, RejectsBadBatches) {
  const LmConfig c = tiny_config("topk_softmax", nlohmann::json::object());
  MoeLm model(c);
  Rng rng(1);
  model.init(rng);
  const Tensor ok = i32_tensor({1, 3}, {1, 2, 3});
  expect_error(
      [&] {
        model.forward_backward(Tensor::zeros({1, 3}), ok, nullptr, true);
      },
      "lm.forward_backward: tokens: dtype f32, expected i32");
  expect_error([&] { model.forward_backward(ok.reshape({3}), ok.reshape({3}), nullptr, true); },
               "lm.forward_backward: tokens: shape [3], expected [B, T] with B, T >= 1");
  expect_error(
      [&] {
        model.forward_backward(ok, ok.reshape({3, 1}), nullptr, true);
      },
      "lm.forward_backward: targets: shape [3, 1], expected [1, 3]");
  expect_error(
      [&] {
        model.forward_backward(i32_tensor({1, 3}, {1, 50, 3}), ok, nullptr, true);
      },
      "lm.forward_backward: tokens[0, 1] = 50, expected in [0, vocab_size = 50)");
  expect_error(
      [&] {
        model.forward_backward(ok, i32_tensor({1, 3}, {1, -1, 3}), nullptr, true);
      },
      "lm.forward_backward: targets[0, 1] = -1, expected in [0, vocab_size = 50) or -100 "
      "(ignored)");
  // A failed call leaves the model usable.
  EXPECT_TRUE(std::isfinite(model.forward_backward(ok, ok, nullptr, true)));
}

}  // namespace
}  // namespace sy::train
