#include "model/weights.h"

#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/qmatmul.h"
#include "kernels/quant/quant.h"

namespace sy::model {

namespace fs = std::filesystem;

namespace {

void check_shape(const std::string& path, const std::string& name, const Shape& got,
                 const Shape& expected) {
  SY_CHECK(got == expected, "{}: tensor '{}' has shape {}, expected {}", path, name, shape_str(got),
           shape_str(expected));
}

Tensor as_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t : t.to_f32(); }

class SafetensorsWeights final : public WeightReader {
 public:
  explicit SafetensorsWeights(const std::string& path)
      : ckpt_(io::SafetensorsCheckpoint::open(path)) {}
  const std::string& path() const override { return ckpt_.path(); }
  bool has(const std::string& name) const override { return ckpt_.contains(name); }
  Tensor read(const std::string& name, const Shape& shape) const override {
    SY_CHECK(ckpt_.contains(name), "{}: tensor '{}' is missing", ckpt_.path(), name);
    const Tensor t = ckpt_.tensor(name);
    check_shape(ckpt_.path(), name, t.shape(), shape);
    return as_f32(t);
  }
  // f16 and bf16 matrices stay as stored (views of the mapped file): widened to f32 they would
  // take twice the memory, and their products widen each row as they read it.
  Linear read_linear(const std::string& name, const Shape& shape) const override {
    SY_CHECK(ckpt_.contains(name), "{}: tensor '{}' is missing", ckpt_.path(), name);
    const Tensor t = ckpt_.tensor(name);
    if (t.dtype() != DType::F16 && t.dtype() != DType::BF16) {
      return WeightReader::read_linear(name, shape);
    }
    check_shape(ckpt_.path(), name, t.shape(), shape);
    const int64_t cols = shape.back();
    const Tensor bytes = Tensor::view_of(t.storage(), t.byte_offset(),
                                         {static_cast<int64_t>(t.nbytes())}, DType::U8);
    return Linear::packed(t.dtype() == DType::F16 ? GgmlType::kF16 : GgmlType::kBF16,
                          t.numel() / cols, cols, bytes);
  }

 private:
  io::SafetensorsCheckpoint ckpt_;
};

// Whether to reorder a mapped checkpoint's quantized matrices into the P16 layout, which copies
// them into the process's own memory: only when the copies fit in less than 3/4 of the memory
// available now. A model larger than that keeps running from the page cache instead of failing.
bool repack_fits(const io::GgufSet& set) {
  if (!kernels::p16_pays()) return false;
  uint64_t total = 0;
  for (const auto& [part, info] : set.tensors()) total += info->nbytes;
  const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return false;
  return static_cast<double>(total) < 0.75 * static_cast<double>(pages) * static_cast<double>(page);
}

class GgufWeights final : public WeightReader {
 public:
  explicit GgufWeights(const std::string& path)
      : set_(io::GgufSet::open(path)), path_(path), repack_(repack_fits(set_)) {}
  const std::string& path() const override { return path_; }
  bool has(const std::string& name) const override { return set_.find_tensor(name) != nullptr; }
  Tensor read(const std::string& name, const Shape& shape) const override {
    const io::GgufTensorInfo* info = set_.find_tensor(name);
    SY_CHECK(info != nullptr, "{}: tensor '{}' is missing", path_, name);
    check_shape(path_, name, info->shape(), shape);
    switch (info->type) {
      case GgmlType::kF32:
      case GgmlType::kF16:
      case GgmlType::kBF16:
        return as_f32(set_.tensor(name));
      default:
        break;
    }
    SY_CHECK(kernels::can_dequantize(info->type),
             "{}: tensor '{}' has type {}, which cannot be "
             "read",
             path_, name, ggml_type_info(info->type).name);
    const Tensor raw = set_.raw(name);
    return kernels::dequantize(raw.data<uint8_t>(), raw.nbytes(), info->type, info->shape());
  }
  Linear read_linear(const std::string& name, const Shape& shape) const override {
    const io::GgufTensorInfo* info = set_.find_tensor(name);
    SY_CHECK(info != nullptr, "{}: tensor '{}' is missing", path_, name);
    // f32 as a view of the file; f16, bf16 and the block types packed as stored (see
    // SafetensorsWeights::read_linear).
    if (info->type == GgmlType::kF32) return WeightReader::read_linear(name, shape);
    check_shape(path_, name, info->shape(), shape);
    SY_CHECK(kernels::can_dequantize(info->type),
             "{}: tensor '{}' has type {}, which cannot be "
             "read",
             path_, name, ggml_type_info(info->type).name);
    const int64_t cols = shape.back();
    return Linear::packed(info->type, info->numel() / cols, cols, set_.raw(name), repack_);
  }

