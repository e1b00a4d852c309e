// sy::Error and the checking macros used at every boundary.
//
// Anything a user can cause (a file, a flag, a shape passed to a public entry) throws sy::Error
// with a message that says where, what, what was expected and what was found. Internal
// invariants inside hot loops use SY_DCHECK, compiled out of Release builds.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace sy {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws sy::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Runs fn(); if it throws sy::Error, rethrows with `context: ` prefixed to the message.
template <typename Fn>
decltype(auto) with_context(const std::string& context, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const Error& e) {
    throw Error(context + ": " + e.what());
  }
}

}  // namespace sy

// SY_CHECK(cond, "fmt", args...): throws sy::Error("fmt"-formatted) when cond is false.
#define SY_CHECK(cond, ...)    \
  do {                         \
    if (!(cond)) {             \
      ::sy::fail(__VA_ARGS__); \
    }                          \
  } while (0)

#ifdef NDEBUG
#define SY_DCHECK(cond) \
  do {                  \
  } while (0)
#else
#define SY_DCHECK(cond)                                                            \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      ::sy::fail("internal check failed: {} at {}:{}", #cond, __FILE__, __LINE__); \
    }                                                                              \
  } while (0)
#endif
