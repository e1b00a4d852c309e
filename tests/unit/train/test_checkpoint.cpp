#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"
#include "train/checkpoint.h"
#include "train/checkpoint_config.h"
#include "train/lm_tensors.h"

namespace sy::train {
namespace {

namespace fs = std::filesystem;

using ::sy::test::error_of;

LmConfig tiny(const std::string& router, nlohmann::json options) {
  LmConfig c;
  c.vocab_size = 40;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.dense_ffn = 24;
  c.moe.num_experts = 8;
  c.moe.top_k = 2;
  c.moe.expert_ffn = 16;
  c.moe.router = router;
  c.moe.router_options = std::move(options);
  c.init_std = 0.1;
  c.seq_len = 12;
  return c;
}

struct Case {
  std::string name;
  LmConfig config;
  std::string model_type;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"mixtral",
                 tiny("topk_softmax", {{"aux_loss_coeff", 0.01}, {"z_loss_coeff", 1e-3}}),
                 "mixtral"});
  {  // Qwen3-like: QK-norm, a dense first layer, a gated shared expert, tied head.
    LmConfig c = tiny("topk_softmax", {{"aux_loss_coeff", 0.01}});
    c.n_layers = 3;
    c.first_k_dense = 1;
    c.qk_norm = true;
    c.tie_embeddings = true;
    c.moe.shared_experts = 1;
    c.moe.shared_ffn = 20;
    c.moe.shared_gate = true;
    out.push_back({"topk_softmax_shared_dense_qknorm", c, "switchyard_moe"});
  }
  {  // DeepSeek-V3-like: sigmoid, groups, scaling, two shared experts, selection bias buffer.
    LmConfig c =
        tiny("deepseek", {{"n_group", 2}, {"topk_group", 1}, {"routed_scaling_factor", 2.5}});
    c.moe.shared_experts = 2;
    out.push_back({"deepseek", c, "switchyard_moe"});
  }
  {  // Loss-free bias; MoE every second layer.
    LmConfig c = tiny("loss_free", {{"score", "sigmoid"}});
    c.n_layers = 3;
    c.moe_every = 2;
    out.push_back({"loss_free_every2", c, "switchyard_moe"});
  }
  out.push_back({"xmoe", tiny("xmoe", {{"proj_dim", 8}}), "switchyard_moe"});
  {
    LmConfig c = tiny("switch", {{"aux_loss_coeff", 0.01}});
    c.moe.top_k = 1;
    out.push_back({"switch", c, "switchyard_moe"});
  }
  out.push_back({"default_moe", tiny("default_moe", {{"normalize", true}}), "switchyard_moe"});
  {
    LmConfig c = tiny("hash", {{"hash", "modulo"}});
    c.moe.top_k = 1;
    out.push_back({"hash", c, "switchyard_moe"});
  }
  {
    LmConfig c = tiny("topk_softmax", nlohmann::json::object());
    c.moe.num_experts = 0;
    out.push_back({"dense", c, "switchyard_moe"});
  }
  return out;
}

// A model with random parameters and random buffers (a zero bias or EMA would not show whether
// a reader loads it).
std::unique_ptr<MoeLm> random_model(const LmConfig& c, uint64_t seed) {
  auto m = std::make_unique<MoeLm>(c);
  Rng rng(seed);
  m->init(rng);
  for (Param* p : m->buffers()) fill_normal(p->value, rng, 0.3f);
  return m;
}

const std::vector<int32_t> kTokens = {3, 17, 0, 39, 22, 5, 5, 11, 30, 8};

// The eval-mode loss on kTokens shifted by one (targets), and the logits f32 [T, V].
float eval_loss(MoeLm& m, Tensor* logits = nullptr) {
  std::vector<int32_t> tgt(kTokens.begin() + 1, kTokens.end());
  tgt.push_back(-100);
  const float loss = m.forward_backward(
      test::i32_tensor({1, static_cast<int64_t>(kTokens.size())}, kTokens),
      test::i32_tensor({1, static_cast<int64_t>(tgt.size())}, tgt), nullptr, false);
  if (logits != nullptr) *logits = m.logits().clone();
  return loss;
}

