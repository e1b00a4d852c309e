#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "core/error.h"

namespace sy {

namespace {
std::atomic<int>& level_slot() {
  static std::atomic<int> level{static_cast<int>(LogLevel::Info)};
  return level;
}
std::mutex& write_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

void set_log_level(LogLevel level) { level_slot().store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(level_slot().load(std::memory_order_relaxed)); }

LogLevel log_level_from_name(std::string_view name) {
  if (name == "debug") return LogLevel::Debug;
  if (name == "info") return LogLevel::Info;
  if (name == "warn") return LogLevel::Warn;
  if (name == "error") return LogLevel::Error;
  if (name == "off") return LogLevel::Off;
  fail("unknown log level '{}', expected one of debug, info, warn, error, off", name);
}

void log_write(LogLevel level, std::string_view message) {
  static constexpr const char* kTags[] = {"debug", "info", "warn", "error", "off"};
  std::lock_guard<std::mutex> lock(write_mutex());
  std::fprintf(stderr, "[%s] %.*s\n", kTags[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace sy
