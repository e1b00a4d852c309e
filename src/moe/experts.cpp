#include "moe/experts.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/threads.h"
#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "moe/dispatch.h"

namespace sy::moe {

namespace {

constexpr std::array<std::pair<Activation, std::string_view>, 4> kActivationNames = {{
    {Activation::kSwiGLU, "swiglu"},
    {Activation::kGeluTanh, "gelu_tanh"},
    {Activation::kGeluErf, "gelu"},
    {Activation::kReLU, "relu"},
}};

void relu_forward(Tensor& out, const Tensor& x) {
  const float* in = x.data<float>();
  float* o = out.mutable_data<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) o[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(Tensor& d_x, const Tensor& d_out, const Tensor& x) {
  const float* in = x.data<float>();
  const float* g = d_out.data<float>();
  float* d = d_x.mutable_data<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) d[i] += in[i] > 0.0f ? g[i] : 0.0f;
}

// Expert e's [rows, cols] matrix inside a stacked [E, rows, cols] tensor (a view).
Tensor slab(const Tensor& stacked, int64_t e) {
  const int64_t rows = stacked.dim(1);
  return stacked.reshape({stacked.dim(0) * rows, stacked.dim(2)})
      .slice_rows(e * rows, (e + 1) * rows);
}

FfnSaved slice_saved(const FfnSaved& s, int64_t begin, int64_t end) {
  FfnSaved out;
  if (s.gate.defined()) out.gate = s.gate.slice_rows(begin, end);
  out.up = s.up.slice_rows(begin, end);
  out.hidden = s.hidden.slice_rows(begin, end);
  return out;
}

FfnSaved allocate_saved(int64_t rows, int64_t f, Activation act) {
  FfnSaved s;
  if (is_gated(act)) s.gate = Tensor::empty({rows, f});
  s.up = Tensor::empty({rows, f});
  s.hidden = Tensor::empty({rows, f});
  return s;
}

}  // namespace

std::string_view activation_name(Activation a) {
  for (const auto& [act, name] : kActivationNames) {
    if (act == a) return name;
  }
  return "?";
}

Activation parse_activation(std::string_view name) {
  for (const auto& [act, n] : kActivationNames) {
    if (n == name) return act;
  }
  fail("unknown expert activation '{}', expected one of swiglu, gelu_tanh, gelu, relu", name);
}

void ffn_forward(Tensor& out, const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                 const Tensor& w_down, Activation act, FfnSaved& saved) {
  kernels::gemm(saved.up, x, w_up, {.trans_b = true});
  switch (act) {
    case Activation::kSwiGLU:
      kernels::gemm(saved.gate, x, w_gate, {.trans_b = true});
      kernels::swiglu_forward(saved.hidden, saved.gate, saved.up);
      break;
    case Activation::kGeluTanh:
      kernels::gelu_forward(saved.hidden, saved.up,
                            {.approximate = kernels::GeluApproximation::kTanh});
      break;
    case Activation::kGeluErf:
      kernels::gelu_forward(saved.hidden, saved.up);
      break;
    case Activation::kReLU:
      relu_forward(saved.hidden, saved.up);
      break;
  }
  kernels::gemm(out, saved.hidden, w_down, {.trans_b = true});
}

void ffn_backward(Tensor& d_x, Tensor& d_w_gate, Tensor& d_w_up, Tensor& d_w_down,
                  const Tensor& d_out, const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                  const Tensor& w_down, Activation act, const FfnSaved& saved) {
  const int64_t n = x.dim(0), f = w_up.dim(0);
  Tensor d_hidden = Tensor::empty({n, f});
  kernels::gemm(d_hidden, d_out, w_down);
  kernels::gemm(d_w_down, d_out, saved.hidden, {.trans_a = true, .accumulate = true});
  Tensor d_up = Tensor::zeros({n, f});
  Tensor d_gate;
  switch (act) {
    case Activation::kSwiGLU:
      d_gate = Tensor::zeros({n, f});
      kernels::swiglu_backward(d_gate, d_up, d_hidden, saved.gate, saved.up);
      break;
    case Activation::kGeluTanh:
      kernels::gelu_backward(d_up, d_hidden, saved.up,
                             {.approximate = kernels::GeluApproximation::kTanh});
      break;
    case Activation::kGeluErf:
      kernels::gelu_backward(d_up, d_hidden, saved.up);
      break;
    case Activation::kReLU:
      relu_backward(d_up, d_hidden, saved.up);
      break;
  }
  kernels::gemm(d_x, d_up, w_up);
  kernels::gemm(d_w_up, d_up, x, {.trans_a = true, .accumulate = true});
  if (d_gate.defined()) {
    kernels::gemm(d_x, d_gate, w_gate, {.accumulate = true});
    kernels::gemm(d_w_gate, d_gate, x, {.trans_a = true, .accumulate = true});
  }
}

// ---- ExpertBank ------------------------------------------------------------------------------

void ExpertBank::forward_rows(Tensor& out, const Tensor& x, const Tensor& row_token,
                              const std::vector<int64_t>& offsets, FfnSaved* saved) {
  const Tensor buffer = gather_token_rows(x, row_token, "experts.forward_rows");
  forward(out, buffer, offsets, saved);
}

// ---- InMemoryExperts -------------------------------------------------------------------------

InMemoryExperts::InMemoryExperts(const ExpertBankOptions& opts) : opts_(opts) {
  SY_CHECK(opts.num_experts > 0 && opts.d_model > 0 && opts.d_ff > 0,
           "experts: num_experts, d_model and d_ff must be > 0, got {}, {}, {}", opts.num_experts,
           opts.d_model, opts.d_ff);
  const int64_t e = opts.num_experts, d = opts.d_model, f = opts.d_ff;
  if (is_gated(opts.activation)) {
    gate_ = Param::trainable(opts.prefix + "experts.gate_proj.weight", {e, f, d});
  }
  up_ = Param::trainable(opts.prefix + "experts.up_proj.weight", {e, f, d});
  down_ = Param::trainable(opts.prefix + "experts.down_proj.weight", {e, d, f});
}

std::vector<Param*> InMemoryExperts::params() {
  std::vector<Param*> out;
  if (gate_.value.defined()) out.push_back(&gate_);
  out.push_back(&up_);
  out.push_back(&down_);
  return out;
}

void InMemoryExperts::init(Rng& rng, float stddev) {
  for (Param* p : params()) {
    float* v = p->value.mutable_data<float>();
    for (int64_t i = 0; i < p->value.numel(); ++i) v[i] = rng.normal(0.0f, stddev);
  }
}

bool InMemoryExperts::runs_per_expert(const std::vector<int64_t>& offsets) const {
  switch (opts_.parallelism) {
    case ExpertParallelism::kBlas:
      return false;
    case ExpertParallelism::kPerExpert:
      return true;
    case ExpertParallelism::kAuto:
      break;
  }
  const int threads = num_threads();
  if (threads <= 1) return false;
  int64_t active = 0;
  for (size_t e = 0; e + 1 < offsets.size(); ++e) active += offsets[e + 1] > offsets[e] ? 1 : 0;
  // Threaded BLAS splits each GEMM's output; with small per-expert GEMMs that split costs more
  // than it gains, while enough experts keep every thread busy with whole GEMMs.
  const int64_t avg_rows = active > 0 ? offsets.back() / active : 0;
  return active >= 4 * threads && avg_rows * opts_.d_ff < int64_t{1} << 20;
}

template <class Run>
void InMemoryExperts::for_each_expert(const std::vector<int64_t>& offsets, const Run& run) const {
  const int64_t experts = opts_.num_experts;
  if (runs_per_expert(offsets)) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t e = 0; e < experts; ++e) run(e);
  } else {
    for (int64_t e = 0; e < experts; ++e) run(e);
  }
}