::testing::AssertionResult bit_identical(MoeLm& a, MoeLm& b) {
  std::vector<Param*> pa = a.params(), pb = b.params();
  for (Param* p : a.buffers()) pa.push_back(p);
  for (Param* p : b.buffers()) pb.push_back(p);
  if (pa.size() != pb.size()) {
    return ::testing::AssertionFailure() << pa.size() << " vs " << pb.size() << " tensors";
  }
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor &x = pa[i]->value, &y = pb[i]->value;
    if (pa[i]->name != pb[i]->name || x.shape() != y.shape() ||
        std::memcmp(x.bytes(), y.bytes(), x.nbytes()) != 0) {
      return ::testing::AssertionFailure() << "'" << pa[i]->name << "' differs";
    }
  }
  return ::testing::AssertionSuccess();
}

// max |got - want| / max |want|.
double rel_error(const Tensor& got, const Tensor& want) {
  double err = 0.0, scale = 0.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, std::fabs(double{got.data<float>()[i]} - want.data<float>()[i]));
    scale = std::max(scale, std::fabs(double{want.data<float>()[i]}));
  }
  return err / scale;
}

nlohmann::json read_config(const fs::path& dir) {
  return nlohmann::json::parse(io::read_file((dir / "config.json").string()));
}
void write_config(const fs::path& dir, const nlohmann::json& j) {
  io::write_file_atomic((dir / "config.json").string(), j.dump(2));
}

// The tensors of a single-file checkpoint, as owned copies (the file is rewritten afterwards).
io::NamedTensors read_tensors(const fs::path& file) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(file.string());
  io::NamedTensors out;
  for (const auto& info : f.tensors()) out.emplace_back(info.name, f.tensor(info).clone());
  return out;
}

TEST(Checkpoint, RoundTripAndInferenceEveryLayout) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const test::TempDir tmp("ckpt");
    const std::string dir = (tmp.path / "model").string();
    auto model = random_model(c.config, 7);
    save_model(*model, dir);

    const nlohmann::json config = read_config(dir);
    EXPECT_EQ(config.at("model_type"), c.model_type);
    EXPECT_EQ(config.at("torch_dtype"), "float32");
    if (c.model_type == "mixtral") {
      EXPECT_EQ(config.at("architectures")[0], "MixtralForCausalLM");
      EXPECT_EQ(config.at("num_local_experts"), 8);
      EXPECT_EQ(config.at("intermediate_size"), 16);
    } else {
      EXPECT_EQ(config.at("architectures")[0], "SwitchyardMoeForCausalLM");
    }

    // (a) bit-identical parameters, buffers and config; the same loss.
    const std::unique_ptr<MoeLm> back = load_model(dir);
    EXPECT_EQ(back->config().to_json(), c.config.to_json());
    EXPECT_TRUE(bit_identical(*model, *back));
    Tensor want;
    const float loss = eval_loss(*model, &want);
    EXPECT_EQ(eval_loss(*back), loss);

    // (b) the inference model's logits equal the trainer's (routers in inference mode).
    const std::unique_ptr<model::Model> inf = model::Model::load(dir);
    EXPECT_EQ(inf->config().arch, c.model_type == "mixtral" ? "mixtral" : "switchyard_moe");
    model::KvCache cache = inf->new_cache(static_cast<int64_t>(kTokens.size()), DType::F32);
    const Tensor got = inf->forward(kTokens, cache, /*all_logits=*/true);
    ASSERT_EQ(got.shape(), want.shape());
    EXPECT_LE(rel_error(got, want), 1e-5);
  }
}

