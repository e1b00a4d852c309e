#include "kernels/qmatmul.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/storage.h"
#include "core/threads.h"
#include "kernels/cpu/activations_cpu.h"
#include "kernels/cpu/gemm_cpu.h"
#include "kernels/cpu/plain_dot_cpu.h"
#include "kernels/cpu/qdot.h"
#include "kernels/quant/quant.h"

namespace sy::kernels {

namespace {

constexpr GgmlType kQuantTypes[] = {GgmlType::kQ8_0, GgmlType::kQ4_0,   GgmlType::kQ4_1,
                                    GgmlType::kQ5_0, GgmlType::kQ5_1,   GgmlType::kQ2_K,
                                    GgmlType::kQ3_K, GgmlType::kQ4_K,   GgmlType::kQ5_K,
                                    GgmlType::kQ6_K, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS};
constexpr GgmlType kPlainTypes[] = {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16};

// Work is cut into units of whole rows x a token range. A unit's weight rows are read once per
// unit; its activations stay in L2 across its rows (kActChunkBytes), and a thread's units are
// contiguous so each thread streams its own part of every matrix.
constexpr size_t kUnitWeightBytes = size_t{48} << 10;
constexpr size_t kActChunkBytes = size_t{192} << 10;
// Below this many cost units (bytes of weights read + multiply-adds / 2) a call runs on the
// calling thread: waking the team costs more.
constexpr double kParallelCost = 96.0 * 1024;
// Quantized activations up to this size go on the caller's stack instead of the heap.
constexpr size_t kStackActBytes = size_t{32} << 10;
// A stage with at most this many activation values (rows x K: a decode step's q/k/v, o and
// LM-head products, one row of 2048) is quantized by every thread into its own copy, so no
// barrier separates quantizing from the products: a thread that enters the parallel region late
// holds up only itself, and the others take its units meanwhile. With the barrier, thread 0 of
// an OLMoE q4_0 decode step waited ~9 kcycles a region for the other to arrive and quantize.
constexpr int64_t kPrivateActValues = 4096;
// Rows of f16/bf16 (or unaligned f32) weights widened per OpenBLAS call in the plain path.
constexpr int64_t kPlainChunkRows = 256;
// From this many tokens on, products on AVX-512 VNNI take the kI16 bodies where the weight type has
// one (cpu::qdot_tile_i16_vnni: q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, iq4_nl, iq4_xs): each tile
// repacks its weight rows once, which pays when enough tokens reuse them.
constexpr int64_t kI16MinTokens = 8;

bool is_quant(GgmlType type) {
  return std::ranges::find(kQuantTypes, type) != std::end(kQuantTypes);
}
bool is_plain(GgmlType type) {
  return std::ranges::find(kPlainTypes, type) != std::end(kPlainTypes);
}

std::string type_name(GgmlType type) {
  const auto info = ggml_type_info(static_cast<uint32_t>(type));
  return info ? std::string(info->name) : fmt::format("id {}", static_cast<uint32_t>(type));
}

std::string supported_names() {
  std::string out;
  for (GgmlType t : kQuantTypes) out += std::string(out.empty() ? "" : ", ") + type_name(t);
  for (GgmlType t : kPlainTypes) out += ", " + type_name(t);
  return out;
}

bool x86_build() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return true;
#else
  return false;
#endif
}

bool path_usable(QdotPath path) {
  const CpuFeatures& f = cpu_features();
  switch (path) {
    case QdotPath::kAuto:
    case QdotPath::kScalar:
      return true;
    case QdotPath::kAvx2:
      return x86_build() && f.avx2 && f.fma && f.f16c;
    case QdotPath::kAvx512:
      return x86_build() && f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl;
    case QdotPath::kAvx512Vnni:
      return path_usable(QdotPath::kAvx512) && f.avx512_vnni;
  }
  return false;
}

std::string available_names() {
  std::string out;
  for (QdotPath p : qdot_paths_available()) {
    out += std::string(out.empty() ? "" : ", ") + std::string(qdot_path_name(p));
  }
  return out;
}

QdotPath resolve_path(QdotPath path, const char* where) {
  SY_CHECK(path_usable(path), "{}: SIMD path {} is not available here (available: {})", where,
           qdot_path_name(path), available_names());
  return path == QdotPath::kAuto ? qdot_path_best() : path;
}

struct PathKernels {
  cpu::ActQuantizeFn quantize;
  cpu::QdotTileFn tile;
};

PathKernels kernels_for(QdotPath path, GgmlType type) {
  switch (path) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    case QdotPath::kAvx512Vnni:
      return {cpu::quantize_act_row_avx512, cpu::qdot_tile_avx512(type, true)};
    case QdotPath::kAvx512:
      return {cpu::quantize_act_row_avx512, cpu::qdot_tile_avx512(type, false)};
    case QdotPath::kAvx2:
      return {cpu::quantize_act_row_avx2, cpu::qdot_tile_avx2(type)};
#endif
    default:
      return {cpu::quantize_act_row, cpu::qdot_tile_scalar(type)};
  }
}

