// The ggml tensor types that GGUF files store, by their on-disk id (ggml.h `enum ggml_type`):
// name, values per block and bytes per block. The GGUF reader (io) uses it to size and validate
// tensors; the quantization kernels (kernels/quant) use it to walk blocks. Which types can be
// decoded is the kernels' business, not this table's.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sy {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // as ggml prints it: "f32", "q4_K", ...
  int64_t block_values;   // values per block (1 for plain types)
  int64_t block_bytes;    // bytes per block
};

// The entry for an on-disk id, or nullopt for ids this table does not know (removed or newer
// types); callers turn that into an error naming the file and tensor.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id);
// Same by type.
const GgmlTypeInfo& ggml_type_info(GgmlType type);
// Bytes of `values` values of `type` stored row by row; throws sy::Error when values is not a
// multiple of the block size.
int64_t ggml_row_bytes(GgmlType type, int64_t values);

}  // namespace sy