TEST(Checkpoint, TensorNames) {
  const test::TempDir tmp("ckpt");
  {
    const Case c = cases()[0];  // mixtral
    save_model(*random_model(c.config, 1), tmp.str() + "/m");
    const io::SafetensorsFile f = io::SafetensorsFile::open(tmp.str() + "/m/model.safetensors");
    for (const char* name :
         {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
          "model.layers.1.self_attn.k_proj.weight", "model.layers.1.block_sparse_moe.gate.weight",
          "model.layers.1.block_sparse_moe.experts.7.w1.weight",
          "model.layers.0.block_sparse_moe.experts.0.w2.weight",
          "model.layers.0.block_sparse_moe.experts.3.w3.weight"}) {
      EXPECT_TRUE(f.contains(name)) << name;
    }
    EXPECT_EQ(f.info("model.layers.0.block_sparse_moe.experts.0.w2.weight").shape, (Shape{32, 16}));
    EXPECT_EQ(f.metadata().at("format"), "pt");
    // 3 (embedding, head, final norm) + per layer 2 norms, 4 attention, gate, 8 * 3.
    EXPECT_EQ(f.tensors().size(), 3u + 2u * (2 + 4 + 1 + 24));
  }
  {
    const Case c = cases()[2];  // deepseek
    save_model(*random_model(c.config, 1), tmp.str() + "/d");
    const io::SafetensorsFile f = io::SafetensorsFile::open(tmp.str() + "/d/model.safetensors");
    for (const char* name :
         {"model.layers.0.mlp.gate.weight", "model.layers.0.mlp.gate.e_score_correction_bias",
          "model.layers.1.mlp.experts.5.gate_proj.weight",
          "model.layers.1.mlp.experts.5.up_proj.weight",
          "model.layers.1.mlp.experts.5.down_proj.weight",
          "model.layers.1.mlp.shared_experts.gate_proj.weight"}) {
      EXPECT_TRUE(f.contains(name)) << name;
    }
    EXPECT_EQ(f.info("model.layers.1.mlp.shared_experts.down_proj.weight").shape, (Shape{32, 32}));
    const nlohmann::json config = read_config(tmp.path / "d");
    EXPECT_EQ(config.at("router").at("name"), "deepseek");
    EXPECT_EQ(config.at("router").at("state"),
              nlohmann::json::array({"gate.e_score_correction_bias"}));
    EXPECT_EQ(config.at("n_shared_experts"), 2);
    EXPECT_EQ(config.at("shared_expert_intermediate_size"), 16);
  }
  {
    const Case c = cases()[1];  // qk_norm, dense first layer
    save_model(*random_model(c.config, 1), tmp.str() + "/q");
    const io::SafetensorsFile f = io::SafetensorsFile::open(tmp.str() + "/q/model.safetensors");
    EXPECT_EQ(f.info("model.layers.2.self_attn.q_norm.weight").shape, (Shape{8}));
    EXPECT_TRUE(f.contains("model.layers.0.mlp.up_proj.weight"));
    EXPECT_TRUE(f.contains("model.layers.1.mlp.shared_expert_gate.weight"));
    EXPECT_FALSE(f.contains("lm_head.weight"));  // tied
    const nlohmann::json config = read_config(tmp.path / "q");
    EXPECT_EQ(config.at("first_k_dense_replace"), 1);
    EXPECT_EQ(config.at("qk_norm"), true);
    EXPECT_EQ(config.at("tie_word_embeddings"), true);
  }
}

TEST(Checkpoint, MixtralNamingNeedsEveryCondition) {
  const LmConfig base = cases()[0].config;
  std::string why;
  EXPECT_TRUE(mixtral_expressible(base, &why));
  auto check = [&](const LmConfig& c, const std::string& reason) {
    EXPECT_FALSE(mixtral_expressible(c, &why)) << reason;
    EXPECT_EQ(why, reason);
    EXPECT_EQ(hf_config_json(c, DType::F32).at("model_type"), "switchyard_moe");
  };
  LmConfig c = base;
  c.moe.router_options["normalize"] = false;
  check(c, "top-k weights not renormalised");
  c = base;
  c.moe.router = "switch";
  c.moe.router_options = nlohmann::json::object();
  c.moe.top_k = 1;
  check(c, "router 'switch'");
  c = base;
  c.moe.shared_experts = 1;
  check(c, "shared experts");
  c = base;
  c.qk_norm = true;
  check(c, "qk_norm");
  c = base;
  c.tie_embeddings = true;
  check(c, "tied embeddings");
  c = base;
  c.first_k_dense = 1;
  check(c, "not every layer is routed");
  c = base;
  c.moe.router_options["softmax_after_topk"] = true;  // same weights as renormalising
  EXPECT_TRUE(mixtral_expressible(c));
}