// Where a message comes from: "quant_matmul" or "quant_matmul_batch: job 3". Formatted only when
// a check fails, so a call costs no string work.
struct Where {
  const char* op;
  int64_t job;  // -1: a single product
};
}  // namespace
}  // namespace sy::kernels

template <>
struct fmt::formatter<sy::kernels::Where> : fmt::formatter<std::string_view> {
  auto format(const sy::kernels::Where& w, format_context& ctx) const {
    return w.job < 0 ? fmt::format_to(ctx.out(), "{}", w.op)
                     : fmt::format_to(ctx.out(), "{}: job {}", w.op, w.job);
  }
};

namespace sy::kernels {
namespace {

// Activations that share a quantized form: same x, same layout variant (q5_K uses q4_K's; f32,
// f16 and bf16 rows all read the f32 values).
GgmlType act_variant(GgmlType type) {
  if (is_plain(type)) return GgmlType::kF32;
  return type == GgmlType::kQ5_K ? GgmlType::kQ4_K : type;
}

// Plain (f32 / f16 / bf16) jobs of more tokens than cpu::plain_dot_tile takes go to OpenBLAS on
// their own; fewer are shared out in units like the quantized ones.
bool wide_plain(const QuantMatmulJob& j) {
  return is_plain(j.w->type) && j.x->rows() > cpu::kPlainDotMaxTokens;
}

// Checks one product.
void check_job(const Tensor& y, const Tensor& x, const Tensor* gate, const QuantMatrix& w,
               const Where& where) {
  SY_CHECK(is_quant(w.type) || is_plain(w.type),
           "{}: weight type {} is not supported (supported: {})", where, type_name(w.type),
           supported_names());
  const GgmlTypeInfo& info = ggml_type_info(w.type);
  SY_CHECK(w.rows >= 0 && w.cols >= 0, "{}: w has shape [{}, {}]: dimensions must be >= 0", where,
           w.rows, w.cols);
  SY_CHECK(w.cols % info.block_values == 0,
           "{}: w: K = {} is not a whole number of {}-value {} blocks", where, w.cols,
           info.block_values, info.name);
  const int64_t need = w.cols / info.block_values * info.block_bytes;
  SY_CHECK(w.row_bytes >= static_cast<size_t>(need),
           "{}: w: row_bytes is {}, a row of {} {} values takes {}", where, w.row_bytes, w.cols,
           info.name, need);
  SY_CHECK(w.data != nullptr || w.rows == 0 || w.cols == 0, "{}: w: data is null", where);
  SY_CHECK(w.layout == QuantLayout::kGgml || cpu::p16_fits(w.type, w.cols),
           "{}: w: a P16 matrix must be q8_0, q4_0 or q4_K with K a multiple of {}; it is {} "
           "with K = {}",
           where, cpu::kP16GroupValues, info.name, w.cols);
  SY_CHECK(x.dtype() == DType::F32, "{}: x: dtype {}, expected f32", where, dtype_name(x.dtype()));
  SY_CHECK(y.dtype() == DType::F32, "{}: y: dtype {}, expected f32", where, dtype_name(y.dtype()));
  SY_CHECK(x.rank() >= 1, "{}: x must have rank >= 1, got shape {}", where, shape_str(x.shape()));
  SY_CHECK(x.cols() == w.cols,
           "{}: x has shape {}, its last dimension must be K = {} (w is [{}, {}])", where,
           shape_str(x.shape()), w.cols, w.rows, w.cols);
  bool fits = y.rank() == x.rank() && y.cols() == w.rows;
  for (int i = 0; fits && i + 1 < x.rank(); ++i) fits = y.dim(i) == x.dim(i);
  if (!fits) {
    Shape want = x.shape();
    want.back() = w.rows;
    fail("{}: y: shape {}, expected {}", where, shape_str(y.shape()), shape_str(want));
  }
  if (gate != nullptr) {
    SY_CHECK(gate->dtype() == DType::F32, "{}: gate: dtype {}, expected f32", where,
             dtype_name(gate->dtype()));
    SY_CHECK(gate->shape() == x.shape(), "{}: gate: shape {}, expected x's {}", where,
             shape_str(gate->shape()), shape_str(x.shape()));
  }
  for (const Tensor* in : {&x, gate}) {
    if (in == nullptr || y.numel() == 0 || in->numel() == 0 || y.storage() != in->storage()) {
      continue;
    }
    const size_t y0 = y.byte_offset(), y1 = y0 + y.nbytes();
    const size_t x0 = in->byte_offset(), x1 = x0 + in->nbytes();
    SY_CHECK(y1 <= x0 || x1 <= y0, "{}: y overlaps {}", where, in == &x ? "x" : "gate");
  }
}

// y = (or +=) x W^T for f32 / f16 / bf16 weights against more tokens than cpu::plain_dot_tile
// takes (fewer run in build_stage's units, each row dotted as it is read: OpenBLAS's sgemm with one
// row of x read an f32 matrix at ~11 GB/s here): OpenBLAS, rows widened to f32 in chunks unless
// they are aligned f32 already.
void plain_matmul(Tensor& y, const Tensor& x, const QuantMatrix& w, bool accumulate) {
  const int64_t t = x.rows(), n = w.rows, k = w.cols;
  float* yp = y.mutable_data<float>();
  const float* xp = x.data<float>();
  const float beta = accumulate ? 1.0f : 0.0f;
  if (t == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) std::fill(yp, yp + t * n, 0.0f);
    return;
  }
  if (w.type == GgmlType::kF32 && reinterpret_cast<uintptr_t>(w.data) % 4 == 0 &&
      w.row_bytes % 4 == 0) {
    cpu::sgemm(false, true, t, n, k, 1.0f, xp, k, reinterpret_cast<const float*>(w.data),
               static_cast<int64_t>(w.row_bytes / 4), beta, yp, n);
    return;
  }
  const QuantFormat* format = find_quant_format(w.type);
  SY_DCHECK(format != nullptr);
  const int64_t chunk = std::min(n, kPlainChunkRows);
  Tensor wide = Tensor::empty({chunk, k});
  float* wp = wide.mutable_data<float>();
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    parallel_for(0, rows, rows * k >= (int64_t{1} << 16), [&](int64_t r) {
      format->dequantize(w.data + (r0 + r) * w.row_bytes, wp + r * k, k);
    });
    cpu::sgemm(false, true, t, rows, k, 1.0f, xp, k, wp, k, beta, yp + r0, n);
  }
}

