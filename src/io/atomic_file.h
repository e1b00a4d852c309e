// Atomic file writes: write to a temporary beside the target, fsync, rename over the target,
// fsync the directory. A crash leaves either the old file or the new one, never a torn one.
#pragma once

#include <string>
#include <string_view>

namespace sy::io {

// One file written atomically in pieces: the constructor creates `path`.tmp.<pid>, write()
// appends to it, commit() fsyncs it, renames it over `path` and fsyncs the folder. Until
// commit() succeeds the target is untouched; the destructor (or abandon()) removes the
// temporary of a file not committed. Every failure throws sy::Error naming the path and removes
// the temporary.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile() { abandon(); }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(std::string_view bytes);
  void commit();
  // Closes and removes the temporary (nothing when already committed or abandoned).
  void abandon() noexcept;
  // Whether write() and commit() may still be called.
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  const std::string& temporary() const { return tmp_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// Writes `bytes` to `path` atomically. Throws sy::Error naming the path on any failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// fsyncs a folder, so that renames inside it last. File systems that cannot sync a folder
// (EINVAL) are left as durable as they go; any other failure throws naming the folder.
void fsync_dir(const std::string& dir);

// Reads a whole file; throws sy::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace sy::io
