// Writers for safetensors files and sharded checkpoint folders (see io/safetensors.h).
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace sy::io {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The format's name for our dtype, or nullopt when it has none.
std::optional<std::string_view> format_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    case DType::U8:
      return "U8";
    default:
      return std::nullopt;
  }
}

// Position in the HF library's dtype order (increasing alignment).
size_t dtype_rank(DType dtype) {
  const auto& names = safetensors_dtype_names();
  return static_cast<size_t>(std::find(names.begin(), names.end(), *format_name(dtype)) -
                             names.begin());
}

// "<prefix>-DDDDD-of-DDDDD.safetensors"
bool is_shard_name(const std::string& file, const std::string& prefix) {
  const std::string head = prefix + "-";
  const std::string tail = ".safetensors";
  if (file.size() != head.size() + 14 + tail.size() || file.rfind(head, 0) != 0 ||
      file.compare(file.size() - tail.size(), tail.size(), tail) != 0) {
    return false;
  }
  const std::string mid = file.substr(head.size(), 14);  // "00001-of-00003"
  const auto digits = [&](size_t at) {
    return std::all_of(mid.begin() + at, mid.begin() + at + 5,
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(0) && mid.compare(5, 4, "-of-") == 0 && digits(9);
}

// A file's bytes: `head` (the length, the JSON header and its padding), then the data of the
// tensors in `order`.
struct Layout {
  std::string head;
  std::vector<size_t> order;
};

Layout plan(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
            const std::string& where) {
  std::set<std::string_view> seen;
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    SY_CHECK(name != "__metadata__", "{}: '__metadata__' cannot name a tensor", where);
    SY_CHECK(seen.insert(name).second, "{}: tensor '{}' is given twice", where, name);
    SY_CHECK(t.defined(), "{}: tensor '{}' is undefined", where, name);
    SY_CHECK(format_name(t.dtype()).has_value(),
             "{}: tensor '{}' has dtype {}, expected f32, f16, bf16, i32, i64 or u8", where, name,
             dtype_name(t.dtype()));
    order[i] = i;
  }
  // As the HF library: largest alignment first, then by name; keeps every element aligned.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t ra = dtype_rank(tensors[a].second.dtype());
    const size_t rb = dtype_rank(tensors[b].second.dtype());
    return ra != rb ? ra > rb : tensors[a].first < tensors[b].first;
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    nlohmann::ordered_json entry;
    entry["dtype"] = *format_name(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + t.nbytes()};
    offset += t.nbytes();
    header[tensors[i].first] = std::move(entry);
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: a tensor name or metadata string is not valid UTF-8 ({})", where, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  Layout out{std::string(8, '\0'), std::move(order)};
  const uint64_t n = text.size();
  for (size_t i = 0; i < 8; ++i) out.head[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.head += text;
  return out;
}

std::string_view data_of(const Tensor& t) {
  return t.nbytes() == 0 ? std::string_view()
                         : std::string_view(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
}
}  // namespace

std::string serialize_safetensors(const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  Layout layout = plan(tensors, metadata, "safetensors writer");
  size_t bytes = layout.head.size();
  for (const auto& named : tensors) bytes += named.second.nbytes();
  std::string out = std::move(layout.head);
  out.reserve(bytes);
  for (size_t i : layout.order) out += data_of(tensors[i].second);
  return out;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const Layout layout = plan(tensors, metadata, path);
  AtomicFile file(path);
  file.write(layout.head);
  for (size_t i : layout.order) file.write(data_of(tensors[i].second));
  file.commit();
}

std::vector<std::string> write_safetensors_sharded(
    const std::string& dir, const NamedTensors& tensors,
    const std::map<std::string, std::string>& metadata, const ShardOptions& options) {
  SY_CHECK(options.max_shard_bytes > 0, "{}: max_shard_bytes is 0, expected at least 1", dir);
  SY_CHECK(!options.prefix.empty() && options.prefix.find_first_of("/\\") == std::string::npos,
           "{}: shard prefix '{}' is not a plain file name", dir, options.prefix);
  std::error_code ec;
  fs::create_directories(dir, ec);
  SY_CHECK(fs::is_directory(dir), "{}: cannot create the folder: {}", dir, ec.message());

  std::vector<NamedTensors> shards(1);
  uint64_t in_shard = 0;
  uint64_t total = 0;
  for (const auto& named : tensors) {
    const uint64_t bytes = named.second.nbytes();
    if (!shards.back().empty() && in_shard + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(named);
    in_shard += bytes;
    total += bytes;
  }

  const fs::path folder(dir);
  const std::string single = options.prefix + ".safetensors";
  const std::string index_name = options.prefix + ".safetensors.index.json";
  std::vector<std::string> written;
  std::set<std::string> keep;
  if (shards.size() == 1) {
    written.push_back((folder / single).string());
    write_safetensors(written.back(), shards.front(), metadata);
    keep.insert(single);
  } else {
    json weight_map = json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
      const std::string file =
          fmt::format("{}-{:05d}-of-{:05d}.safetensors", options.prefix, s + 1, shards.size());
      written.push_back((folder / file).string());
      write_safetensors(written.back(), shards[s], metadata);
      keep.insert(file);
      for (const auto& named : shards[s]) weight_map[named.first] = file;
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    written.push_back((folder / index_name).string());
    write_file_atomic(written.back(), index.dump(2) + "\n");
    keep.insert(index_name);
  }
  // Remove what an earlier save with this prefix left and this one did not rewrite.
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string file = entry.path().filename().string();
    const bool ours = file == single || file == index_name || is_shard_name(file, options.prefix);
    if (ours && keep.count(file) == 0) fs::remove(entry.path(), ec);
  }
  return written;
}

}  // namespace sy::io
