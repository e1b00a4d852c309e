#include "core/storage.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/sanitizer.h"

namespace sy {

namespace {

constexpr size_t kAlignment = 64;

size_t rounded_size(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// Heap blocks of 4 KiB and more are recycled:
// - Training allocates the same activation and workspace shapes every step, and glibc hands
//   blocks above its mmap threshold (at most 32 MiB) back to the kernel on free. Without this,
//   each step pays a page fault and a kernel page clear per 4 KiB of every large buffer again
//   (about 10% of an MoE layer's forward + backward at 4096 tokens).
// - Decode allocates the same few-KiB activations every step, and aligned blocks of that size
//   cost glibc a split and later a consolidation each (about 4% of a decode step on the main
//   thread, while the other threads wait).
// Freed blocks of at least kMinBytes wait in free lists keyed by exact size, up to a budget:
// SY_ALLOC_CACHE_MB (default 1024; 0 turns recycling off). A list hands back its most recently
// freed block first. Off under AddressSanitizer, so a use after free stays visible.
class BlockCache {
 public:
  static BlockCache& instance() {
    // Never destroyed: storages may be freed during static destruction.
    static auto* cache = new BlockCache();  // NOLINT(cppcoreguidelines-owning-memory)
    return *cache;
  }

  size_t budget() const { return budget_; }

  // A cached block of exactly `bytes` (rounded) bytes, or nullptr.
  void* take(size_t bytes) {
    if (bytes < kMinBytes || budget_ == 0) return nullptr;
    const std::lock_guard<std::mutex> lock(mu_);
    const auto it = free_.find(bytes);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();  // the most recently freed: likely still in cache
    it->second.pop_back();
    cached_ -= bytes;
    return p;
  }

  // Keeps the block for reuse; false when it is small or the budget is full (caller frees).
  bool give(void* p, size_t bytes) {
    if (bytes < kMinBytes || budget_ == 0) return false;
    const std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + bytes > budget_) return false;
    free_[bytes].push_back(p);
    cached_ += bytes;
    return true;
  }

 private:
  static constexpr size_t kMinBytes = size_t{4} << 10;

  BlockCache() : budget_(kSanitizerBuild ? 0 : budget_from_env()) {}

  static size_t budget_from_env() {
    const char* env = std::getenv("SY_ALLOC_CACHE_MB");  // NOLINT(concurrency-mt-unsafe)
    if (env == nullptr || *env == '\0') return size_t{1024} << 20;
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    SY_CHECK(end != env && *end == '\0',
             "SY_ALLOC_CACHE_MB: expected a whole number of MiB (0 turns recycling off), got '{}'",
             env);
    return static_cast<size_t>(mb) << 20;
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // by size, most recently freed last
  size_t cached_ = 0;
  const size_t budget_;
};

// Blocks of kHugeMinBytes and more start on a 2 MiB boundary and ask for transparent huge pages
// (MADV_HUGEPAGE; this host's THP mode is "madvise", so nothing else gets them). Weights are such
// blocks: a decode step streams hundreds of MB of them, one TLB miss per 4 KiB page otherwise,
// and building them takes one page fault per 2 MiB instead of 512. SY_HUGE_PAGES=0 turns it off.
// From 2 MiB (it was 8) the attention matrices (2.4 MB each in OLMoE q4_0) and the KV caches
// (2.6 MB a layer) get them too: OLMoE q4_0 decode, rdtsc per step against the experts' products
// (already on huge pages), 8 runs alternating: attention 0.255 -> 0.230 of the experts' time,
// the q/k/v/o products 0.37 -> 0.336.
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeMinBytes = size_t{2} << 20;

bool huge_pages_wanted() {
  static const bool wanted = [] {
    const char* env = std::getenv("SY_HUGE_PAGES");  // NOLINT(concurrency-mt-unsafe)
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return wanted;
}

void* new_block(size_t bytes) {
  if (bytes < kHugeMinBytes || kSanitizerBuild || !huge_pages_wanted()) {
    return std::aligned_alloc(kAlignment, bytes);
  }
  void* p = nullptr;
  if (::posix_memalign(&p, kHugePage, bytes) != 0) return nullptr;
#if defined(MADV_HUGEPAGE)
  ::madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice only: failure is fine
#endif
  return p;
}

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t bytes, bool zero) {
  auto s = std::make_shared<Storage>();
  const size_t rounded = rounded_size(bytes);
  if (rounded > 0) {
    void* p = BlockCache::instance().take(rounded);
    if (p == nullptr) p = new_block(rounded);
    SY_CHECK(p != nullptr, "out of memory allocating {} bytes", bytes);
    if (zero || kSanitizerBuild) std::memset(p, zero ? 0 : 0xff, rounded);
    s->data_ = static_cast<std::byte*>(p);
  }
  s->size_ = bytes;
  return s;
}

size_t Storage::recycle_budget() { return BlockCache::instance().budget(); }

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
  } else if (data_ != nullptr && !BlockCache::instance().give(data_, rounded_size(size_))) {
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
