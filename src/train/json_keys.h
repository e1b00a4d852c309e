// Reading a JSON object's keys into typed fields with errors that name the key: a typo or a
// wrong type must never fall back to a default silently. Shared by the model config
// (lm_config.cpp) and the trainer config (train_config.cpp).
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sy::train {

// Reads the keys of one JSON object into fields, remembering which keys it knows, so that
// finish() can name the first unknown one. `where` starts every message ("lm config"); `path`
// prefixes nested keys ("moe.").
class KeyReader {
 public:
  KeyReader(std::string where, const nlohmann::json& j, std::string path)
      : where_(std::move(where)), j_(j), path_(std::move(path)) {
    SY_CHECK(
        j.is_object(), "{}: {} must be a JSON object, got {}", where_,
        path_.empty() ? std::string("the config") : "'" + path_.substr(0, path_.size() - 1) + "'",
        j.dump());
  }

  void read(const char* key, int64_t& field) {
    if (const nlohmann::json* v = find(key)) {
      SY_CHECK(v->is_number_integer(), "{}: key '{}{}' must be an integer, got {}", where_, path_,
               key, v->dump());
      field = v->get<int64_t>();
    }
  }
  void read(const char* key, uint64_t& field) {
    if (const nlohmann::json* v = find(key)) {
      SY_CHECK(v->is_number_unsigned() || (v->is_number_integer() && v->get<int64_t>() >= 0),
               "{}: key '{}{}' must be an integer >= 0, got {}", where_, path_, key, v->dump());
      field = v->get<uint64_t>();
    }
  }
  void read(const char* key, double& field) {
    if (const nlohmann::json* v = find(key)) {
      SY_CHECK(v->is_number(), "{}: key '{}{}' must be a number, got {}", where_, path_, key,
               v->dump());
      field = v->get<double>();
    }
  }
  void read(const char* key, bool& field) {
    if (const nlohmann::json* v = find(key)) {
      SY_CHECK(v->is_boolean(), "{}: key '{}{}' must be true or false, got {}", where_, path_, key,
               v->dump());
      field = v->get<bool>();
    }
  }
  void read(const char* key, std::string& field) {
    if (const nlohmann::json* v = find(key)) {
      SY_CHECK(v->is_string(), "{}: key '{}{}' must be a string, got {}", where_, path_, key,
               v->dump());
      field = v->get<std::string>();
    }
  }
  // A list of strings; a single string is read as a list of one.
  void read(const char* key, std::vector<std::string>& field) {
    if (const nlohmann::json* v = find(key)) {
      if (v->is_string()) {
        field = {v->get<std::string>()};
        return;
      }
      SY_CHECK(v->is_array() && std::all_of(v->begin(), v->end(),
                                            [](const nlohmann::json& e) { return e.is_string(); }),
               "{}: key '{}{}' must be a string or a list of strings, got {}", where_, path_, key,
               v->dump());
      field = v->get<std::vector<std::string>>();
    }
  }
  void read_object(const char* key, nlohmann::json& field) {
    if (const nlohmann::json* v = find(key)) {
      SY_CHECK(v->is_object(), "{}: key '{}{}' must be a JSON object, got {}", where_, path_, key,
               v->dump());
      field = *v;
    }
  }
  // The value of `key` (nullptr when absent); marks the key known.
  const nlohmann::json* find(const char* key) {
    known_.emplace_back(key);
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  void finish() const {
    std::vector<std::string> valid;
    valid.reserve(known_.size());
    for (const auto& k : known_) valid.push_back(path_ + k);
    std::sort(valid.begin(), valid.end());
    for (const auto& item : j_.items()) {
      if (std::find(known_.begin(), known_.end(), item.key()) == known_.end()) {
        fail("{}: unknown key '{}{}'; valid keys: {}", where_, path_, item.key(),
             fmt::join(valid, ", "));
      }
    }
  }

 private:
  std::string where_;
  const nlohmann::json& j_;
  std::string path_;
  std::vector<std::string> known_;
};

}  // namespace sy::train