void InMemoryExperts::check(const Tensor& buffer, const std::vector<int64_t>& offsets,
                            const char* op) const {
  SY_CHECK(static_cast<int64_t>(offsets.size()) == opts_.num_experts + 1,
           "{}: offsets has {} entries, expected {} (E + 1)", op, offsets.size(),
           opts_.num_experts + 1);
  const int64_t rows = offsets.back();
  buffer.expect_dtype(DType::F32, op);
  buffer.expect_shape({rows, opts_.d_model}, op);
  for (size_t e = 0; e + 1 < offsets.size(); ++e) {
    SY_CHECK(offsets[e] <= offsets[e + 1] && offsets[0] == 0,
             "{}: offsets must rise from 0, got offsets[{}] = {} > offsets[{}] = {}", op, e,
             offsets[e], e + 1, offsets[e + 1]);
  }
}

void InMemoryExperts::forward(Tensor& out, const Tensor& buffer,
                              const std::vector<int64_t>& offsets, FfnSaved* saved) {
  check(buffer, offsets, "experts.forward: buffer");
  const int64_t rows = offsets.back();
  out.expect_shape({rows, opts_.d_model}, "experts.forward: out");
  FfnSaved local;
  FfnSaved& s = saved != nullptr ? *saved : local;
  s = allocate_saved(rows, opts_.d_ff, opts_.activation);
  auto run = [&](int64_t e) {
    const int64_t b = offsets[e], end = offsets[e + 1];
    if (b == end) return;
    Tensor o = out.slice_rows(b, end);
    FfnSaved se = slice_saved(s, b, end);
    const Tensor wg = gate_.value.defined() ? slab(gate_.value, e) : Tensor();
    ffn_forward(o, buffer.slice_rows(b, end), wg, slab(up_.value, e), slab(down_.value, e),
                opts_.activation, se);
  };
  for_each_expert(offsets, run);
}