struct QJob {
  const uint8_t* w;
  size_t w_stride;
  int64_t n, k, t;
  float* y;
  bool accumulate;
  cpu::QdotTileFn tile;
  size_t act_index;
  GgmlType type;
  bool unpack;  // P16 rows for a tile body that reads ggml blocks: unpack each unit's rows first
};
struct ActBuf {
  const float* x;
  const float* gate;  // non-null: the rows are silu(gate) * x
  int64_t t, k;
  GgmlType type;  // the weight type the layout is for
  bool i16;       // kI16 instead of the type's own layout
  cpu::ActQuantizeFn quantize;
  size_t stride;  // bytes per quantized row, a multiple of 64
  size_t offset;  // into the shared buffer
};
// A job's units: token chunks x row chunks, numbered token chunk by token chunk, so a run of
// units walks each matrix's rows forward. Unit u of the job covers token chunk u / row_chunks
// and row chunk u % row_chunks.
struct JobUnits {
  int64_t rows_per_unit, tokens_per_unit, row_chunks, count;
  int64_t first;  // global index of its first unit: the units of the jobs before it
  double cost;    // of all its units: bytes of weights read + multiply-adds / 2
};
struct alignas(64) Counter {
  std::atomic<int64_t> next;
};

// The quantized products of one batch, and how their units are shared out among the threads.
struct Stage {
  std::vector<QJob> jobs;
  std::vector<ActBuf> acts;
  // Units are described per job (a decode step's 16 expert matrices make ~400 units of a few
  // microseconds each; listing them one by one took longer than some of them).
  std::vector<JobUnits> grid;
  int64_t n_units = 0, act_rows = 0, act_values = 0;
  double cost = 0.0;
  bool private_acts = false;        // each thread quantizes all the rows into its own copy
  std::vector<int64_t> share_end;   // per thread
  std::unique_ptr<Counter[]> next;  // per thread: its share's next unclaimed unit
};

