// GGUF metadata values and the lookups of GgufFile and GgufSet. Parsing lives in
// gguf_reader.cpp, split sets in gguf_split.cpp, writing in gguf_writer.cpp.
#include "io/gguf.h"

#include <array>
#include <utility>

namespace sy::io {

std::string_view gguf_value_type_name(GgufValueType type) {
  static constexpr std::array<std::string_view, 13> kNames = {
      "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
      "bool", "string", "array", "u64", "i64", "f64"};
  const auto id = static_cast<uint32_t>(type);
  return id < kNames.size() ? kNames[id] : std::string_view("unknown");
}

GgufValue GgufValue::array(GgufValueType element_type, std::vector<GgufValue> items) {
  for (size_t i = 0; i < items.size(); ++i) {
    SY_CHECK(items[i].type() == element_type, "gguf array of {}: item {} is {}",
             gguf_value_type_name(element_type), i, items[i].describe());
  }
  return GgufValue(Variant(std::in_place_index<9>, Array{element_type, std::move(items)}));
}

GgufValue GgufValue::strings(const std::vector<std::string>& values) {
  std::vector<GgufValue> items;
  items.reserve(values.size());
  for (const std::string& v : values) items.push_back(string(v));
  return array(GgufValueType::kString, std::move(items));
}

GgufValue GgufValue::f32s(const std::vector<float>& values) {
  std::vector<GgufValue> items;
  items.reserve(values.size());
  for (float v : values) items.push_back(f32(v));
  return array(GgufValueType::kF32, std::move(items));
}

GgufValue GgufValue::i32s(const std::vector<int32_t>& values) {
  std::vector<GgufValue> items;
  items.reserve(values.size());
  for (int32_t v : values) items.push_back(i32(v));
  return array(GgufValueType::kI32, std::move(items));
}

bool GgufValue::is_integer() const {
  return std::visit(
      [](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        return std::is_integral_v<V> && !std::is_same_v<V, bool>;
      },
      v_);
}

void GgufValue::type_error(std::string_view what, std::string_view expected) const {
  fail("{} is {}, expected {}", what, describe(), expected);
}

namespace {
template <typename T>
constexpr std::string_view int_name() {
  if constexpr (std::is_same_v<T, uint8_t>) return "u8";
  if constexpr (std::is_same_v<T, int8_t>) return "i8";
  if constexpr (std::is_same_v<T, uint16_t>) return "u16";
  if constexpr (std::is_same_v<T, int16_t>) return "i16";
  if constexpr (std::is_same_v<T, uint32_t>) return "u32";
  if constexpr (std::is_same_v<T, int32_t>) return "i32";
  if constexpr (std::is_same_v<T, uint64_t>) return "u64";
  if constexpr (std::is_same_v<T, int64_t>) return "i64";
}
}  // namespace

template <typename T>
T GgufValue::as_int(std::string_view what) const {
  bool fits = false;
  T out = 0;
  const bool integer = std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>) {
          fits = std::in_range<T>(v);
          // An i8 value is a number: sign extension is what we want.
          if (fits) out = static_cast<T>(v);  // NOLINT(bugprone-signed-char-misuse)
          return true;
        }
        return false;
      },
      v_);
  if (!integer) type_error(what, fmt::format("an integer ({})", int_name<T>()));
  if (!fits) {
    type_error(what, fmt::format("a value that fits {} ({}..{})", int_name<T>(),
                                 static_cast<int64_t>(std::numeric_limits<T>::min()),
                                 std::numeric_limits<T>::max()));
  }
  return out;
}

float GgufValue::as_f32(std::string_view what) const {
  if (const auto* f = std::get_if<float>(&v_)) return *f;
  if (const auto* d = std::get_if<double>(&v_)) return static_cast<float>(*d);
  type_error(what, "f32 or f64");
}

double GgufValue::as_f64(std::string_view what) const {
  if (const auto* d = std::get_if<double>(&v_)) return *d;
  if (const auto* f = std::get_if<float>(&v_)) return *f;
  type_error(what, "f64 or f32");
}

bool GgufValue::as_bool(std::string_view what) const {
  if (const auto* b = std::get_if<bool>(&v_)) return *b;
  type_error(what, "bool");
}

const std::string& GgufValue::as_string(std::string_view what) const {
  if (const auto* s = std::get_if<std::string>(&v_)) return *s;
  type_error(what, "string");
}

const GgufValue::Array& GgufValue::as_array(std::string_view what) const {
  if (const auto* a = std::get_if<Array>(&v_)) return *a;
  type_error(what, "array");
}

std::vector<std::string> GgufValue::as_strings(std::string_view what) const {
  const Array& a = as_array(what);
  if (a.type != GgufValueType::kString) type_error(what, "array of string");
  std::vector<std::string> out;
  out.reserve(a.items.size());
  for (const GgufValue& v : a.items) out.push_back(std::get<std::string>(v.v_));
  return out;
}

std::vector<float> GgufValue::as_f32s(std::string_view what) const {
  const Array& a = as_array(what);
  if (a.type != GgufValueType::kF32 && a.type != GgufValueType::kF64) {
    type_error(what, "array of f32 or f64");
  }
  std::vector<float> out;
  out.reserve(a.items.size());
  for (const GgufValue& v : a.items) out.push_back(v.as_f32());
  return out;
}

