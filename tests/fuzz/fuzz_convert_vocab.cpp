// libFuzzer target: `switchyard convert`'s tokenizer export (model/convert_vocab.cpp), which reads
// a checkpoint folder's tokenizer.json and tokenizer_config.json and writes tokenizer.ggml.*.
//
// The input is TOKENIZER_JSON '\0' TOKENIZER_CONFIG_JSON: the two files (no tokenizer_config.json
// when there is no zero byte or nothing follows it), written into a scratch folder and converted
// for a Mixtral and an OLMoE config of 300 ids. The export may throw sy::Error (a malformed file)
// or decline with a note; any other exception, a crash, a sanitizer report or a hang is a bug.
// What it writes must also load: the keys, put into a GGUF file and parsed back, must make a
// vocabulary that load_gguf_tokenizer accepts and that encodes and decodes sample texts, into the
// ids our tokenizer.json reader gives them (when it takes the file; load_back says which texts
// are compared).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "io/tokenizer/hf_tokenizer.h"
#include "io/tokenizer/tokenizer.h"
#include "model/config.h"
#include "model/convert_plan.h"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void bug(const char* what, const char* detail) {
  std::fprintf(stderr, "fuzz_convert_vocab: %s: %s\n", what, detail);
  std::abort();
}

// A folder of this process's own, made once, reused for every input and removed at exit.
struct Scratch {
  fs::path dir;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "sy_fuzz_convert_vocab_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) bug("setup", "cannot create a scratch folder");
    dir = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};
const fs::path& scratch() {
  static const Scratch s;
  return s.dir;
}

void put(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) bug("setup", "cannot write a scratch file");
}

const char* const kTexts[] = {"Hello world, it's 12 o'clock\n \xC3\xA9", "  the  cat\n\n",
                              "caf\xC3\xA9 123456\t<s>x<|endoftext|>"};

// The exported keys as a GGUF vocabulary must load, encode and decode, and split text into the
// ids tokenizer.json does (when our reader takes that file).
void load_back(const std::vector<sy::io::GgufKv>& kvs, std::string_view tokenizer_json) {
  sy::io::GgufWriter writer;
  for (const sy::io::GgufKv& kv : kvs) writer.add_kv(kv.key, kv.value);
  std::unique_ptr<sy::io::Tokenizer> t;
  try {
    const std::string bytes = writer.to_bytes();
    t = sy::io::load_gguf_tokenizer(sy::io::GgufFile::parse(bytes, "converted.gguf"));
    for (const bool special : {false, true}) {
      for (const char* text : kTexts) {
        volatile size_t keep = t->decode(t->encode(text, special)).size();
        (void)keep;
      }
    }
  } catch (const sy::Error& e) {
    bug("the exported vocabulary does not load", e.what());
  }
  std::unique_ptr<sy::io::Tokenizer> original;
  std::set<int32_t> added;
  try {
    original = sy::io::tok::parse_hf_tokenizer(tokenizer_json, "tokenizer.json");
    const nlohmann::json file = nlohmann::json::parse(tokenizer_json);
    for (const auto& a : file.at("added_tokens")) {
      added.insert(a.at("id").get<int32_t>());
    }
  } catch (const sy::Error&) {
    return;  // a file our reader does not take has nothing to compare with
  } catch (const nlohmann::json::exception&) {
    // added_tokens missing or malformed: none to leave out
  }
  if (original == nullptr) bug("the tokenizer.json reader", "threw something other than sy::Error");
  for (const char* text : kTexts) {
    const std::vector<int32_t> want = original->encode(text, false);
    // Compared where the two agree by design: text the vocabulary covers (decoding gives it
    // back; unknown characters are dropped by the tokenizers library and become <unk> in
    // llama.cpp), with no added token (after which llama.cpp puts SentencePiece's leading space
    // before every section).
    if (std::ranges::any_of(want, [&](int32_t id) { return added.contains(id); }) ||
        original->decode(want) != text) {
      continue;
    }
    if (t->encode(text, false) != want) {
      bug("the exported vocabulary splits text otherwise than tokenizer.json", text);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const fs::path& dir = scratch();
  put(dir / "tokenizer.json", input.substr(0, split));
  std::error_code ec;
  if (split == std::string_view::npos || split + 1 == input.size()) {
    fs::remove(dir / "tokenizer_config.json", ec);
  } else {
    put(dir / "tokenizer_config.json", input.substr(split + 1));
  }
  for (const char* arch : {"mixtral", "olmoe"}) {
    sy::model::ModelConfig config;
    config.arch = arch;
    config.vocab_size = 300;
    const sy::model::HfConfig hf(nlohmann::json{{"bos_token_id", 1}, {"eos_token_id", 2}},
                                 (dir / "config.json").string());
    std::vector<std::string> notes;
    std::vector<sy::io::GgufKv> kvs;
    try {
      kvs = sy::model::convert::tokenizer_metadata(dir.string(), config, hf, notes);
    } catch (const sy::Error&) {
      continue;  // a malformed file: the expected outcome for most inputs
    }
    if (!kvs.empty()) load_back(kvs, input.substr(0, split));
  }
  return 0;
}