// Lays out the stage's activations in the shared buffer from byte `offset` on (returns the end)
// and cuts its jobs into units.
size_t plan_units(Stage& s, size_t offset) {
  for (ActBuf& a : s.acts) {
    a.offset = offset;
    offset += a.stride * static_cast<size_t>(a.t);
    s.act_rows += a.t;
    s.act_values += a.t * a.k;
  }
  s.grid.reserve(s.jobs.size());
  for (const QJob& q : s.jobs) {
    const ActBuf& a = s.acts[q.act_index];
    const size_t row_bytes = std::max<size_t>(q.w_stride, 1);
    const int64_t rows_per_unit =
        std::max<int64_t>(4, static_cast<int64_t>(kUnitWeightBytes / row_bytes) / 4 * 4);
    int64_t tokens_per_unit =
        std::max<int64_t>(1, static_cast<int64_t>(kActChunkBytes / std::max<size_t>(a.stride, 1)));
    // Whole token tiles of every body (3 or 4 tokens) where the chunk allows.
    if (tokens_per_unit >= 12) tokens_per_unit = tokens_per_unit / 12 * 12;
    const int64_t row_chunks = (q.n + rows_per_unit - 1) / rows_per_unit;
    const int64_t token_chunks = (q.t + tokens_per_unit - 1) / tokens_per_unit;
    // Each token chunk reads all the rows once; each row meets every token once.
    const double c = static_cast<double>(q.n) *
                     (static_cast<double>(token_chunks) * static_cast<double>(q.w_stride) +
                      0.5 * static_cast<double>(q.t) * static_cast<double>(q.k));
    s.grid.push_back(
        {rows_per_unit, tokens_per_unit, row_chunks, row_chunks * token_chunks, s.n_units, c});
    s.n_units += s.grid.back().count;
    s.cost += c;
  }
  return offset;
}

// Thread tid's share: the units whose middle falls in its share of the cost, contiguous runs of
// rows so each thread streams its own part of every matrix. Units are claimed one at a time
// from each share's counter, so a thread that finishes early (the host is shared: a core may
// lose its time slice or its bandwidth) takes the rest of the others' shares instead of
// waiting at the barrier. Which thread runs a unit does not change its outputs.
// Share s ends at the first unit whose middle lies past (s + 1) / threads of the cost, the
// units of a job taken as equal (they differ only at its edges).
void share_out(Stage& s, int threads) {
  s.share_end.assign(static_cast<size_t>(threads), s.n_units);
  double at = 0.0;  // cost of the jobs before job j
  size_t j = 0;
  for (int share = 0; share + 1 < threads; ++share) {
    const double x = s.cost * (share + 1) / threads;
    while (j < s.grid.size() && at + s.grid[j].cost <= x) at += s.grid[j++].cost;
    if (j == s.grid.size()) break;
    const double unit_cost = s.grid[j].cost / static_cast<double>(s.grid[j].count);
    const auto u = static_cast<int64_t>(std::ceil((x - at) / unit_cost - 0.5));
    s.share_end[static_cast<size_t>(share)] =
        s.grid[j].first + std::clamp<int64_t>(u, 0, s.grid[j].count);
  }
  s.next = std::make_unique<Counter[]>(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    s.next[static_cast<size_t>(t)].next.store(t == 0 ? 0 : s.share_end[static_cast<size_t>(t - 1)],
                                              std::memory_order_relaxed);
  }
}

// Activation rows [begin, end) of all the stage's buffers together.
void quantize_rows(const Stage& s, uint8_t* base, int64_t begin, int64_t end) {
  size_t b = 0;
  int64_t first = 0;  // global index of buffer b's row 0
  for (int64_t i = begin; i < end; ++i) {
    while (i - first >= s.acts[b].t) first += s.acts[b++].t;
    const ActBuf& a = s.acts[b];
    const int64_t row = i - first;
    const float* x = a.x + row * a.k;
    if (a.gate != nullptr) {
      thread_local std::vector<float> hidden;
      hidden.resize(static_cast<size_t>(a.k));
      cpu::swiglu_forward_span(hidden.data(), a.gate + row * a.k, x, a.k);
      x = hidden.data();
    }
    a.quantize(a.type, x, a.k, base + a.offset + static_cast<size_t>(row) * a.stride);
  }
}