void InMemoryExperts::backward(Tensor& d_buffer, const Tensor& d_out, const Tensor& buffer,
                               const std::vector<int64_t>& offsets, const FfnSaved& saved) {
  check(buffer, offsets, "experts.backward: buffer");
  const int64_t rows = offsets.back();
  d_out.expect_shape({rows, opts_.d_model}, "experts.backward: d_out");
  d_buffer.expect_shape({rows, opts_.d_model}, "experts.backward: d_buffer");
  saved.up.expect_shape({rows, opts_.d_ff}, "experts.backward: saved.up");
  auto run = [&](int64_t e) {
    const int64_t b = offsets[e], end = offsets[e + 1];
    if (b == end) return;
    Tensor dx = d_buffer.slice_rows(b, end);
    Tensor dwg = gate_.value.defined() ? slab(gate_.grad, e) : Tensor();
    Tensor dwu = slab(up_.grad, e), dwd = slab(down_.grad, e);
    const Tensor wg = gate_.value.defined() ? slab(gate_.value, e) : Tensor();
    ffn_backward(dx, dwg, dwu, dwd, d_out.slice_rows(b, end), buffer.slice_rows(b, end), wg,
                 slab(up_.value, e), slab(down_.value, e), opts_.activation,
                 slice_saved(saved, b, end));
  };
  for_each_expert(offsets, run);
}

// ---- SharedExperts ---------------------------------------------------------------------------

SharedExperts::SharedExperts(const SharedExpertsOptions& opts) : opts_(opts) {
  SY_CHECK(opts.d_model > 0 && opts.d_ff > 0,
           "shared experts: d_model and d_ff must be > 0, got {}, {}", opts.d_model, opts.d_ff);
  const int64_t d = opts.d_model, f = opts.d_ff;
  const std::string p = opts.prefix + "shared_experts.";
  if (is_gated(opts.activation)) gate_proj_ = Param::trainable(p + "gate_proj.weight", {f, d});
  up_proj_ = Param::trainable(p + "up_proj.weight", {f, d});
  down_proj_ = Param::trainable(p + "down_proj.weight", {d, f});
  if (opts.gate) gate_ = Param::trainable(opts.prefix + "shared_expert_gate.weight", {1, d});
}

std::vector<Param*> SharedExperts::params() {
  std::vector<Param*> out;
  for (Param* p : {&gate_proj_, &up_proj_, &down_proj_, &gate_}) {
    if (p->value.defined()) out.push_back(p);
  }
  return out;
}

