// Matrix products with quantized weights: y = x W^T where W is stored in a ggml block format
// exactly as GGUF lays it out (so a memory-mapped GGUF tensor is used as it is), the activations
// x are f32 and y is f32.
//
// How: each call quantizes the activations once, per block, to int8 (the weight format decides the
// block: 32 values with an f32 scale for q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl and iq4_xs weights,
// as ggml's q8_0 (plus the blocks' code sums, for the mins of q4_1 and q5_1); 256 values with an
// f32 scale and per-16 sums for the K formats, as ggml's q8_K), then takes integer
// dot products of whole blocks (AVX-512 VNNI vpdpbusd, AVX-512BW or AVX2 vpmaddubsw + vpmaddwd, or
// portable C++) and applies the f32 scales per block. The SIMD path is picked at run time from the
// CPU's features; every path computes the same integer dot products and differs only in the order
// of the f32 sums. F32, F16 and BF16 weights take a plain path (rows widened to f32, OpenBLAS), so
// every weight of a model goes through the same call.
//
// Error of the quantized path against the f32 product x dequant(W)^T: each activation is rounded
// to the nearest multiple of its block's step d = max|x_block| / 127, so
//   |y - x dequant(W)^T| <= sum_i |dequant(W)_i| * d_block(i) / 2   (+ f32 rounding).
// quant_matmul_activations gives the rounded activations themselves.
//
// Prefill (8 tokens or more) of q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, iq4_nl and iq4_xs weights on
// AVX-512 VNNI: each tile of weight rows is repacked once into an order where every 32-bit lane of
// a sum holds one block for 16 blocks at a time (cpu/qdot.h, kI16), and the activations are
// quantized to the same codes in the matching order, so one f32 step serves 16 blocks. P16 matrices
// (QuantLayout below) are already in that order: on AVX-512 VNNI they take the kI16 bodies at every
// token count, decode included.
//
// Threads: OpenMP with the count from core/threads.h. The rows of W are split across threads; with
// several tokens each thread walks its rows in small tiles that are reused from cache across
// tokens. Results do not depend on the thread count, nor on how many tokens share a call (each
// output is computed by the same sequence of operations either way), except where the kI16 path
// above applies to the call and not to a smaller one: the same integer products are then summed
// in another f32 order, and the results agree within f32 rounding of those sums. (P16 matrices
// take the same bodies at every token count, so for them the exception does not arise.) Plain
// weights go through OpenBLAS, whose order may change with the token count; f16 and bf16 rows
// against at most 4 tokens are widened as they are read and summed in one order for any of 1..4.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/ggml_types.h"
#include "core/tensor.h"