// Unit u of job j.
void run_unit(const Stage& s, const uint8_t* base, size_t j, int64_t u) {
  const QJob& q = s.jobs[j];
  const ActBuf& a = s.acts[q.act_index];
  const JobUnits& g = s.grid[j];
  const int64_t r0 = u % g.row_chunks * g.rows_per_unit, r1 = std::min(q.n, r0 + g.rows_per_unit);
  const int64_t t0 = u / g.row_chunks * g.tokens_per_unit;
  const int64_t t1 = std::min(q.t, t0 + g.tokens_per_unit);
  cpu::QdotTile tile;
  tile.w = q.w + static_cast<size_t>(r0) * q.w_stride;
  tile.w_stride = q.w_stride;
  if (q.unpack) {
    thread_local std::vector<uint8_t> rows;
    rows.resize(static_cast<size_t>(r1 - r0) * q.w_stride);
    for (int64_t r = 0; r < r1 - r0; ++r) {
      cpu::unpack_row_p16(q.type, tile.w + static_cast<size_t>(r) * q.w_stride, q.k,
                          rows.data() + static_cast<size_t>(r) * q.w_stride);
    }
    tile.w = rows.data();
  }
  tile.rows = r1 - r0;
  tile.act = base + a.offset + static_cast<size_t>(t0) * a.stride;
  tile.act_stride = a.stride;
  tile.tokens = t1 - t0;
  tile.k = q.k;
  tile.y = q.y + t0 * q.n + r0;
  tile.y_stride = q.n;
  tile.accumulate = q.accumulate;
  q.tile(tile);
}

// Thread tid's units of the stage: its own share first, then the others' remainders (all
// `threads` shares: the team may have come up smaller than asked).
void run_share(Stage& s, const uint8_t* base, int tid, int threads) {
  for (int k = 0; k < threads; ++k) {
    const auto v = static_cast<size_t>((tid + k) % threads);
    for (;;) {
      const int64_t i = s.next[v].next.fetch_add(1, std::memory_order_relaxed);
      if (i >= s.share_end[v]) break;
      const auto j = static_cast<size_t>(std::ranges::upper_bound(s.grid, i, {}, &JobUnits::first) -
                                         s.grid.begin() - 1);
      run_unit(s, base, j, i - s.grid[j].first);
    }
  }
}

// Runs the stages one after the other, each once every output of the one before is written: in
// one parallel region when the work is large enough to share.
void run_quantized(std::span<Stage> stages) {
  size_t total = 0;
  double cost = 0.0;
  int64_t widest = 0;  // units or activation rows of the widest stage
  for (Stage& s : stages) {
    total = plan_units(s, total);
    cost += s.cost;
    widest = std::max({widest, s.n_units, s.act_rows});
  }
  const int threads =
      cost < kParallelCost ? 1 : static_cast<int>(std::min<int64_t>(num_threads(), widest));
  bool any_private = false;
  for (Stage& s : stages) {
    s.private_acts = threads > 1 && s.act_values <= kPrivateActValues;
    any_private = any_private || s.private_acts;
  }
  // One copy of every stage's activations, and one per thread when a stage quantizes privately
  // (copy t at base + t * total; shared stages use copy 0). Decode-sized activations live on the
  // stack; larger ones in a (recycled) heap block.
  const size_t bytes = total * static_cast<size_t>(any_private ? threads : 1);
  alignas(64) std::array<uint8_t, kStackActBytes> local;
  std::shared_ptr<Storage> heap;
  uint8_t* base = local.data();
  if (bytes > local.size()) {
    heap = Storage::allocate(bytes);
    base = reinterpret_cast<uint8_t*>(heap->mutable_data());
  }
  if (threads == 1) {  // no OpenMP region at all: its start-up costs more than small work
    for (Stage& s : stages) {
      quantize_rows(s, base, 0, s.act_rows);
      for (size_t j = 0; j < s.grid.size(); ++j) {
        for (int64_t u = 0; u < s.grid[j].count; ++u) run_unit(s, base, j, u);
      }
    }
    return;
  }
  for (Stage& s : stages) share_out(s, threads);
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    for (size_t i = 0; i < stages.size(); ++i) {
      Stage& s = stages[i];
      if (i > 0) {
#pragma omp barrier
      }
      if (s.private_acts) {
        uint8_t* own = base + static_cast<size_t>(tid) * total;
        quantize_rows(s, own, 0, s.act_rows);
        run_share(s, own, tid, threads);
        continue;
      }
      quantize_rows(s, base, s.act_rows * tid / nt, s.act_rows * (tid + 1) / nt);
#pragma omp barrier
      run_share(s, base, tid, threads);
    }
  }
}

bool has_wide_plain(std::span<const QuantMatmulJob> jobs) {
  return std::ranges::any_of(jobs, wide_plain);
}

