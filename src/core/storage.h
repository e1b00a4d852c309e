// Byte storage behind tensors: either an owned, 64-byte aligned heap buffer, or a read-only
// memory map of a region of a file. Shared by tensors through std::shared_ptr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sy {

class Storage {
 public:
  // Owned, 64-byte aligned buffer of `bytes` bytes, zero-filled unless `zero` is false. Freed
  // buffers of 4 KiB and more are recycled for later allocations of the same size (see
  // storage.cpp). Without zeroing the bytes are whatever was there, except in sanitizer builds,
  // which fill them with 0xff (NaN as f32/f16/bf16, -1 as integers) so a reader that relies on
  // zeros fails their tests.
  static std::shared_ptr<Storage> allocate(size_t bytes, bool zero = true);
  // Bytes of freed buffers kept for reuse at most (SY_ALLOC_CACHE_MB; 0 under ASan).
  static size_t recycle_budget();
  // Read-only map of [offset, offset + bytes) of `path`. Throws sy::Error naming the file when it
  // cannot be opened or is shorter than offset + bytes. bytes == 0 maps to the end of the file.
  static std::shared_ptr<Storage> map_file(const std::string& path, size_t offset = 0,
                                           size_t bytes = 0);

  Storage() = default;  // empty storage; use allocate() or map_file()
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  const std::byte* data() const { return data_; }
  // Mutable access; throws sy::Error for a read-only mapping.
  std::byte* mutable_data();
  size_t size() const { return size_; }
  bool is_mapped() const { return map_base_ != nullptr; }
  // Where the bytes come from, for messages: "heap" or the mapped file's path.
  const std::string& origin() const { return origin_; }

  // Pins mapped pages in RAM (mlock) and reads them in, so timings see resident weights.
  // Returns false when the OS refuses (RLIMIT_MEMLOCK); the pages are still touched.
  bool lock_resident();

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  void* map_base_ = nullptr;  // page-aligned start of the mapping, when mapped
  size_t map_size_ = 0;
  bool locked_ = false;
  std::string origin_ = "heap";
};

}  // namespace sy
