#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "core/error.h"

namespace sy::io {

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SY_CHECK(fd_ >= 0, "{}: cannot create: {}", tmp_, std::strerror(errno));
}

void AtomicFile::abandon() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
}

void AtomicFile::write(std::string_view bytes) {
  SY_CHECK(fd_ >= 0, "{}: write to a file already committed or abandoned", path_);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      abandon();
      fail("{}: write failed: {}", tmp_, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  SY_CHECK(fd_ >= 0, "{}: commit of a file already committed or abandoned", path_);
  if (::fsync(fd_) != 0) {
    const int err = errno;
    abandon();
    fail("{}: fsync failed: {}", tmp_, std::strerror(err));
  }
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("{}: close failed: {}", tmp_, std::strerror(err));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail("{}: cannot rename temporary into place: {}", path_, std::strerror(err));
  }
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  fsync_dir(dir.empty() ? "." : dir);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  SY_CHECK(fd >= 0, "{}: cannot open folder: {}", dir, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  SY_CHECK(rc == 0 || err == EINVAL, "{}: fsync failed: {}", dir, std::strerror(err));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SY_CHECK(in.good(), "{}: cannot open for reading", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  SY_CHECK(!in.bad(), "{}: read failed", path);
  return ss.str();
}

}  // namespace sy::io
