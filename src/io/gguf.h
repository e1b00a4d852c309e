// GGUF (ggml's model container, versions 2 and 3, little-endian): typed metadata, tensor infos
// and zero-copy tensor data over one read-only mmap; split sets (name-00001-of-00003.gguf); and
// two writers for v3 files: GgufWriter (everything in memory) and GgufStreamWriter (header
// first, then tensor bytes as they are produced, for files larger than RAM).
//
// Layout (ggml docs/gguf.md): "GGUF" magic, u32 version, u64 tensor_count, u64 kv_count, the kvs
// (u64-length key, u32 value type, value), the tensor infos (name, u32 n_dims, u64 ne[n_dims]
// with ne[0] innermost, u32 ggml type, u64 offset from the data section), zero padding to
// `general.alignment` (default 32), then the data section, every tensor at an aligned offset.
//
// The reader checks every count, length, offset and size against the bytes available before it
// uses them and throws sy::Error naming the file, the field and expected vs found; it never
// reads out of bounds, whatever the input (tests/fuzz/fuzz_gguf.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/ggml_types.h"
#include "core/storage.h"
#include "core/tensor.h"

namespace sy::io {

class AtomicFile;  // io/atomic_file.h

// Metadata value types by their on-disk id.
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
// "u8", "i8", ..., "f32", "bool", "string", "array", "u64", "i64", "f64".
std::string_view gguf_value_type_name(GgufValueType type);

// One metadata value. Arrays hold values of one element type, which may itself be an array.
// Typed reads throw sy::Error "<what> is <type> <value>, expected <type>", where `what` names
// the value for the message (GgufFile passes "file.gguf: key 'name'").
class GgufValue {
 public:
  struct Array {
    GgufValueType type = GgufValueType::kU8;  // element type
    std::vector<GgufValue> items;
    bool operator==(const Array& other) const;
  };

  GgufValue() = default;  // u8 0
  static GgufValue u8(uint8_t v) { return GgufValue(Variant(std::in_place_index<0>, v)); }
  static GgufValue i8(int8_t v) { return GgufValue(Variant(std::in_place_index<1>, v)); }
  static GgufValue u16(uint16_t v) { return GgufValue(Variant(std::in_place_index<2>, v)); }
  static GgufValue i16(int16_t v) { return GgufValue(Variant(std::in_place_index<3>, v)); }
  static GgufValue u32(uint32_t v) { return GgufValue(Variant(std::in_place_index<4>, v)); }
  static GgufValue i32(int32_t v) { return GgufValue(Variant(std::in_place_index<5>, v)); }
  static GgufValue f32(float v) { return GgufValue(Variant(std::in_place_index<6>, v)); }
  static GgufValue boolean(bool v) { return GgufValue(Variant(std::in_place_index<7>, v)); }
  static GgufValue string(std::string v) {
    return GgufValue(Variant(std::in_place_index<8>, std::move(v)));
  }
  static GgufValue u64(uint64_t v) { return GgufValue(Variant(std::in_place_index<10>, v)); }
  static GgufValue i64(int64_t v) { return GgufValue(Variant(std::in_place_index<11>, v)); }
  static GgufValue f64(double v) { return GgufValue(Variant(std::in_place_index<12>, v)); }
  // Throws sy::Error when an item's type is not `element_type`.
  static GgufValue array(GgufValueType element_type, std::vector<GgufValue> items);
  // Shorthands for the common arrays (tokenizer tokens, scores, token types).
  static GgufValue strings(const std::vector<std::string>& values);
  static GgufValue f32s(const std::vector<float>& values);
  static GgufValue i32s(const std::vector<int32_t>& values);

  GgufValueType type() const { return static_cast<GgufValueType>(v_.index()); }
  bool is_integer() const;  // u8..i64 (not bool)

