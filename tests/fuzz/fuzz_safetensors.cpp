// libFuzzer target: the safetensors reader and the checkpoint index parser on arbitrary bytes.
// A parse either throws sy::Error or yields a file whose every tensor can be read without leaving
// the buffer; any other exception, a sanitizer report or a crash is a bug. A file that parses and
// holds only loadable dtypes is written back with the writer and must read back the same.
//
// Each input is parsed twice through the same entry point: as a whole file, and as header text
// (up to its last '}') plus data behind a correct 8-byte length, so that mutations of the JSON
// reach the header checks without having to keep the length prefix consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "io/safetensors.h"

namespace {

using sy::Tensor;
using sy::io::SafetensorsFile;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

size_t read_everything(const SafetensorsFile& f) {
  size_t sink = f.metadata().size() + f.header_bytes();
  sy::io::NamedTensors loadable;
  for (const sy::io::SafetensorsTensorInfo& info : f.tensors()) {
    if (f.find(info.name) != &info) bug("find() does not return the listed tensor");
    const Tensor raw = f.raw(info.name);
    if (raw.nbytes() != info.nbytes()) bug("raw() size differs from data_offsets");
    if (info.nbytes() > 0) {
      // First and last byte: the sanitizers flag any view that leaves the buffer.
      const auto* bytes = reinterpret_cast<const uint8_t*>(raw.bytes());
      sink += bytes[0] + bytes[info.nbytes() - 1];
    }
    if (!info.dtype.has_value()) {
      try {
        f.tensor(info);
        bug("tensor() loaded a dtype it does not support");
      } catch (const sy::Error&) {
      }
      continue;
    }
    const Tensor t = f.tensor(info);
    if (t.shape() != info.shape || t.nbytes() != info.nbytes()) bug("tensor() shape or size");
    if (t.numel() > 0 && t.numel() <= 4096 &&
        (t.dtype() == sy::DType::F32 || t.dtype() == sy::DType::F16 ||
         t.dtype() == sy::DType::BF16)) {
      const Tensor x = t.to_f32();  // typed reads: UBSan checks their alignment
      sink += static_cast<size_t>(x.data<float>()[x.numel() - 1] == 0.0f);
    }
    loadable.emplace_back(info.name, t);
  }
  if (loadable.size() != f.tensors().size()) return sink;

  const SafetensorsFile again = SafetensorsFile::parse(
      sy::io::serialize_safetensors(loadable, f.metadata()), "rewritten.safetensors");
  if (again.metadata() != f.metadata() || again.tensors().size() != f.tensors().size()) {
    bug("write-back changed the metadata or the tensor count");
  }
  for (const auto& [name, t] : loadable) {
    const Tensor back = again.tensor(name);
    if (back.dtype() != t.dtype() || back.shape() != t.shape() ||
        (t.nbytes() > 0 && std::memcmp(back.bytes(), t.bytes(), t.nbytes()) != 0)) {
      bug("write-back changed a tensor");
    }
  }
  return sink;
}

void parse_file(std::string_view bytes) {
  try {
    volatile size_t keep = read_everything(SafetensorsFile::parse(bytes, "fuzz.safetensors"));
    (void)keep;
  } catch (const sy::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  parse_file(bytes);

  const size_t close = bytes.rfind('}');
  if (close != std::string_view::npos) {
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[i] = static_cast<char>(((close + 1) >> (8 * i)) & 0xff);
    file.append(bytes);
    parse_file(file);
  }

  try {
    const sy::io::SafetensorsIndex index =
        sy::io::parse_safetensors_index(bytes, "fuzz.index.json");
    for (const auto& [tensor, shard] : index.weight_map) {
      if (shard.empty() || shard.find('/') != std::string::npos) bug("index let a path through");
    }
  } catch (const sy::Error&) {
  }
  return 0;
}
