// Typed reading of a router's `options` object (RouterSpec::options) with defaults, and the
// rejection of keys no router reads: a typo in a training config must not silently fall back to
// a default.
//
// Usage, in a router's constructor:
//   OptionReader opts(spec);
//   const bool normalize = opts.get_bool("normalize", true);
//   ...
//   opts.finish();  // throws when the object holds a key that was never asked for
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moe/routing/router.h"

namespace sy::moe {

class OptionReader {
 public:
  // Errors name the router as "router '<spec.name>'". Throws when options is not an object.
  explicit OptionReader(const RouterSpec& spec);

  // Each getter records `key` as valid and returns its value, or `fallback` when absent. A value
  // of the wrong JSON type is an error naming the key, the expected type and the value.
  double get_double(const std::string& key, double fallback);
  int64_t get_int(const std::string& key, int64_t fallback);
  bool get_bool(const std::string& key, bool fallback);
  // `allowed` (when not empty) lists the accepted values; anything else is an error listing them.
  std::string get_string(const std::string& key, const std::string& fallback,
                         std::initializer_list<const char*> allowed = {});
  // Whether the user wrote `key` (to reject contradictory combinations).
  bool has(const std::string& key) const { return options_.contains(key); }

  // Throws "router 'NAME': unknown option 'KEY'; valid options: a, b, c" for the first key (in
  // sorted order) that no getter asked for.
  void finish() const;

  // "router 'NAME'", for the router's own messages.
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json* find(const std::string& key);

  std::string where_;
  const nlohmann::json& options_;
  std::vector<std::string> known_;
};

}  // namespace sy::moe