TEST(Checkpoint, HalfPrecisionParametersBuffersStayF32) {
  const test::TempDir tmp("ckpt");
  const Case c = cases()[3];  // loss_free: has a bias buffer
  auto model = random_model(c.config, 3);
  for (DType dt : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(dt));
    save_model(*model, tmp.str() + "/h", {.dtype = dt});
    EXPECT_EQ(read_config(tmp.path / "h").at("torch_dtype"),
              dt == DType::BF16 ? "bfloat16" : "float16");
    const io::SafetensorsFile f = io::SafetensorsFile::open(tmp.str() + "/h/model.safetensors");
    EXPECT_EQ(f.info("model.layers.0.mlp.experts.0.up_proj.weight").dtype, dt);
    EXPECT_EQ(f.info("model.layers.2.mlp.gate.expert_bias").dtype, DType::F32);
    const auto back = load_model(tmp.str() + "/h");
    std::vector<Param*> pa = model->params(), pb = back->params();
    for (size_t i = 0; i < pa.size(); ++i) {
      const Tensor rounded = pa[i]->value.to(dt).to_f32();
      ASSERT_EQ(std::memcmp(rounded.bytes(), pb[i]->value.bytes(), rounded.nbytes()), 0)
          << pa[i]->name;
    }
    for (size_t i = 0; i < model->buffers().size(); ++i) {
      const Tensor& x = model->buffers()[i]->value;
      EXPECT_EQ(std::memcmp(x.bytes(), back->buffers()[i]->value.bytes(), x.nbytes()), 0);
    }
  }
  test::expect_error_containing(
      [&] { save_model(*model, tmp.str() + "/i", {.dtype = DType::I32}); },
      "checkpoint: parameters can be saved as f32, bf16 or f16, not i32");
}

TEST(Checkpoint, ConfigWithoutSwitchyardBlockIsReadFromHfKeys) {
  const test::TempDir tmp("ckpt");
  for (int i : {0, 1}) {
    Case c = cases()[static_cast<size_t>(i)];
    if (i == 0) {  // Mixtral's keys have no z-loss and no dense width
      c.config.moe.router_options = {{"aux_loss_coeff", 0.02}};
      c.config.dense_ffn = 0;
    }
    const std::string dir = tmp.str() + "/" + c.name;
    auto model = random_model(c.config, 5);
    save_model(*model, dir);
    nlohmann::json j = read_config(dir);
    j.erase("switchyard");
    write_config(dir, j);
    const auto back = load_model(dir);
    EXPECT_EQ(back->config().to_json(), c.config.to_json()) << c.name;
    EXPECT_TRUE(bit_identical(*model, *back)) << c.name;
  }
}

class CheckpointErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    save_model(*random_model(cases()[3].config, 9), dir_);  // loss_free, switchyard_moe
    save_model(*random_model(cases()[0].config, 9), mixtral_);
  }
  std::string load_error(const std::string& dir) const {
    return error_of([&] { load_model(dir); });
  }
  test::TempDir tmp_{"ckpt"};
  std::string dir_ = tmp_.str() + "/sy";
  std::string mixtral_ = tmp_.str() + "/mx";
  std::string file_ = dir_ + "/model.safetensors";
  std::string config_ = dir_ + "/config.json";
};

TEST_F(CheckpointErrors, TruncatedSafetensors) {
  const auto size = fs::file_size(file_);
  for (const uintmax_t keep : {size - 1, size / 2, uintmax_t{100}, uintmax_t{5}}) {
    fs::resize_file(file_, keep);
    const std::string msg = load_error(dir_);
    EXPECT_EQ(msg.rfind(file_ + ": ", 0), 0u) << msg;
    EXPECT_EQ(error_of([&] { model::Model::load(dir_); }).rfind(file_ + ": ", 0), 0u);
  }
}

