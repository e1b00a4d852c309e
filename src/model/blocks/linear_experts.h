// Routed experts for inference whose weights are Linear matrices: f32, or packed ggml blocks
// straight from a GGUF file. Implements moe::ExpertBank (forward only; it cannot train).
//
// Legend: E experts, D width, F expert FFN width, R buffer rows (tokens routed, grouped by expert).
#pragma once

#include <cstdint>
#include <vector>

#include "model/linear.h"
#include "moe/experts.h"

namespace sy::model {

class LinearExperts final : public moe::ExpertBank {
 public:
  // One Linear per expert: gate[j], up[j] [F, D] and down[j] [D, F], SwiGLU. Experts may differ
  // in type (each matrix is multiplied as it is stored); a stacked tensor's experts are its row
  // slices (LayerWeights::experts).
  LinearExperts(int64_t d_model, int64_t d_ff, std::vector<Linear> gate, std::vector<Linear> up,
                std::vector<Linear> down);
  int64_t num_experts() const override { return e_; }
  int64_t d_model() const override { return d_; }
  int64_t d_ff() const override { return f_; }
  moe::Activation activation() const override { return moe::Activation::kSwiGLU; }
  void forward(Tensor& out, const Tensor& buffer, const std::vector<int64_t>& offsets,
               moe::FfnSaved* saved) override;
  // Reads x's rows in place when every expert's rows are consecutive rows of x (a decode step:
  // one row per expert, all the same token), so the quantized products quantize that row once
  // for all experts; otherwise gathers them and calls forward.
  void forward_rows(Tensor& out, const Tensor& x, const Tensor& row_token,
                    const std::vector<int64_t>& offsets, moe::FfnSaved* saved) override;
  void backward(Tensor& d_buffer, const Tensor& d_out, const Tensor& buffer,
                const std::vector<int64_t>& offsets, const moe::FfnSaved& saved) override;
  // Bytes of one expert's three matrices, averaged over the experts (the decode bandwidth bound
  // counts them).
  uint64_t expert_bytes() const;

 private:
  int64_t e_, d_, f_;
  // An expert with rows, and its input rows.
  struct ExpertInput {
    int64_t expert;
    Tensor x;
  };
  // out rows [offsets[j], offsets[j+1]) = expert j's FFN of its input rows, for each expert j
  // listed in `inputs` (in expert order; those without rows are not listed).
  void run(Tensor& out, const std::vector<int64_t>& offsets,
           const std::vector<ExpertInput>& inputs);
  void check_offsets(const std::vector<int64_t>& offsets) const;

  std::vector<Linear> gate_, up_, down_;  // per expert
  // Whether every expert's three matrices go through the quantized kernels (they then run in
  // one batch); otherwise each product runs as its Linear does.
  bool quantized_ = false;
  bool all_quantized() const;
};

}  // namespace sy::model
