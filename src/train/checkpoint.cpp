#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "train/checkpoint_config.h"

namespace sy::train {

namespace fs = std::filesystem;

namespace {

constexpr int kStateFormatVersion = 1;
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kTrainerFile = "trainer_state.json";

// One tensor of the checkpoint: a whole Param, or expert `expert` of a stacked [E, R, C] Param
// (HF stores experts one tensor each).
struct Entry {
  std::string name;
  Param* param = nullptr;
  int64_t expert = -1;

  Shape shape() const {
    const Shape& s = param->value.shape();
    return expert < 0 ? s : Shape{s[1], s[2]};
  }
  Tensor view() const {
    const Tensor& v = param->value;
    if (expert < 0) return v;
    const int64_t rows = v.dim(1), cols = v.dim(2);
    return v.reshape({v.dim(0) * rows, cols})
        .slice_rows(expert * rows, (expert + 1) * rows)
        .reshape({rows, cols});
  }
};

// The checkpoint's tensors in a fixed order: parameters (MoeLm::params order, stacked experts
// expanded per expert), then buffers.
std::vector<Entry> checkpoint_entries(MoeLm& model, bool mixtral) {
  const LmConfig& c = model.config();
  struct Stacked {
    int64_t layer;
    std::string proj;
  };
  std::vector<std::pair<const Param*, Stacked>> stacked;
  const std::vector<moe::MoeLayer*> layers = model.moe_layers();
  size_t k = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    moe::InMemoryExperts& experts = layers[k++]->experts();
    stacked.push_back({&experts.gate_proj(), {l, mixtral ? "w1" : "gate_proj"}});
    stacked.push_back({&experts.up_proj(), {l, mixtral ? "w3" : "up_proj"}});
    stacked.push_back({&experts.down_proj(), {l, mixtral ? "w2" : "down_proj"}});
  }
  // Mixtral names the routed block "block_sparse_moe." where ours say "mlp.".
  const auto file_name = [&](const std::string& name) {
    const size_t at = name.find(".mlp.");
    if (!mixtral || at == std::string::npos) return name;
    return name.substr(0, at) + ".block_sparse_moe." + name.substr(at + 5);
  };
  const std::string moe = mixtral ? "block_sparse_moe." : "mlp.";
  std::vector<Entry> out;
  for (Param* p : model.params()) {
    const auto it =
        std::find_if(stacked.begin(), stacked.end(), [&](const auto& s) { return s.first == p; });
    if (it == stacked.end()) {
      out.push_back({file_name(p->name), p});
      continue;
    }
    for (int64_t j = 0; j < p->value.dim(0); ++j) {
      out.push_back({fmt::format("model.layers.{}.{}experts.{}.{}.weight", it->second.layer, moe, j,
                                 it->second.proj),
                     p, j});
    }
  }
  for (Param* p : model.buffers()) out.push_back({file_name(p->name), p});
  return out;
}

// "ckpt/" -> "ckpt"; refuses names that are not a folder of their own.
fs::path target_path(const std::string& dir) {
  fs::path p(dir);
  if (!p.has_filename()) p = p.parent_path();
  SY_CHECK(!p.empty() && p.filename() != "." && p.filename() != "..",
           "{}: not a folder name a checkpoint can be saved under", dir);
  // Replacing deletes the old folder: only ever an earlier checkpoint (or an empty folder).
  const fs::file_status st = fs::symlink_status(p);
  if (fs::exists(st)) {
    SY_CHECK(fs::is_directory(st),
             "{}: exists and is not a folder; not replacing it with a "
             "checkpoint",
             dir);
    SY_CHECK(fs::exists(p / "config.json") || fs::is_empty(p),
             "{}: the folder holds files but no config.json; not replacing a folder that is not "
             "a checkpoint",
             dir);
  }
  return p;
}

// Puts the complete folder `tmp` at `target`: a plain rename when target is new, else an atomic
// exchange (Linux renameat2), or, where the file system lacks it, rename the old one aside,
// rename the new one in, delete the old one. Then fsyncs the parent.
void commit_folder(const fs::path& tmp, const fs::path& target, const fs::path& parent) {
  const std::string t = target.string();
  if (!fs::exists(fs::symlink_status(target))) {
    SY_CHECK(::rename(tmp.c_str(), target.c_str()) == 0, "{}: cannot rename {} into place: {}", t,
             tmp.string(), std::strerror(errno));
  } else {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      std::error_code ec;
      fs::remove_all(tmp, ec);  // now the previous checkpoint
    } else {
      SY_CHECK(errno == EINVAL || errno == ENOSYS, "{}: cannot exchange with {}: {}", t,
               tmp.string(), std::strerror(errno));
      const fs::path old = parent / fmt::format(".{}.old.{}", target.filename().string(), getpid());
      std::error_code ec;
      fs::remove_all(old, ec);
      SY_CHECK(::rename(target.c_str(), old.c_str()) == 0, "{}: cannot move aside: {}", t,
               std::strerror(errno));
      if (::rename(tmp.c_str(), target.c_str()) != 0) {
        const int err = errno;
        (void)::rename(old.c_str(), target.c_str());
        fail("{}: cannot rename {} into place: {}", t, tmp.string(), std::strerror(err));
      }
      fs::remove_all(old, ec);
    }
  }
  io::fsync_dir(parent.string());
}

