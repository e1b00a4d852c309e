#include "model/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "io/gguf.h"
#include "model/arch/arch.h"

namespace sy::model {

namespace fs = std::filesystem;

HfConfig::HfConfig(nlohmann::json json, std::string path)
    : json_(std::move(json)), path_(std::move(path)) {
  SY_CHECK(json_.is_object(), "{}: expected a JSON object at the top level", path_);
}

bool HfConfig::has(const std::string& key) const {
  return json_.contains(key) && !json_.at(key).is_null();
}

const nlohmann::json& HfConfig::at(const std::string& key) const {
  SY_CHECK(has(key), "{}: key '{}' is missing", path_, key);
  return json_.at(key);
}

void check_layer_count(int64_t layers, const std::string& source, const std::string& key) {
  SY_CHECK(layers >= 1 && layers <= kMaxLayers, "{}: key '{}' is {}, expected 1 to {} layers",
           source, key, layers, kMaxLayers);
}

int64_t HfConfig::get_int(const std::string& key) const {
  const nlohmann::json& v = at(key);
  SY_CHECK(v.is_number_integer(), "{}: key '{}' is {}, expected an integer", path_, key, v.dump());
  // Unsigned JSON integers above INT64_MAX would wrap in get<int64_t>: compare as unsigned.
  SY_CHECK(v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(kMaxConfigInt)
                                  : v.get<int64_t>() >= -kMaxConfigInt,
           "{}: key '{}' is {}, expected an integer of magnitude at most {}", path_, key, v.dump(),
           kMaxConfigInt);
  return v.get<int64_t>();
}

int64_t HfConfig::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double HfConfig::get_double(const std::string& key) const {
  const nlohmann::json& v = at(key);
  SY_CHECK(v.is_number(), "{}: key '{}' is {}, expected a number", path_, key, v.dump());
  return v.get<double>();
}

double HfConfig::get_double(const std::string& key, double fallback) const {
  return has(key) ? get_double(key) : fallback;
}

float HfConfig::get_float(const std::string& key) const {
  const double v = get_double(key);
  SY_CHECK(std::isfinite(v) && std::abs(v) <= std::numeric_limits<float>::max(),
           "{}: key '{}' is {}, expected a finite number of magnitude at most {}", path_, key, v,
           std::numeric_limits<float>::max());
  return static_cast<float>(v);
}

float HfConfig::get_float(const std::string& key, float fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool HfConfig::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const nlohmann::json& v = json_.at(key);
  SY_CHECK(v.is_boolean(), "{}: key '{}' is {}, expected true or false", path_, key, v.dump());
  return v.get<bool>();
}

std::string HfConfig::get_string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const nlohmann::json& v = json_.at(key);
  SY_CHECK(v.is_string(), "{}: key '{}' is {}, expected a string", path_, key, v.dump());
  return v.get<std::string>();
}

std::vector<int64_t> HfConfig::get_ints(const std::string& key) const {
  if (!has(key)) return {};
  const nlohmann::json& v = json_.at(key);
  SY_CHECK(v.is_array(), "{}: key '{}' is {}, expected a list of integers", path_, key, v.dump());
  std::vector<int64_t> out;
  for (const nlohmann::json& item : v) {
    SY_CHECK(item.is_number_integer(), "{}: key '{}' holds {}, expected integers", path_, key,
             item.dump());
    out.push_back(item.get<int64_t>());
  }
  return out;
}