 private:
  io::GgufSet set_;
  std::string path_;
  bool repack_;
};

}  // namespace

Linear WeightReader::read_linear(const std::string& name, const Shape& shape) const {
  const Tensor t = read(name, shape);
  const int64_t cols = shape.back();
  return Linear::dense(t.reshape({t.numel() / cols, cols}));
}

std::unique_ptr<WeightReader> open_weights(const std::string& path, const ModelConfig& config) {
  if (config.gguf) return std::make_unique<GgufWeights>(path);
  fs::path p(path);
  if (p.filename() == "config.json") p = p.parent_path();
  if (fs::is_directory(p)) {
    const fs::path index = p / "model.safetensors.index.json";
    const fs::path single = p / "model.safetensors";
    SY_CHECK(fs::exists(index) || fs::exists(single),
             "{}: no model.safetensors or model.safetensors.index.json in the folder", path);
    return std::make_unique<SafetensorsWeights>(fs::exists(index) ? p.string() : single.string());
  }
  return std::make_unique<SafetensorsWeights>(p.string());
}

LayerWeights::LayerWeights(const WeightReader& reader, const ModelConfig& config, int64_t layer)
    : reader_(reader), config_(config), layer_(layer) {}

std::string LayerWeights::name(const std::string& hf, const std::string& gguf) const {
  return config_.gguf ? "blk." + std::to_string(layer_) + "." + gguf
                      : "model.layers." + std::to_string(layer_) + "." + hf;
}

bool LayerWeights::has(const std::string& hf, const std::string& gguf) const {
  return reader_.has(name(hf, gguf));
}

Tensor LayerWeights::read(const std::string& hf, const std::string& gguf,
                          const Shape& shape) const {
  return reader_.read(name(hf, gguf), shape);
}

Linear LayerWeights::linear(const std::string& hf, const std::string& gguf,
                            const Shape& shape) const {
  return reader_.read_linear(name(hf, gguf), shape);
}

std::vector<Linear> LayerWeights::experts(const std::string& which, int64_t rows,
                                          int64_t cols) const {
  const int64_t e = config_.num_experts;
  std::vector<Linear> out;
  out.reserve(static_cast<size_t>(e));
  if (config_.gguf) {
    const std::string stacked = name("", "ffn_" + which + "_exps.weight");
    const auto one = [&](int64_t j) {
      return name("", "ffn_" + which + "." + std::to_string(j) + ".weight");
    };
    const std::string fused = name("", "ffn_gate_up_exps.weight");
    if (which != "down" && !reader_.has(stacked) && reader_.has(fused)) {
      // Expert j's gate rows, then its up rows: [E, 2 rows, cols], read once for both.
      if (!gate_up_.defined()) gate_up_ = reader_.read_linear(fused, {e, 2 * rows, cols});
      const int64_t skip = which == "gate" ? 0 : rows;
      for (int64_t j = 0; j < e; ++j) {
        out.push_back(gate_up_.slice_rows(2 * j * rows + skip, 2 * j * rows + skip + rows));
      }
      return out;
    }
    if (reader_.has(stacked) || !reader_.has(one(0))) {
      const Linear all = reader_.read_linear(stacked, {e, rows, cols});
      for (int64_t j = 0; j < e; ++j) out.push_back(all.slice_rows(j * rows, (j + 1) * rows));
      return out;
    }
    for (int64_t j = 0; j < e; ++j) out.push_back(reader_.read_linear(one(j), {rows, cols}));
    return out;
  }
  const HfNames& n = config_.hf;
  const std::string& proj = which == "gate" ? n.expert_gate
                            : which == "up" ? n.expert_up
                                            : n.expert_down;
  for (int64_t j = 0; j < e; ++j) {
    out.push_back(
        linear(n.moe + "experts." + std::to_string(j) + "." + proj + ".weight", "", {rows, cols}));
  }
  return out;
}

}  // namespace sy::model