uint64_t fnv1a64(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

void write_state_files(const fs::path& dir, const io::NamedTensors& optimizer,
                       const nlohmann::json& trainer) {
  const std::string bytes =
      io::serialize_safetensors(optimizer, {{"format", "switchyard_optimizer"}});
  io::write_file_atomic((dir / kOptimizerFile).string(), bytes);
  const nlohmann::json state = {
      {"format_version", kStateFormatVersion},
      {"optimizer_bytes", bytes.size()},
      {"optimizer_fnv1a64", fmt::format("{:016x}", fnv1a64(bytes.data(), bytes.size()))},
      {"trainer", trainer}};
  io::write_file_atomic((dir / kTrainerFile).string(), state.dump(2) + "\n");
}

nlohmann::json read_json(const std::string& path) {
  const std::string text = io::read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // syntax, or a number out of range
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace

void save_model(const MoeLm& model_ref, const std::string& dir, const SaveOptions& options,
                const TrainingState* state) {
  // params() and buffers() hand out mutable pointers for the optimizer; nothing here writes.
  auto& model = const_cast<MoeLm&>(model_ref);
  const nlohmann::json config = hf_config_json(model.config(), options.dtype);
  const bool mixtral = config.at("model_type") == "mixtral";

  io::NamedTensors tensors;
  for (const Entry& e : checkpoint_entries(model, mixtral)) {
    Tensor t = e.view();
    if (e.param->trainable_param() && options.dtype != DType::F32) t = t.to(options.dtype);
    tensors.emplace_back(e.name, std::move(t));
  }

  const fs::path target = target_path(dir);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  SY_CHECK(!ec, "{}: cannot create the parent folder {}: {}", dir, parent.string(), ec.message());
  const fs::path tmp = parent / fmt::format(".{}.saving.{}", target.filename().string(), getpid());
  fs::remove_all(tmp, ec);
  SY_CHECK(fs::create_directory(tmp, ec) && !ec, "{}: cannot create the temporary folder {}: {}",
           dir, tmp.string(), ec ? ec.message() : "it already exists");
  try {
    io::write_file_atomic((tmp / "config.json").string(), config.dump(2) + "\n");
    io::write_safetensors_sharded(tmp.string(), tensors, {{"format", "pt"}});
    if (state != nullptr) write_state_files(tmp, state->optimizer, state->trainer);
    for (const auto& [name, bytes] : options.extra_files) {
      SY_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." &&
                   name != ".." && !fs::exists(tmp / name),
               "{}: extra file name '{}' is not a plain file name of its own", dir, name);
      io::write_file_atomic((tmp / name).string(), bytes);
    }
    io::fsync_dir(tmp.string());
    commit_folder(tmp, target, parent);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

std::unique_ptr<MoeLm> load_model(const std::string& dir) {
  SY_CHECK(fs::is_directory(dir), "{}: no such checkpoint folder", dir);
  const std::string config_path = (fs::path(dir) / "config.json").string();
  SY_CHECK(fs::exists(config_path), "{}: no config.json in the checkpoint folder", dir);
  const nlohmann::json config = read_json(config_path);
  const LmConfig lm = lm_config_from_hf(config, config_path);
  const bool mixtral = config.at("model_type") == "mixtral";
  auto model = std::make_unique<MoeLm>(lm);

  const io::SafetensorsCheckpoint ckpt = io::SafetensorsCheckpoint::open(dir);
  const std::string where = ckpt.files().size() == 1 ? ckpt.files()[0].name() : ckpt.index_path();
  const std::vector<Entry> entries = checkpoint_entries(*model, mixtral);
  std::set<std::string> expected;
  for (const Entry& e : entries) {
    expected.insert(e.name);
    SY_CHECK(ckpt.contains(e.name), "{}: tensor '{}' is missing (the {} config has it)", where,
             e.name, config.at("model_type").get<std::string>());
    const io::SafetensorsTensorInfo& info = ckpt.info(e.name);
    const std::string& file = ckpt.file_of(e.name).name();
    SY_CHECK(info.dtype == DType::F32 || info.dtype == DType::BF16 || info.dtype == DType::F16,
             "{}: tensor '{}' has dtype {}, expected F32, BF16 or F16", file, e.name,
             info.dtype_name);
    SY_CHECK(info.shape == e.shape(), "{}: tensor '{}' has shape {}, expected {}", file, e.name,
             shape_str(info.shape), shape_str(e.shape()));
    Tensor t = ckpt.tensor(e.name);
    if (t.dtype() != DType::F32) t = t.to_f32();
    Tensor dst = e.view();
    std::memcpy(dst.mutable_bytes(), t.bytes(), t.nbytes());
  }
  for (const std::string& name : ckpt.names()) {
    SY_CHECK(expected.count(name) != 0,
             "{}: unexpected tensor '{}': the {} config has no such parameter or buffer",
             ckpt.file_of(name).name(), name, config.at("model_type").get<std::string>());
  }
  return model;
}

void save_training_state(const std::string& dir, const io::NamedTensors& optimizer_state,
                         const nlohmann::json& trainer_state) {
  SY_CHECK(fs::is_directory(dir), "{}: no such checkpoint folder", dir);
  write_state_files(fs::path(dir), optimizer_state, trainer_state);
}

bool has_training_state(const std::string& dir) { return fs::exists(fs::path(dir) / kTrainerFile); }

TrainingState load_training_state(const std::string& dir) {
  const std::string trainer_path = (fs::path(dir) / kTrainerFile).string();
  const std::string optimizer_path = (fs::path(dir) / kOptimizerFile).string();
  SY_CHECK(fs::exists(trainer_path), "{}: no {} (no training state saved)", dir, kTrainerFile);
  const nlohmann::json j = read_json(trainer_path);
  SY_CHECK(
      j.is_object() && j.contains("format_version") &&
          j.at("format_version") == kStateFormatVersion,
      "{}: key 'format_version' is {}, expected {}", trainer_path,
      j.is_object() && j.contains("format_version") ? j.at("format_version").dump() : "missing",
      kStateFormatVersion);
  SY_CHECK(j.contains("optimizer_fnv1a64") && j.at("optimizer_fnv1a64").is_string(),
           "{}: key 'optimizer_fnv1a64' is missing or not a string", trainer_path);
  SY_CHECK(j.contains("trainer"), "{}: key 'trainer' is missing", trainer_path);
  SY_CHECK(fs::exists(optimizer_path), "{}: missing, but {} refers to it", optimizer_path,
           trainer_path);
  const io::SafetensorsFile file = io::SafetensorsFile::open(optimizer_path);
  const std::string hash =
      fmt::format("{:016x}", fnv1a64(file.storage()->data(), file.storage()->size()));
  SY_CHECK(hash == j.at("optimizer_fnv1a64").get<std::string>(),
           "{}: content hash {} does not match the {} recorded in {} (an interrupted save, or the "
           "file was changed)",
           optimizer_path, hash, j.at("optimizer_fnv1a64").get<std::string>(), trainer_path);
  TrainingState state;
  for (const io::SafetensorsTensorInfo& info : file.tensors()) {
    state.optimizer.emplace_back(info.name, file.tensor(info));
  }
  state.trainer = j.at("trainer");
  return state;
}

}  // namespace sy::train
