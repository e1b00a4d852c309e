#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "support/tensor_testing.h"
#include "train/lm_config.h"

namespace sy::train {
namespace {

nlohmann::json valid_json() {
  return nlohmann::json::parse(R"({
    "vocab_size": 100, "d_model": 32, "n_layers": 3, "n_heads": 4, "n_kv_heads": 2,
    "head_dim": 8, "rope_theta": 500000.0, "qk_norm": true, "norm_eps": 1e-5,
    "tie_embeddings": true, "dense_ffn": 64, "first_k_dense": 1, "moe_every": 2,
    "init_std": 0.01, "seq_len": 128,
    "moe": {"num_experts": 8, "top_k": 2, "expert_ffn": 16, "shared_experts": 1,
            "shared_ffn": 24, "shared_gate": true, "router": "deepseek",
            "router_options": {"n_group": 2, "topk_group": 1}, "capacity_factor": 1.25,
            "drop_policy": "score", "allow_non_causal": false}
  })");
}

using test::expect_error;

TEST(LmConfig, RoundTripsThroughJson) {
  const LmConfig c = LmConfig::from_json(valid_json());
  EXPECT_EQ(c.vocab_size, 100);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.moe.router, "deepseek");
  EXPECT_EQ(c.moe.router_options.at("n_group"), 2);
  EXPECT_EQ(c.moe.capacity().policy, moe::DropPolicy::kScore);
  EXPECT_DOUBLE_EQ(c.moe.capacity().capacity_factor, 1.25);
  EXPECT_EQ(c.to_json(), valid_json());
  EXPECT_EQ(LmConfig::from_json(c.to_json()).to_json(), c.to_json());
  // Layers 1 and 3 would be MoE; with 3 layers only layer 1 is.
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_EQ(c.moe_layer_count(), 1);
  EXPECT_EQ(c.router_spec(1).prefix, "model.layers.1.mlp.");
}

TEST(LmConfig, CountsMoeLayersLikeIsMoeLayer) {
  LmConfig c = LmConfig::from_json(valid_json());
  for (int64_t experts : {0, 4}) {
    for (int64_t layers = 1; layers <= 9; ++layers) {
      for (int64_t first = 0; first <= 4; ++first) {
        for (int64_t every = 1; every <= 3; ++every) {
          c.moe.num_experts = experts;
          c.n_layers = layers;
          c.first_k_dense = first;
          c.moe_every = every;
          int64_t walked = 0;
          for (int64_t l = 0; l < layers; ++l) walked += c.is_moe_layer(l) ? 1 : 0;
          EXPECT_EQ(c.moe_layer_count(), walked)
              << experts << " experts, " << layers << " layers, first " << first << ", every "
              << every;
        }
      }
    }
  }
}

TEST(LmConfig, FillsDefaults) {
  const LmConfig c = LmConfig::from_json({{"vocab_size", 10},
                                          {"d_model", 16},
                                          {"n_layers", 1},
                                          {"n_heads", 2},
                                          {"seq_len", 4},
                                          {"dense_ffn", 8}});
  EXPECT_EQ(c.kv_heads(), 2);
  EXPECT_EQ(c.head_size(), 8);
  EXPECT_EQ(c.moe_layer_count(), 0);  // no experts: a dense model
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_embeddings);
}

TEST(LmConfig, NamesUnknownKeysAndWrongTypes) {
  nlohmann::json j = valid_json();
  j["n_layer"] = 3;
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: unknown key 'n_layer'; valid keys: d_model, dense_ffn, first_k_dense, "
               "head_dim, init_std, moe, moe_every, n_heads, n_kv_heads, n_layers, norm_eps, "
               "qk_norm, rope_theta, seq_len, tie_embeddings, vocab_size");
  j = valid_json();
  j["moe"]["topk"] = 2;
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: unknown key 'moe.topk'; valid keys: moe.allow_non_causal, "
               "moe.capacity_factor, moe.drop_policy, moe.expert_ffn, moe.num_experts, "
               "moe.router, moe.router_options, moe.shared_experts, moe.shared_ffn, "
               "moe.shared_gate, moe.top_k");
  j = valid_json();
  j["d_model"] = 32.5;
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: key 'd_model' must be an integer, got 32.5");
  j = valid_json();
  j["qk_norm"] = "yes";
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: key 'qk_norm' must be true or false, got \"yes\"");
  j = valid_json();
  j["moe"]["router"] = 3;
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: key 'moe.router' must be a string, got 3");
  j = valid_json();
  j["moe"]["router_options"] = "n_group=2";
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: key 'moe.router_options' must be a JSON object, got \"n_group=2\"");
  j = valid_json();
  j["rope_theta"] = "1e4";
  expect_error([&] { LmConfig::from_json(j); },
               "lm config: key 'rope_theta' must be a number, got \"1e4\"");
  j = valid_json();
  j["moe"] = 8;
  expect_error([&] { LmConfig::from_json(j); }, "lm config: 'moe' must be a JSON object, got 8");
  expect_error([&] { LmConfig::from_json(nlohmann::json::array()); },
               "lm config: the config must be a JSON object, got []");
}

