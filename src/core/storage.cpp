#include "core/storage.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace sy {

namespace {
constexpr size_t kAlignment = 64;
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes) {
  auto s = std::make_shared<Storage>();
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded > 0) {
    void* p = std::aligned_alloc(kAlignment, rounded);
    SY_CHECK(p != nullptr, "out of memory allocating {} bytes", bytes);
    std::memset(p, 0, rounded);
    s->data_ = static_cast<std::byte*>(p);
  }
  s->size_ = bytes;
  return s;
}

std::shared_ptr<Storage> Storage::map_file(const std::string& path, size_t offset, size_t bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SY_CHECK(fd >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(err));
  }
  const auto file_size = static_cast<size_t>(st.st_size);
  if (bytes == 0) bytes = file_size >= offset ? file_size - offset : 0;
  if (offset > file_size || bytes > file_size - offset) {
    ::close(fd);
    fail("{}: file is {} bytes, expected at least {} (region at offset {} of {} bytes)", path,
         file_size, offset + bytes, offset, bytes);
  }
  auto s = std::make_shared<Storage>();
  s->origin_ = path;
  s->size_ = bytes;
  if (bytes > 0) {
    const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t start = offset / page * page;
    s->map_size_ = bytes + (offset - start);
    void* base =
        ::mmap(nullptr, s->map_size_, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(start));
    if (base == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("{}: mmap of {} bytes failed: {}", path, bytes, std::strerror(err));
    }
    s->map_base_ = base;
    s->data_ = static_cast<std::byte*>(base) + (offset - start);
  }
  ::close(fd);
  return s;
}

Storage::~Storage() {
  if (map_base_ != nullptr) {
    if (locked_) ::munlock(map_base_, map_size_);
    ::munmap(map_base_, map_size_);
  } else {
    std::free(data_);  // NOLINT(cppcoreguidelines-no-malloc): pairs with aligned_alloc
  }
}

std::byte* Storage::mutable_data() {
  SY_CHECK(map_base_ == nullptr, "{}: memory-mapped storage is read-only", origin_);
  return data_;
}

bool Storage::lock_resident() {
  void* base = map_base_ != nullptr ? map_base_ : data_;
  const size_t len = map_base_ != nullptr ? map_size_ : size_;
  if (base == nullptr || len == 0) return true;
  if (!locked_) locked_ = ::mlock(base, len) == 0;
  // Touch every page so it is resident even where mlock was refused.
  volatile unsigned char sink = 0;
  const auto* bytes = static_cast<const unsigned char*>(base);
  for (size_t i = 0; i < len; i += 4096) sink = sink + bytes[i];
  (void)sink;
  return locked_;
}

}  // namespace sy
