#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/inspect.h"
#include "support/temp_dir.h"

namespace sy::model {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// A 2-layer Mixtral-shaped checkpoint: hidden 8, ffn 4, 4 experts, vocab 16.
io::NamedTensors mixtral_tensors(int64_t experts) {
  io::NamedTensors t;
  t.emplace_back("model.embed_tokens.weight", Tensor::zeros({16, 8}));
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.emplace_back(p + "self_attn.q_proj.weight", Tensor::zeros({8, 8}));
    t.emplace_back(p + "block_sparse_moe.gate.weight", Tensor::zeros({experts, 8}));
    for (int e = 0; e < experts; ++e) {
      const std::string q = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
      t.emplace_back(q + "w1.weight", Tensor::zeros({4, 8}));
      t.emplace_back(q + "w2.weight", Tensor::zeros({8, 4}));
      t.emplace_back(q + "w3.weight", Tensor::zeros({4, 8}));
    }
  }
  return t;
}

void write_config(const fs::path& dir, int64_t experts) {
  std::ofstream(dir / "config.json")
      << R"({"architectures": ["MixtralForCausalLM"], "num_hidden_layers": 2, "hidden_size": 8,
            "vocab_size": 16, "num_local_experts": )"
      << experts << R"(, "num_experts_per_tok": 2})";
}

TEST(Inspect, CountsParametersOfASafetensorsFolder) {
  TempDir dir;
  io::write_safetensors((dir.path / "model.safetensors").string(), mixtral_tensors(4), {});
  write_config(dir.path, 4);
  const CheckpointSummary s = inspect_checkpoint(dir.path.string());
  EXPECT_EQ(s.format, "safetensors");
  EXPECT_EQ(s.architecture, "MixtralForCausalLM");
  EXPECT_EQ(s.hparams.at("experts"), 4);
  // embed 128 + per layer (q 64 + gate 32 + 4 experts * 96) = 128 + 2 * 480.
  EXPECT_EQ(s.total_params, 128 + 2 * 480);
  EXPECT_EQ(s.expert_params, 2 * 4 * 96);
  ASSERT_TRUE(s.active_params.has_value());
  EXPECT_EQ(*s.active_params, 128 + 2 * (64 + 32) + 2 * 4 * 96 * 2 / 4);
  EXPECT_EQ(s.total_bytes, static_cast<uint64_t>(s.total_params) * 4);
  EXPECT_TRUE(s.problems.empty()) << s.problems.front();
  EXPECT_NE(format_summary(s, true).find("block_sparse_moe.experts.3.w2.weight"),
            std::string::npos);
  EXPECT_NE(summary_json(s).find("\"active_params\":704"), std::string::npos);
}

TEST(Inspect, ReportsTensorsThatDisagreeWithTheConfig) {
  TempDir dir;
  io::write_safetensors((dir.path / "model.safetensors").string(), mixtral_tensors(3), {});
  write_config(dir.path, 4);
  const CheckpointSummary s = inspect_checkpoint(dir.path.string());
  ASSERT_EQ(s.problems.size(), 2u);
  EXPECT_EQ(s.problems[0], "layer 0 has 3 experts, the config says 4");
}

TEST(Inspect, ReadsGgufMetadataAndStackedExperts) {
  TempDir dir;
  io::GgufWriter w;
  w.add_kv("general.architecture", io::GgufValue::string("qwen2moe"));
  w.add_kv("qwen2moe.block_count", io::GgufValue::u32(1));
  w.add_kv("qwen2moe.embedding_length", io::GgufValue::u32(8));
  w.add_kv("qwen2moe.expert_count", io::GgufValue::u32(4));
  w.add_kv("qwen2moe.expert_used_count", io::GgufValue::u32(2));
  w.add_tensor("token_embd.weight", Tensor::zeros({16, 8}));
  w.add_tensor("blk.0.ffn_up_exps.weight", Tensor::zeros({4, 4, 8}));
  w.add_tensor("blk.0.ffn_up_shexp.weight", Tensor::zeros({4, 8}));
  const fs::path file = dir.path / "m.gguf";
  w.write(file.string());
  const CheckpointSummary s = inspect_checkpoint(file.string());
  EXPECT_EQ(s.format, "gguf");
  EXPECT_EQ(s.architecture, "qwen2moe");
  EXPECT_EQ(s.expert_params, 128);
  EXPECT_EQ(*s.active_params, 128 + 32 + 64);
  EXPECT_TRUE(s.problems.empty());
  EXPECT_EQ(s.tensors[0].dtype, "f32");
}

// llama.cpp's files from before April 2024 hold each expert as its own tensor,
// "blk.N.ffn_{gate,up,down}.<j>.weight".
TEST(Inspect, ReadsGgufPerExpertTensors) {
  TempDir dir;
  const auto write = [&](int64_t experts_written) {
    io::GgufWriter w;
    w.add_kv("general.architecture", io::GgufValue::string("llama"));
    w.add_kv("llama.block_count", io::GgufValue::u32(1));
    w.add_kv("llama.embedding_length", io::GgufValue::u32(8));
    w.add_kv("llama.expert_count", io::GgufValue::u32(4));
    w.add_kv("llama.expert_used_count", io::GgufValue::u32(2));
    w.add_tensor("token_embd.weight", Tensor::zeros({16, 8}));
    w.add_tensor("blk.0.ffn_gate_inp.weight", Tensor::zeros({4, 8}));
    for (int64_t j = 0; j < experts_written; ++j) {
      w.add_tensor("blk.0.ffn_up." + std::to_string(j) + ".weight", Tensor::zeros({4, 8}));
    }
    const fs::path file = dir.path / ("m" + std::to_string(experts_written) + ".gguf");
    w.write(file.string());
    return inspect_checkpoint(file.string());
  };
  const CheckpointSummary s = write(4);
  EXPECT_EQ(s.expert_params, 128);
  EXPECT_EQ(*s.active_params, 128 + 32 + 64);
  EXPECT_TRUE(s.problems.empty());
  const CheckpointSummary short_of_one = write(3);
  ASSERT_EQ(short_of_one.problems.size(), 1u);
  EXPECT_EQ(short_of_one.problems[0], "layer 0 has 3 experts, the config says 4");
}

TEST(Inspect, MissingPathIsAClearError) {
  try {
    inspect_checkpoint("/nonexistent/model");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/model: no such file or folder");
  }
}

}  // namespace
}  // namespace sy::model