namespace sy::kernels {

// How a matrix's rows hold their blocks. kGgml: as the GGUF file does. kP16: the same bytes per
// row, reordered at load time (pack_p16) so that the AVX-512 VNNI bodies read whole 64-byte
// vectors of codes and take one f32 step per 16 blocks (layout: cpu/qdot.h). Only q8_0, q4_0, q4_K,
// iq4_nl and iq4_xs rows of a multiple of 512 values have a P16 form. Every path takes both
// layouts; paths without a P16 body unpack each tile's rows to the ggml layout first, which costs
// time, so matrices are packed only where p16_pays().
enum class QuantLayout { kGgml, kP16 };

// W [N rows, K cols] of ggml type `type`: row r is the ggml_row_bytes(type, cols) bytes at
// data + r * row_bytes (any alignment), in `layout`. `keep` owns the bytes when the matrix owns
// them (a mapped storage, a vector); it may be null when the caller keeps them alive.
struct QuantMatrix {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  std::shared_ptr<const void> keep;
  QuantLayout layout = QuantLayout::kGgml;
};

// The matrix whose rows x cols values of `type` are the bytes of `bytes` (any dtype: a u8 tensor
// read from a GGUF file, or a view of one), rows stored back to back. Throws sy::Error when cols is
// not a whole number of blocks, a dimension is negative or the byte count differs from rows *
// ggml_row_bytes(type, cols). The matrix shares (keeps alive) the tensor's storage.
// With layout kP16 the bytes are P16 rows (can_pack_p16 must hold; throws otherwise).
QuantMatrix quant_matrix_view(const Tensor& bytes, GgmlType type, int64_t rows, int64_t cols,
                              QuantLayout layout = QuantLayout::kGgml);

// Whether rows of `cols` values of `type` have a P16 form: q8_0, q4_0, q4_K, iq4_nl, iq4_xs with
// cols a multiple of 512.
bool can_pack_p16(GgmlType type, int64_t cols);
// Whether P16 matrices run faster here: the best path is AVX-512 VNNI, and the environment
// variable SY_REPACK is not "0" (read once).
bool p16_pays();
// rows x cols values of `type` in ggml blocks at `ggml` (rows * ggml_row_bytes bytes) as P16 rows
// in a new u8 tensor of the same size. Throws sy::Error when !can_pack_p16(type, cols).
Tensor pack_p16(GgmlType type, int64_t rows, int64_t cols, const uint8_t* ggml);
// The same, over the bytes themselves (one row at a time through a row-sized buffer): for weights
// the caller owns alone, where a copy would only cost memory and page faults.
void pack_p16_in_place(GgmlType type, int64_t rows, int64_t cols, uint8_t* bytes);
// One P16 row back in ggml blocks (ggml_row_bytes(type, cols) bytes at out): exactly the bytes
// pack_p16 was given.
void unpack_row_p16(GgmlType type, int64_t cols, const uint8_t* p16, uint8_t* out);

// w (f32 [N, K]) quantized to `type` with the reference quantizers of kernels/quant, in new
// storage the matrix owns. Throws what kernels::quantize throws.
QuantMatrix quantize_matrix(const Tensor& w, GgmlType type);

// The instruction sets the quantized dot products can use. kAuto picks the best one the CPU has.
enum class QdotPath { kAuto, kScalar, kAvx2, kAvx512, kAvx512Vnni };
std::string_view qdot_path_name(QdotPath path);  // "auto", "scalar", "avx2", "avx512", ...
// The paths compiled into this build and usable on this CPU, best first; kScalar is always last.
std::vector<QdotPath> qdot_paths_available();
// What kAuto resolves to.
QdotPath qdot_path_best();

// Weight types quant_matmul takes: q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K,
// iq4_nl, iq4_xs (quantized) and f32, f16, bf16.
bool can_quant_matmul(GgmlType type);

struct QuantMatmulOptions {
  bool accumulate = false;          // y += x W^T instead of y = x W^T
  QdotPath path = QdotPath::kAuto;  // force one path (tests, benchmarks); must be available
};

// y: f32 [..., N] written (or accumulated); x: f32 [..., K] with the same leading dimensions
// (T = their product, e.g. [T, K] or a single token [K]); w: [N, K]. Throws sy::Error, starting
// "quant_matmul: ", when a dtype or shape does not fit, the weight type is not supported, K is
// not a whole number of the format's blocks, the matrix's bytes are missing or its row_bytes is
// too small, y overlaps x, or a forced path is not available.
void quant_matmul(Tensor& y, const Tensor& x, const QuantMatrix& w, bool accumulate = false);
void quant_matmul(Tensor& y, const Tensor& x, const QuantMatrix& w, const QuantMatmulOptions& opts);

// One independent product of a batch: *y = (or +=) *x (*w)^T, with the shapes of quant_matmul.
// With `gate` set (f32, the shape of *x), the product's input is SwiGLU's hidden activation
// silu(*gate) * *x instead of *x: computed row by row as the activations are quantized, with the
// same values as swiglu_forward (kernels/activations.h) gives, and never stored.
struct QuantMatmulJob {
  Tensor* y = nullptr;
  const Tensor* x = nullptr;
  const QuantMatrix* w = nullptr;
  bool accumulate = false;
  const Tensor* gate = nullptr;
};

// Runs all jobs in one parallel region: activations are quantized once per distinct x (jobs that
// share an x tensor and a weight format share its quantization), then the rows of all jobs are
// split across the threads by their cost. For MoE decode: the active experts' gate and up
// projections in one call, then their down projections. Each job is checked as quant_matmul
// checks it (messages start "quant_matmul_batch: job <i>: "); the outputs must not overlap one
// another or any input. F32/F16/BF16 jobs run one after the other through OpenBLAS.
void quant_matmul_batch(std::span<const QuantMatmulJob> jobs, QdotPath path = QdotPath::kAuto);
// quant_matmul_batch(first), then quant_matmul_batch(then), with the same results, but in one
// parallel region when every job of both is quantized: the team waits for `first` to finish and
// goes on to `then` (whose inputs may be `first`'s outputs) instead of closing the region and
// opening another after serial work. For an MoE FFN in decode: the active experts' gate and up
// products, then their down products on silu(gate) * up (QuantMatmulJob::gate), so the SwiGLU
// runs on every thread while it quantizes the down products' input. Messages name the batch
// and the job: "quant_matmul_stages: first: job <i>: ", "quant_matmul_stages: then: job <i>: ".
void quant_matmul_stages(std::span<const QuantMatmulJob> first,
                         std::span<const QuantMatmulJob> then, QdotPath path = QdotPath::kAuto);

// The f32 values the quantized kernels multiply W with in place of x (f32 [..., K]): x rounded per
// block as described above, for weights of `weight_type` (a quantized type quant_matmul takes).
// A block holding a NaN or an infinity comes back as NaN (and so do the outputs it feeds); a block
// whose largest magnitude is below 2^-100 (~7.9e-31) is taken as zeros, which keeps every scale a
// normal f32. For tests and error analysis.
Tensor quant_matmul_activations(const Tensor& x, GgmlType weight_type);

}  // namespace sy::kernels