TEST_F(CheckpointErrors, WrongShapeMissingUnexpectedAndBadDtypeTensors) {
  const io::NamedTensors good = read_tensors(file_);
  const std::string gate = "model.layers.2.mlp.gate.weight";
  const std::string expert = "model.layers.0.mlp.experts.3.down_proj.weight";
  auto rewrite = [&](const std::function<void(io::NamedTensors&)>& edit) {
    io::NamedTensors t = good;
    edit(t);
    io::write_safetensors(file_, t, {{"format", "pt"}});
  };
  auto find = [&](io::NamedTensors& t, const std::string& name) -> Tensor& {
    for (auto& [n, v] : t) {
      if (n == name) return v;
    }
    throw std::runtime_error("no " + name);
  };

  rewrite([&](io::NamedTensors& t) { find(t, gate) = Tensor::zeros({8, 31}); });
  EXPECT_EQ(load_error(dir_),
            file_ + ": tensor '" + gate + "' has shape [8, 31], expected [8, 32]");
  EXPECT_EQ(error_of([&] { model::Model::load(dir_); }),
            file_ + ": tensor '" + gate + "' has shape [8, 31], expected [8, 32]");

  rewrite([&](io::NamedTensors& t) { find(t, expert) = Tensor::zeros({16, 32}); });
  EXPECT_EQ(load_error(dir_),
            file_ + ": tensor '" + expert + "' has shape [16, 32], expected [32, 16]");

  rewrite([&](io::NamedTensors& t) {
    t.erase(std::find_if(t.begin(), t.end(), [&](const auto& p) { return p.first == expert; }));
  });
  EXPECT_EQ(load_error(dir_),
            file_ + ": tensor '" + expert + "' is missing (the switchyard_moe config has it)");

  const std::string bias = "model.layers.0.mlp.gate.expert_bias";
  rewrite([&](io::NamedTensors& t) {
    t.erase(std::find_if(t.begin(), t.end(), [&](const auto& p) { return p.first == bias; }));
  });
  EXPECT_EQ(load_error(dir_),
            file_ + ": tensor '" + bias + "' is missing (the switchyard_moe config has it)");

  rewrite([&](io::NamedTensors& t) {
    t.emplace_back("model.layers.9.mlp.gate.weight", good[0].second);
  });
  EXPECT_EQ(load_error(dir_),
            file_ +
                ": unexpected tensor 'model.layers.9.mlp.gate.weight': the switchyard_moe "
                "config has no such parameter or buffer");

  rewrite([&](io::NamedTensors& t) { find(t, gate) = Tensor::zeros({8, 32}, DType::I32); });
  EXPECT_EQ(load_error(dir_),
            file_ + ": tensor '" + gate + "' has dtype I32, expected F32, BF16 or F16");

  rewrite([](io::NamedTensors&) {});
  EXPECT_NO_THROW(load_model(dir_));
}

TEST_F(CheckpointErrors, BadConfigJson) {
  const nlohmann::json good = read_config(dir_);
  std::ofstream(config_) << "{\"model_type\": \"switchyard_moe\", ";
  EXPECT_EQ(load_error(dir_).rfind(config_ + ": not valid JSON: ", 0), 0u) << load_error(dir_);

  fs::remove(config_);
  EXPECT_EQ(load_error(dir_), dir_ + ": no config.json in the checkpoint folder");
  EXPECT_EQ(load_error(tmp_.str() + "/nothing"),
            tmp_.str() + "/nothing: no such checkpoint folder");

  nlohmann::json j = good;
  j["hidden_size"] = 48;
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_),
            config_ + ": key 'hidden_size' is 48, but switchyard.lm_config gives 32");

  j = good;
  j["router"]["options"]["score"] = "softmax";
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_).rfind(config_ + ": key 'router' is {", 0), 0u) << load_error(dir_);

  j = good;
  j.erase("num_experts");
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_),
            config_ + ": key 'num_experts' is missing; switchyard.lm_config gives 8");

  j = good;
  j["model_type"] = "qwen3_moe";
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_), config_ +
                                  ": key 'model_type' is 'qwen3_moe', expected 'mixtral' or "
                                  "'switchyard_moe' (the layouts switchyard trains)");

  j = good;
  j["switchyard"]["lm_config"]["d_modle"] = 32;
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_).rfind(config_ + ": key 'switchyard.lm_config': lm config: unknown key "
                                             "'d_modle'",
                                   0),
            0u)
      << load_error(dir_);

  j = good;
  j["switchyard"]["format_version"] = 2;
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_), config_ + ": key 'switchyard.format_version' is 2, expected 1");
  // Not converted: a string threw json type_error 302, a float past int's range was undefined.
  j["switchyard"]["format_version"] = "1";
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_), config_ + ": key 'switchyard.format_version' is \"1\", expected 1");
  j["switchyard"]["format_version"] = 1e300;
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_), config_ + ": key 'switchyard.format_version' is 1e+300, expected 1");

  j = good;
  j["rope_scaling"] = {{"type", "yarn"}};
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_).rfind(config_ + ": key 'rope_scaling' is set", 0), 0u);

  j = good;
  j.erase("switchyard");
  j["router"].erase("name");
  write_config(dir_, j);
  EXPECT_EQ(load_error(dir_), config_ + ": key 'router.name' is missing");
}

