// Hugging Face safetensors: single files, sharded checkpoint folders, and writers for both.
//
// Layout (huggingface/safetensors README): an 8-byte little-endian header length N, N bytes of
// UTF-8 JSON (starting with '{', possibly padded with trailing spaces) mapping each tensor name
// to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} plus an optional
// "__metadata__" string -> string object, then the data section. Offsets are relative to the
// data section; shapes are row-major, outermost first; data is little-endian.
//
// The reader enforces the whole format and never reads out of bounds, whatever the input
// (tests/fuzz/fuzz_safetensors.cpp): the header length fits the file and the 100 MB limit, the
// JSON is an object without duplicate keys, every dtype is known, every shape's byte size
// (overflow-checked) equals end - begin, and the tensors tile the data section exactly: no
// overlaps, no holes, nothing after the last tensor (the spec forbids holes so that a file
// cannot also be another format). Errors are sy::Error naming the file, the field, what was
// expected and what was found.
//
// Alignment: the format does not align data. Tensor views point into one read-only mmap of the
// file, so a tensor's address is aligned as far as (8 + N + begin) is; files written by the HF
// library or by us pad N to 8 and order tensors by element size, largest first, so every
// element is naturally aligned there. tensor() returns a zero-copy view whenever the data is
// aligned to its element size and an aligned owned copy otherwise (typed access to misaligned
// floats is undefined behaviour). Kernels that need more than element alignment (64-byte SIMD
// loads) must check bytes() and copy (clone()) themselves.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/storage.h"
#include "core/tensor.h"

namespace sy::io {

// Largest header accepted, in bytes (the HF library's limit).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// One tensor of a safetensors header.
struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype_name;      // as in the file: "F32", "BF16", "F8_E4M3", "I64", ...
  std::optional<DType> dtype;  // ours, when we can load it (F32 F16 BF16 I32 I64 U8)
  Shape shape;
  uint64_t begin = 0;        // data_offsets[0], from the start of the data section
  uint64_t end = 0;          // data_offsets[1], one past the last byte
  uint64_t file_offset = 0;  // where the data starts in the file: 8 + N + begin

  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;
};

// Every dtype name the format defines, in the HF library's order (increasing alignment).
const std::vector<std::string_view>& safetensors_dtype_names();

// One parsed safetensors file. Tensor data is not copied: views share the file's storage.
class SafetensorsFile {
 public:
  // Maps `path` read-only and parses it.
  static SafetensorsFile open(const std::string& path);
  // Parses bytes already in memory (copied once into owned storage); `name` is used in errors.
  static SafetensorsFile parse(std::string_view bytes, const std::string& name);
  // Parses `bytes` in place; views share it. open() and both parse() run the same checks.
  static SafetensorsFile parse(std::shared_ptr<Storage> bytes, const std::string& name);

  const std::string& name() const { return name_; }
  uint64_t header_bytes() const { return header_bytes_; }  // N
  uint64_t data_offset() const { return 8 + header_bytes_; }
  uint64_t file_size() const { return storage_ ? storage_->size() : 0; }
  // "__metadata__" (empty when absent or null).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Tensors in data order (by begin offset, then name), and lookups by name.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  std::vector<std::string> names() const;  // in data order
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  const SafetensorsTensorInfo* find(std::string_view name) const;  // nullptr when absent
  // Throws "<file>: no tensor '<name>'" when absent.
  const SafetensorsTensorInfo& info(std::string_view name) const;
  // The tensor with its dtype and shape: a view of the file when aligned to its element size,
  // else an owned copy. Throws naming the tensor for dtypes we do not load (see raw()).
  Tensor tensor(std::string_view name) const;
  Tensor tensor(const SafetensorsTensorInfo& info) const;
  // The tensor's bytes as a u8 [nbytes] view, for any dtype.
  Tensor raw(std::string_view name) const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

 private:
  std::string name_;
  std::shared_ptr<Storage> storage_;
  uint64_t header_bytes_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// A checkpoint: one .safetensors file, or a folder holding either model.safetensors or
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}) and
// its shards. When a folder holds both, model.safetensors wins, as in transformers.
class SafetensorsCheckpoint {
 public:
  // Opens every file of the checkpoint and checks that the weight map and the shards agree:
  // each shard exists and is a plain file name inside the folder, each mapped tensor is in its
  // shard, no tensor is in two shards and no shard holds a tensor the weight map does not list.
  static SafetensorsCheckpoint open(const std::string& path);

  const std::string& path() const { return path_; }  // the file, or the folder
  // The index file when sharded, else empty.
  const std::string& index_path() const { return index_path_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  // The index's "metadata" (values that are not JSON strings are kept as their JSON text:
  // {"total_size": 123} gives "123"); for a single file, its "__metadata__".
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  std::vector<std::string> names() const;  // every tensor, sorted
  size_t size() const { return index_.size(); }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  // Throws "<path>: no tensor '<name>'" when absent.
  const SafetensorsTensorInfo& info(std::string_view name) const;
  const SafetensorsFile& file_of(std::string_view name) const;
  Tensor tensor(std::string_view name) const;  // as SafetensorsFile::tensor
  Tensor raw(std::string_view name) const;

 private:
  std::string path_;
  std::string index_path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> file
};

// model.safetensors.index.json, parsed and checked: "weight_map" is an object of non-empty plain
// file names (no '/', '\\', "." or ".."); "metadata" is optional (object or null). Exposed for
// the fuzzer; SafetensorsCheckpoint::open uses it.
struct SafetensorsIndex {
  std::map<std::string, std::string> metadata;    // non-string values as their JSON text
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
};
SafetensorsIndex parse_safetensors_index(std::string_view json_text, const std::string& name);

// Tensors to write, in any order; names must be unique.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The bytes of a safetensors file, exactly as the HF library writes them: compact JSON with
// "__metadata__" first (only when `metadata` is not empty), then the tensors ordered by dtype
// (largest alignment first: I64, F32, I32, BF16, F16, U8) and then by name, each entry as
// {"dtype","shape","data_offsets"}, padded with spaces to a multiple of 8 bytes. Supported
// dtypes: f32, f16, bf16, i32, i64, u8. Throws on a duplicate or non-UTF-8 name.
std::string serialize_safetensors(const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
// The bytes of serialize_safetensors written atomically (io/atomic_file.h), the header first and
// then each tensor straight from its storage: no copy of the data is made.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct ShardOptions {
  uint64_t max_shard_bytes = uint64_t{5} << 30;  // data bytes per shard (transformers: 5 GB)
  std::string prefix = "model";                  // file names start with this
};

// Writes `tensors` into the folder `dir` (created when missing) as transformers does: one
// "<prefix>.safetensors" when all data fits in max_shard_bytes, else shards
// "<prefix>-00001-of-00003.safetensors" ... filled in the given order (a new shard starts when
// the next tensor would overflow the current one; a tensor larger than the limit gets a shard of
// its own) plus "<prefix>.safetensors.index.json" with {"metadata": {"total_size": bytes},
// "weight_map": {...}}. Every shard carries `metadata`. Files of an earlier save with the same
// prefix that this save does not rewrite are removed afterwards. Each file is written
// atomically; for an all-or-nothing checkpoint, write into a fresh folder and rename it.
// Returns the paths written, the index last when there is one.
std::vector<std::string> write_safetensors_sharded(
    const std::string& dir, const NamedTensors& tensors,
    const std::map<std::string, std::string>& metadata = {}, const ShardOptions& options = {});

}  // namespace sy::io
