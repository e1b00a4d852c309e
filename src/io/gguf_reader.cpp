// The GGUF parser: one pass over the header, the kvs and the tensor infos, every read checked
// against the bytes left, then the tensor extents checked against the file and each other.
#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "io/gguf.h"

namespace sy::io {

namespace {

constexpr uint32_t kMaxDims = 4;
// Arrays of arrays are legal; the bound keeps a hostile file from recursing off the stack.
constexpr int kMaxArrayDepth = 8;
// The fewest bytes one kv (8-byte key length, value type, a 1-byte value) and one tensor info
// (name length, n_dims 0, type, offset) can take: bounds the counts before anything is allocated.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
constexpr uint32_t kLastValueType = static_cast<uint32_t>(GgufValueType::kF64);

// Bytes the smallest value of `type` takes on disk.
uint64_t min_value_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kArray:
      return 4 + 8;
    default:  // u64, i64, f64, string (its length)
      return 8;
  }
}

uint32_t byte_swap32(uint32_t v) {
  return ((v & 0xffu) << 24) | ((v & 0xff00u) << 8) | ((v >> 8) & 0xff00u) | (v >> 24);
}

}  // namespace

// Not in the anonymous namespace: GgufFile names it as a friend.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& file)
      : f_(file), data_(file.storage_->data()), size_(file.storage_->size()) {}

  void run() {
    read_header();
    read_kvs();
    read_alignment();
    read_tensor_infos();
    place_tensors();
  }

 private:
  // Throws the truncation error unless `n` more bytes are available.
  void need(uint64_t n, std::string_view field) const {
    if (n > size_ - pos_) {
      fail("{}: truncated at byte {} reading {}{}: needs {} bytes, {} left", f_.name_, pos_, field,
           ctx_, n, size_ - pos_);
    }
  }

  template <typename T>
  T read(std::string_view field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }

  std::string read_string(std::string_view field) {
    const auto len = read<uint64_t>(field);
    need(len, field);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  void read_header() {
    need(4, "magic");
    if (std::memcmp(data_, "GGUF", 4) != 0) {
      const auto* b = reinterpret_cast<const uint8_t*>(data_);
      fail(
          "{}: not a GGUF file: magic bytes are {:02x} {:02x} {:02x} {:02x}, expected 47 47 55 "
          "46 ('GGUF')",
          f_.name_, b[0], b[1], b[2], b[3]);
    }
    pos_ = 4;
    const auto version = read<uint32_t>("version");
    const uint32_t swapped = byte_swap32(version);
    if (version != swapped && swapped >= 1 && swapped <= 3) {
      fail(
          "{}: GGUF file is big-endian (version field reads 0x{:08x}, {} byte-swapped); only "
          "little-endian files are supported",
          f_.name_, version, swapped);
    }
    if (version == 1) {
      fail("{}: GGUF version 1 (32-bit counts) is not supported, expected version 2 or 3",
           f_.name_);
    }
    SY_CHECK(version == 2 || version == 3, "{}: GGUF version {} is not supported, expected 2 or 3",
             f_.name_, version);
    f_.version_ = version;
    tensor_count_ = read<uint64_t>("tensor_count");
    kv_count_ = read<uint64_t>("metadata_kv_count");
    const uint64_t left = size_ - pos_;
    SY_CHECK(tensor_count_ <= left / kMinTensorInfoBytes,
             "{}: tensor_count is {}, but the {} bytes after the header hold at most {} tensor "
             "infos",
             f_.name_, tensor_count_, left, left / kMinTensorInfoBytes);
    SY_CHECK(kv_count_ <= left / kMinKvBytes,
             "{}: metadata_kv_count is {}, but the {} bytes after the header hold at most {} "
             "key-value pairs",
             f_.name_, kv_count_, left, left / kMinKvBytes);
    const uint64_t least = tensor_count_ * kMinTensorInfoBytes + kv_count_ * kMinKvBytes;
    SY_CHECK(least <= left,
             "{}: tensor_count {} and metadata_kv_count {} need at least {} bytes after the "
             "header, the file has {}",
             f_.name_, tensor_count_, kv_count_, least, left);
  }

  GgufValueType read_value_type(std::string_view field) {
    const auto id = read<uint32_t>(field);
    SY_CHECK(id <= kLastValueType, "{}: {}{} is {}, expected 0 to {}", f_.name_, field, ctx_, id,
             kLastValueType);
    return static_cast<GgufValueType>(id);
  }

  GgufValue read_value(GgufValueType type, int depth) {
    switch (type) {
      case GgufValueType::kU8:
        return GgufValue::u8(read<uint8_t>("value"));
      case GgufValueType::kI8:
        return GgufValue::i8(read<int8_t>("value"));
      case GgufValueType::kU16:
        return GgufValue::u16(read<uint16_t>("value"));
      case GgufValueType::kI16:
        return GgufValue::i16(read<int16_t>("value"));
      case GgufValueType::kU32:
        return GgufValue::u32(read<uint32_t>("value"));
      case GgufValueType::kI32:
        return GgufValue::i32(read<int32_t>("value"));
      case GgufValueType::kF32:
        return GgufValue::f32(read<float>("value"));
      case GgufValueType::kU64:
        return GgufValue::u64(read<uint64_t>("value"));
      case GgufValueType::kI64:
        return GgufValue::i64(read<int64_t>("value"));
      case GgufValueType::kF64:
        return GgufValue::f64(read<double>("value"));
      case GgufValueType::kBool: {
        const auto b = read<uint8_t>("value");
        SY_CHECK(b <= 1, "{}: value{} is bool {}, expected 0 or 1", f_.name_, ctx_, b);
        return GgufValue::boolean(b == 1);
      }
      case GgufValueType::kString:
        return GgufValue::string(read_string("value"));
      case GgufValueType::kArray:
        return read_array(depth);
    }
    fail("{}: value type {} unhandled", f_.name_, static_cast<uint32_t>(type));
  }

  GgufValue read_array(int depth) {
    SY_CHECK(depth < kMaxArrayDepth, "{}: value{} nests arrays more than {} deep", f_.name_, ctx_,
             kMaxArrayDepth);
    const GgufValueType type = read_value_type("array element type");
    const auto count = read<uint64_t>("array length");
    const uint64_t least = min_value_bytes(type);
    if (count > (size_ - pos_) / least) {
      fail(
          "{}: truncated at byte {} reading value{}: an array of {} {} needs at least {} bytes "
          "each, {} bytes left",
          f_.name_, pos_, ctx_, count, gguf_value_type_name(type), least, size_ - pos_);
    }
    std::vector<GgufValue> items;
    items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) items.push_back(read_value(type, depth + 1));
    return GgufValue::array(type, std::move(items));
  }

  void read_kvs() {
    f_.kvs_.reserve(kv_count_);
    for (uint64_t i = 0; i < kv_count_; ++i) {
      ctx_ = fmt::format(" of kv {}", i);
      std::string key = read_string("key");
      const auto [it, fresh] = f_.kv_index_.emplace(key, f_.kvs_.size());
      SY_CHECK(fresh, "{}: key '{}' appears twice (kvs {} and {})", f_.name_, key, it->second, i);
      ctx_ = fmt::format(" of key '{}'", key);
      const GgufValueType type = read_value_type("value type");
      GgufValue value = read_value(type, 0);
      f_.kvs_.push_back({std::move(key), std::move(value)});
    }
    ctx_.clear();
  }

  void read_alignment() {
    const GgufValue* v = f_.find("general.alignment");
    if (v == nullptr) return;
    const uint32_t alignment = v->as_u32(fmt::format("{}: key 'general.alignment'", f_.name_));
    SY_CHECK(alignment != 0 && alignment % 8 == 0,
             "{}: key 'general.alignment' is {}, expected a nonzero multiple of 8", f_.name_,
             alignment);
    f_.alignment_ = alignment;
  }

  void read_tensor_infos() {
    static constexpr std::array<std::string_view, kMaxDims> kNe = {"ne[0]", "ne[1]", "ne[2]",
                                                                   "ne[3]"};
    f_.tensors_.reserve(tensor_count_);
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      ctx_ = fmt::format(" of tensor {}", i);
      GgufTensorInfo t;
      t.name = read_string("name");
      const auto [it, fresh] = f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      SY_CHECK(fresh, "{}: tensor name '{}' appears twice (tensors {} and {})", f_.name_, t.name,
               it->second, i);
      ctx_ = fmt::format(" of tensor '{}'", t.name);
      const auto n_dims = read<uint32_t>("n_dims");
      SY_CHECK(n_dims <= kMaxDims, "{}: tensor '{}' has n_dims {}, expected at most {}", f_.name_,
               t.name, n_dims, kMaxDims);
      // The product of the sizes, zeros counted as 1, must fit: then no partial product taken in
      // any order (here, or over the reversed shape in Tensor) can overflow either.
      int64_t extent = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const auto n = read<uint64_t>(kNe[d]);
        SY_CHECK(n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                 "{}: tensor '{}' has ne[{}] = {}, expected at most 2^63 - 1", f_.name_, t.name, d,
                 n);
        t.ne.push_back(static_cast<int64_t>(n));
        SY_CHECK(!__builtin_mul_overflow(extent, std::max<int64_t>(t.ne.back(), 1), &extent),
                 "{}: tensor '{}' has ne {}: the element count overflows 64 bits", f_.name_, t.name,
                 t.ne);
      }
      const auto type_id = read<uint32_t>("type");
      const auto type = ggml_type_info(type_id);
      SY_CHECK(type.has_value(), "{}: tensor '{}' has ggml type id {}, which is not a known type",
               f_.name_, t.name, type_id);
      t.type = type->type;
      t.offset = read<uint64_t>("offset");
      t.nbytes = byte_size(t, *type);
      SY_CHECK(t.offset % f_.alignment_ == 0,
               "{}: tensor '{}' has offset {}, expected a multiple of the alignment {}", f_.name_,
               t.name, t.offset, f_.alignment_);
      f_.tensors_.push_back(std::move(t));
    }
    ctx_.clear();
  }

  // ggml_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3], with every step checked.
  uint64_t byte_size(const GgufTensorInfo& t, const GgmlTypeInfo& type) const {
    const int64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
    SY_CHECK(ne0 % type.block_values == 0,
             "{}: tensor '{}' ({}) has ne[0] = {}, expected a multiple of the block size {}",
             f_.name_, t.name, type.name, ne0, type.block_values);
    uint64_t bytes = 0;
    bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(ne0 / type.block_values),
                                           static_cast<uint64_t>(type.block_bytes), &bytes);
    for (size_t d = 1; d < t.ne.size() && !overflow; ++d) {
      overflow = __builtin_mul_overflow(bytes, static_cast<uint64_t>(t.ne[d]), &bytes);
    }
    SY_CHECK(!overflow, "{}: tensor '{}' ({}, ne {}) has a byte size that overflows 64 bits",
             f_.name_, t.name, type.name, t.ne);
    return bytes;
  }

  // Data section start, each tensor's place in the file, and no two tensors sharing bytes.
  void place_tensors() {
    const uint64_t align = f_.alignment_;
    f_.data_offset_ = (pos_ + align - 1) / align * align;  // pos_ <= size_ < 2^64 - 2^32
    for (GgufTensorInfo& t : f_.tensors_) {
      uint64_t end = 0;
      SY_CHECK(!__builtin_add_overflow(f_.data_offset_, t.offset, &t.file_offset) &&
                   !__builtin_add_overflow(t.file_offset, t.nbytes, &end),
               "{}: tensor '{}': offset {} + {} bytes overflows 64 bits", f_.name_, t.name,
               t.offset, t.nbytes);
      SY_CHECK(end <= size_, "{}: tensor '{}': data ends at byte {}, file has {} bytes", f_.name_,
               t.name, end, size_);
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : f_.tensors_) {
      if (t.nbytes > 0) by_offset.push_back(&t);
    }
    std::stable_sort(  // ties stay in file order
        by_offset.begin(), by_offset.end(),
        [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& a = *by_offset[i - 1];
      const GgufTensorInfo& b = *by_offset[i];
      SY_CHECK(b.offset >= a.offset + a.nbytes,
               "{}: tensors '{}' (data bytes {}..{}) and '{}' (data bytes {}..{}) overlap",
               f_.name_, a.name, a.offset, a.offset + a.nbytes, b.name, b.offset,
               b.offset + b.nbytes);
    }
  }

  GgufFile& f_;
  const std::byte* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::string ctx_;  // which kv or tensor is being read, for messages: " of key 'x'"
};

GgufFile GgufFile::parse(std::shared_ptr<Storage> bytes, const std::string& name) {
  SY_CHECK(bytes != nullptr, "{}: no bytes to parse", name);
  GgufFile f;
  f.name_ = name;
  f.storage_ = std::move(bytes);
  GgufParser(f).run();
  return f;
}

GgufFile GgufFile::parse(std::string_view bytes, const std::string& name) {
  auto storage = Storage::allocate(bytes.size());
  if (!bytes.empty()) std::memcpy(storage->mutable_data(), bytes.data(), bytes.size());
  return parse(std::move(storage), name);
}

GgufFile GgufFile::open(const std::string& path) { return parse(Storage::map_file(path), path); }

}  // namespace sy::io
