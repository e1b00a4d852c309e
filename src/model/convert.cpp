// The converter's driver: options, type choice, and the tensor stream (plan in convert_plan.cpp,
// tokenizer in convert_vocab.cpp).
#include "model/convert.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/quant/quant.h"
#include "model/convert_plan.h"

namespace sy::model {

namespace fs = std::filesystem;

namespace {

// The types convert writes, in the order the error message lists them.
const std::vector<GgmlType>& writable_types() {
  static const std::vector<GgmlType> kTypes = {
      GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ4_0,   GgmlType::kQ4_1,
      GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ2_K,   GgmlType::kQ3_K,
      GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS};
  return kTypes;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

// Anchored glob match of pattern[pi..] against name[ni..] with '*' and '?', iterative with one
// backtrack point (the last '*'), so it is linear-ish and never recurses.
bool glob_match(std::string_view pattern, std::string_view name) {
  size_t pi = 0, ni = 0, star = std::string_view::npos, mark = 0;
  while (ni < name.size()) {
    if (pi < pattern.size() && (pattern[pi] == '?' || pattern[pi] == name[ni])) {
      ++pi;
      ++ni;
    } else if (pi < pattern.size() && pattern[pi] == '*') {
      star = pi++;
      mark = ni;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ni = ++mark;
    } else {
      return false;
    }
  }
  while (pi < pattern.size() && pattern[pi] == '*') ++pi;
  return pi == pattern.size();
}

// llama.cpp's LlamaFileType for a file whose tensors are mostly `type` (the K types as their
// "_S" mixes, the closest of llama-quantize's presets).
uint32_t file_type_of(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
      return 2;
    case GgmlType::kQ4_1:
      return 3;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ5_0:
      return 8;
    case GgmlType::kQ5_1:
      return 9;
    case GgmlType::kQ2_K:
      return 10;
    case GgmlType::kQ3_K:
      return 11;  // Q3_K_S
    case GgmlType::kQ4_K:
      return 14;  // Q4_K_S
    case GgmlType::kQ5_K:
      return 16;  // Q5_K_S
    case GgmlType::kQ6_K:
      return 18;
    case GgmlType::kIQ4_NL:
      return 25;
    case GgmlType::kIQ4_XS:
      return 30;
    case GgmlType::kBF16:
      return 32;
    default:
      fail("convert: type {} cannot be written", ggml_type_info(type).name);
  }
}

// llama-quantize's fallback for rows that are not whole blocks (llama-quant.cpp); the caller
// falls back to f16 when that does not fit either.
GgmlType block_fallback(GgmlType type) {
  switch (type) {
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kIQ4_XS:
      return GgmlType::kIQ4_NL;
    case GgmlType::kQ4_K:
      return GgmlType::kQ5_0;
    case GgmlType::kQ5_K:
      return GgmlType::kQ5_1;
    case GgmlType::kQ6_K:
      return GgmlType::kQ8_0;
    default:
      return GgmlType::kF16;
  }
}

}  // namespace

GgmlType parse_convert_type(std::string_view name) {
  std::string known;
  for (GgmlType t : writable_types()) {
    const std::string_view n = ggml_type_info(t).name;
    if (lower(n) == lower(name)) return t;
    known += (known.empty() ? "" : ", ") + std::string(n);
  }
  fail("unknown type '{}', expected one of {}", name, known);
}

std::vector<RecipeRule> parse_recipe(std::string_view text) {
  std::vector<RecipeRule> rules;
  if (trim(text).empty()) return rules;
  size_t at = 0, index = 1;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string_view entry = trim(text.substr(at, comma - at));
    const size_t eq = entry.find('=');
    SY_CHECK(eq != std::string_view::npos && entry.find('=', eq + 1) == std::string_view::npos,
             "recipe entry {} '{}' is not pattern=type", index, entry);
    const std::string_view pattern = trim(entry.substr(0, eq));
    SY_CHECK(!pattern.empty(), "recipe entry {} '{}' has an empty pattern", index, entry);
    const GgmlType type = with_context(fmt::format("recipe entry {} '{}'", index, entry), [&] {
      return parse_convert_type(trim(entry.substr(eq + 1)));
    });
    rules.push_back({std::string(pattern), type});
    at = comma + 1;
    ++index;
  }
  return rules;
}

