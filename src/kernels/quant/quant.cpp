#include "kernels/quant/quant.h"

#include <array>
#include <cmath>
#include <string>

#include "core/error.h"
#include "kernels/quant/formats.h"

namespace sy::kernels {

namespace {

// The registry: one line per format. A format without a reference quantizer yet has nullptr.
constexpr std::array<QuantFormat, 16> kFormats = {{
    {GgmlType::kF32, quant::dequantize_f32, quant::quantize_f32},
    {GgmlType::kF16, quant::dequantize_f16, quant::quantize_f16},
    {GgmlType::kBF16, quant::dequantize_bf16, quant::quantize_bf16},
    {GgmlType::kQ4_0, quant::dequantize_q4_0, quant::quantize_q4_0},
    {GgmlType::kQ4_1, quant::dequantize_q4_1, quant::quantize_q4_1},
    {GgmlType::kQ5_0, quant::dequantize_q5_0, quant::quantize_q5_0},
    {GgmlType::kQ5_1, quant::dequantize_q5_1, quant::quantize_q5_1},
    {GgmlType::kQ8_0, quant::dequantize_q8_0, quant::quantize_q8_0},
    {GgmlType::kQ2_K, quant::dequantize_q2_k, quant::quantize_q2_k},
    {GgmlType::kQ3_K, quant::dequantize_q3_k, quant::quantize_q3_k},
    {GgmlType::kQ4_K, quant::dequantize_q4_k, quant::quantize_q4_k},
    {GgmlType::kQ5_K, quant::dequantize_q5_k, quant::quantize_q5_k},
    {GgmlType::kQ6_K, quant::dequantize_q6_k, quant::quantize_q6_k},
    {GgmlType::kMXFP4, quant::dequantize_mxfp4, nullptr},
    {GgmlType::kIQ4_NL, quant::dequantize_iq4_nl, quant::quantize_iq4_nl},
    {GgmlType::kIQ4_XS, quant::dequantize_iq4_xs, quant::quantize_iq4_xs},
}};

// Below this many values a tensor is decoded on the calling thread: starting the team costs more.
constexpr int64_t kParallelValues = int64_t{1} << 16;

// "f32, f16, ..." of the types that can be dequantized (or quantized).
std::string supported_names(bool quantizers) {
  std::string names;
  for (const QuantFormat& format : kFormats) {
    if (quantizers && format.quantize == nullptr) continue;
    if (!names.empty()) names += ", ";
    names += ggml_type_info(format.type).name;
  }
  return names;
}

// A name for any type, including ids missing from the type table.
std::string type_name(GgmlType type) {
  const auto info = ggml_type_info(static_cast<uint32_t>(type));
  return info ? std::string(info->name) : fmt::format("id {}", static_cast<uint32_t>(type));
}

const QuantFormat& dequantizer_for(GgmlType type, const char* where) {
  const QuantFormat* format = find_quant_format(type);
  SY_CHECK(format != nullptr, "{}: ggml type {} cannot be dequantized (supported: {})", where,
           type_name(type), supported_names(false));
  return *format;
}

const QuantFormat& quantizer_for(GgmlType type, const char* where) {
  const QuantFormat* format = find_quant_format(type);
  SY_CHECK(format != nullptr && format->quantize != nullptr,
           "{}: ggml type {} has no quantizer (supported: {})", where, type_name(type),
           supported_names(true));
  return *format;
}

// Blocks in a row of n values; throws unless n is a non-negative whole number of blocks.
int64_t row_blocks(const GgmlTypeInfo& info, int64_t n, const char* where) {
  SY_CHECK(n >= 0 && n % info.block_values == 0,
           "{}: {}: {} values are not a whole number of {}-value blocks", where, info.name, n,
           info.block_values);
  return n / info.block_values;
}

}  // namespace

const QuantFormat* find_quant_format(GgmlType type) {
  for (const QuantFormat& format : kFormats) {
    if (format.type == type) return &format;
  }
  return nullptr;
}

bool can_dequantize(GgmlType type) { return find_quant_format(type) != nullptr; }

bool can_quantize(GgmlType type) {
  const QuantFormat* format = find_quant_format(type);
  return format != nullptr && format->quantize != nullptr;
}

void dequantize_row(GgmlType type, const void* blocks, float* out, int64_t n) {
  const QuantFormat& format = dequantizer_for(type, "dequantize_row");
  const int64_t nblocks = row_blocks(ggml_type_info(type), n, "dequantize_row");
  if (nblocks == 0) return;  // the pointers may be null
  format.dequantize(static_cast<const uint8_t*>(blocks), out, nblocks);
}

void quantize_row(GgmlType type, const float* values, void* blocks, int64_t n) {
  const QuantFormat& format = quantizer_for(type, "quantize_row");
  const int64_t nblocks = row_blocks(ggml_type_info(type), n, "quantize_row");
  if (nblocks == 0) return;
  format.quantize(values, static_cast<uint8_t*>(blocks), nblocks);
}

Tensor dequantize(const void* data, size_t bytes, GgmlType type, Shape shape) {
  const std::string what =
      fmt::format("dequantize: {} tensor of shape {}", type_name(type), shape_str(shape));
  const QuantFormat& format = dequantizer_for(type, "dequantize");
  const GgmlTypeInfo& info = ggml_type_info(type);
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    SY_CHECK(shape[i] >= 0, "{}: dimension {} is negative", what, i);
    SY_CHECK(!__builtin_mul_overflow(rows, shape[i], &rows), "{}: too many values", what);
  }
  const int64_t cols = shape.empty() ? 1 : shape.back();
  SY_CHECK(cols >= 0, "{}: dimension {} is negative", what, shape.size() - 1);
  SY_CHECK(cols % info.block_values == 0,
           "{}: rows of {} values are not a whole number of {}-value blocks", what, cols,
           info.block_values);
  const int64_t row_bytes = cols / info.block_values * info.block_bytes;
  int64_t total_bytes = 0;
  int64_t total_values = 0;
  SY_CHECK(!__builtin_mul_overflow(rows, row_bytes, &total_bytes) &&
               !__builtin_mul_overflow(rows, cols, &total_values) &&
               !__builtin_mul_overflow(total_values, int64_t{4}, &total_values),
           "{}: too many values", what);
  SY_CHECK(static_cast<uint64_t>(total_bytes) == bytes,
           "{}: takes {} bytes ({} rows of {}), got {}", what, total_bytes, rows, row_bytes, bytes);
  SY_CHECK(data != nullptr || bytes == 0, "{}: data is null", what);

