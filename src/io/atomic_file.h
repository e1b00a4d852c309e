// Atomic file writes: write to a temporary beside the target, fsync, rename over the target,
// fsync the directory. A crash leaves either the old file or the new one, never a torn one.
#pragma once

#include <string>
#include <string_view>

namespace sy::io {

// Writes `bytes` to `path` atomically. Throws sy::Error naming the path on any failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws sy::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace sy::io