bool recipe_matches(std::string_view pattern, std::string_view name) {
  if (pattern.find_first_of("*?") == std::string_view::npos) {
    return name.find(pattern) != std::string_view::npos;
  }
  return glob_match("*" + std::string(pattern) + "*", name);
}

GgmlType choose_tensor_type(std::string_view name, const std::vector<int64_t>& ne,
                            const ConvertOptions& options, std::string* note) {
  if (note != nullptr) note->clear();
  if (ne.size() <= 1 || name.find("ffn_gate_inp") != std::string_view::npos ||
      name.find("exp_probs_b") != std::string_view::npos) {
    return GgmlType::kF32;
  }
  GgmlType type = options.type;
  for (const RecipeRule& rule : options.recipe) {
    if (recipe_matches(rule.pattern, name)) {
      type = rule.type;
      break;
    }
  }
  const GgmlType wanted = type;
  while (ne[0] % ggml_type_info(type).block_values != 0) type = block_fallback(type);
  if (type != wanted && note != nullptr) {
    *note = fmt::format("{}: rows of {} values are not whole {}-blocks of {}; written as {}", name,
                        ne[0], ggml_type_info(wanted).block_values, ggml_type_info(wanted).name,
                        ggml_type_info(type).name);
  }
  return type;
}

namespace {

constexpr int64_t kChunkValues = int64_t{1} << 22;  // 16 MB of f32 per piece

// One tensor's bytes, produced as f32 row chunks and encoded to `type` as they come.
class TensorStream {
 public:
  TensorStream(io::GgufStreamWriter& writer, GgmlType type) : writer_(writer), type_(type) {}

  // rows: f32 [n, cols], contiguous.
  void emit(const Tensor& rows) {
    switch (type_) {
      case GgmlType::kF32:
        return append(rows);
      case GgmlType::kF16:
        return append(rows.to(DType::F16));
      case GgmlType::kBF16:
        return append(rows.to(DType::BF16));
      default: {
        const std::vector<uint8_t> q = kernels::quantize(rows, type_);
        writer_.append(std::string_view(reinterpret_cast<const char*>(q.data()), q.size()));
      }
    }
  }

  // Every row of `t` (f32, f16 or bf16, 2-D) in chunks.
  void emit_rows(const Tensor& t) {
    const int64_t rows = t.dim(0), cols = t.dim(1);
    const int64_t step = std::max<int64_t>(1, kChunkValues / std::max<int64_t>(cols, 1));
    for (int64_t r = 0; r < rows; r += step) {
      const int64_t end = std::min(rows, r + step);
      const Tensor chunk = t.slice_rows(r, end);
      const auto run = [&] { emit(chunk.dtype() == DType::F32 ? chunk : chunk.to_f32()); };
      if (step >= rows) {
        run();
      } else {  // rows in messages count from the chunk's first
        with_context(fmt::format("rows {} to {}", r, end - 1), run);
      }
    }
  }

