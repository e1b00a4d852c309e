// Text generation for one sequence: tokenize the prompt, prefill it in one batch, then decode
// token by token with a sampler until max_tokens, an end-of-sequence token or a stop string,
// streaming the text as it completes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampler.h"
#include "io/tokenizer/tokenizer.h"
#include "model/model.h"

namespace sy::infer {

struct GenerateOptions {
  int64_t max_tokens = 128;       // tokens generated after the prompt (llama.cpp -n)
  int64_t context = 0;            // KV cache positions; 0: prompt + max_tokens
  SamplerOptions sampling;        // greedy when sampling.temperature <= 0
  std::vector<std::string> stop;  // stop strings, cut from the output
  bool add_special = true;        // the tokenizer's BOS etc. around the prompt
  bool ignore_eos = false;        // keep going past end-of-sequence tokens
  std::vector<int32_t> eos_ids;   // extra end-of-sequence ids (the model's and tokenizer's
                                  // EOS are always included)
};

struct GenerateResult {
  std::string text;                 // generated text (stop string excluded)
  std::vector<int32_t> prompt_ids;  // the tokenized prompt
  std::vector<int32_t> ids;         // generated ids (the EOS id, when it ended so, included)
  std::string finish_reason;        // "length", "eos" or "stop"
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // every decode step, sampling included
  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;  // generated tokens after the first / decode time
};

// `on_text` receives each piece of text as soon as it is safe to show (may be empty-handed).
GenerateResult generate(model::Model& model, const io::Tokenizer& tokenizer,
                        std::string_view prompt, const GenerateOptions& options,
                        const std::function<void(std::string_view)>& on_text = {});

}  // namespace sy::infer