TEST_F(CheckpointErrors, InferenceReaderRefusesWhatItCannotRun) {
  const nlohmann::json good = read_config(dir_);
  nlohmann::json j = good;
  j["router"]["name"] = "expert_choice";
  j["router"]["options"] = nlohmann::json::object();
  write_config(dir_, j);
  EXPECT_EQ(error_of([&] { model::Model::load(dir_); }),
            config_ +
                ": router 'expert_choice' is not causal (a token's experts depend on later "
                "tokens), so the model cannot generate token by token");
  j["router"]["name"] = "random";
  write_config(dir_, j);
  EXPECT_EQ(error_of([&] { model::Model::load(dir_); }).rfind(config_ + ": router 'random'", 0),
            0u);
  j["router"]["name"] = "sinkhorn_typo";
  write_config(dir_, j);
  EXPECT_EQ(error_of([&] {
              model::Model::load(dir_);
            }).rfind(config_ + ": key 'router': unknown router 'sinkhorn_typo'", 0),
            0u);
  j = good;
  j["router"]["options"]["bogus"] = 1;
  write_config(dir_, j);
  EXPECT_NE(error_of([&] { model::Model::load(dir_); }).find("unknown option 'bogus'"),
            std::string::npos);
  j = good;
  j["moe_layer_freq"] = 0;
  write_config(dir_, j);
  EXPECT_EQ(error_of([&] { model::Model::load(dir_); }),
            config_ + ": key 'moe_layer_freq' is 0, expected > 0");
}

TEST(Checkpoint, AtomicReplace) {
  const test::TempDir tmp("ckpt");
  const std::string dir = tmp.str() + "/run/ckpt";  // the parent is created
  const LmConfig c = cases()[3].config;
  auto first = random_model(c, 1);
  auto second = random_model(c, 2);
  save_model(*first, dir, {}, nullptr);
  TrainingState state;
  state.optimizer = {{"optimizer.step", Tensor::zeros({1}, DType::I64)},
                     {"optimizer.step", Tensor::zeros({1}, DType::I64)}};  // duplicate: fails
  const std::string msg = error_of([&] { save_model(*second, dir, {}, &state); });
  EXPECT_NE(msg.find("optimizer.step"), std::string::npos) << msg;
  // The failure came after config.json and model.safetensors were written: the old checkpoint
  // is untouched and the partial folder is gone.
  EXPECT_TRUE(bit_identical(*first, *load_model(dir)));
  EXPECT_EQ(test::file_names(tmp.path / "run"), std::vector<std::string>{"ckpt"});

  // A successful save replaces it, with the trailing slash spelling too.
  state.optimizer.pop_back();
  state.trainer = {{"step", 12}};
  save_model(*second, dir + "/", {}, &state);
  EXPECT_TRUE(bit_identical(*second, *load_model(dir)));
  EXPECT_TRUE(has_training_state(dir));
  EXPECT_EQ(test::file_names(tmp.path / "run"), std::vector<std::string>{"ckpt"});
  // A save without a state drops the old one (it belongs to other weights).
  save_model(*first, dir);
  EXPECT_FALSE(has_training_state(dir));
  EXPECT_TRUE(bit_identical(*first, *load_model(dir)));

  // Not a folder name, and a file in the way.
  EXPECT_EQ(error_of([&] { save_model(*first, tmp.str() + "/run/.."); }),
            tmp.str() + "/run/..: not a folder name a checkpoint can be saved under");
  std::ofstream(tmp.path / "file") << "x";
  EXPECT_EQ(error_of([&] { save_model(*first, tmp.str() + "/file"); }),
            tmp.str() + "/file: exists and is not a folder; not replacing it with a checkpoint");
  fs::create_directories(tmp.path / "notes");
  std::ofstream(tmp.path / "notes" / "todo.txt") << "keep me";
  EXPECT_EQ(error_of([&] { save_model(*first, tmp.str() + "/notes"); }),
            tmp.str() +
                "/notes: the folder holds files but no config.json; not replacing a "
                "folder that is not a checkpoint");
  EXPECT_TRUE(fs::exists(tmp.path / "notes" / "todo.txt"));
  fs::create_directories(tmp.path / "empty");
  save_model(*first, tmp.str() + "/empty");
  EXPECT_TRUE(bit_identical(*first, *load_model(tmp.str() + "/empty")));
}

