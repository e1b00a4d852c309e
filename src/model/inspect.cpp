#include "model/inspect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"

namespace sy::model {

namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

// The decimal number right after the first occurrence of `marker` that starts `name` or
// follows a '.', when a '.' follows it ("model.layers.12.mlp" with "layers." gives 12).
std::optional<int64_t> index_after(const std::string& name, const std::string& marker,
                                   size_t from = 0) {
  for (size_t at = name.find(marker, from); at != std::string::npos;
       at = name.find(marker, at + 1)) {
    if (at != 0 && name[at - 1] != '.') continue;
    size_t i = at + marker.size(), digits = 0;
    int64_t v = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 18) {
      v = v * 10 + (name[i] - '0');
      ++i;
      ++digits;
    }
    if (digits > 0 && i < name.size() && name[i] == '.') return v;
  }
  return std::nullopt;
}

// The expert index of llama.cpp's older per-expert GGUF tensors,
// "blk.N.ffn_{gate,up,down}.<j>.weight" (Mixtral and Grok files from before April 2024).
std::optional<int64_t> gguf_split_expert(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return std::nullopt;
  for (const char* marker : {"ffn_gate.", "ffn_up.", "ffn_down."}) {
    if (const auto j = index_after(name, marker)) return j;
  }
  return std::nullopt;
}

// Routed experts: HF per-expert weights "...experts.<i>.<proj>..." (Mixtral, Qwen-MoE, OLMoE,
// DeepSeek; "shared_expert(s)" is not matched), switchyard's stacked "experts.<proj>_proj",
// GGUF's stacked "blk.N.ffn_{gate,up,down}_exps" and its older per-expert tensors.
bool is_routed_expert(const std::string& name) {
  if (name.find("_exps.") != std::string::npos || gguf_split_expert(name)) return true;
  const size_t at = name.find("experts.");
  return at != std::string::npos && (at == 0 || name[at - 1] == '.');
}

// The first integer among `keys` present in the JSON object.
std::optional<int64_t> first_int(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    const auto it = j.find(key);
    if (it != j.end() && it->is_number_integer()) return it->get<int64_t>();
  }
  return std::nullopt;
}

void read_hf_config(const fs::path& config_path, CheckpointSummary& s) {
  std::ifstream in(config_path);
  SY_CHECK(in.good(), "{}: cannot open", config_path.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", config_path.string(), e.what());
  }
  SY_CHECK(j.is_object(), "{}: expected a JSON object", config_path.string());
  const auto arch = j.find("architectures");
  if (arch != j.end() && arch->is_array() && !arch->empty() && arch->front().is_string()) {
    s.architecture = arch->front().get<std::string>();
  }
  auto put = [&](const char* ours, std::initializer_list<const char*> keys) {
    if (const auto v = first_int(j, keys)) s.hparams[ours] = *v;
  };
  put("layers", {"num_hidden_layers", "n_layer"});
  put("hidden", {"hidden_size", "d_model"});
  put("vocab", {"vocab_size"});
  put("experts", {"num_local_experts", "num_experts", "n_routed_experts"});
  put("experts_per_token", {"num_experts_per_tok", "moe_top_k"});
}

void read_safetensors(const std::string& path, CheckpointSummary& s) {
  s.format = "safetensors";
  const io::SafetensorsCheckpoint ckpt = io::SafetensorsCheckpoint::open(path);
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  if (fs::exists(dir / "config.json")) read_hf_config(dir / "config.json", s);
  for (const std::string& name : ckpt.names()) {
    const io::SafetensorsTensorInfo& info = ckpt.info(name);
    s.tensors.push_back({.name = name,
                         .dtype = info.dtype_name,
                         .shape = info.shape,
                         .numel = info.numel(),
                         .bytes = info.nbytes(),
                         .routed_expert = is_routed_expert(name)});
  }
}

void read_gguf(const std::string& path, CheckpointSummary& s) {
  s.format = "gguf";
  const io::GgufSet set = io::GgufSet::open(path);
  const io::GgufFile& meta = set.meta();
  if (const io::GgufValue* v = meta.find("general.architecture");
      v != nullptr && v->type() == io::GgufValueType::kString) {
    s.architecture = v->as_string();
  }
  const std::string& a = s.architecture;
  auto put = [&](const char* ours, const std::string& key) {
    const io::GgufValue* v = meta.find(key);
    if (v != nullptr && v->is_integer()) s.hparams[ours] = v->as_i64(key);
  };
  if (!a.empty()) {
    put("layers", a + ".block_count");
    put("hidden", a + ".embedding_length");
    put("vocab", a + ".vocab_size");
    put("experts", a + ".expert_count");
    put("experts_per_token", a + ".expert_used_count");
  }
  for (const auto& [part, info] : set.tensors()) {
    (void)part;
    s.tensors.push_back({.name = info->name,
                         .dtype = std::string(ggml_type_info(info->type).name),
                         .shape = info->shape(),
                         .numel = info->numel(),
                         .bytes = info->nbytes,
                         .routed_expert = is_routed_expert(info->name)});
  }
}

// Layer index named in a tensor name ("model.layers.<i>." or "blk.<i>.").
std::optional<int64_t> layer_of(const std::string& name) {
  if (auto l = index_after(name, "layers.")) return l;
  return index_after(name, "blk.");
}

// Layer indices named in tensor names.
std::set<int64_t> layer_indices(const std::vector<TensorSummary>& tensors) {
  std::set<int64_t> out;
  for (const TensorSummary& t : tensors) {
    if (const auto l = layer_of(t.name)) out.insert(*l);
  }
  return out;
}

