// The config readers on values outside what a model can have: each is an error naming the file,
// the key and the expected range, read before anything is sized from it (a layer count of 10^12
// used to size a vector of flags; in a GGUF file, to loop over tensor names).
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "io/gguf.h"
#include "model/config.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"

namespace sy::model {
namespace {

// A small Mixtral config.json.
nlohmann::json mixtral() {
  return {{"model_type", "mixtral"}, {"vocab_size", 64},         {"hidden_size", 16},
          {"num_hidden_layers", 2},  {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"intermediate_size", 8},  {"num_local_experts", 4},   {"num_experts_per_tok", 2},
          {"rms_norm_eps", 1e-5},    {"rope_theta", 1e6},        {"max_position_embeddings", 128}};
}

using test::expect_error_containing;

// config_from_hf_text on mixtral() with `key` set to `value` fails with `needle`.
void expect_hf_error(const std::string& key, const nlohmann::json& value,
                     const std::string& needle) {
  nlohmann::json j = mixtral();
  j[key] = value;
  SCOPED_TRACE(key + " = " + value.dump());
  expect_error_containing([&] { config_from_hf_text(j.dump(), "m/config.json"); },
                          "m/config.json: " + needle);
}

TEST(ModelConfig, ReadsConfigText) {
  const ModelConfig c = config_from_hf_text(mixtral().dump(), "m/config.json");
  EXPECT_EQ(c.arch, "mixtral");
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.moe_layer, std::vector<bool>({true, true}));
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
}

TEST(ModelConfig, RejectsValuesOutOfRange) {
  expect_hf_error("num_hidden_layers", 100000,
                  "key 'num_hidden_layers' is 100000, expected 1 to 65536 layers");
  expect_hf_error("num_hidden_layers", 0, "key 'num_hidden_layers' is 0, expected 1 to 65536");
  expect_hf_error("num_hidden_layers", int64_t{1} << 40,
                  "key 'num_hidden_layers' is 1099511627776, expected an integer of magnitude at "
                  "most 2147483647");
  expect_hf_error("hidden_size", uint64_t{18446744073709551615U},
                  "key 'hidden_size' is 18446744073709551615, expected an integer of magnitude");
  expect_hf_error("vocab_size", -(int64_t{1} << 33), "key 'vocab_size' is -8589934592, expected");
  expect_hf_error("vocab_size", std::numeric_limits<int64_t>::min(),
                  "key 'vocab_size' is -9223372036854775808, expected");
  // A double a float cannot hold: converting it was undefined behaviour.
  expect_hf_error("rms_norm_eps", 1e39, "key 'rms_norm_eps' is 1e+39, expected a finite number");
  expect_hf_error("rope_theta", -5.0, "rope theta is -5, expected a finite number > 0");
}

TEST(ModelConfig, GgufLayerCountAndFloatsAreChecked) {
  const test::TempDir dir("sy_config");
  const auto write = [&](uint32_t blocks, float eps) {
    io::GgufWriter w;
    w.add_kv("general.architecture", io::GgufValue::string("llama"));
    w.add_kv("llama.embedding_length", io::GgufValue::u32(16));
    w.add_kv("llama.block_count", io::GgufValue::u32(blocks));
    w.add_kv("llama.attention.head_count", io::GgufValue::u32(4));
    w.add_kv("llama.attention.layer_norm_rms_epsilon", io::GgufValue::f32(eps));
    const std::string path = (dir.path / "m.gguf").string();
    w.write(path);
    return path;
  };
  const std::string huge = write(100000, 1e-5f);
  expect_error_containing([&] { config_from_gguf(io::GgufFile::open(huge)); },
                          "m.gguf: key 'llama.block_count' is 100000, expected 1 to 65536 layers");
  const std::string inf = write(2, INFINITY);
  expect_error_containing(
      [&] { config_from_gguf(io::GgufFile::open(inf)); },
      "key 'llama.attention.layer_norm_rms_epsilon' is inf, expected a finite number");
}

}  // namespace
}  // namespace sy::model
