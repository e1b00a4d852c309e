#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "io/atomic_file.h"

namespace sy::io {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The format's dtypes in the HF library's enum order (increasing alignment), with their width.
struct DtypeEntry {
  std::string_view name;
  uint32_t bits;
  std::optional<DType> ours;
};
const std::vector<DtypeEntry>& dtype_table() {
  static const std::vector<DtypeEntry> table = {
      {"BOOL", 8, std::nullopt},
      {"F4", 4, std::nullopt},
      {"F6_E2M3", 6, std::nullopt},
      {"F6_E3M2", 6, std::nullopt},
      {"U8", 8, DType::U8},
      {"I8", 8, std::nullopt},
      {"F8_E5M2", 8, std::nullopt},
      {"F8_E4M3", 8, std::nullopt},
      {"F8_E8M0", 8, std::nullopt},
      {"F8_E4M3FNUZ", 8, std::nullopt},
      {"F8_E5M2FNUZ", 8, std::nullopt},
      {"I16", 16, std::nullopt},
      {"U16", 16, std::nullopt},
      {"F16", 16, DType::F16},
      {"BF16", 16, DType::BF16},
      {"I32", 32, DType::I32},
      {"U32", 32, std::nullopt},
      {"F32", 32, DType::F32},
      {"C64", 64, std::nullopt},
      {"F64", 64, std::nullopt},
      {"I64", 64, DType::I64},
      {"U64", 64, std::nullopt},
  };
  return table;
}

const DtypeEntry* find_dtype(std::string_view name) {
  for (const DtypeEntry& e : dtype_table()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

// A JSON value for messages: `string "F32"`, `number -3`, `array [1,-2]`, `object`, `null`.
std::string describe(const json& j) {
  if (j.is_object() || j.is_null()) return j.type_name();
  std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return fmt::format("{} {}", j.type_name(), text);
}

// Parses `text` as JSON, rejecting duplicate keys in any object (the spec disallows them;
// nlohmann would silently keep the last) and NUL bytes (valid JSON has none, and nlohmann stops
// reading at one, which would let arbitrary bytes hide behind it).
json parse_json(std::string_view text, const std::string& what) {
  const size_t nul = text.find('\0');
  SY_CHECK(nul == std::string_view::npos, "{} is not valid JSON: NUL byte at offset {}", what, nul);
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const json::parser_callback_t track = [&](int /*depth*/, json::parse_event_t event,
                                            json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && duplicate.empty() &&
               parsed.is_string()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", what, e.what());
  }
  SY_CHECK(duplicate.empty(), "{} has the key '{}' twice, expected unique keys", what, duplicate);
  return j;
}

// A non-negative JSON integer, or nullopt.
std::optional<uint64_t> as_count(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  return std::nullopt;
}

SafetensorsTensorInfo parse_entry(const std::string& file, const std::string& name,
                                  const json& entry) {
  const std::string where = fmt::format("{}: tensor '{}'", file, name);
  SY_CHECK(entry.is_object(), "{} is {}, expected an object with dtype, shape and data_offsets",
           where, describe(entry));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    SY_CHECK(entry.contains(key), "{} has no '{}'", where, key);
  }
  SafetensorsTensorInfo info;
  info.name = name;
  const json& dtype = entry.at("dtype");
  SY_CHECK(dtype.is_string(), "{}: 'dtype' is {}, expected a string", where, describe(dtype));
  info.dtype_name = dtype.get<std::string>();
  const DtypeEntry* type = find_dtype(info.dtype_name);
  if (type == nullptr) {
    std::vector<std::string_view> names;
    for (const DtypeEntry& e : dtype_table()) names.push_back(e.name);
    fail("{}: dtype '{}' is unknown, expected one of {}", where, info.dtype_name,
         fmt::join(names, " "));
  }
  info.dtype = type->ours;

  const json& shape = entry.at("shape");
  SY_CHECK(shape.is_array(), "{}: 'shape' is {}, expected an array of non-negative integers", where,
           describe(shape));
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const std::optional<uint64_t> d = as_count(shape[i]);
    SY_CHECK(d.has_value() && *d <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             "{}: shape[{}] is {}, expected a non-negative 64-bit integer", where, i,
             describe(shape[i]));
    info.shape.push_back(static_cast<int64_t>(*d));
    // Every prefix product must fit in int64: Tensor multiplies the dimensions in this order.
    SY_CHECK(!__builtin_mul_overflow(numel, *d, &numel) &&
                 numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
             "{}: shape {} has more elements than fit in 64 bits", where, shape_str(info.shape));
  }
  uint64_t bits = 0;
  SY_CHECK(!__builtin_mul_overflow(numel, uint64_t{type->bits}, &bits),
           "{}: shape {} of {} has more bytes than fit in 64 bits", where, shape_str(info.shape),
           info.dtype_name);
  SY_CHECK(bits % 8 == 0, "{}: shape {} of {} is {} bits, not a whole number of bytes", where,
           shape_str(info.shape), info.dtype_name, bits);

  const json& offsets = entry.at("data_offsets");
  SY_CHECK(
      offsets.is_array() && offsets.size() == 2 && as_count(offsets[0]) && as_count(offsets[1]),
      "{}: 'data_offsets' is {}, expected [begin, end] of non-negative integers", where,
      describe(offsets));
  info.begin = *as_count(offsets[0]);
  info.end = *as_count(offsets[1]);
  SY_CHECK(info.begin <= info.end, "{}: data_offsets [{}, {}] end before they begin", where,
           info.begin, info.end);
  SY_CHECK(info.end - info.begin == bits / 8,
           "{}: shape {} of {} needs {} bytes, data_offsets [{}, {}] hold {}", where,
           shape_str(info.shape), info.dtype_name, bits / 8, info.begin, info.end,
           info.end - info.begin);
  return info;
}

}  // namespace

