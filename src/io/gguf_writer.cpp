// GgufWriter and GgufStreamWriter: GGUF v3, little-endian, kvs and tensors in the order given.
#include <bit>
#include <cstring>
#include <map>

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

// The alignment a general.alignment kv sets; throws when it is not a u32 nonzero multiple of 8.
uint64_t checked_alignment(const GgufValue& value) {
  SY_CHECK(value.type() == GgufValueType::kU32,
           "gguf writer: key 'general.alignment' is {}, "
           "expected u32",
           value.describe());
  const uint32_t alignment = value.as_u32();
  SY_CHECK(alignment != 0 && alignment % 8 == 0,
           "gguf writer: key 'general.alignment' is {}, expected a nonzero multiple of 8",
           alignment);
  return alignment;
}

// Bytes of a tensor of `type` and `ne`; throws naming it for more than 4 dims, a negative size,
// ne[0] not a whole number of blocks, or a size that overflows.
uint64_t checked_tensor_bytes(const std::string& name, GgmlType type,
                              const std::vector<int64_t>& ne) {
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
  return bytes;
}

// Everything before the data section, padded to the alignment: magic, version, counts, kvs and
// tensor infos with each tensor at the next aligned offset. Throws when the offsets overflow.
std::string header_bytes(const std::vector<GgufKv>& kvs, const std::vector<GgufTensorDecl>& decls,
                         const std::vector<uint64_t>& sizes, uint64_t alignment) {
  std::string out = "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, decls.size());
  put<uint64_t>(out, kvs.size());
  for (const GgufKv& kv : kvs) {
    put_string(out, kv.key);
    put(out, static_cast<uint32_t>(kv.value.type()));
    put_value(out, kv.value);
  }
  uint64_t data_bytes = 0;
  for (size_t i = 0; i < decls.size(); ++i) {
    const GgufTensorDecl& d = decls[i];
    put_string(out, d.name);
    put(out, static_cast<uint32_t>(d.ne.size()));
    for (int64_t n : d.ne) put(out, static_cast<uint64_t>(n));
    put(out, static_cast<uint32_t>(d.type));
    put<uint64_t>(out, data_bytes);
    SY_CHECK(sizes[i] <= UINT64_MAX - alignment && data_bytes <= UINT64_MAX - alignment - sizes[i],
             "gguf writer: tensor '{}' ends past 2^64 bytes", d.name);
    data_bytes = align_up(data_bytes + sizes[i], alignment);
  }
  out.resize(align_up(out.size(), alignment), '\0');
  return out;
}

// Content checks shared by both writers: unique keys and names, tensor sizes. Returns the
// alignment and fills `sizes`.
uint64_t check_content(const std::vector<GgufKv>& kvs, const std::vector<GgufTensorDecl>& decls,
                       std::vector<uint64_t>& sizes) {
  uint64_t alignment = 32;
  std::map<std::string_view, int> seen;
  for (const GgufKv& kv : kvs) {
    SY_CHECK(seen.emplace(kv.key, 0).second, "gguf writer: key '{}' added twice", kv.key);
    if (kv.key == "general.alignment") alignment = checked_alignment(kv.value);
  }
  seen.clear();
  sizes.clear();
  for (const GgufTensorDecl& d : decls) {
    SY_CHECK(seen.emplace(d.name, 0).second, "gguf writer: tensor '{}' added twice", d.name);
    sizes.push_back(checked_tensor_bytes(d.name, d.type, d.ne));
  }
  return alignment;
}

constexpr size_t kBufferBytes = size_t{8} << 20;

}  // namespace

