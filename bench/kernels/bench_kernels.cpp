// Kernel benchmarks. Memory-bound kernels report GB/s of useful traffic (inputs read once,
// outputs written once) against the triad bandwidth of the same run; GEMM reports GFLOP/s
// against OpenBLAS called directly on the same shape, in the same run.
#include <cblas.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench/kernels/bench_qmatmul.h"
#include "bench/suites.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "kernels/attention.h"
#include "kernels/cached_attention.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "kernels/softmax.h"

namespace sy::bench {

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::zeros(shape);
  Rng rng(seed);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(-2.0f, 2.0f);
  return t;
}

bool wanted(const SuiteOptions& opts, const std::string& name) {
  return opts.filter.empty() || name.find(opts.filter) != std::string::npos;
}

// Reports a memory-bound kernel: `bytes` of useful traffic per call.
void emit_bandwidth(Reporter& reporter, const MachineLimits& limits, const std::string& name,
                    double bytes, double seconds) {
  reporter.emit({.bench = "kernels",
                 .name = name,
                 .metric = "GB_per_s",
                 .value = bytes / seconds / 1e9,
                 .limit = limits.triad_gb_per_s,
                 .limit_kind = "bandwidth_bound"});
}

}  // namespace

void run_kernel_suite(Reporter& reporter, const MachineLimits& limits, const SuiteOptions& opts) {
  const std::string threads = "/t" + std::to_string(num_threads());
  const int64_t rows = opts.quick ? 1024 : 4096, cols = 4096;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  const double row_bytes = static_cast<double>(rows) * cols * 4.0;

  if (wanted(opts, "rms_norm")) {
    const Tensor x = random_tensor({rows, cols}, 1);
    const Tensor w = random_tensor({cols}, 2);
    Tensor y = Tensor::zeros({rows, cols});
    Tensor inv = Tensor::zeros({rows});
    const double s =
        median(time_samples([&] { kernels::rms_norm_forward(y, inv, x, w); }, opts.timing));
    emit_bandwidth(reporter, limits, "rms_norm_fwd/" + shape + threads, 2.0 * row_bytes, s);
  }

  if (wanted(opts, "softmax")) {
    const Tensor x = random_tensor({rows, cols}, 3);
    Tensor y = Tensor::zeros({rows, cols});
    const double s = median(time_samples([&] { kernels::softmax_forward(y, x); }, opts.timing));
    emit_bandwidth(reporter, limits, "softmax_fwd/" + shape + threads, 2.0 * row_bytes, s);
  }

  if (wanted(opts, "gemm")) {
    const int64_t n = opts.quick ? 512 : 2048;
    const Tensor a = random_tensor({n, n}, 4);
    const Tensor b = random_tensor({n, n}, 5);
    Tensor c = Tensor::zeros({n, n});
    const double flops = 2.0 * static_cast<double>(n) * n * n;
    const double ours = median(time_samples([&] { kernels::gemm(c, a, b); }, opts.timing));
    std::vector<float> c_ref(static_cast<size_t>(n * n));
    const double direct = median(time_samples(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(n),
                      static_cast<blasint>(n), static_cast<blasint>(n), 1.0f, a.data<float>(),
                      static_cast<blasint>(n), b.data<float>(), static_cast<blasint>(n), 0.0f,
                      c_ref.data(), static_cast<blasint>(n));
        },
        opts.timing));
    reporter.emit({.bench = "kernels",
                   .name = "gemm_f32/" + std::to_string(n) + "^3" + threads,
                   .metric = "GFLOP_per_s",
                   .value = flops / ours / 1e9,
                   .limit = limits.fma_gflop_per_s,
                   .limit_kind = "fma_peak",
                   .reference = "openblas_direct",
                   .reference_value = flops / direct / 1e9});
  }

  if (wanted(opts, "attention")) {
    // A training-shaped causal GQA attention: 4 sequences of 512 tokens, 8 query heads sharing
    // 2 kv heads, head dim 64. FLOPs count the causal half of the two score-sized products
    // (forward) and, as FlashAttention does, 2.5x that for the backward's five products.
    const int64_t b = opts.quick ? 1 : 4, t = 512, hq = 8, hkv = 2, dh = 64;
    const Tensor q = random_tensor({b, t, hq, dh}, 7);
    const Tensor k = random_tensor({b, t, hkv, dh}, 8);
    const Tensor v = random_tensor({b, t, hkv, dh}, 9);
    Tensor out = Tensor::zeros({b, t, hq, dh});
    Tensor lse = Tensor::zeros({b, hq, t});
    const double fwd_flops = 2.0 * 2.0 * static_cast<double>(b) * hq * t * t * dh / 2.0;
    const std::string attn_shape = std::to_string(b) + "x" + std::to_string(t) + "/h" +
                                   std::to_string(hq) + "kv" + std::to_string(hkv) + "d" +
                                   std::to_string(dh);
    const double fwd =
        median(time_samples([&] { kernels::attention_forward(out, lse, q, k, v); }, opts.timing));
    reporter.emit({.bench = "kernels",
                   .name = "attention_fwd/" + attn_shape + threads,
                   .metric = "GFLOP_per_s",
                   .value = fwd_flops / fwd / 1e9,
                   .limit = limits.fma_gflop_per_s,
                   .limit_kind = "fma_peak"});
    const Tensor d_out = random_tensor({b, t, hq, dh}, 10);
    Tensor d_q = Tensor::zeros(q.shape()), d_k = Tensor::zeros(k.shape()),
           d_v = Tensor::zeros(v.shape());
    const double bwd = median(
        time_samples([&] { kernels::attention_backward(d_q, d_k, d_v, d_out, q, k, v, out, lse); },
                     opts.timing));
    reporter.emit({.bench = "kernels",
                   .name = "attention_bwd/" + attn_shape + threads,
                   .metric = "GFLOP_per_s",
                   .value = 2.5 * fwd_flops / bwd / 1e9,
                   .limit = limits.fma_gflop_per_s,
                   .limit_kind = "fma_peak"});
  }

  if (wanted(opts, "cached_attention")) {
    // Inference prefill over the f16 KV cache (head-major, as the model keeps it), OLMoE's heads
    // (16 query and kv heads of 128): a 512-token prompt, and a 512-token chunk after 3584 cached
    // positions. FLOPs count the two products over the keys each query sees.
    const int64_t t = opts.quick ? 128 : 512, heads = 16, dh = 128;
    for (const int64_t past : {int64_t{0}, opts.quick ? int64_t{384} : int64_t{3584}}) {
      const int64_t cached = past + t;
      const Tensor q = random_tensor({t, heads, dh}, 11);
      const Tensor k = random_tensor({heads, cached, dh}, 12).to(DType::F16);
      const Tensor v = random_tensor({heads, cached, dh}, 13).to(DType::F16);
      Tensor out = Tensor::zeros({t, heads, dh});
      const double seen = static_cast<double>(t) * past + 0.5 * static_cast<double>(t) * (t + 1);
      const double flops = 2.0 * 2.0 * seen * heads * dh;
      const double sec = median(time_samples(
          [&] { kernels::cached_attention_heads(out, q, k, v, cached); }, opts.timing));
      reporter.emit({.bench = "kernels",
                     .name = "cached_attention_prefill/f16/t" + std::to_string(t) + "s" +
                             std::to_string(cached) + "/h" + std::to_string(heads) + "d" +
                             std::to_string(dh) + threads,
                     .metric = "GFLOP_per_s",
                     .value = flops / sec / 1e9,
                     .limit = limits.fma_gflop_per_s,
                     .limit_kind = "fma_peak"});
    }
  }

  if (wanted(opts, "cached_attention_decode")) {
    // One decode step's attention over a head-major f16 cache (the model's) of S positions, for
    // the heads of OLMoE (16
    // query and kv heads of 128), Mixtral (32 and 8) and Qwen3-MoE (32 and 4). The calls cycle
    // over enough layers' caches (at least 256 MB) that each reads its keys and values from
    // memory, as a decode step does after streaming weights. GB/s of keys and values read,
    // against the lower of the triad and what the FMA peak allows: Hq / Hkv query heads share
    // each kv row (2 MACs per key or value per query head), so a group of 8 needs 8 FMAs per
    // 2-byte value and is compute-bound here, a group of 1 memory-bound.
    struct Heads {
      int64_t q, kv, dim;
    };
    const int64_t s = opts.quick ? 512 : 4096;
    for (const Heads h : {Heads{16, 16, 128}, Heads{32, 8, 128}, Heads{32, 4, 128}}) {
      const double bytes = 2.0 * static_cast<double>(s * h.kv * h.dim) * 2.0;
      const double flops = 2.0 * 2.0 * static_cast<double>(s * h.q * h.dim);
      const int64_t layers =
          std::max<int64_t>(2, static_cast<int64_t>((256e6 + bytes - 1) / bytes));
      std::vector<Tensor> k, v;
      for (int64_t l = 0; l < layers; ++l) {
        k.push_back(
            random_tensor({h.kv, s, h.dim}, 20 + 2 * static_cast<uint64_t>(l)).to(DType::F16));
        v.push_back(
            random_tensor({h.kv, s, h.dim}, 21 + 2 * static_cast<uint64_t>(l)).to(DType::F16));
      }
      const Tensor q = random_tensor({1, h.q, h.dim}, 19);
      Tensor out = Tensor::zeros({1, h.q, h.dim});
      int64_t next = 0;
      const double sec = median(time_samples(
          [&] {
            kernels::cached_attention_heads(out, q, k[static_cast<size_t>(next)],
                                            v[static_cast<size_t>(next)], s);
            next = (next + 1) % layers;
          },
          opts.timing));
      const double compute_gb_per_s = limits.fma_gflop_per_s * bytes / flops;
      const bool memory = limits.triad_gb_per_s <= compute_gb_per_s;
      reporter.emit({.bench = "kernels",
                     .name = "cached_attention_decode/f16/s" + std::to_string(s) + "/q" +
                             std::to_string(h.q) + "kv" + std::to_string(h.kv) + "d" +
                             std::to_string(h.dim) + threads,
                     .metric = "GB_per_s",
                     .value = bytes / sec / 1e9,
                     .limit = memory ? limits.triad_gb_per_s : compute_gb_per_s,
                     .limit_kind = memory ? "bandwidth_bound" : "fma_peak"});
    }
  }

  run_qmatmul_cases(reporter, limits, opts);
}

}  // namespace sy::bench
