// libFuzzer target: the architecture readers (model/arch/) and validate_config on arbitrary
// config.json text and GGUF metadata. Each input is read both ways: as config.json text, and as a
// GGUF file whose metadata and tensor list the GGUF readers see. A read either throws sy::Error
// or yields a config whose sizes are positive and consistent; any other exception (bad_alloc
// from a huge layer count, a JSON type error), a sanitizer report (an overflowing product, a
// float conversion out of range), a crash or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/gguf.h"
#include "model/config.h"

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_model_config: %s\n", what);
  std::abort();
}

// What every validated config promises the model code.
void check(const sy::model::ModelConfig& c) {
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0 || c.key_dim() <= 0 ||
      c.value_dim() <= 0) {
    bug("validated config with a non-positive or inconsistent size");
  }
  if (static_cast<int64_t>(c.moe_layer.size()) != c.num_layers) bug("moe_layer size");
  if (!(c.attn_scale > 0.0f) || !(c.norm_eps > 0.0f)) bug("attn_scale or norm_eps not > 0");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    check(sy::model::config_from_hf_text(bytes, "fuzz/config.json"));
  } catch (const sy::Error&) {
  }
  try {
    const sy::io::GgufFile f = sy::io::GgufFile::parse(bytes, "fuzz.gguf");
    check(sy::model::config_from_gguf(f));
  } catch (const sy::Error&) {
  }
  return 0;
}