// Checks every job of a batch as quant_matmul checks one, and that no output overlaps another
// job's output or input.
void check_jobs(std::span<const QuantMatmulJob> jobs, const char* op) {
  const bool single = jobs.size() == 1 && std::string_view(op) == "quant_matmul";
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Where where{op, single ? -1 : static_cast<int64_t>(i)};
    const QuantMatmulJob& j = jobs[i];
    SY_CHECK(j.y != nullptr && j.x != nullptr && j.w != nullptr, "{}: y, x and w must be set",
             where);
    check_job(*j.y, *j.x, j.gate, *j.w, where);
  }
  // Outputs may not overlap each other (or any input: checked per job against its own inputs
  // above, and here against the others').
  for (size_t i = 0; i < jobs.size() && jobs.size() > 1; ++i) {
    const Tensor& yi = *jobs[i].y;
    if (yi.numel() == 0) continue;
    for (size_t j = 0; j < jobs.size(); ++j) {
      if (j == i) continue;
      for (const Tensor* other : {static_cast<const Tensor*>(jobs[j].y), jobs[j].x, jobs[j].gate}) {
        if (other == nullptr || (other == jobs[j].y && j < i)) continue;  // outputs: each pair once
        if (other->numel() == 0 || other->storage() != yi.storage()) continue;
        const size_t a0 = yi.byte_offset(), a1 = a0 + yi.nbytes();
        const size_t b0 = other->byte_offset(), b1 = b0 + other->nbytes();
        SY_CHECK(a1 <= b0 || b1 <= a0, "{}: y overlaps the {} of job {}",
                 Where{op, static_cast<int64_t>(i)},
                 other == jobs[j].y ? "y" : (other == jobs[j].x ? "x" : "gate"), j);
      }
    }
  }
}

// The quantized products of a checked batch, ready to run; f32/f16/bf16 jobs of more than
// cpu::kPlainDotMaxTokens tokens and empty ones run here and now.
Stage build_stage(std::span<const QuantMatmulJob> jobs, QdotPath resolved) {
  Stage s;
  s.jobs.reserve(jobs.size());
  s.acts.reserve(jobs.size());
  for (const QuantMatmulJob& j : jobs) {
    const QuantMatrix& w = *j.w;
    const int64_t t = j.x->rows();
    if (t == 0 || w.rows == 0) continue;
    float* y = j.y->mutable_data<float>();
    const bool plain = is_plain(w.type);
    if (wide_plain(j)) {
      if (j.gate == nullptr) {
        plain_matmul(*j.y, *j.x, w, j.accumulate);
      } else {
        Tensor hidden = Tensor::empty(j.x->shape());
        cpu::swiglu_forward(hidden.mutable_data<float>(), j.gate->data<float>(), j.x->data<float>(),
                            1, hidden.numel(), hidden.numel());
        plain_matmul(*j.y, hidden, w, j.accumulate);
      }
      continue;
    }
    if (w.cols == 0) {
      if (!j.accumulate) std::fill(y, y + t * w.rows, 0.0f);
      continue;
    }
    const bool p16 = w.layout == QuantLayout::kP16;
    const bool vnni = resolved == QdotPath::kAvx512Vnni;
    const cpu::QdotTileFn i16_tile = !vnni || plain       ? nullptr
                                     : p16                ? cpu::qdot_tile_p16_vnni(w.type)
                                     : t >= kI16MinTokens ? cpu::qdot_tile_i16_vnni(w.type)
                                                          : nullptr;
    const bool i16 = i16_tile != nullptr;
    const PathKernels pk = plain ? PathKernels{cpu::copy_act_row_f32, cpu::plain_dot_tile(w.type)}
                           : i16 ? PathKernels{cpu::quantize_act_row_i16_avx512, i16_tile}
                                 : kernels_for(resolved, w.type);
    SY_DCHECK(pk.tile != nullptr);
    const float* x = j.x->data<float>();
    const float* gate = j.gate == nullptr ? nullptr : j.gate->data<float>();
    size_t act = 0;
    while (act < s.acts.size() &&
           !(s.acts[act].x == x && s.acts[act].gate == gate && s.acts[act].t == t &&
             s.acts[act].k == w.cols && s.acts[act].i16 == i16 &&
             act_variant(s.acts[act].type) == act_variant(w.type))) {
      ++act;
    }
    if (act == s.acts.size()) {
      const size_t bytes = plain ? static_cast<size_t>(w.cols) * 4
                           : i16 ? cpu::act_row_bytes_i16(w.cols)
                                 : cpu::act_row_bytes(w.type, w.cols);
      s.acts.push_back({x, gate, t, w.cols, w.type, i16, pk.quantize, (bytes + 63) / 64 * 64, 0});
    }
    s.jobs.push_back({w.data, w.row_bytes, w.rows, w.cols, t, y, j.accumulate, pk.tile, act, w.type,
                      p16 && !i16});
  }
  return s;
}

