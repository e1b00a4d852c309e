#include "io/config_file.h"

#include <toml++/toml.h>

#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

namespace sy::io {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

nlohmann::json to_json(const toml::node& node) {
  if (const toml::table* t = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : *t) out[std::string(key.str())] = to_json(value);
    return out;
  }
  if (const toml::array* a = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const toml::node& value : *a) out.push_back(to_json(value));
    return out;
  }
  if (const auto* v = node.as_string()) return v->get();
  if (const auto* v = node.as_integer()) return v->get();
  if (const auto* v = node.as_floating_point()) return v->get();
  if (const auto* v = node.as_boolean()) return v->get();
  std::ostringstream text;  // dates and times
  node.visit([&](const auto& value) { text << value; });
  return text.str();
}

}  // namespace

nlohmann::json parse_config(std::string_view text, const std::string& name) {
  if (ends_with(name, ".toml")) {
    try {
      const toml::table table = toml::parse(text, name);
      return to_json(table);
    } catch (const toml::parse_error& e) {
      fail("{}:{}:{}: {}", name, e.source().begin.line, e.source().begin.column, e.description());
    }
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // syntax, or a number out of range
    fail("{}: not valid JSON: {}", name, e.what());
  }
  SY_CHECK(j.is_object(), "{}: expected a JSON object at the top, got {}", name, j.type_name());
  return j;
}

nlohmann::json read_config_file(const std::string& path) {
  return parse_config(read_file(path), path);
}

void apply_override(nlohmann::json& config, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  SY_CHECK(eq != std::string_view::npos && eq > 0,
           "override '{}': expected key.path=value (e.g. train.steps=100)", assignment);
  const std::string_view path = assignment.substr(0, eq);
  const std::string_view text = assignment.substr(eq + 1);
  std::vector<std::string> keys;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string_view key =
        path.substr(start, dot == std::string_view::npos ? path.npos : dot - start);
    SY_CHECK(!key.empty(), "override '{}': empty key in '{}'", assignment, path);
    keys.emplace_back(key);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = std::string(text);

  nlohmann::json* node = &config;
  std::string walked;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    walked += (walked.empty() ? "" : ".") + keys[i];
    nlohmann::json& next = (*node)[keys[i]];
    if (next.is_null()) next = nlohmann::json::object();
    SY_CHECK(next.is_object(), "override '{}': '{}' is {}, not a table of keys", assignment, walked,
             next.dump());
    node = &next;
  }
  SY_CHECK(node->is_object(), "override '{}': the config is not a table of keys", assignment);
  (*node)[keys.back()] = std::move(value);
}

}  // namespace sy::io