  // Any integer type whose value fits in T (converters differ in the width they write).
  // T is one of uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, uint64_t, int64_t.
  template <typename T>
  T as_int(std::string_view what = "value") const;
  uint32_t as_u32(std::string_view what = "value") const { return as_int<uint32_t>(what); }
  int32_t as_i32(std::string_view what = "value") const { return as_int<int32_t>(what); }
  uint64_t as_u64(std::string_view what = "value") const { return as_int<uint64_t>(what); }
  int64_t as_i64(std::string_view what = "value") const { return as_int<int64_t>(what); }
  float as_f32(std::string_view what = "value") const;   // f32, or f64 rounded to f32
  double as_f64(std::string_view what = "value") const;  // f64 or f32
  bool as_bool(std::string_view what = "value") const;
  const std::string& as_string(std::string_view what = "value") const;
  const Array& as_array(std::string_view what = "value") const;
  // Arrays converted element-wise with the rules above; element errors name what[i].
  std::vector<std::string> as_strings(std::string_view what = "value") const;
  std::vector<float> as_f32s(std::string_view what = "value") const;
  template <typename T>
  std::vector<T> as_ints(std::string_view what = "value") const;

  // Short description for messages: "u32 7", "string 'llama'", "array of 3 u8".
  std::string describe() const;
  bool operator==(const GgufValue& other) const;

 private:
  using Variant = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, Array, uint64_t, int64_t, double>;
  explicit GgufValue(Variant v) : v_(std::move(v)) {}
  [[noreturn]] void type_error(std::string_view what, std::string_view expected) const;

  Variant v_;  // alternative index == on-disk GgufValueType id
};

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;   // n_dims (0..4) sizes, ne[0] innermost (contiguous)
  uint64_t offset = 0;       // from the start of the data section, as stored
  uint64_t file_offset = 0;  // from the start of the file
  uint64_t nbytes = 0;       // ggml_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3]

  int64_t numel() const;
  // Row-major shape: ne reversed, so ne[0] is the last dimension.
  Shape shape() const;
};

// One parsed GGUF file. Tensor data is not copied: views share the file's mapping.
class GgufFile {
 public:
  // Maps `path` read-only and parses it.
  static GgufFile open(const std::string& path);
  // Parses bytes already in memory (copied once into owned storage); `name` is used in errors.
  static GgufFile parse(std::string_view bytes, const std::string& name);
  // Parses `bytes` in place; views share it.
  static GgufFile parse(std::shared_ptr<Storage> bytes, const std::string& name);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the data section
  uint64_t file_size() const { return storage_ ? storage_->size() : 0; }

  // Metadata in file order, and lookups by key.
  const std::vector<GgufKv>& kvs() const { return kvs_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  // Throws "<file>: key '<key>' not found" when absent.
  const GgufValue& get(std::string_view key) const;
  // Typed reads of a key; errors read "<file>: key '<key>' is u64 7, expected ...".
  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  std::vector<std::string> get_strings(std::string_view key) const;
  std::vector<float> get_f32s(std::string_view key) const;
  std::vector<int32_t> get_i32s(std::string_view key) const;

  // Tensor infos in file order, and lookups by name.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent
  const GgufTensorInfo& tensor_info(std::string_view name) const;  // throws naming the file
  // The tensor's bytes as a u8 [nbytes] view (any ggml type).
  Tensor raw(std::string_view name) const;
  Tensor raw(const GgufTensorInfo& info) const;
  // A typed view with the row-major shape (ne reversed) for f32, f16, bf16, i32 and i64
  // tensors; other types throw, naming the tensor and its type (use raw()).
  Tensor tensor(std::string_view name) const;
  Tensor tensor(const GgufTensorInfo& info) const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

 private:
  friend class GgufParser;
  std::string name_;
  std::shared_ptr<Storage> storage_;
  uint32_t version_ = 3;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// A model in one GGUF file or split into parts by gguf-split: "<prefix>-00001-of-00003.gguf"
// ... "<prefix>-00003-of-00003.gguf", each holding split.no (u16, 0-based), split.count (u16)
// and split.tensors.count (i32, the total over all parts); the first part holds the metadata.
class GgufSet {
 public:
  // Opens a single file, or every part of a split set given its first part. Throws naming the
  // part that is missing or whose split keys disagree with the first.
  static GgufSet open(const std::string& path);

  const GgufFile& meta() const { return parts_.front(); }  // the first part: the metadata
  const std::vector<GgufFile>& parts() const { return parts_; }
  size_t tensor_count() const { return order_.size(); }
  // Every tensor in part order, then file order: (part index, info).
  std::vector<std::pair<size_t, const GgufTensorInfo*>> tensors() const;
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  const GgufTensorInfo& tensor_info(std::string_view name) const;
  Tensor raw(std::string_view name) const;
  Tensor tensor(std::string_view name) const;

 private:
  const GgufFile& part_of(std::string_view name) const;

  std::vector<GgufFile> parts_;
  std::vector<std::pair<size_t, size_t>> order_;      // (part, index in that part)
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in order_
};

// Builds a GGUF v3 file: kvs and tensors in the order added, every tensor at an offset aligned
// to `general.alignment` (when that key is added: an integer, nonzero multiple of 8; else 32).
class GgufWriter {
 public:
  // Throws on a duplicate key or a bad general.alignment.
  void add_kv(std::string key, GgufValue value);
  // `data` is any tensor whose bytes are the ggml-layout data (its storage is shared, not
  // copied); its size must equal ggml_row_bytes(type, ne[0]) * ne[1] * ... . Throws on a
  // duplicate name, more than 4 dims, ne[0] not a multiple of the block size, or a size mismatch.
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, Tensor data);
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne,
                  std::string_view bytes);  // copies
  // f32, f16, bf16, i32 or i64 tensor: type from the dtype, ne = the shape reversed.
  void add_tensor(std::string name, const Tensor& tensor);

