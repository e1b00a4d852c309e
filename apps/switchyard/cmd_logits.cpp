// `switchyard logits -m MODEL --tokens 1,2,3 --out F.npy`: the f32 logits of every position of
// one sequence, [n_tokens, vocab], as a NumPy file, with no sampling, so switchyard can be
// checked against any other engine on the same checkpoint and tokens.
#include <fmt/format.h>

#include <charconv>

#include "apps/switchyard/commands.h"
#include "core/error.h"
#include "io/npy.h"
#include "model/model.h"

namespace sy::app {

namespace {

std::vector<int32_t> parse_tokens(const std::string& text) {
  std::vector<int32_t> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    int32_t value = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    SY_CHECK(!item.empty() && ec == std::errc() && end == item.data() + item.size() && value >= 0,
             "--tokens: '{}' is not a token id (expected comma-separated integers >= 0)", item);
    out.push_back(value);
    at = comma + 1;
  }
  return out;
}

}  // namespace

Runner add_logits_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "logits", "write the f32 logits of every position of a token sequence to a .npy file");
  auto model_path = std::make_shared<std::string>();
  auto tokens = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("-m,--model", *model_path, "safetensors folder or .gguf file")->required();
  cmd->add_option("--tokens", *tokens, "comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_option("--out", *out, "output .npy file (f32 [n_tokens, vocab])")->required();
  return [model_path, tokens, out] {
    const std::vector<int32_t> ids = parse_tokens(*tokens);
    const std::unique_ptr<model::Model> model = model::Model::load(*model_path);
    model::KvCache cache = model->new_cache(static_cast<int64_t>(ids.size()), DType::F32);
    const Tensor logits = model->forward(ids, cache, /*all_logits=*/true);
    io::write_npy(*out, logits);
    fmt::print(stderr, "wrote {}: f32 [{}, {}]\n", *out, logits.dim(0), logits.dim(1));
    return 0;
  };
}

}  // namespace sy::app