// A checked batch on its own.
void run_batch(std::span<const QuantMatmulJob> jobs, QdotPath resolved) {
  Stage s = build_stage(jobs, resolved);
  if (!s.jobs.empty()) run_quantized({&s, 1});
}

void run_jobs(std::span<const QuantMatmulJob> jobs, QdotPath path, const char* op) {
  check_jobs(jobs, op);
  run_batch(jobs, resolve_path(path, op));
}

// Throws naming `op` when a [rows, cols] matrix of `type` has no P16 form.
void check_p16_form(const char* op, GgmlType type, int64_t rows, int64_t cols) {
  SY_CHECK(cpu::p16_fits(type, cols),
           "{}: {} matrix [{}, {}] has no P16 form (q8_0, q4_0 or q4_K with a multiple of {} "
           "columns)",
           op, type_name(type), rows, cols, cpu::kP16GroupValues);
}

}  // namespace

QuantMatrix quant_matrix_view(const Tensor& bytes, GgmlType type, int64_t rows, int64_t cols,
                              QuantLayout layout) {
  const auto info = ggml_type_info(static_cast<uint32_t>(type));
  SY_CHECK(info.has_value(), "quant_matrix_view: unknown ggml type id {}",
           static_cast<uint32_t>(type));
  SY_CHECK(rows >= 0 && cols >= 0, "quant_matrix_view: {} matrix [{}, {}]: dimensions must be >= 0",
           info->name, rows, cols);
  SY_CHECK(cols % info->block_values == 0,
           "quant_matrix_view: {} matrix [{}, {}]: {} columns are not a whole number of {}-value "
           "blocks",
           info->name, rows, cols, cols, info->block_values);
  const int64_t row_bytes = cols / info->block_values * info->block_bytes;
  int64_t total = 0;
  SY_CHECK(!__builtin_mul_overflow(rows, row_bytes, &total),
           "quant_matrix_view: {} matrix [{}, {}]: size overflows", info->name, rows, cols);
  SY_CHECK(static_cast<uint64_t>(total) == bytes.nbytes(),
           "quant_matrix_view: {} matrix [{}, {}] takes {} bytes, the tensor has {}", info->name,
           rows, cols, total, bytes.nbytes());
  if (layout == QuantLayout::kP16) check_p16_form("quant_matrix_view", type, rows, cols);
  QuantMatrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  m.data = total > 0 ? reinterpret_cast<const uint8_t*>(bytes.bytes()) : nullptr;
  m.row_bytes = static_cast<size_t>(row_bytes);
  m.keep = bytes.storage();
  m.layout = layout;
  return m;
}

bool can_pack_p16(GgmlType type, int64_t cols) { return cpu::p16_fits(type, cols); }

bool p16_pays() {
  static const bool pays = [] {
    const char* env = std::getenv("SY_REPACK");
    return qdot_path_best() == QdotPath::kAvx512Vnni && (env == nullptr || std::string(env) != "0");
  }();
  return pays;
}

Tensor pack_p16(GgmlType type, int64_t rows, int64_t cols, const uint8_t* ggml) {
  check_p16_form("pack_p16", type, rows, cols);
  SY_CHECK(rows >= 0, "pack_p16: {} rows", rows);
  const auto row_bytes = static_cast<size_t>(ggml_row_bytes(type, cols));
  Tensor out = Tensor::empty({static_cast<int64_t>(row_bytes) * rows}, DType::U8);
  uint8_t* o = out.mutable_data<uint8_t>();
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 20))
  for (int64_t r = 0; r < rows; ++r) {
    cpu::pack_row_p16(type, ggml + static_cast<size_t>(r) * row_bytes, cols,
                      o + static_cast<size_t>(r) * row_bytes);
  }
  return out;
}

void pack_p16_in_place(GgmlType type, int64_t rows, int64_t cols, uint8_t* bytes) {
  check_p16_form("pack_p16_in_place", type, rows, cols);
  const auto row_bytes = static_cast<size_t>(ggml_row_bytes(type, cols));
#pragma omp parallel if (rows * cols >= (int64_t{1} << 20))
  {
    std::vector<uint8_t> row(row_bytes);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* at = bytes + static_cast<size_t>(r) * row_bytes;
      std::memcpy(row.data(), at, row_bytes);
      cpu::pack_row_p16(type, row.data(), cols, at);
    }
  }
}

