#include "infer/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "infer/stop_strings.h"
#include "infer/text_stream.h"

namespace sy::infer {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double GenerateResult::prefill_tokens_per_second() const {
  return prefill_seconds > 0.0 ? static_cast<double>(prompt_ids.size()) / prefill_seconds : 0.0;
}

double GenerateResult::decode_tokens_per_second() const {
  // The first generated token comes from the prefill's logits; decode steps make the rest.
  const auto steps = static_cast<double>(std::max<size_t>(ids.size(), 1) - 1);
  return decode_seconds > 0.0 ? steps / decode_seconds : 0.0;
}

GenerateResult generate(model::Model& model, const io::Tokenizer& tokenizer,
                        std::string_view prompt, const GenerateOptions& options,
                        const std::function<void(std::string_view)>& on_text) {
  SY_CHECK(options.max_tokens >= 0, "generate: max_tokens is {}, expected >= 0",
           options.max_tokens);
  GenerateResult result;
  result.prompt_ids = tokenizer.encode(prompt, options.add_special);
  SY_CHECK(!result.prompt_ids.empty(),
           "generate: the prompt is empty and the tokenizer adds no BOS token; give a prompt");
  const int64_t vocab = model.config().vocab_size;
  for (const int32_t id : result.prompt_ids) {
    SY_CHECK(id >= 0 && id < vocab,
             "generate: prompt token {} is outside the model's vocabulary "
             "of {} (tokenizer and model disagree)",
             id, vocab);
  }
  const auto prompt_len = static_cast<int64_t>(result.prompt_ids.size());
  const int64_t capacity =
      options.context > 0 ? options.context : prompt_len + std::max<int64_t>(options.max_tokens, 1);
  SY_CHECK(prompt_len < capacity || options.max_tokens == 0,
           "generate: the prompt has {} tokens, the context only {} positions", prompt_len,
           capacity);
  std::vector<int32_t> eos = options.eos_ids;
  if (model.config().eos_id) eos.push_back(*model.config().eos_id);
  if (tokenizer.eos_id()) eos.push_back(*tokenizer.eos_id());

  model::KvCache cache = model.new_cache(std::max(capacity, prompt_len));
  Sampler sampler(options.sampling);
  TextStream stream(tokenizer);
  StopStrings stops(options.stop);
  const auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    result.text += text;
    if (on_text) on_text(text);
  };
  std::vector<int32_t> context = result.prompt_ids;

  auto start = std::chrono::steady_clock::now();
  Tensor logits = model.forward(result.prompt_ids, cache, /*all_logits=*/false);
  result.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  result.finish_reason = "length";
  for (int64_t i = 0; i < options.max_tokens; ++i) {
    if (i > 0) {
      if (cache.length >= cache.capacity) break;  // context full: "length"
      logits = model.forward(std::span(&context.back(), 1), cache, false);
    }
    const int32_t id = sampler.sample(logits.data<float>(), vocab, context);
    context.push_back(id);
    result.ids.push_back(id);
    if (!options.ignore_eos && std::find(eos.begin(), eos.end(), id) != eos.end()) {
      result.finish_reason = "eos";
      break;
    }
    emit(stops.feed(stream.push(id)));
    if (stops.stopped()) {
      result.finish_reason = "stop";
      break;
    }
  }
  if (!stops.stopped()) {
    emit(stops.feed(stream.flush()));
    if (!stops.stopped()) emit(stops.flush());
    if (stops.stopped()) result.finish_reason = "stop";
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace sy::infer