int64_t SafetensorsTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // fits: the parser checked every prefix product
  return n;
}

const std::vector<std::string_view>& safetensors_dtype_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const DtypeEntry& e : dtype_table()) v.push_back(e.name);
    return v;
  }();
  return names;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  return parse(Storage::map_file(path), path);
}

SafetensorsFile SafetensorsFile::parse(std::string_view bytes, const std::string& name) {
  auto storage = Storage::allocate(bytes.size());
  if (!bytes.empty()) std::memcpy(storage->mutable_data(), bytes.data(), bytes.size());
  return parse(std::move(storage), name);
}

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<Storage> bytes, const std::string& name) {
  SY_CHECK(bytes != nullptr, "{}: no bytes to parse", name);
  SafetensorsFile f;
  f.name_ = name;
  f.storage_ = std::move(bytes);
  const uint64_t size = f.storage_->size();
  const auto* p = reinterpret_cast<const unsigned char*>(f.storage_->data());
  SY_CHECK(size >= 8, "{}: file is {} bytes, too short for the 8-byte header length", name, size);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(p[i]) << (8 * i);
  SY_CHECK(n <= kSafetensorsMaxHeaderBytes,
           "{}: header length is {} bytes, more than the limit of {}", name, n,
           kSafetensorsMaxHeaderBytes);
  SY_CHECK(n <= size - 8, "{}: header of {} bytes ends at byte {}, file has {} bytes", name, n,
           n + 8, size);
  f.header_bytes_ = n;
  const std::string_view text(reinterpret_cast<const char*>(p) + 8, n);
  SY_CHECK(!text.empty() && text.front() == '{',
           "{}: header starts with {}, expected a JSON object starting with '{{'", name,
           text.empty() ? std::string("nothing (length 0)")
                        : fmt::format("byte 0x{:02x}", static_cast<unsigned char>(text.front())));
  const json header = parse_json(text, name + ": header");
  SY_CHECK(header.is_object(), "{}: header is {}, expected an object", name, describe(header));

  const uint64_t data_size = size - 8 - n;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      SY_CHECK(value.is_object(), "{}: '__metadata__' is {}, expected an object of strings", name,
               describe(value));
      for (const auto& [mk, mv] : value.items()) {
        SY_CHECK(mv.is_string(), "{}: '__metadata__' value of '{}' is {}, expected a string", name,
                 mk, describe(mv));
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    SafetensorsTensorInfo info = parse_entry(name, key, value);
    SY_CHECK(info.end <= data_size,
             "{}: tensor '{}': data ends at byte {} of the data section, which has {} bytes", name,
             key, info.end, data_size);
    info.file_offset = 8 + n + info.begin;
    f.tensors_.push_back(std::move(info));
  }

  // The tensors must tile the data section: sorted by offset, each begins where the last ended.
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t covered = 0;
  const SafetensorsTensorInfo* last = nullptr;
  for (const SafetensorsTensorInfo& t : f.tensors_) {
    if (t.begin < covered) {
      fail("{}: tensors '{}' (bytes [{}, {})) and '{}' (bytes [{}, {})) overlap", name, last->name,
           last->begin, last->end, t.name, t.begin, t.end);
    }
    SY_CHECK(t.begin == covered,
             "{}: bytes [{}, {}) of the data section belong to no tensor (holes are not allowed)",
             name, covered, t.begin);
    covered = t.end;
    last = &t;
  }
  SY_CHECK(covered == data_size,
           "{}: bytes [{}, {}) of the data section belong to no tensor (holes are not allowed)",
           name, covered, data_size);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& t : tensors_) out.push_back(t.name);
  return out;
}

const SafetensorsTensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensorInfo& SafetensorsFile::info(std::string_view name) const {
  const SafetensorsTensorInfo* t = find(name);
  SY_CHECK(t != nullptr, "{}: no tensor '{}'", name_, name);
  return *t;
}

Tensor SafetensorsFile::tensor(std::string_view name) const { return tensor(info(name)); }

Tensor SafetensorsFile::tensor(const SafetensorsTensorInfo& info) const {
  SY_CHECK(info.dtype.has_value(),
           "{}: tensor '{}' has dtype {}, which switchyard does not load (it loads F32, F16, "
           "BF16, I32, I64 and U8; raw() gives the bytes)",
           name_, info.name, info.dtype_name);
  const DType dtype = *info.dtype;
  const std::byte* at = storage_->data() + info.file_offset;
  if (reinterpret_cast<uintptr_t>(at) % dtype_size(dtype) == 0) {
    return Tensor::view_of(storage_, info.file_offset, info.shape, dtype);
  }
  Tensor copy = Tensor::zeros(info.shape, dtype);
  if (info.nbytes() > 0) std::memcpy(copy.mutable_bytes(), at, info.nbytes());
  return copy;
}

Tensor SafetensorsFile::raw(std::string_view name) const {
  const SafetensorsTensorInfo& t = info(name);
  return Tensor::view_of(storage_, t.file_offset, {static_cast<int64_t>(t.nbytes())}, DType::U8);
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

SafetensorsIndex parse_safetensors_index(std::string_view json_text, const std::string& name) {
  const json root = parse_json(json_text, name);
  SY_CHECK(root.is_object(), "{} is {}, expected an object with 'weight_map'", name,
           describe(root));
  SafetensorsIndex index;
  if (root.contains("metadata") && !root.at("metadata").is_null()) {
    const json& meta = root.at("metadata");
    SY_CHECK(meta.is_object(), "{}: 'metadata' is {}, expected an object", name, describe(meta));
    for (const auto& [k, v] : meta.items()) {
      index.metadata[k] = v.is_string() ? v.get<std::string>()
                                        : v.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  SY_CHECK(root.contains("weight_map"), "{} has no 'weight_map'", name);
  const json& map = root.at("weight_map");
  SY_CHECK(map.is_object(), "{}: 'weight_map' is {}, expected an object of file names", name,
           describe(map));
  for (const auto& [tensor, file] : map.items()) {
    SY_CHECK(file.is_string(), "{}: weight_map['{}'] is {}, expected a file name", name, tensor,
             describe(file));
    const std::string shard = file.get<std::string>();
    SY_CHECK(!shard.empty() && shard != "." && shard != ".." &&
                 shard.find_first_of("/\\") == std::string::npos,
             "{}: weight_map['{}'] is '{}', expected a file name inside the checkpoint folder",
             name, tensor, shard);
    index.weight_map[tensor] = shard;
  }
  return index;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& path) {
  SafetensorsCheckpoint c;
  c.path_ = path;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (fs::is_directory(st)) {
    const fs::path single = fs::path(path) / "model.safetensors";
    const fs::path index = fs::path(path) / "model.safetensors.index.json";
    if (fs::is_regular_file(single, ec)) {
      c.files_.push_back(SafetensorsFile::open(single.string()));
    } else if (fs::is_regular_file(index, ec)) {
      c.index_path_ = index.string();
    } else {
      fail("{}: folder has neither model.safetensors nor model.safetensors.index.json", path);
    }
  } else if (fs::is_regular_file(st)) {
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
      c.index_path_ = path;
    } else {
      c.files_.push_back(SafetensorsFile::open(path));
    }
  } else {
    fail("{}: no such file or folder", path);
  }

  if (c.index_path_.empty()) {
    const SafetensorsFile& f = c.files_.front();
    c.metadata_ = f.metadata();
    for (const auto& t : f.tensors()) c.index_.emplace(t.name, 0);
    return c;
  }

  const std::string& idx = c.index_path_;
  const SafetensorsIndex index = parse_safetensors_index(read_file(idx), idx);
  c.metadata_ = index.metadata;
  const fs::path dir = fs::path(idx).parent_path();
  std::map<std::string, std::string> first_tensor;  // shard -> a tensor mapped to it
  for (const auto& [tensor, shard] : index.weight_map) first_tensor.emplace(shard, tensor);
  std::map<std::string, size_t> file_of_shard;
  for (const auto& [shard, tensor] : first_tensor) {
    const fs::path p = dir / shard;
    SY_CHECK(fs::is_regular_file(p, ec),
             "{}: weight_map puts tensor '{}' in '{}', which is missing", idx, tensor, shard);
    file_of_shard[shard] = c.files_.size();
    c.files_.push_back(SafetensorsFile::open(p.string()));
  }
  const auto shard_name = [&](size_t file) {
    return fs::path(c.files_[file].name()).filename().string();
  };
  for (size_t i = 0; i < c.files_.size(); ++i) {
    for (const auto& t : c.files_[i].tensors()) {
      const auto [it, fresh] = c.index_.emplace(t.name, i);
      SY_CHECK(fresh, "{}: tensor '{}' is in both '{}' and '{}'", idx, t.name,
               shard_name(it->second), shard_name(i));
      const auto listed = index.weight_map.find(t.name);
      SY_CHECK(listed != index.weight_map.end(),
               "{}: '{}' holds tensor '{}', which weight_map does not list", idx, shard_name(i),
               t.name);
    }
  }
  for (const auto& [tensor, shard] : index.weight_map) {
    const auto it = c.index_.find(tensor);
    SY_CHECK(it != c.index_.end() && it->second == file_of_shard.at(shard),
             "{}: weight_map puts tensor '{}' in '{}', which has no such tensor", idx, tensor,
             shard);
  }
  return c;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, file] : index_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(std::string_view name) const {
  const auto it = index_.find(name);
  SY_CHECK(it != index_.end(), "{}: no tensor '{}'", path_, name);
  return files_[it->second];
}

const SafetensorsTensorInfo& SafetensorsCheckpoint::info(std::string_view name) const {
  return file_of(name).info(name);
}

Tensor SafetensorsCheckpoint::tensor(std::string_view name) const {
  return file_of(name).tensor(name);
}

Tensor SafetensorsCheckpoint::raw(std::string_view name) const { return file_of(name).raw(name); }

}  // namespace sy::io
