#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"

namespace sy::train {

namespace {

constexpr const char* kStepKey = "optimizer.step";
// Elements per work item: large tensors are split so the threads share them, small ones run
// whole (an OpenMP region costs more than updating a few thousand floats).
constexpr int64_t kChunk = int64_t{1} << 15;

struct Chunk {
  size_t param;
  int64_t begin;
  int64_t end;
};

std::vector<Chunk> chunks_of(const std::vector<Param*>& params) {
  std::vector<Chunk> out;
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = params[i]->value.numel();
    for (int64_t b = 0; b < n; b += kChunk) out.push_back({i, b, std::min(n, b + kChunk)});
  }
  return out;
}

bool in_unit_interval(double x) { return std::isfinite(x) && x >= 0.0 && x < 1.0; }

}  // namespace

AdamW::AdamW(std::vector<Param*> params, const AdamWOptions& options)
    : params_(std::move(params)), options_(options) {
  const AdamWOptions& o = options_;
  SY_CHECK(in_unit_interval(o.beta1), "AdamW: beta1 = {} is not in [0, 1)", o.beta1);
  SY_CHECK(in_unit_interval(o.beta2), "AdamW: beta2 = {} is not in [0, 1)", o.beta2);
  SY_CHECK(std::isfinite(o.eps) && o.eps >= 0, "AdamW: eps = {} is not a number >= 0", o.eps);
  SY_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0,
           "AdamW: weight_decay = {} is not a number >= 0", o.weight_decay);
  std::set<std::string, std::less<>> names;
  for (const Param* p : params_) {
    SY_CHECK(p != nullptr, "AdamW: null parameter");
    SY_CHECK(p->trainable_param(), "AdamW: '{}' is a buffer (no gradient), not a parameter",
             p->name);
    SY_CHECK(names.insert(p->name).second, "AdamW: parameter name '{}' appears twice", p->name);
    p->value.expect_dtype(DType::F32, p->name.c_str());
    p->grad.expect_dtype(DType::F32, (p->name + " gradient").c_str());
    p->grad.expect_shape(p->value.shape(), (p->name + " gradient").c_str());
    m_.push_back(Tensor::zeros(p->value.shape()));
    v_.push_back(Tensor::zeros(p->value.shape()));
  }
}

void AdamW::step(double lr) {
  SY_CHECK(std::isfinite(lr) && lr >= 0, "AdamW: learning rate {} is not a number >= 0", lr);
  ++step_;
  const AdamWOptions& o = options_;
  const auto t = static_cast<double>(step_);
  // PyTorch's Python-float scalars, each rounded to f32 where it meets a tensor.
  const auto decay = static_cast<float>(1.0 - lr * o.weight_decay);
  const auto beta1 = static_cast<float>(o.beta1);
  const auto one_minus_beta1 = static_cast<float>(1.0 - o.beta1);
  const auto beta2 = static_cast<float>(o.beta2);
  const auto one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
  const double bias_correction1 = 1.0 - std::pow(o.beta1, t);
  const auto neg_step_size = static_cast<float>(-(lr / bias_correction1));
  const auto bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(o.beta2, t)));
  const auto eps = static_cast<float>(o.eps);

  const std::vector<Chunk> work = chunks_of(params_);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t w = 0; w < work.size(); ++w) {  // NOLINT(modernize-loop-convert): OpenMP
    const Chunk& c = work[w];
    Param& p = *params_[c.param];
    float* __restrict__ x = p.value.mutable_data<float>();
    const float* __restrict__ g = p.grad.data<float>();
    float* __restrict__ m = m_[c.param].mutable_data<float>();
    float* __restrict__ v = v_[c.param].mutable_data<float>();
    const bool decays = p.decay;
    for (int64_t i = c.begin; i < c.end; ++i) {
      if (decays) x[i] *= decay;
      m[i] = m[i] * beta1 + one_minus_beta1 * g[i];
      v[i] = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];
      const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      x[i] = x[i] + neg_step_size * m[i] / denom;
    }
  }
}

void AdamW::zero_grad() {
  for (Param* p : params_) p->grad.fill(0.0f);
}