template <typename T>
std::vector<T> GgufValue::as_ints(std::string_view what) const {
  const Array& a = as_array(what);
  std::vector<T> out;
  out.reserve(a.items.size());
  for (size_t i = 0; i < a.items.size(); ++i) {
    out.push_back(a.items[i].as_int<T>(fmt::format("{}[{}]", what, i)));
  }
  return out;
}

#define SY_GGUF_INSTANTIATE(T)                             \
  template T GgufValue::as_int<T>(std::string_view) const; \
  template std::vector<T> GgufValue::as_ints<T>(std::string_view) const;
SY_GGUF_INSTANTIATE(uint8_t)
SY_GGUF_INSTANTIATE(int8_t)
SY_GGUF_INSTANTIATE(uint16_t)
SY_GGUF_INSTANTIATE(int16_t)
SY_GGUF_INSTANTIATE(uint32_t)
SY_GGUF_INSTANTIATE(int32_t)
SY_GGUF_INSTANTIATE(uint64_t)
SY_GGUF_INSTANTIATE(int64_t)
#undef SY_GGUF_INSTANTIATE

std::string GgufValue::describe() const {
  return std::visit(
      [&](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        const std::string_view type_name = gguf_value_type_name(type());
        if constexpr (std::is_same_v<V, Array>) {
          return fmt::format("array of {} {}", v.items.size(), gguf_value_type_name(v.type));
        } else if constexpr (std::is_same_v<V, std::string>) {
          constexpr size_t kShown = 40;
          return v.size() <= kShown
                     ? fmt::format("string '{}'", v)
                     : fmt::format("string '{}...' ({} bytes)", v.substr(0, kShown), v.size());
        } else if constexpr (std::is_same_v<V, bool>) {
          return v ? "bool true" : "bool false";
        } else if constexpr (std::is_same_v<V, uint8_t> || std::is_same_v<V, int8_t>) {
          return fmt::format("{} {}", type_name, static_cast<int>(v));
        } else {
          return fmt::format("{} {}", type_name, v);
        }
      },
      v_);
}

bool GgufValue::Array::operator==(const Array& other) const {
  return type == other.type && items == other.items;
}

bool GgufValue::operator==(const GgufValue& other) const { return v_ == other.v_; }

// ---- GgufFile lookups ----

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* v = find(key);
  SY_CHECK(v != nullptr, "{}: key '{}' not found", name_, key);
  return *v;
}

namespace {
std::string key_what(const std::string& file, std::string_view key) {
  return fmt::format("{}: key '{}'", file, key);
}
}  // namespace

uint32_t GgufFile::get_u32(std::string_view key) const {
  return get(key).as_u32(key_what(name_, key));
}
int32_t GgufFile::get_i32(std::string_view key) const {
  return get(key).as_i32(key_what(name_, key));
}
uint64_t GgufFile::get_u64(std::string_view key) const {
  return get(key).as_u64(key_what(name_, key));
}
int64_t GgufFile::get_i64(std::string_view key) const {
  return get(key).as_i64(key_what(name_, key));
}
float GgufFile::get_f32(std::string_view key) const {
  return get(key).as_f32(key_what(name_, key));
}
double GgufFile::get_f64(std::string_view key) const {
  return get(key).as_f64(key_what(name_, key));
}
bool GgufFile::get_bool(std::string_view key) const {
  return get(key).as_bool(key_what(name_, key));
}
const std::string& GgufFile::get_string(std::string_view key) const {
  return get(key).as_string(key_what(name_, key));
}
std::vector<std::string> GgufFile::get_strings(std::string_view key) const {
  return get(key).as_strings(key_what(name_, key));
}
std::vector<float> GgufFile::get_f32s(std::string_view key) const {
  return get(key).as_f32s(key_what(name_, key));
}
std::vector<int32_t> GgufFile::get_i32s(std::string_view key) const {
  return get(key).as_ints<int32_t>(key_what(name_, key));
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // the reader checked that this does not overflow
  return n;
}

Shape GgufTensorInfo::shape() const { return Shape(ne.rbegin(), ne.rend()); }

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor_info(std::string_view name) const {
  const GgufTensorInfo* info = find_tensor(name);
  SY_CHECK(info != nullptr, "{}: no tensor named '{}' ({} tensors in the file)", name_, name,
           tensors_.size());
  return *info;
}

Tensor GgufFile::raw(std::string_view name) const { return raw(tensor_info(name)); }

Tensor GgufFile::raw(const GgufTensorInfo& info) const {
  return Tensor::view_of(storage_, info.file_offset, {static_cast<int64_t>(info.nbytes)},
                         DType::U8);
}

Tensor GgufFile::tensor(std::string_view name) const { return tensor(tensor_info(name)); }

Tensor GgufFile::tensor(const GgufTensorInfo& info) const {
  DType dtype;
  switch (info.type) {
    case GgmlType::kF32:
      dtype = DType::F32;
      break;
    case GgmlType::kF16:
      dtype = DType::F16;
      break;
    case GgmlType::kBF16:
      dtype = DType::BF16;
      break;
    case GgmlType::kI32:
      dtype = DType::I32;
      break;
    case GgmlType::kI64:
      dtype = DType::I64;
      break;
    default:
      fail(
          "{}: tensor '{}' is {}, expected f32, f16, bf16, i32 or i64 for a typed view (read "
          "block-quantized data with raw())",
          name_, info.name, ggml_type_info(info.type).name);
  }
  return Tensor::view_of(storage_, info.file_offset, info.shape(), dtype);
}

}  // namespace sy::io