void validate_config(ModelConfig& c) {
  const std::string& src = c.source;
  const auto positive = [&](int64_t v, const char* what) {
    SY_CHECK(v > 0, "{}: {} is {}, expected > 0", src, what, v);
  };
  positive(c.vocab_size, "vocab size");
  positive(c.hidden_size, "hidden size");
  positive(c.num_layers, "layer count");
  positive(c.num_heads, "attention head count");
  positive(c.num_kv_heads, "kv head count");
  SY_CHECK(c.num_heads % c.num_kv_heads == 0,
           "{}: {} attention heads is not a multiple of {} kv heads", src, c.num_heads,
           c.num_kv_heads);
  const auto finite_positive = [&](float v, const char* what) {
    SY_CHECK(std::isfinite(v) && v > 0.0f, "{}: {} is {}, expected a finite number > 0", src, what,
             v);
  };
  finite_positive(c.norm_eps, "rms norm epsilon");
  finite_positive(c.rope_theta, "rope theta");
  finite_positive(c.rope_attention_factor, "rope attention factor (YaRN mscale ratio)");
  SY_CHECK(std::isfinite(c.clip_qkv) && c.clip_qkv >= 0.0f,
           "{}: clip_qkv is {}, expected a finite number >= 0 (0: off)", src, c.clip_qkv);
  if (c.yarn.has_value()) {
    finite_positive(c.yarn->factor, "YaRN factor");
    positive(c.yarn->original_max_position, "YaRN original_max_position_embeddings");
    SY_CHECK(std::isfinite(c.yarn->beta_fast) && std::isfinite(c.yarn->beta_slow),
             "{}: YaRN beta_fast {} and beta_slow {}, expected finite numbers", src,
             c.yarn->beta_fast, c.yarn->beta_slow);
  }
  if (c.mla) {
    positive(c.mla_dims.kv_lora_rank, "kv_lora_rank");
    positive(c.mla_dims.qk_nope_dim, "qk_nope_head_dim");
    positive(c.mla_dims.qk_rope_dim, "qk_rope_head_dim");
    positive(c.mla_dims.v_head_dim, "v_head_dim");
    SY_CHECK(c.mla_dims.q_lora_rank >= 0, "{}: q_lora_rank is {}, expected >= 0", src,
             c.mla_dims.q_lora_rank);
    c.rope_dim = c.mla_dims.qk_rope_dim;
  } else {
    positive(c.head_dim, "head dim");
  }
  if (c.rope_dim == 0) c.rope_dim = c.head_dim;
  SY_CHECK(c.rope_dim % 2 == 0 && c.rope_dim <= c.key_dim(),
           "{}: rope dimension {} must be even and at most the key head dim {}", src, c.rope_dim,
           c.key_dim());
  SY_CHECK(static_cast<int64_t>(c.moe_layer.size()) == c.num_layers,
           "{}: {} layers but {} routed/dense flags", src, c.num_layers, c.moe_layer.size());
  bool any_moe = false, any_dense = false;
  for (bool m : c.moe_layer) (m ? any_moe : any_dense) = true;
  if (any_dense) positive(c.dense_ffn, "dense FFN width (intermediate_size)");
  if (any_moe) {
    positive(c.num_experts, "expert count");
    positive(c.expert_ffn, "expert FFN width");
    SY_CHECK(c.top_k > 0 && c.top_k <= c.num_experts,
             "{}: experts per token is {}, expected in [1, {}]", src, c.top_k, c.num_experts);
    SY_CHECK(c.shared_experts == 0 || c.shared_ffn > 0,
             "{}: {} shared experts of width {}, expected > 0", src, c.shared_experts,
             c.shared_ffn);
    SY_CHECK(!c.router.empty(), "{}: no router for the routed layers", src);
  }
  SY_CHECK(c.sliding_window >= 0, "{}: sliding window is {}, expected >= 0", src, c.sliding_window);
  if (c.attn_scale == 0.0f) {
    c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.key_dim()));
  }
  finite_positive(c.attn_scale, "attention scale");
}

ModelConfig config_from_hf_text(std::string_view text, const std::string& file) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  SY_CHECK(!json.is_discarded(), "{}: not valid JSON", file);
  const HfConfig hf(std::move(json), file);
  const std::string type = hf.get_string("model_type", "");
  SY_CHECK(!type.empty(), "{}: key 'model_type' is missing", file);
  std::string known;
  for (const ArchReader& reader : arch_readers()) {
    for (const std::string& t : reader.hf_types) {
      if (t == type) {
        ModelConfig config;
        config.arch = reader.name;
        config.source = file;
        reader.from_hf(hf, config);
        validate_config(config);
        return config;
      }
      known += (known.empty() ? "" : ", ") + t;
    }
  }
  fail("{}: model_type '{}' is not supported; supported: {}", file, type, known);
}

ModelConfig config_from_gguf(const io::GgufFile& gguf) {
  const std::string& file = gguf.name();
  const std::string& arch = gguf.get_string("general.architecture");
  std::string known;
  for (const ArchReader& reader : arch_readers()) {
    for (const std::string& a : reader.gguf_arch) {
      if (a == arch) {
        ModelConfig config;
        config.arch = reader.name;
        config.source = file;
        config.gguf = true;
        reader.from_gguf(GgufConfig(gguf, arch), config);
        validate_config(config);
        return config;
      }
      known += (known.empty() ? "" : ", ") + a;
    }
  }
  fail("{}: general.architecture '{}' is not supported; supported: {}", file, arch, known);
}

namespace {

ModelConfig config_from_hf(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  SY_CHECK(in.good(), "{}: cannot open", file);
  std::stringstream text;
  text << in.rdbuf();
  return config_from_hf_text(text.str(), file);
}

}  // namespace

ModelConfig load_config(const std::string& path) {
  const fs::path p(path);
  SY_CHECK(fs::exists(p), "{}: no such file or folder", path);
  if (p.extension() == ".gguf") return config_from_gguf(io::GgufFile::open(path));
  if (fs::is_directory(p)) {
    const fs::path config = p / "config.json";
    SY_CHECK(fs::exists(config), "{}: no config.json in the folder", path);
    return config_from_hf(config.string());
  }
  if (p.filename() == "config.json") return config_from_hf(path);
  const fs::path beside = p.parent_path() / "config.json";
  SY_CHECK(fs::exists(beside),
           "{}: expected a .gguf file, a folder with config.json, or a "
           "config.json; found no config.json beside it",
           path);
  return config_from_hf(beside.string());
}

}  // namespace sy::model
