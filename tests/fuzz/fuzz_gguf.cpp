// libFuzzer target: the GGUF parser on arbitrary bytes. A parse either throws sy::Error or yields
// a file whose every value and every tensor's bytes can be read without leaving the buffer.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/gguf.h"

namespace {

// Walks a value (nested arrays included) so every stored element is read.
size_t touch(const sy::io::GgufValue& v) {
  size_t n = v.describe().size();
  if (v.type() == sy::io::GgufValueType::kArray) {
    for (const sy::io::GgufValue& item : v.as_array().items) n += touch(item);
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const sy::io::GgufFile f = sy::io::GgufFile::parse(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.gguf");
    size_t sink = 0;
    for (const sy::io::GgufKv& kv : f.kvs()) sink += kv.key.size() + touch(kv.value);
    for (const sy::io::GgufTensorInfo& t : f.tensors()) {
      const sy::Tensor raw = f.raw(t);
      if (t.nbytes > 0) {
        // First and last byte: the sanitizers flag any view that leaves the buffer.
        const auto* bytes = reinterpret_cast<const uint8_t*>(raw.bytes());
        sink += bytes[0] + bytes[t.nbytes - 1];
      }
      sink += static_cast<size_t>(t.numel()) + t.shape().size();
      try {
        sink += f.tensor(t).nbytes();  // typed views only exist for f32/f16/bf16/i32/i64
      } catch (const sy::Error&) {
      }
    }
    // Typed lookups with their conversion rules on whatever keys exist.
    for (const sy::io::GgufKv& kv : f.kvs()) {
      try {
        sink += f.get_u32(kv.key);
      } catch (const sy::Error&) {
      }
    }
    volatile size_t keep = sink;
    (void)keep;
  } catch (const sy::Error&) {
    // Malformed input: the expected outcome for most fuzz cases.
  }
  return 0;
}