void unpack_row_p16(GgmlType type, int64_t cols, const uint8_t* p16, uint8_t* out) {
  SY_CHECK(can_pack_p16(type, cols), "unpack_row_p16: a {} row of {} values has no P16 form",
           type_name(type), cols);
  cpu::unpack_row_p16(type, p16, cols, out);
}

QuantMatrix quantize_matrix(const Tensor& w, GgmlType type) {
  SY_CHECK(w.rank() == 2, "quantize_matrix: w must be rank 2 [N, K], got shape {}",
           shape_str(w.shape()));
  auto bytes = std::make_shared<std::vector<uint8_t>>(quantize(w, type));
  QuantMatrix m;
  m.type = type;
  m.rows = w.dim(0);
  m.cols = w.dim(1);
  m.row_bytes = static_cast<size_t>(ggml_row_bytes(type, m.cols));
  m.data = bytes->empty() ? nullptr : bytes->data();
  m.keep = std::move(bytes);
  return m;
}

std::string_view qdot_path_name(QdotPath path) {
  switch (path) {
    case QdotPath::kAuto:
      return "auto";
    case QdotPath::kScalar:
      return "scalar";
    case QdotPath::kAvx2:
      return "avx2";
    case QdotPath::kAvx512:
      return "avx512";
    case QdotPath::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "?";
}

std::vector<QdotPath> qdot_paths_available() {
  std::vector<QdotPath> out;
  for (QdotPath p :
       {QdotPath::kAvx512Vnni, QdotPath::kAvx512, QdotPath::kAvx2, QdotPath::kScalar}) {
    if (path_usable(p)) out.push_back(p);
  }
  return out;
}

QdotPath qdot_path_best() {
  static const QdotPath best = qdot_paths_available().front();  // the CPU does not change
  return best;
}

bool can_quant_matmul(GgmlType type) { return is_quant(type) || is_plain(type); }

void quant_matmul(Tensor& y, const Tensor& x, const QuantMatrix& w, bool accumulate) {
  quant_matmul(y, x, w, QuantMatmulOptions{.accumulate = accumulate});
}

void quant_matmul(Tensor& y, const Tensor& x, const QuantMatrix& w,
                  const QuantMatmulOptions& opts) {
  const QuantMatmulJob job{&y, &x, &w, opts.accumulate};
  run_jobs({&job, 1}, opts.path, "quant_matmul");
}

void quant_matmul_batch(std::span<const QuantMatmulJob> jobs, QdotPath path) {
  run_jobs(jobs, path, "quant_matmul_batch");
}

void quant_matmul_stages(std::span<const QuantMatmulJob> first,
                         std::span<const QuantMatmulJob> then, QdotPath path) {
  check_jobs(first, "quant_matmul_stages: first");
  check_jobs(then, "quant_matmul_stages: then");
  const QdotPath resolved = resolve_path(path, "quant_matmul_stages");
  // Plain jobs of many tokens run through OpenBLAS, and jobs with K = 0 are written at once when
  // built: then the batches run one after the other.
  const bool zero_k =
      std::ranges::any_of(then, [](const QuantMatmulJob& j) { return j.w->cols == 0; });
  if (has_wide_plain(first) || has_wide_plain(then) || zero_k) {
    run_batch(first, resolved);
    run_batch(then, resolved);
    return;
  }
  std::array<Stage, 2> stages{build_stage(first, resolved), build_stage(then, resolved)};
  run_quantized(stages);
}

Tensor quant_matmul_activations(const Tensor& x, GgmlType weight_type) {
  x.expect_dtype(DType::F32, "quant_matmul_activations: x");
  SY_CHECK(is_quant(weight_type),
           "quant_matmul_activations: weight type {} is not a quantized type "
           "quant_matmul takes",
           type_name(weight_type));
  const int64_t block = ggml_type_info(weight_type).block_values;
  SY_CHECK(x.cols() % block == 0,
           "quant_matmul_activations: x has shape {}, its last dimension is not a whole number "
           "of {}-value blocks",
           shape_str(x.shape()), block);
  Tensor out = Tensor::empty(x.shape());
  if (x.numel() == 0) return out;
  const int64_t k = x.cols();
  std::vector<uint8_t> row(cpu::act_row_bytes(weight_type, k) + 64);
  uint8_t* aligned = row.data() + (64 - reinterpret_cast<uintptr_t>(row.data()) % 64) % 64;
  for (int64_t t = 0; t < x.rows(); ++t) {
    cpu::quantize_act_row(weight_type, x.data<float>() + t * k, k, aligned);
    cpu::dequantize_act_row(weight_type, aligned, k, out.mutable_data<float>() + t * k);
  }
  return out;
}

}  // namespace sy::kernels