TEST(LmConfig, RejectsInvalidValues) {
  auto with = [](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = valid_json();
    edit(j);
    return j;
  };
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](auto& j) { j["vocab_size"] = 0; }, "lm config: vocab_size = 0, expected >= 1"},
      {[](auto& j) { j["d_model"] = int64_t{1} << 31; },
       "lm config: d_model = 2147483648, expected at most 2147483647"},
      {[](auto& j) { j["moe"]["expert_ffn"] = int64_t{1} << 40; },
       "lm config: moe.expert_ffn = 1099511627776, expected at most 2147483647"},
      // Found by fuzz_train_config: validation walked 44444444444444 layers.
      {[](auto& j) { j["n_layers"] = 44444444444444; },
       "lm config: n_layers = 44444444444444, expected at most 65536"},
      {[](auto& j) {
         j["vocab_size"] = 1 << 30;
         j["d_model"] = 1 << 12;
         j["head_dim"] = 1024;
       },
       "lm config: the model would have 4.4e+12 parameters, more than the 1.1e+12 (2^40) "
       "allowed"},
      {[](auto& j) { j["n_heads"] = 5; },
       "lm config: n_heads = 5 is not a multiple of n_kv_heads = 2"},
      {[](auto& j) { j["n_kv_heads"] = 3; },
       "lm config: n_heads = 4 is not a multiple of n_kv_heads = 3"},
      {[](auto& j) { j["head_dim"] = 7; },
       "lm config: head_dim = 7, expected an even number >= 2 (RoPE rotates pairs)"},
      {[](auto& j) {
         j["head_dim"] = 0;
         j["d_model"] = 30;
       },
       "lm config: head_dim = 0 needs d_model divisible by n_heads, got d_model = 30, n_heads = "
       "4"},
      {[](auto& j) { j["rope_theta"] = 0.0; }, "lm config: rope_theta = 0, expected > 0"},
      {[](auto& j) { j["norm_eps"] = -1e-6; }, "lm config: norm_eps = -1e-06, expected > 0"},
      {[](auto& j) { j["seq_len"] = 0; }, "lm config: seq_len = 0, expected >= 1"},
      {[](auto& j) { j["moe_every"] = 0; }, "lm config: moe_every = 0, expected >= 1"},
      {[](auto& j) { j["dense_ffn"] = 0; },
       "lm config: dense_ffn = 0, expected >= 1 (2 of the 3 layers are dense)"},
      {[](auto& j) { j["moe"]["top_k"] = 9; },
       "lm config: moe.top_k = 9, expected 1 <= top_k <= moe.num_experts = 8"},
      {[](auto& j) { j["moe"]["expert_ffn"] = 0; }, "lm config: moe.expert_ffn = 0, expected >= 1"},
      {[](auto& j) { j["moe"]["shared_experts"] = 0; },
       "lm config: moe.shared_gate is set but moe.shared_experts = 0"},
      {[](auto& j) { j["moe"]["capacity_factor"] = -1.0; },
       "lm config: moe.capacity_factor = -1, expected > 0 (capacity) or 0 (dropless)"},
      {[](auto& j) { j["moe"]["drop_policy"] = "random"; },
       "lm config: moe.drop_policy = \"random\", expected \"position\" or \"score\""},
      {[](auto& j) {
         j["moe"]["router_options"] = {{"n_groups", 2}};
       },
       "lm config: moe: router 'deepseek': unknown option 'n_groups'; valid options: "
       "bias_update_rate, group_score, n_group, norm_topk_prob, routed_scaling_factor, score, "
       "seq_aux_coeff, topk_group"},
      {[](auto& j) {
         j["moe"]["router"] = "expert_choice";
         j["moe"]["router_options"] = nlohmann::json::object();
       },
       "lm config: moe.router 'expert_choice' is not causal (a token's routing depends on later "
       "tokens), so it would leak the future in a language model; set moe.allow_non_causal to "
       "use it anyway"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.second);
    expect_error([&] { LmConfig::from_json(with(c.first)); }, c.second);
  }
  nlohmann::json j = valid_json();
  j["moe"]["router"] = "expert_choice";
  j["moe"]["router_options"] = nlohmann::json::object();
  j["moe"]["allow_non_causal"] = true;
  EXPECT_NO_THROW(LmConfig::from_json(j));
}

}  // namespace
}  // namespace sy::train
