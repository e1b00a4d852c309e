// Every architecture against an independent PyTorch implementation written from the published
// modeling code (tests/reference/model_arch.py). The script writes a tiny random checkpoint with
// the real config keys and tensor names, as safetensors and as GGUF (llama.cpp's names and
// layouts), and returns its float64 logits for a fixed token sequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"

namespace sy::model {
namespace {

namespace fs = std::filesystem;

const std::vector<int32_t> kTokens = {1, 17, 42, 5, 99, 23, 64, 8, 31, 77, 2, 50};

// max |a - b| over max |ref|: the logits' own scale, so one number bounds every entry.
double relative_error(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(got.shape(), ref.shape());
  if (got.shape() != ref.shape()) return INFINITY;
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    diff =
        std::max(diff, std::fabs(static_cast<double>(got.data<float>()[i]) - ref.data<float>()[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(ref.data<float>()[i])));
  }
  return diff / std::max(scale, 1e-30);
}

Tensor run_all(Model& model, const std::vector<int32_t>& tokens, DType kv = DType::F32) {
  KvCache cache = model.new_cache(static_cast<int64_t>(tokens.size()), kv);
  return model.forward(tokens, cache, /*all_logits=*/true);
}

// Prefill of the first half, then one token at a time; row t of the result is token t's logits.
Tensor run_incremental(Model& model, const std::vector<int32_t>& tokens) {
  const auto t = static_cast<int64_t>(tokens.size());
  const int64_t v = model.config().vocab_size;
  KvCache cache = model.new_cache(t, DType::F32);
  Tensor out = Tensor::zeros({t, v});
  const int64_t first = t / 2;
  const Tensor pre =
      model.forward(std::span(tokens).first(static_cast<size_t>(first)), cache, true);
  std::copy_n(pre.data<float>(), first * v, out.mutable_data<float>());
  for (int64_t i = first; i < t; ++i) {
    const Tensor row =
        model.forward(std::span(tokens).subspan(static_cast<size_t>(i), 1), cache, false);
    std::copy_n(row.data<float>(), v, out.mutable_data<float>() + i * v);
  }
  EXPECT_EQ(cache.length, t);
  return out;
}

class ModelArch : public ::testing::TestWithParam<const char*> {};

TEST_P(ModelArch, LogitsMatchReferenceInEveryFormat) {
  const std::string arch = GetParam();
  test::TempDir f32_dir("sy_arch_f32"), bf16_dir("sy_arch_bf16");
  nlohmann::json tokens = kTokens;
  std::vector<test::ReferenceCase> cases(2);
  cases[0].params = {{"case", arch}, {"dir", f32_dir.str()}, {"seed", 1}, {"tokens", tokens}};
  cases[1].params = {{"case", arch},    {"dir", bf16_dir.str()}, {"seed", 2},    {"tokens", tokens},
                     {"dtype", "bf16"}, {"shards", 2},           {"gguf", false}};
  if (arch == "olmoe") {
    // GGUF has no key for OLMoE's clip_qkv (llama.cpp does not clamp), so the case that is also
    // written as GGUF runs unclipped; the bf16 case keeps the clamp.
    cases[0].params["overrides"] = {{"clip_qkv", nullptr}};
  }
  const std::vector<test::NamedTensors> ref = test::run_reference_cases("model_arch", cases);

  // f32 safetensors against the float64 reference: f32 rounding through a few layers of
  // width 64 stays near 1e-6 of the logits' scale; 1e-4 is the bound.
  const std::unique_ptr<Model> st = Model::load(f32_dir.str());
  EXPECT_EQ(st->config().arch.substr(0, 8), arch.substr(0, 8));
  const Tensor logits = run_all(*st, kTokens);
  EXPECT_LT(relative_error(logits, ref[0].at("logits")), 1e-4) << arch << " safetensors f32";

  // The KV cache path: prefill then token by token gives the same rows (only summation order
  // differs).
  EXPECT_LT(relative_error(run_incremental(*st, kTokens), logits), 1e-5) << arch << " decode";
  // An f16 KV cache (the default for generation) rounds keys and values to 11 bits: ~1e-3.
  EXPECT_LT(relative_error(run_all(*st, kTokens, DType::F16), logits), 5e-3) << arch << " f16 kv";

  // The same weights from GGUF (llama.cpp names, stacked experts, permuted q/k for llama).
  const std::unique_ptr<Model> gg = Model::load((f32_dir.path / "model.gguf").string());
  EXPECT_TRUE(gg->config().gguf);
  EXPECT_EQ(gg->config().arch, st->config().arch);
  EXPECT_LT(relative_error(run_all(*gg, kTokens), logits), 1e-5) << arch << " gguf vs safetensors";

  // bf16 weights in two shards.
  const std::unique_ptr<Model> bf = Model::load(bf16_dir.str());
  EXPECT_LT(relative_error(run_all(*bf, kTokens), ref[1].at("logits")), 1e-4) << arch << " bf16";
}

INSTANTIATE_TEST_SUITE_P(Archs, ModelArch,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe",
                                           "deepseek_v2_lite", "deepseek_v2", "deepseek_v3"));

// Helpers for the error tests: one f32 Mixtral checkpoint, edited per test.
struct Checkpoint {
  test::TempDir dir{"sy_arch_err"};
  Checkpoint() {
    test::ReferenceCase c;
    c.params = {
        {"case", "mixtral"}, {"dir", dir.str()}, {"seed", 1}, {"tokens", nlohmann::json(kTokens)}};
    test::run_reference_cases("model_arch", {c});
  }
  nlohmann::json config() const {
    std::ifstream in(dir.path / "config.json");
    return nlohmann::json::parse(in);
  }
  void set_config(const nlohmann::json& j) const {
    std::ofstream(dir.path / "config.json") << j.dump(2);
  }
};

using test::expect_error_containing;

TEST(ModelLoad, ClearErrors) {
  const Checkpoint ck;
  const nlohmann::json good = ck.config();
  const std::string config = (ck.dir.path / "config.json").string();
  nlohmann::json j = good;

  j["model_type"] = "llama4_moe";
  ck.set_config(j);
  expect_error_containing(
      [&] { Model::load(ck.dir.str()); },
      config + ": model_type 'llama4_moe' is not supported; supported: mixtral, ");

  j = good;
  j["hidden_size"] = good["hidden_size"].get<int>() * 2;
  ck.set_config(j);
  expect_error_containing([&] { Model::load(ck.dir.str()); },
                          "tensor 'model.embed_tokens.weight' has shape [" +
                              std::to_string(good["vocab_size"].get<int>()) + ", " +
                              std::to_string(good["hidden_size"].get<int>()) + "], expected [");

  j = good;
  j["num_hidden_layers"] = good["num_hidden_layers"].get<int>() + 1;
  ck.set_config(j);
  expect_error_containing([&] { Model::load(ck.dir.str()); },
                          "tensor 'model.layers." +
                              std::to_string(good["num_hidden_layers"].get<int>()) +
                              ".input_layernorm.weight' is missing");

  j = good;
  j.erase("num_local_experts");
  ck.set_config(j);
  expect_error_containing([&] { Model::load(ck.dir.str()); },
                          config + ": key 'num_local_experts' is missing");

  j = good;
  j["num_experts_per_tok"] = "two";
  ck.set_config(j);
  expect_error_containing([&] { Model::load(ck.dir.str()); },
                          config + ": key 'num_experts_per_tok' is \"two\", expected an integer");

  j = good;
  j["num_experts_per_tok"] = 99;
  ck.set_config(j);
  expect_error_containing([&] { Model::load(ck.dir.str()); },
                          "experts per token is 99, expected in [1, ");

  ck.set_config(good);
  const std::unique_ptr<Model> model = Model::load(ck.dir.str());
  KvCache cache = model->new_cache(4);
  const std::vector<int32_t> too_many = {1, 2, 3, 4, 5};
  expect_error_containing([&] { model->forward(too_many, cache, false); },
                          "forward: 5 tokens do not fit the KV cache (0 of 4 positions used)");
  const std::vector<int32_t> bad_id = {1, 100000};
  expect_error_containing([&] { model->forward(bad_id, cache, false); }, "100000");
}

}  // namespace
}  // namespace sy::model