  Tensor out = Tensor::empty(std::move(shape));
  if (rows == 0 || cols == 0) return out;
  const auto* src = static_cast<const uint8_t*>(data);
  float* dst = out.mutable_data<float>();
  const int64_t nblocks = cols / info.block_values;
  const DequantizeFn decode = format.dequantize;
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelValues)
  for (int64_t r = 0; r < rows; ++r) decode(src + r * row_bytes, dst + r * cols, nblocks);
  return out;
}

std::vector<uint8_t> quantize(const Tensor& x, GgmlType type) {
  const std::string what =
      fmt::format("quantize: f32 tensor of shape {} to {}", shape_str(x.shape()), type_name(type));
  x.expect_dtype(DType::F32, "quantize: x");
  const QuantFormat& format = quantizer_for(type, "quantize");
  const GgmlTypeInfo& info = ggml_type_info(type);
  const int64_t rows = x.rows(), cols = x.cols();
  SY_CHECK(cols % info.block_values == 0,
           "{}: rows of {} values are not a whole number of {}-value blocks", what, cols,
           info.block_values);
  if (x.numel() == 0) return {};  // also an undefined tensor, whose rows() * cols() is 1
  const float* src = x.data<float>();
  if (info.block_values > 1) {  // block formats keep finite values only
    for (int64_t i = 0; i < x.numel(); ++i) {
      SY_CHECK(std::isfinite(src[i]), "{}: element {} (row {}, column {}) is {}", what, i, i / cols,
               i % cols, src[i]);
    }
  }
  const int64_t row_bytes = cols / info.block_values * info.block_bytes;
  std::vector<uint8_t> out(static_cast<size_t>(rows * row_bytes));
  const int64_t nblocks = cols / info.block_values;
  const QuantizeFn encode = format.quantize;
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelValues)
  for (int64_t r = 0; r < rows; ++r) encode(src + r * cols, out.data() + r * row_bytes, nblocks);
  return out;
}

}  // namespace sy::kernels