void check(CheckpointSummary& s) {
  const auto hp = [&](const char* key) -> std::optional<int64_t> {
    const auto it = s.hparams.find(key);
    return it == s.hparams.end() ? std::nullopt : std::optional<int64_t>(it->second);
  };
  if (const auto layers = hp("layers")) {
    const std::set<int64_t> seen = layer_indices(s.tensors);
    if (!seen.empty() && static_cast<int64_t>(seen.size()) != *layers) {
      s.problems.push_back(fmt::format("the config says {} layers, the tensors name {} ({}..{})",
                                       *layers, seen.size(), *seen.begin(), *seen.rbegin()));
    }
  }
  if (const auto experts = hp("experts")) {
    // HF and GGUF's per-expert tensors: count distinct experts per layer; stacked: the leading
    // dimension.
    std::map<int64_t, std::set<int64_t>> per_layer;
    for (const TensorSummary& t : s.tensors) {
      const auto layer = layer_of(t.name);
      auto expert = index_after(t.name, "experts.");
      if (!expert) expert = gguf_split_expert(t.name);
      if (t.routed_expert && layer && expert) {
        per_layer[*layer].insert(*expert);
      } else if (t.routed_expert && t.shape.size() == 3 && t.shape[0] != *experts) {
        s.problems.push_back(fmt::format("tensor '{}' stacks {} experts, the config says {}",
                                         t.name, t.shape[0], *experts));
      }
    }
    for (const auto& [layer, ids] : per_layer) {
      if (static_cast<int64_t>(ids.size()) != *experts) {
        s.problems.push_back(fmt::format("layer {} has {} experts, the config says {}", layer,
                                         ids.size(), *experts));
      }
    }
  }
  if (const auto hidden = hp("hidden")) {
    for (const char* name : {"model.embed_tokens.weight", "token_embd.weight"}) {
      const auto it = std::find_if(s.tensors.begin(), s.tensors.end(),
                                   [&](const TensorSummary& t) { return t.name == name; });
      if (it != s.tensors.end() && (it->shape.size() != 2 || it->shape[1] != *hidden)) {
        s.problems.push_back(fmt::format("tensor '{}' has shape {}, expected [vocab, {}]", name,
                                         shape_str(it->shape), *hidden));
      }
    }
  }
}

}  // namespace

CheckpointSummary inspect_checkpoint(const std::string& path) {
  SY_CHECK(fs::exists(path), "{}: no such file or folder", path);
  CheckpointSummary s;
  s.path = path;
  if (ends_with(path, ".gguf")) {
    read_gguf(path, s);
  } else {
    read_safetensors(path, s);
  }
  std::sort(s.tensors.begin(), s.tensors.end(),
            [](const TensorSummary& a, const TensorSummary& b) { return a.name < b.name; });
  for (const TensorSummary& t : s.tensors) {
    s.total_params += t.numel;
    s.total_bytes += t.bytes;
    if (t.routed_expert) s.expert_params += t.numel;
  }
  const auto e = s.hparams.find("experts"), k = s.hparams.find("experts_per_token");
  if (e != s.hparams.end() && k != s.hparams.end() && e->second > 0) {
    s.active_params = s.total_params - s.expert_params + s.expert_params * k->second / e->second;
  }
  check(s);
  return s;
}

std::string format_summary(const CheckpointSummary& s, bool with_tensors) {
  std::ostringstream out;
  out << fmt::format("file:          {} ({})\n", s.path, s.format);
  out << fmt::format("architecture:  {}\n", s.architecture.empty() ? "unknown" : s.architecture);
  for (const auto& [key, value] : s.hparams) out << fmt::format("{:15}{}\n", key + ":", value);
  out << fmt::format("tensors:       {} ({:.1f} MiB)\n", s.tensors.size(),
                     static_cast<double>(s.total_bytes) / (1 << 20));
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;
  for (const TensorSummary& t : s.tensors) {
    auto& [count, bytes] = by_dtype[t.dtype];
    ++count;
    bytes += t.bytes;
  }
  for (const auto& [dtype, cb] : by_dtype) {
    out << fmt::format("  {:8} {} tensors, {:.1f} MiB\n", dtype, cb.first,
                       static_cast<double>(cb.second) / (1 << 20));
  }
  out << fmt::format("parameters:    {} total, {} in routed experts", s.total_params,
                     s.expert_params);
  if (s.active_params) out << fmt::format(", {} active per token", *s.active_params);
  out << "\n";
  if (with_tensors) {
    for (const TensorSummary& t : s.tensors) {
      out << fmt::format("  {:60} {:6} {:20} {}\n", t.name, t.dtype, shape_str(t.shape), t.bytes);
    }
  }
  if (s.problems.empty()) {
    out << "check:         tensors agree with the config\n";
  } else {
    for (const std::string& p : s.problems) out << "problem:       " << p << "\n";
  }
  return out.str();
}

std::string summary_json(const CheckpointSummary& s) {
  nlohmann::json j = {{"path", s.path},
                      {"format", s.format},
                      {"architecture", s.architecture},
                      {"hparams", s.hparams},
                      {"total_params", s.total_params},
                      {"expert_params", s.expert_params},
                      {"total_bytes", s.total_bytes},
                      {"problems", s.problems}};
  j["active_params"] = s.active_params ? nlohmann::json(*s.active_params) : nlohmann::json();
  nlohmann::json tensors = nlohmann::json::array();
  for (const TensorSummary& t : s.tensors) {
    tensors.push_back({{"name", t.name},
                       {"dtype", t.dtype},
                       {"shape", t.shape},
                       {"bytes", t.bytes},
                       {"routed_expert", t.routed_expert}});
  }
  j["tensors"] = std::move(tensors);
  return j.dump();
}

}  // namespace sy::model