void SharedExperts::init(Rng& rng, float stddev) {
  for (Param* p : params()) {
    float* v = p->value.mutable_data<float>();
    for (int64_t i = 0; i < p->value.numel(); ++i) v[i] = rng.normal(0.0f, stddev);
  }
}

void SharedExperts::forward(Tensor& out, const Tensor& x, SharedSaved& saved) {
  x.expect_dtype(DType::F32, "shared_experts.forward: x");
  x.expect_shape({-1, opts_.d_model}, "shared_experts.forward: x");
  out.expect_shape(x.shape(), "shared_experts.forward: out");
  const int64_t t = x.dim(0), d = opts_.d_model;
  saved.ffn = allocate_saved(t, opts_.d_ff, opts_.activation);
  saved.ffn_out = Tensor::empty({t, d});
  ffn_forward(saved.ffn_out, x, gate_proj_.value, up_proj_.value, down_proj_.value,
              opts_.activation, saved.ffn);
  const float* y = saved.ffn_out.data<float>();
  float* o = out.mutable_data<float>();
  if (!opts_.gate) {
#pragma omp parallel for schedule(static) if (t * d >= (1 << 16))
    for (int64_t i = 0; i < t * d; ++i) o[i] += y[i];
    return;
  }
  saved.gate = Tensor::empty({t});
  Tensor logits = saved.gate.reshape({t, 1});
  kernels::gemm(logits, x, gate_.value, {.trans_b = true});
  float* g = saved.gate.mutable_data<float>();
#pragma omp parallel for schedule(static) if (t * d >= (1 << 16))
  for (int64_t r = 0; r < t; ++r) {
    g[r] = 1.0f / (1.0f + std::exp(-g[r]));
    for (int64_t c = 0; c < d; ++c) o[r * d + c] += g[r] * y[r * d + c];
  }
}

void SharedExperts::backward(Tensor& d_x, const Tensor& d_out, const Tensor& x,
                             const SharedSaved& saved) {
  d_out.expect_shape(x.shape(), "shared_experts.backward: d_out");
  d_x.expect_shape(x.shape(), "shared_experts.backward: d_x");
  const int64_t t = x.dim(0), d = opts_.d_model;
  Tensor d_ffn_out = d_out;
  if (opts_.gate) {
    // y = g * ffn(x), g = sigmoid(x . w): d_ffn = g d_y, d_logit = g (1 - g) <d_y, ffn(x)>.
    d_ffn_out = Tensor::empty({t, d});
    Tensor d_logit = Tensor::empty({t, 1});
    const float* g = saved.gate.data<float>();
    const float* y = saved.ffn_out.data<float>();
    const float* dy = d_out.data<float>();
    float* df = d_ffn_out.mutable_data<float>();
    float* dl = d_logit.mutable_data<float>();
#pragma omp parallel for schedule(static) if (t * d >= (1 << 16))
    for (int64_t r = 0; r < t; ++r) {
      double acc = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        df[r * d + c] = g[r] * dy[r * d + c];
        acc += static_cast<double>(dy[r * d + c]) * y[r * d + c];
      }
      dl[r] = static_cast<float>(acc) * g[r] * (1.0f - g[r]);
    }
    kernels::gemm(d_x, d_logit, gate_.value, {.accumulate = true});
    kernels::gemm(gate_.grad, d_logit, x, {.trans_a = true, .accumulate = true});
  }
  Tensor d_x_ffn = Tensor::empty({t, d});
  ffn_backward(d_x_ffn, gate_proj_.grad, up_proj_.grad, down_proj_.grad, d_ffn_out, x,
               gate_proj_.value, up_proj_.value, down_proj_.value, opts_.activation, saved.ffn);
  const float* s = d_x_ffn.data<float>();
  float* o = d_x.mutable_data<float>();
#pragma omp parallel for schedule(static) if (t * d >= (1 << 16))
  for (int64_t i = 0; i < t * d; ++i) o[i] += s[i];
}

}  // namespace sy::moe
