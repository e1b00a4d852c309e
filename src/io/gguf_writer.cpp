// GgufWriter: GGUF v3, little-endian, kvs and tensors in the order added.
#include <bit>
#include <cstring>

#include "io/atomic_file.h"
#include "io/gguf.h"

namespace sy::io {

static_assert(std::endian::native == std::endian::little,
              "the GGUF writer stores host-order values; GGUF files are little-endian");

namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

void put_value(std::string& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::kU8:
      return put(out, v.as_int<uint8_t>());
    case GgufValueType::kI8:
      return put(out, v.as_int<int8_t>());
    case GgufValueType::kU16:
      return put(out, v.as_int<uint16_t>());
    case GgufValueType::kI16:
      return put(out, v.as_int<int16_t>());
    case GgufValueType::kU32:
      return put(out, v.as_int<uint32_t>());
    case GgufValueType::kI32:
      return put(out, v.as_int<int32_t>());
    case GgufValueType::kU64:
      return put(out, v.as_int<uint64_t>());
    case GgufValueType::kI64:
      return put(out, v.as_int<int64_t>());
    case GgufValueType::kF32:
      return put(out, v.as_f32());
    case GgufValueType::kF64:
      return put(out, v.as_f64());
    case GgufValueType::kBool:
      return put<uint8_t>(out, v.as_bool() ? 1 : 0);
    case GgufValueType::kString:
      return put_string(out, v.as_string());
    case GgufValueType::kArray: {
      const GgufValue::Array& a = v.as_array();
      put(out, static_cast<uint32_t>(a.type));
      put<uint64_t>(out, a.items.size());
      for (const GgufValue& item : a.items) put_value(out, item);
      return;
    }
  }
}

uint64_t align_up(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

}  // namespace

void GgufWriter::add_kv(std::string key, GgufValue value) {
  for (const GgufKv& kv : kvs_) {
    SY_CHECK(kv.key != key, "gguf writer: key '{}' added twice", key);
  }
  if (key == "general.alignment") {
    SY_CHECK(value.type() == GgufValueType::kU32,
             "gguf writer: key 'general.alignment' is {}, "
             "expected u32",
             value.describe());
    const uint32_t alignment = value.as_u32();
    SY_CHECK(alignment != 0 && alignment % 8 == 0,
             "gguf writer: key 'general.alignment' is {}, expected a nonzero multiple of 8",
             alignment);
    alignment_ = alignment;
  }
  kvs_.push_back({std::move(key), std::move(value)});
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, Tensor data) {
  for (const Entry& e : tensors_) {
    SY_CHECK(e.name != name, "gguf writer: tensor '{}' added twice", name);
  }
  const GgmlTypeInfo& info = ggml_type_info(type);
  SY_CHECK(ne.size() <= 4, "gguf writer: tensor '{}' has {} dims ne {}, expected at most 4", name,
           ne.size(), ne);
  for (int64_t n : ne) {
    SY_CHECK(n >= 0, "gguf writer: tensor '{}' has ne {}, expected sizes >= 0", name, ne);
  }
  const int64_t ne0 = ne.empty() ? 1 : ne[0];
  SY_CHECK(ne0 % info.block_values == 0,
           "gguf writer: tensor '{}' ({}) has ne[0] = {}, expected a multiple of the block size {}",
           name, info.name, ne0, info.block_values);
  uint64_t bytes = 0;
  bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(ne0 / info.block_values),
                                         static_cast<uint64_t>(info.block_bytes), &bytes);
  for (size_t d = 1; d < ne.size() && !overflow; ++d) {
    overflow = __builtin_mul_overflow(bytes, static_cast<uint64_t>(ne[d]), &bytes);
  }
  SY_CHECK(!overflow, "gguf writer: tensor '{}' ({} ne {}) is too large", name, info.name, ne);
  SY_CHECK(data.nbytes() == bytes, "gguf writer: tensor '{}' ({} ne {}) has {} bytes, expected {}",
           name, info.name, ne, data.nbytes(), bytes);
  tensors_.push_back({std::move(name), type, std::move(ne), std::move(data)});
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                            std::string_view bytes) {
  Tensor data = Tensor::zeros({static_cast<int64_t>(bytes.size())}, DType::U8);
  if (!bytes.empty()) std::memcpy(data.mutable_bytes(), bytes.data(), bytes.size());
  add_tensor(std::move(name), type, std::move(ne), std::move(data));
}

void GgufWriter::add_tensor(std::string name, const Tensor& tensor) {
  GgmlType type;
  switch (tensor.dtype()) {
    case DType::F32:
      type = GgmlType::kF32;
      break;
    case DType::F16:
      type = GgmlType::kF16;
      break;
    case DType::BF16:
      type = GgmlType::kBF16;
      break;
    case DType::I32:
      type = GgmlType::kI32;
      break;
    case DType::I64:
      type = GgmlType::kI64;
      break;
    default:
      fail("gguf writer: tensor '{}' has dtype {}, expected f32, f16, bf16, i32 or i64", name,
           dtype_name(tensor.dtype()));
  }
  add_tensor(std::move(name), type,
             std::vector<int64_t>(tensor.shape().rbegin(), tensor.shape().rend()), tensor);
}

std::string GgufWriter::to_bytes() const {
  std::string out = "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kvs_.size());
  for (const GgufKv& kv : kvs_) {
    put_string(out, kv.key);
    put(out, static_cast<uint32_t>(kv.value.type()));
    put_value(out, kv.value);
  }
  uint64_t data_bytes = 0;
  for (const Entry& e : tensors_) {
    put_string(out, e.name);
    put(out, static_cast<uint32_t>(e.ne.size()));
    for (int64_t n : e.ne) put(out, static_cast<uint64_t>(n));
    put(out, static_cast<uint32_t>(e.type));
    put<uint64_t>(out, data_bytes);
    data_bytes = align_up(data_bytes + e.data.nbytes(), alignment_);
  }
  out.reserve(align_up(out.size(), alignment_) + data_bytes);
  for (const Entry& e : tensors_) {
    out.resize(align_up(out.size(), alignment_), '\0');  // zero padding before every tensor
    if (e.data.nbytes() > 0) {
      out.append(reinterpret_cast<const char*>(e.data.bytes()), e.data.nbytes());
    }
  }
  out.resize(align_up(out.size(), alignment_), '\0');
  return out;
}

void GgufWriter::write(const std::string& path) const { write_file_atomic(path, to_bytes()); }

}  // namespace sy::io
