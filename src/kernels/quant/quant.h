// Dequantization and reference quantization of the ggml tensor types that GGUF files store: the
// plain f32 / f16 / bf16 and the block formats q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K,
// q5_K, q6_K and mxfp4. Block geometry (values and bytes per block) comes from core/ggml_types.h;
// each format's bit layout and quantizer are described in its own file
// (kernels/quant/<format>.cpp), one file per format plus one line in the registry table
// (quant.cpp).
//
// Exactness: every dequantizer computes what ggml's reference dequantize_row_<format> defines, in
// f32, in the same order (e.g. q4_K: (d * scale) * q - (dmin * min), each product rounded to f32),
// so the output is bit-identical to the format's definition as long as the compiler does not
// contract a*b - c into one fused multiply-add (the project's x86-64 builds do not enable FMA
// outside Highway code). The quantizers follow ggml's "_ref" quantizers bit for bit for finite
// inputs (same f32 scale, same reciprocal, same rounding: round-half-away for q8_0, truncation of
// x + 8.5 etc. for the 4/5-bit formats; for the K formats the same iterative scale searches,
// kernels/quant/k_search.h, with every sum in ggml's order), which is what llama-quantize writes
// when it has no importance matrix. They never invoke undefined behaviour on NaN or infinity, but
// the codes they give such inputs are unspecified.
//
// Not yet here: a quantizer for mxfp4, the importance-weighted K quantizers, the IQ*, TQ* and
// q8_1 / q8_K formats, and the fused quantized dot products (issue #6).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/ggml_types.h"
#include "core/tensor.h"

namespace sy::kernels {

// Raw per-format bodies: `nblocks` whole blocks in, nblocks * block_values values out (or the
// reverse). They trust their arguments; use the checked entries below at a boundary.
using DequantizeFn = void (*)(const uint8_t* blocks, float* out, int64_t nblocks);
using QuantizeFn = void (*)(const float* values, uint8_t* blocks, int64_t nblocks);

// One registry entry. `quantize` is null where no reference quantizer exists yet.
struct QuantFormat {
  GgmlType type;
  DequantizeFn dequantize;
  QuantizeFn quantize;
};

// The registry entry for `type`, or nullptr when the type has no dequantizer. Hot loops look the
// entry up once and call its function pointers per row.
const QuantFormat* find_quant_format(GgmlType type);

bool can_dequantize(GgmlType type);
bool can_quantize(GgmlType type);

// out: f32 [n] written from the blocks of n values of `type` (ggml_row_bytes(type, n) bytes at
// `blocks`, any alignment). Throws sy::Error when the type cannot be dequantized or n is not a
// whole number of blocks.
void dequantize_row(GgmlType type, const void* blocks, float* out, int64_t n);

// blocks: ggml_row_bytes(type, n) bytes written from the f32 [n] values. Throws sy::Error when the
// type has no quantizer or n is not a whole number of blocks.
void quantize_row(GgmlType type, const float* values, void* blocks, int64_t n);

// The f32 tensor of `shape` stored in `bytes` bytes of `type` at `data`, row by row as GGUF lays
// tensors out: rows = every dimension but the last, each row ggml_row_bytes(type, last dim) bytes
// (a rank-0 shape is one value). Throws sy::Error, starting "dequantize: <type> tensor of shape
// [...]", when the type cannot be dequantized, a dimension is negative, the last dimension is not
// a whole number of blocks, the size overflows, data is null, or `bytes` differs from
// rows * ggml_row_bytes(type, cols). Large tensors are decoded by all OpenMP threads, row by row.
Tensor dequantize(const void* data, size_t bytes, GgmlType type, Shape shape);

// The bytes of `x` (f32, any shape; rows as in dequantize) quantized to `type`, row by row.
// Throws sy::Error when x is not f32, the type has no quantizer, the last dimension is not a whole
// number of blocks, or (block formats only) an element is NaN or infinite, naming its position.
// Large tensors are encoded by all OpenMP threads, row by row; the bytes do not depend on the
// thread count.
std::vector<uint8_t> quantize(const Tensor& x, GgmlType type);

}  // namespace sy::kernels
