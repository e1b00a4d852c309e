// Configuration files for the command line (train, study): TOML or JSON, read into one JSON
// object, and "key.path=value" overrides applied on top.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sy::io {

// Reads `path` as TOML (name ending in .toml) or JSON (anything else) into a JSON object. TOML
// tables become objects, arrays arrays, integers/floats/booleans/strings themselves, dates and
// times their TOML text. Errors name the file and, for syntax errors, the line and column:
// "run.toml:3:9: expected '=' after a key".
nlohmann::json read_config_file(const std::string& path);
// The same for text already in memory; `name` (its file name) picks the format and names errors.
nlohmann::json parse_config(std::string_view text, const std::string& name);

// Applies one command-line override "a.b.c=value" to `config`: the value is read as JSON when it
// parses as JSON (numbers, true/false, null, [..], {..}, "quoted"), as a plain string otherwise
// (so model.moe.router=deepseek works unquoted). Missing intermediate objects are created; a
// path through a value that is not an object is an error naming the override. Whether the key
// exists is left to the config's reader (which names unknown keys).
void apply_override(nlohmann::json& config, std::string_view assignment);

}  // namespace sy::io