 private:
  void append(const Tensor& t) {
    writer_.append(std::string_view(reinterpret_cast<const char*>(t.bytes()), t.nbytes()));
  }
  io::GgufStreamWriter& writer_;
  GgmlType type_;
};

// The source as 2-D [rows, last dim] (1-D: one row).
Tensor as_rows(const Tensor& t) {
  const int64_t cols = t.rank() == 0 ? 1 : t.dim(t.rank() - 1);
  return t.reshape({t.numel() / std::max<int64_t>(cols, 1), cols});
}

// llama.cpp's LlamaModel.permute: within each head, row j * half + i moves to 2i + j.
Tensor permute_heads(const Tensor& w, int64_t heads) {
  const int64_t rows = w.dim(0), cols = w.dim(1), dh = rows / heads, half = dh / 2;
  Tensor out = Tensor::empty({rows, cols});
  const float* src = w.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < 2; ++j) {
      for (int64_t i = 0; i < half; ++i) {
        std::memcpy(dst + (h * dh + 2 * i + j) * cols, src + (h * dh + j * half + i) * cols,
                    static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
  return out;
}

// kv_b [H * (nope + v), r] split per head: keys -> [H * r, nope] (each head's nope rows
// transposed), values -> [H * v, r].
Tensor split_kv_b(const Tensor& w, const convert::PlannedTensor& p) {
  const int64_t h = p.heads, r = w.dim(1), per_head = w.dim(0) / h, nope = p.nope;
  const int64_t vd = per_head - nope;
  const float* src = w.data<float>();
  if (p.transform == convert::Transform::kKvbKeys) {
    Tensor out = Tensor::empty({h * r, nope});
    float* dst = out.mutable_data<float>();
    for (int64_t head = 0; head < h; ++head) {
      for (int64_t i = 0; i < nope; ++i) {
        for (int64_t k = 0; k < r; ++k) {
          dst[(head * r + k) * nope + i] = src[(head * per_head + i) * r + k];
        }
      }
    }
    return out;
  }
  Tensor out = Tensor::empty({h * vd, r});
  for (int64_t head = 0; head < h; ++head) {
    std::memcpy(out.mutable_data<float>() + head * vd * r, src + (head * per_head + nope) * r,
                static_cast<size_t>(vd * r) * sizeof(float));
  }
  return out;
}

// Errors name the output tensor and the source being read.
void produce(const io::SafetensorsCheckpoint& ckpt, const convert::PlannedTensor& p,
             TensorStream& stream) {
  using convert::Transform;
  for (const std::string& s : p.sources) {
    with_context(fmt::format("{}: tensor '{}' from '{}'", ckpt.path(), p.name, s), [&] {
      switch (p.transform) {
        case Transform::kCopy:
        case Transform::kStack:
          return stream.emit_rows(as_rows(ckpt.tensor(s)));
        case Transform::kPermuteHeads:
          return stream.emit_rows(permute_heads(ckpt.tensor(s).to_f32(), p.heads));
        case Transform::kKvbKeys:
        case Transform::kKvbValues:
          return stream.emit_rows(split_kv_b(ckpt.tensor(s).to_f32(), p));
      }
    });
  }
}

std::string checkpoint_path(const ModelConfig& config) {
  const fs::path dir = fs::path(config.source).parent_path();
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  SY_CHECK(fs::exists(index) || fs::exists(single),
           "{}: no model.safetensors or model.safetensors.index.json in the folder", dir.string());
  return fs::exists(single) ? single.string() : dir.string();
}

HfConfig read_hf_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SY_CHECK(in.good(), "{}: cannot open", path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  SY_CHECK(!json.is_discarded(), "{}: not valid JSON", path);
  return HfConfig(std::move(json), path);
}

// Every source exists with the planned shape and a float dtype.
void check_sources(const io::SafetensorsCheckpoint& ckpt,
                   const std::vector<convert::PlannedTensor>& plan) {
  for (const convert::PlannedTensor& p : plan) {
    for (const std::string& s : p.sources) {
      SY_CHECK(ckpt.contains(s), "{}: tensor '{}' is missing", ckpt.path(), s);
      const io::SafetensorsTensorInfo& info = ckpt.info(s);
      SY_CHECK(info.shape == p.source_shape, "{}: tensor '{}' has shape {}, expected {}",
               ckpt.path(), s, shape_str(info.shape), shape_str(p.source_shape));
      const bool float_type =
          info.dtype == DType::F32 || info.dtype == DType::F16 || info.dtype == DType::BF16;
      SY_CHECK(float_type, "{}: tensor '{}' has dtype {}, expected F32, F16 or BF16", ckpt.path(),
               s, info.dtype_name);
    }
  }
}

void note(ConvertReport& report, std::string text) {
  log_warn("{}", text);
  report.notes.push_back(std::move(text));
}

}  // namespace

ConvertReport convert_to_gguf(const std::string& hf_path, const std::string& out_path,
                              const ConvertOptions& options) {
  const ModelConfig config = load_config(hf_path);
  SY_CHECK(!config.gguf,
           "{}: convert reads a Hugging Face folder (config.json + safetensors), not a GGUF file",
           hf_path);
  const HfConfig hf = read_hf_config(config.source);
  const io::SafetensorsCheckpoint ckpt = io::SafetensorsCheckpoint::open(checkpoint_path(config));
  const std::vector<convert::PlannedTensor> plan =
      convert::plan_tensors(config, [&](const std::string& name) { return ckpt.contains(name); });
  check_sources(ckpt, plan);

  ConvertReport report;
  report.arch = convert::gguf_arch(config);
  std::vector<std::string> notes;
  const fs::path folder = fs::path(config.source).parent_path();
  std::string name = fs::absolute(folder).lexically_normal().filename().string();
  if (name.empty())
    name = fs::absolute(folder).lexically_normal().parent_path().filename().string();
  std::vector<io::GgufKv> kvs =
      convert::gguf_metadata(config, hf, name, file_type_of(options.type), notes);
  if (options.tokenizer) {
    std::vector<io::GgufKv> vocab = convert::tokenizer_metadata(folder.string(), config, hf, notes);
    report.tokenizer = !vocab.empty();
    for (io::GgufKv& kv : vocab) kvs.push_back(std::move(kv));
  }

  std::set<std::string> used;
  std::vector<io::GgufTensorDecl> decls;
  std::vector<GgmlType> types;
  for (const convert::PlannedTensor& p : plan) {
    used.insert(p.sources.begin(), p.sources.end());
    std::vector<int64_t> ne(p.shape.rbegin(), p.shape.rend());
    std::string fallback;
    const GgmlType type = choose_tensor_type(p.name, ne, options, &fallback);
    if (!fallback.empty()) notes.push_back(std::move(fallback));
    decls.push_back({p.name, type, std::move(ne)});
    types.push_back(type);
    ++report.tensors_per_type[std::string(ggml_type_info(type).name)];
  }
  std::vector<std::string> unused;
  for (const std::string& n : ckpt.names()) {
    if (used.count(n) == 0) unused.push_back(n);
  }
  if (!unused.empty()) {
    notes.push_back(fmt::format(
        "{}: {} tensor(s) have no place in the GGUF and are left out: {}{}", ckpt.path(),
        unused.size(),
        fmt::join(unused.begin(), unused.begin() + std::min<size_t>(unused.size(), 5), ", "),
        unused.size() > 5 ? ", ..." : ""));
  }
  for (std::string& n : notes) note(report, std::move(n));

  const bool tty = options.progress && ::isatty(STDERR_FILENO) != 0;
  io::GgufStreamWriter writer(out_path, kvs, decls);
  for (size_t i = 0; i < plan.size(); ++i) {
    const convert::PlannedTensor& p = plan[i];
    if (tty) {
      std::fprintf(stderr, "\r\033[K[%zu/%zu] %s %s %s", i + 1, plan.size(), p.name.c_str(),
                   std::string(ggml_type_info(types[i]).name).c_str(), shape_str(p.shape).c_str());
      std::fflush(stderr);
    }
    TensorStream stream(writer, types[i]);
    produce(ckpt, p, stream);
  }
  writer.finish();
  if (tty) std::fprintf(stderr, "\r\033[K");
  report.tensors = plan.size();
  report.bytes = fs::file_size(out_path);
  return report;
}

}  // namespace sy::model