void GgufWriter::add_kv(std::string key, GgufValue value) {
  for (const GgufKv& kv : kvs_) {
    SY_CHECK(kv.key != key, "gguf writer: key '{}' added twice", key);
  }
  if (key == "general.alignment") alignment_ = checked_alignment(value);
  kvs_.push_back({std::move(key), std::move(value)});
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, Tensor data) {
  for (const Entry& e : tensors_) {
    SY_CHECK(e.name != name, "gguf writer: tensor '{}' added twice", name);
  }
  const uint64_t bytes = checked_tensor_bytes(name, type, ne);
  SY_CHECK(data.nbytes() == bytes, "gguf writer: tensor '{}' ({} ne {}) has {} bytes, expected {}",
           name, ggml_type_info(type).name, ne, data.nbytes(), bytes);
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
  std::vector<GgufTensorDecl> decls;
  std::vector<uint64_t> sizes;
  decls.reserve(tensors_.size());
  for (const Entry& e : tensors_) {
    decls.push_back({e.name, e.type, e.ne});
    sizes.push_back(e.data.nbytes());
  }
  std::string out = header_bytes(kvs_, decls, sizes, alignment_);
  uint64_t data_bytes = 0;
  for (uint64_t n : sizes) data_bytes = align_up(data_bytes + n, alignment_);
  out.reserve(out.size() + data_bytes);
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

GgufStreamWriter::GgufStreamWriter(std::string path, const std::vector<GgufKv>& kvs,
                                   const std::vector<GgufTensorDecl>& tensors)
    : path_(std::move(path)) {
  alignment_ = check_content(kvs, tensors, sizes_);
  const std::string header = header_bytes(kvs, tensors, sizes_, alignment_);
  for (uint64_t n : sizes_) left_ += n;  // cannot overflow: header_bytes checked the offsets
  names_.reserve(tensors.size());
  for (const GgufTensorDecl& d : tensors) names_.push_back(d.name);
  file_ = std::make_unique<AtomicFile>(path_);
  buffer_.reserve(kBufferBytes);
  write_out(header);  // on a throw the file's destructor removes the temporary
  skip_complete();
}

GgufStreamWriter::~GgufStreamWriter() = default;

uint64_t GgufStreamWriter::remaining() const {
  return current_ < sizes_.size() ? sizes_[current_] - written_ : 0;
}

void GgufStreamWriter::write_out(std::string_view bytes) {
  if (buffer_.size() + bytes.size() > kBufferBytes) flush();
  if (bytes.size() >= kBufferBytes) {
    file_->write(bytes);
  } else {
    buffer_.append(bytes);
  }
}

void GgufStreamWriter::flush() {
  file_->write(buffer_);
  buffer_.clear();
}

// Moves past complete (and empty) tensors, writing the padding that follows each.
void GgufStreamWriter::skip_complete() {
  while (current_ < sizes_.size() && written_ == sizes_[current_]) {
    const uint64_t pad = align_up(sizes_[current_], alignment_) - sizes_[current_];
    write_out(std::string(pad, '\0'));
    ++current_;
    written_ = 0;
  }
}

void GgufStreamWriter::append(std::string_view bytes) {
  SY_CHECK(file_->is_open(), "gguf writer: {}: append to a writer already finished or abandoned",
           path_);
  SY_CHECK(bytes.size() <= left_,
           "gguf writer: {}: {} more bytes appended, but the tensors need only {} more", path_,
           bytes.size(), left_);
  try {
    while (!bytes.empty()) {
      const auto n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), remaining()));
      write_out(bytes.substr(0, n));
      written_ += n;
      left_ -= n;
      bytes.remove_prefix(n);
      skip_complete();
    }
  } catch (...) {
    file_->abandon();
    throw;
  }
}

void GgufStreamWriter::finish() {
  SY_CHECK(file_->is_open(), "gguf writer: {}: finish of a writer already finished or abandoned",
           path_);
  if (current_ < sizes_.size()) {
    const std::string message = fmt::format("gguf writer: {}: tensor '{}' has {} of its {} bytes",
                                            path_, names_[current_], written_, sizes_[current_]);
    file_->abandon();
    throw Error(message);
  }
  try {
    flush();
  } catch (...) {
    file_->abandon();
    throw;
  }
  file_->commit();
}

}  // namespace sy::io