TEST(Checkpoint, TrainingState) {
  const test::TempDir tmp("ckpt");
  const std::string dir = tmp.str() + "/ckpt";
  auto model = random_model(cases()[0].config, 4);
  Rng rng(4);
  Tensor m = Tensor::zeros({3, 5});
  fill_normal(m, rng, 1.0f);
  Tensor step = Tensor::zeros({1}, DType::I64);
  step.mutable_data<int64_t>()[0] = 41;
  TrainingState state{.optimizer = {{"optimizer.step", step}, {"w.exp_avg", m}},
                      .trainer = {{"step", 41}, {"rng", "abc"}}};
  save_model(*model, dir, {}, &state);
  auto check = [&](const TrainingState& got, const nlohmann::json& trainer) {
    ASSERT_EQ(got.optimizer.size(), 2u);
    for (const auto& [name, t] : got.optimizer) {
      const Tensor& want = name == "w.exp_avg" ? m : step;
      ASSERT_EQ(t.shape(), want.shape()) << name;
      EXPECT_EQ(std::memcmp(t.bytes(), want.bytes(), want.nbytes()), 0) << name;
    }
    EXPECT_EQ(got.trainer, trainer);
  };
  check(load_training_state(dir), state.trainer);

  // Standalone update beside the model.
  step.mutable_data<int64_t>()[0] = 42;
  save_training_state(dir, {{"optimizer.step", step}, {"w.exp_avg", m}}, {{"step", 42}});
  check(load_training_state(dir), {{"step", 42}});

  // A pair torn by a crash between the two renames: the optimizer file no longer matches.
  const std::string opt = dir + "/optimizer.safetensors";
  io::write_safetensors(opt, {{"optimizer.step", step}});
  EXPECT_NE(error_of([&] { load_training_state(dir); }).find(opt + ": content hash "),
            std::string::npos);
  fs::remove(opt);
  EXPECT_EQ(error_of([&] { load_training_state(dir); }),
            opt + ": missing, but " + dir + "/trainer_state.json refers to it");
  std::ofstream(dir + "/trainer_state.json") << R"({"format_version": "1", "trainer": {}})";
  EXPECT_EQ(error_of([&] { load_training_state(dir); }),
            dir + "/trainer_state.json: key 'format_version' is \"1\", expected 1");
  std::ofstream(dir + "/trainer_state.json") << "[1, 2";
  EXPECT_EQ(error_of([&] {
              load_training_state(dir);
            }).rfind(dir + "/trainer_state.json: not valid JSON", 0),
            0u);
  fs::remove(dir + "/trainer_state.json");
  EXPECT_EQ(error_of([&] { load_training_state(dir); }),
            dir + ": no trainer_state.json (no training state saved)");
  EXPECT_EQ(error_of([&] { save_training_state(tmp.str() + "/none", {}, {}); }),
            tmp.str() + "/none: no such checkpoint folder");
}

}  // namespace
}  // namespace sy::train
