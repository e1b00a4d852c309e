#include "moe/routing/options.h"

#include <algorithm>

#include "core/error.h"

namespace sy::moe {

OptionReader::OptionReader(const RouterSpec& spec)
    : where_(fmt::format("router '{}'", spec.name)), options_(spec.options) {
  SY_CHECK(options_.is_object() || options_.is_null(), "{}: options must be a JSON object, got {}",
           where_, options_.dump());
}

const nlohmann::json* OptionReader::find(const std::string& key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.push_back(key);
  if (!options_.is_object()) return nullptr;
  const auto it = options_.find(key);
  return it == options_.end() ? nullptr : &*it;
}

double OptionReader::get_double(const std::string& key, double fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  SY_CHECK(v->is_number(), "{}: option '{}' must be a number, got {}", where_, key, v->dump());
  return v->get<double>();
}

int64_t OptionReader::get_int(const std::string& key, int64_t fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  SY_CHECK(v->is_number_integer(), "{}: option '{}' must be an integer, got {}", where_, key,
           v->dump());
  return v->get<int64_t>();
}

bool OptionReader::get_bool(const std::string& key, bool fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  SY_CHECK(v->is_boolean(), "{}: option '{}' must be true or false, got {}", where_, key,
           v->dump());
  return v->get<bool>();
}

std::string OptionReader::get_string(const std::string& key, const std::string& fallback,
                                     std::initializer_list<const char*> allowed) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  SY_CHECK(v->is_string(), "{}: option '{}' must be a string, got {}", where_, key, v->dump());
  std::string value = v->get<std::string>();
  if (allowed.size() == 0) return value;
  for (const char* a : allowed) {
    if (value == a) return value;
  }
  fail("{}: option '{}' = \"{}\", expected one of: {}", where_, key, value,
       fmt::join(allowed, ", "));
}

void OptionReader::finish() const {
  if (!options_.is_object()) return;
  std::vector<std::string> valid = known_;
  std::sort(valid.begin(), valid.end());
  for (const auto& item : options_.items()) {  // nlohmann::json objects iterate in key order
    if (std::find(valid.begin(), valid.end(), item.key()) == valid.end()) {
      if (valid.empty()) fail("{}: unknown option '{}'; it takes no options", where_, item.key());
      fail("{}: unknown option '{}'; valid options: {}", where_, item.key(),
           fmt::join(valid, ", "));
    }
  }
}

}  // namespace sy::moe
