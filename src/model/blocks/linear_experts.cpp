#include "model/blocks/linear_experts.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "kernels/activations.h"
#include "kernels/qmatmul.h"
#include "moe/dispatch.h"

namespace sy::model {

LinearExperts::LinearExperts(int64_t d_model, int64_t d_ff, std::vector<Linear> gate,
                             std::vector<Linear> up, std::vector<Linear> down)
    : e_(static_cast<int64_t>(gate.size())),
      d_(d_model),
      f_(d_ff),
      gate_(std::move(gate)),
      up_(std::move(up)),
      down_(std::move(down)) {
  SY_CHECK(e_ > 0 && up_.size() == gate_.size() && down_.size() == gate_.size(),
           "LinearExperts: {} gate, {} up and {} down matrices, expected the same number > 0",
           gate_.size(), up_.size(), down_.size());
  for (size_t j = 0; j < gate_.size(); ++j) {
    const Linear &g = gate_[j], &u = up_[j], &w = down_[j];
    SY_CHECK(g.rows() == f_ && g.cols() == d_ && u.rows() == f_ && u.cols() == d_ &&
                 w.rows() == d_ && w.cols() == f_,
             "LinearExperts: expert {} has gate [{}, {}], up [{}, {}], down [{}, {}], expected "
             "[{}, {}], [{}, {}], [{}, {}]",
             j, g.rows(), g.cols(), u.rows(), u.cols(), w.rows(), w.cols(), f_, d_, f_, d_, d_, f_);
  }
  quantized_ = all_quantized();
}

bool LinearExperts::all_quantized() const {
  const auto quant = [](const Linear& l) { return l.quant() != nullptr; };
  return std::ranges::all_of(gate_, quant) && std::ranges::all_of(up_, quant) &&
         std::ranges::all_of(down_, quant);
}

uint64_t LinearExperts::expert_bytes() const {
  uint64_t total = 0;  // the constructor requires at least one expert
  for (size_t j = 0; j < gate_.size(); ++j) {
    total += gate_[j].nbytes() + up_[j].nbytes() + down_[j].nbytes();
  }
  return total / static_cast<uint64_t>(gate_.size());
}

void LinearExperts::check_offsets(const std::vector<int64_t>& offsets) const {
  SY_CHECK(static_cast<int64_t>(offsets.size()) == e_ + 1,
           "LinearExperts: {} offsets for {} experts", offsets.size(), e_);
}

void LinearExperts::forward(Tensor& out, const Tensor& buffer, const std::vector<int64_t>& offsets,
                            moe::FfnSaved* /*saved*/) {
  check_offsets(offsets);
  std::vector<ExpertInput> inputs;
  for (int64_t j = 0; j < e_; ++j) {
    const auto b = static_cast<size_t>(j);
    if (offsets[b] < offsets[b + 1]) {
      inputs.push_back({j, buffer.slice_rows(offsets[b], offsets[b + 1])});
    }
  }
  run(out, offsets, inputs);
}

void LinearExperts::forward_rows(Tensor& out, const Tensor& x, const Tensor& row_token,
                                 const std::vector<int64_t>& offsets, moe::FfnSaved* saved) {
  check_offsets(offsets);
  x.expect_dtype(DType::F32, "LinearExperts.forward_rows: x");
  x.expect_shape({-1, d_}, "LinearExperts.forward_rows: x");
  row_token.expect_dtype(DType::I32, "LinearExperts.forward_rows: row_token");
  row_token.expect_shape({offsets.back()}, "LinearExperts.forward_rows: row_token");
  const int32_t* tok = row_token.data<int32_t>();
  // The experts with rows (a decode step: top-k of them), so the list stays short.
  std::vector<ExpertInput> inputs;
  for (int64_t j = 0; j < e_; ++j) {
    const int64_t begin = offsets[static_cast<size_t>(j)];
    const int64_t end = offsets[static_cast<size_t>(j) + 1];
    if (begin == end) continue;
    const int64_t first = tok[begin];
    bool run_of_x = first >= 0 && first + (end - begin) <= x.dim(0);
    for (int64_t r = begin + 1; run_of_x && r < end; ++r) run_of_x = tok[r] == tok[r - 1] + 1;
    if (!run_of_x) {
      forward(out, moe::gather_token_rows(x, row_token, "LinearExperts.forward_rows"), offsets,
              saved);
      return;
    }
    inputs.push_back({j, x.slice_rows(first, first + (end - begin))});
  }
  run(out, offsets, inputs);
}

void LinearExperts::run(Tensor& out, const std::vector<int64_t>& offsets,
                        const std::vector<ExpertInput>& inputs) {
  // Gate, up and hidden rows of all experts in one buffer each, in the order of `out`'s rows, so
  // one activation call covers every expert (a decode step has 8 experts of one row each). The
  // quantized path needs no hidden rows: its down products take silu(gate) * up directly.
  const int64_t first = offsets.front(), rows = offsets.back() - first;
  Tensor gate = Tensor::empty({rows, f_}), up = Tensor::empty({rows, f_});
  Tensor hidden = quantized_ ? Tensor() : Tensor::empty({rows, f_});
  // The active experts' inputs, and gate/up/hidden/output slices.
  struct Active {
    int64_t expert;
    const Tensor* x;
    Tensor gate, up, hidden, y;
  };
  // Kept from call to call (a decode step makes one per MoE layer): a list of a few KB costs
  // glibc a search of its bins each time, on the main thread while the others wait. Cleared on
  // the way out so that no tensor outlives the call.
  thread_local std::vector<Active> active;
  active.clear();
  for (const ExpertInput& in : inputs) {
    const int64_t j = in.expert;
    const int64_t begin = offsets[static_cast<size_t>(j)];
    const int64_t end = offsets[static_cast<size_t>(j) + 1];
    active.push_back({j, &in.x, gate.slice_rows(begin - first, end - first),
                      up.slice_rows(begin - first, end - first),
                      quantized_ ? Tensor() : hidden.slice_rows(begin - first, end - first),
                      out.slice_rows(begin, end)});
  }
  if (!quantized_) {
    for (Active& a : active) {
      const auto j = static_cast<size_t>(a.expert);
      gate_[j].apply(a.gate, *a.x);
      up_[j].apply(a.up, *a.x);
    }
    kernels::swiglu_forward(hidden, gate, up);
    for (Active& a : active) down_[static_cast<size_t>(a.expert)].apply(a.y, a.hidden);
    active.clear();
    return;
  }
  // Every active expert's gate and up projections (an input is quantized once for all the
  // products that read it: an expert's two, and in a decode step read in place, every expert's),
  // then all down projections on silu(gate) * up, in one parallel region: with few
  // tokens (decode) each product is small; sharing the rows of all experts keeps every thread
  // busy, and the SwiGLU runs on every thread as the down products' input is quantized.
  thread_local std::vector<kernels::QuantMatmulJob> gate_up, down;
  gate_up.clear();
  down.clear();
  for (Active& a : active) {
    const auto j = static_cast<size_t>(a.expert);
    gate_up.push_back({&a.gate, a.x, gate_[j].quant(), false});
    gate_up.push_back({&a.up, a.x, up_[j].quant(), false});
    down.push_back({.y = &a.y, .x = &a.up, .w = down_[j].quant(), .gate = &a.gate});
  }
  kernels::quant_matmul_stages(gate_up, down);
  gate_up.clear();
  down.clear();
  active.clear();
}

void LinearExperts::backward(Tensor& /*d_buffer*/, const Tensor& /*d_out*/,
                             const Tensor& /*buffer*/, const std::vector<int64_t>& /*offsets*/,
                             const moe::FfnSaved& /*saved*/) {
  fail("LinearExperts: inference-only expert bank; train with the in-memory bank");
}

}  // namespace sy::model