io::NamedTensors AdamW::state() const {
  io::NamedTensors out;
  Tensor step = Tensor::zeros({1}, DType::I64);
  step.mutable_data<int64_t>()[0] = step_;
  out.emplace_back(kStepKey, std::move(step));
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i]->name + ".exp_avg", m_[i].clone());
    out.emplace_back(params_[i]->name + ".exp_avg_sq", v_[i].clone());
  }
  return out;
}

void AdamW::load_state(const io::NamedTensors& state, const std::string& source) {
  std::map<std::string, const Tensor*, std::less<>> by_name;
  for (const auto& [name, tensor] : state) {
    SY_CHECK(by_name.emplace(name, &tensor).second, "{}: optimizer state has tensor '{}' twice",
             source, name);
  }
  const auto take = [&](const std::string& name, DType dtype, const Shape& shape) {
    const auto it = by_name.find(name);
    SY_CHECK(it != by_name.end(), "{}: optimizer state has no tensor '{}'", source, name);
    const Tensor& t = *it->second;
    SY_CHECK(t.dtype() == dtype, "{}: optimizer state tensor '{}' has dtype {}, expected {}",
             source, name, dtype_name(t.dtype()), dtype_name(dtype));
    SY_CHECK(t.shape() == shape, "{}: optimizer state tensor '{}' has shape {}, expected {}",
             source, name, shape_str(t.shape()), shape_str(shape));
    by_name.erase(it);
    return &t;
  };
  const Tensor* step = take(kStepKey, DType::I64, {1});
  const int64_t step_value = step->data<int64_t>()[0];
  SY_CHECK(step_value >= 0, "{}: optimizer state '{}' is {}, expected a count >= 0", source,
           kStepKey, step_value);
  std::vector<const Tensor*> ms;
  std::vector<const Tensor*> vs;
  for (const Param* p : params_) {
    ms.push_back(take(p->name + ".exp_avg", DType::F32, p->value.shape()));
    vs.push_back(take(p->name + ".exp_avg_sq", DType::F32, p->value.shape()));
  }
  if (!by_name.empty()) {
    fail("{}: optimizer state has an unknown tensor '{}' (no such parameter)", source,
         by_name.begin()->first);
  }
  // Everything checked: copy (the source may be a read-only view of a file).
  for (size_t i = 0; i < params_.size(); ++i) {
    if (m_[i].nbytes() == 0) continue;
    std::memcpy(m_[i].mutable_bytes(), ms[i]->bytes(), m_[i].nbytes());
    std::memcpy(v_[i].mutable_bytes(), vs[i]->bytes(), v_[i].nbytes());
  }
  step_ = step_value;
}

bool GradNorm::finite() const { return std::isfinite(norm); }

GradNorm clip_grad_norm(const std::vector<Param*>& params, double max_norm) {
  for (const Param* p : params) {
    SY_CHECK(p != nullptr && p->trainable_param(), "clip_grad_norm: '{}' has no gradient",
             p == nullptr ? std::string("(null)") : p->name);
  }
  const std::vector<Chunk> work = chunks_of(params);
  std::vector<double> partial(work.size(), 0.0);
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t w = 0; w < work.size(); ++w) {
    const Chunk& c = work[w];
    const float* g = params[c.param]->grad.data<float>();
    double sum = 0.0;
    for (int64_t i = c.begin; i < c.end; ++i) sum += static_cast<double>(g[i]) * g[i];
    partial[w] = sum;
  }
  double total = 0.0;
  for (double s : partial) total += s;  // in work order: the same sum for any thread count
  GradNorm out;
  out.norm = std::sqrt(total);
  if (!out.finite() || max_norm <= 0.0) return out;
  const auto scale = static_cast<float>(max_norm / (out.norm + 1e-6));
  if (scale >= 1.0f) return out;  // torch clamps the factor to 1
  out.scale = scale;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t w = 0; w < work.size(); ++w) {  // NOLINT(modernize-loop-convert): OpenMP
    const Chunk& c = work[w];
    float* g = params[c.param]->grad.mutable_data<float>();
    for (int64_t i = c.begin; i < c.end; ++i) g[i] *= scale;
  }
  return out;
}

}  // namespace sy::train
