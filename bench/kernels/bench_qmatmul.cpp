#include "bench/kernels/bench_qmatmul.h"

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/limits.h"
#include "bench/suites.h"
#include "core/dtype.h"
#include "core/ggml_types.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "kernels/qmatmul.h"

namespace sy::bench {

namespace {

// Random blocks of `type` with normal f16 scales (random bytes could hold subnormal or non-finite
// scales, whose arithmetic is slow or meaningless): the kernels' speed does not depend on values.
std::shared_ptr<std::vector<uint8_t>> random_blocks(GgmlType type, int64_t rows, int64_t cols,
                                                    uint64_t seed) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  const int64_t nblocks = rows * (cols / info.block_values);
  auto bytes =
      std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(nblocks * info.block_bytes));
  Rng rng(seed);
  for (size_t i = 0; i + 8 <= bytes->size(); i += 8) {
    const uint64_t v = rng.next_u64();
    for (int j = 0; j < 8; ++j) (*bytes)[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  const auto put = [&](size_t at, float value) {
    const uint16_t h = f32_to_f16(value);
    (*bytes)[at] = static_cast<uint8_t>(h & 0xff);
    (*bytes)[at + 1] = static_cast<uint8_t>(h >> 8);
  };
  for (int64_t b = 0; b < nblocks; ++b) {
    const size_t at = static_cast<size_t>(b * info.block_bytes);
    if (type == GgmlType::kQ6_K) {
      put(at + 208, 1e-3f);
    } else {
      put(at, 1e-2f);
      if (type == GgmlType::kQ4_K || type == GgmlType::kQ5_K) put(at + 2, 1e-3f);
    }
  }
  return bytes;
}

// In the layout a loaded model would hold them in (model::Linear::packed): P16 where it pays.
kernels::QuantMatrix matrix_of(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
  auto bytes = random_blocks(type, rows, cols, seed);
  if (kernels::p16_pays() && kernels::can_pack_p16(type, cols)) {
    const Tensor packed = kernels::pack_p16(type, rows, cols, bytes->data());
    return kernels::quant_matrix_view(packed, type, rows, cols, kernels::QuantLayout::kP16);
  }
  kernels::QuantMatrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  m.row_bytes = static_cast<size_t>(ggml_row_bytes(type, cols));
  m.data = bytes->data();
  m.keep = std::move(bytes);
  return m;
}

Tensor random_activations(int64_t t, int64_t k, uint64_t seed) {
  Tensor x = Tensor::zeros({t, k});
  Rng rng(seed);
  float* p = x.mutable_data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = rng.normal();
  return x;
}

// The median seconds of fn, and the triad bandwidth around it (measure_around): the suite's
// start-up figure can be minutes old by the time a decode case runs.
struct Bracketed {
  double seconds, triad_gb_per_s;
};
Bracketed timed_with_triad(const std::function<void()>& fn, const SuiteOptions& opts) {
  const LimitOptions limit_opts = limit_options(opts);
  double s = 0.0;
  const LimitAround triad = measure_around([&] { return measure_triad_gb_per_s(limit_opts); },
                                           [&] { s = median(time_samples(fn, opts.timing)); });
  return {s, triad.higher()};
}

}  // namespace

void run_qmatmul_cases(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts) {
  const std::string threads = "/t" + std::to_string(num_threads());
  const int64_t n = opts.quick ? 2048 : 8192, k = 2048;
  const std::string shape = std::to_string(n) + "x" + std::to_string(k);
  // Decode streams through copies of the matrix that together far exceed the last-level cache,
  // as a model's layers do; each call reads the next copy.
  const double stream_bytes = opts.quick ? 64e6 : 256e6;
  for (GgmlType type :
       {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
    const std::string tname(ggml_type_info(type).name);
    const double matrix_bytes = static_cast<double>(n) * ggml_row_bytes(type, k);

    const std::string what =
        std::string("/").append(tname).append("/").append(shape).append(threads);
    const std::string decode = "qmatvec_decode" + what;
    if (opts.filter.empty() || decode.find(opts.filter) != std::string::npos) {
      const int copies = std::max(2, static_cast<int>(std::lround(stream_bytes / matrix_bytes)));
      std::vector<kernels::QuantMatrix> ws;
      ws.reserve(static_cast<size_t>(copies));
      for (int c = 0; c < copies; ++c) ws.push_back(matrix_of(type, n, k, 100 + c));
      const Tensor x = random_activations(1, k, 7);
      Tensor y = Tensor::zeros({1, n});
      size_t next = 0;
      const Bracketed b = timed_with_triad(
          [&] {
            kernels::quant_matmul(y, x, ws[next]);
            next = (next + 1) % ws.size();
          },
          opts);
      reporter.emit({.bench = "kernels",
                     .name = decode,
                     .metric = "GB_per_s",
                     .value = matrix_bytes / b.seconds / 1e9,
                     .limit = b.triad_gb_per_s,
                     .limit_kind = "bandwidth_bound"});
    }

    // One MoE layer of decode at OLMoE's shape: 8 of the experts' gate and up projections
    // [1024, 2048] in one batch, then their down projections [2048, 1024] in another; each call
    // takes the next 8 experts of a pool far larger than the caches.
    const std::string moe =
        "qmatvec_moe_decode/" + std::string(tname) + "/olmoe_8_active" + threads;
    if (opts.filter.empty() || moe.find(opts.filter) != std::string::npos) {
      const int64_t d = 2048, f = 1024, active = 8;
      const int64_t pool = opts.quick ? 16 : 48;
      std::vector<kernels::QuantMatrix> gate, up, down;
      for (int64_t e = 0; e < pool; ++e) {
        gate.push_back(matrix_of(type, f, d, 1000 + 3 * e));
        up.push_back(matrix_of(type, f, d, 1001 + 3 * e));
        down.push_back(matrix_of(type, d, f, 1002 + 3 * e));
      }
      const Tensor x = random_activations(1, d, 9);
      std::vector<Tensor> g, u, h, y;
      for (int64_t j = 0; j < active; ++j) {
        g.push_back(Tensor::zeros({1, f}));
        u.push_back(Tensor::zeros({1, f}));
        h.push_back(random_activations(1, f, 10 + j));
        y.push_back(Tensor::zeros({1, d}));
      }
      const double bytes =
          static_cast<double>(active) * (2.0 * f * static_cast<double>(gate[0].row_bytes) +
                                         d * static_cast<double>(down[0].row_bytes));
      int64_t next = 0;
      std::vector<kernels::QuantMatmulJob> up_jobs, down_jobs;
      const Bracketed b = timed_with_triad(
          [&] {
            up_jobs.clear();
            down_jobs.clear();
            for (int64_t j = 0; j < active; ++j) {
              const auto e = static_cast<size_t>((next + j) % pool);
              up_jobs.push_back({&g[j], &x, &gate[e], false});
              up_jobs.push_back({&u[j], &x, &up[e], false});
              down_jobs.push_back({&y[j], &h[j], &down[e], false});
            }
            next = (next + active) % pool;
            kernels::quant_matmul_batch(up_jobs);
            kernels::quant_matmul_batch(down_jobs);
          },
          opts);
      reporter.emit({.bench = "kernels",
                     .name = moe,
                     .metric = "GB_per_s",
                     .value = bytes / b.seconds / 1e9,
                     .limit = b.triad_gb_per_s,
                     .limit_kind = "bandwidth_bound"});
    }

    const std::string prefill = "qmatvec_prefill512" + what;
    if (opts.filter.empty() || prefill.find(opts.filter) != std::string::npos) {
      const int64_t t = opts.quick ? 128 : 512;
      const kernels::QuantMatrix w = matrix_of(type, n, k, 99);
      const Tensor x = random_activations(t, k, 8);
      Tensor y = Tensor::zeros({t, n});
      const double s = median(time_samples([&] { kernels::quant_matmul(y, x, w); }, opts.timing));
      reporter.emit({.bench = "kernels",
                     .name = prefill,
                     .metric = "GFLOP_per_s",
                     .value = 2.0 * static_cast<double>(t) * n * k / s / 1e9,
                     .limit = limits.fma_gflop_per_s,
                     .limit_kind = "fma_peak"});
    }
  }
}

}  // namespace sy::bench