  std::string to_bytes() const;               // the whole file
  void write(const std::string& path) const;  // atomically (io/atomic_file.h)

 private:
  struct Entry {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    Tensor data;
  };
  std::vector<GgufKv> kvs_;
  std::vector<Entry> tensors_;
  uint64_t alignment_ = 32;
};

// One tensor of a streamed GGUF file: its info; the data follows later.
struct GgufTensorDecl {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> ne;  // ne[0] innermost, as in GgufTensorInfo
};

// Writes a GGUF v3 file without holding its tensors in memory, for files larger than RAM
// (`switchyard convert`): the header (kvs and every tensor's info, offsets included) is written
// when the writer is made, then the tensors' bytes in declared order through append(), in pieces
// of any size; the writer inserts the zero padding between tensors itself. The bytes equal
// GgufWriter::to_bytes() of the same content.
//
// Atomic like io/atomic_file.h: everything goes to "<path>.tmp.<pid>", which finish() fsyncs
// and renames over `path` (then fsyncs the folder). A writer destroyed before finish() (an
// error half way) removes the temporary and leaves any old file at `path` untouched.
class GgufStreamWriter {
 public:
  // Checks the content as GgufWriter does (duplicate keys or names, general.alignment, at most
  // 4 dims, ne[0] a whole number of blocks, sizes that overflow), creates the temporary and
  // writes the header. Errors start "gguf writer: ".
  GgufStreamWriter(std::string path, const std::vector<GgufKv>& kvs,
                   const std::vector<GgufTensorDecl>& tensors);
  ~GgufStreamWriter();
  GgufStreamWriter(const GgufStreamWriter&) = delete;
  GgufStreamWriter& operator=(const GgufStreamWriter&) = delete;

  // The next bytes of the data: they fill the first tensor not yet complete, then the next.
  // Throws (writing nothing) when they run past the end of the last tensor, or after finish().
  void append(std::string_view bytes);
  // Index of the tensor the next byte belongs to (tensor_count() when all are complete), and
  // the bytes it still needs.
  size_t current() const { return current_; }
  uint64_t remaining() const;
  size_t tensor_count() const { return sizes_.size(); }
  // Checks that every tensor is complete, pads the end, fsyncs and renames into place. Throws
  // naming the first incomplete tensor; the temporary is removed on any failure.
  void finish();

 private:
  void write_out(std::string_view bytes);
  void flush();
  void skip_complete();

  std::string path_;
  std::unique_ptr<AtomicFile> file_;
  std::string buffer_;
  std::vector<std::string> names_;
  std::vector<uint64_t> sizes_;
  uint64_t alignment_ = 32;
  size_t current_ = 0;
  uint64_t written_ = 0;  // bytes of tensor current_ written so far
  uint64_t left_ = 0;     // bytes of all tensors still to come
};

}  // namespace sy::io
