#include "io/tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/spm_tokenizer.h"

namespace sy::io {

namespace {

// bos_token / eos_token of a tokenizer_config.json: a string or {"content": string}.
tok::SpecialTokenNames read_config_names(const std::string& path) {
  tok::SpecialTokenNames names;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {  // syntax, or a number out of range
    fail("{}: not valid JSON: {}", path, e.what());
  }
  SY_CHECK(doc.is_object(), "{}: expected a JSON object", path);
  const auto pick = [&](const char* key) -> std::optional<std::string> {
    if (!doc.contains(key) || doc[key].is_null()) return std::nullopt;
    const nlohmann::json& v = doc[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      return v["content"].get<std::string>();
    }
    fail("{}: {}: expected a string or {{\"content\": string}}, got {}", path, key,
         v.dump().substr(0, 80));
  };
  names.bos = pick("bos_token");
  names.eos = pick("eos_token");
  return names;
}

// GGUF files can be many gigabytes: look at the magic without reading the rest.
bool starts_with_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, sizeof magic) && std::string_view(magic, 4) == "GGUF";
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  SY_CHECK(fs::exists(st), "{}: no such file or directory", path);
  if (fs::is_directory(st)) {
    const fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json", ec)) {
      tok::SpecialTokenNames names;
      if (fs::exists(dir / "tokenizer_config.json", ec)) {
        names = read_config_names((dir / "tokenizer_config.json").string());
      }
      const std::string file = (dir / "tokenizer.json").string();
      return tok::parse_hf_tokenizer(read_file(file), file, names);
    }
    if (fs::exists(dir / "tokenizer.model", ec)) {
      return tok::load_sentencepiece((dir / "tokenizer.model").string());
    }
    fail("{}: folder has neither tokenizer.json nor tokenizer.model", path);
  }
  if (fs::path(path).extension() == ".gguf" || starts_with_gguf_magic(path)) {
    return load_gguf_tokenizer(GgufFile::open(path));
  }
  const std::string bytes = read_file(path);
  // tokenizer.json is a JSON object; a SentencePiece model is a protobuf, which never starts
  // with '{' (0x7B would be field 15, wire type 3, unused by ModelProto).
  const size_t first = bytes.find_first_not_of(" \t\r\n");
  if (fs::path(path).extension() == ".json" ||
      (first != std::string::npos && bytes[first] == '{')) {
    return tok::parse_hf_tokenizer(bytes, path);
  }
  return tok::parse_sentencepiece(bytes, path);
}

size_t complete_utf8_prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  // Find the lead byte of the last sequence among the final 4 bytes.
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(bytes[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = b >= 0xF0 && b <= 0xF4  ? 4
                        : b >= 0xE0 && b < 0xF0 ? 3
                        : b >= 0xC2 && b < 0xE0 ? 2
                                                : 1;
    return need > back ? n - back : n;
  }
  return n;
}

}  // namespace sy::io
