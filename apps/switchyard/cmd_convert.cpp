// `switchyard convert -m HF_DIR -o OUT.gguf [--quant TYPE] [--recipe "pattern=type,..."]`: a
// Hugging Face checkpoint (safetensors f32/f16/bf16 + config.json, tokenizer when present) to
// one GGUF file, quantized per tensor (model/convert.h has the rules).
#include <fmt/format.h>

#include "apps/switchyard/commands.h"
#include "core/error.h"
#include "model/convert.h"

namespace sy::app {

Runner add_convert_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "convert", "convert a Hugging Face safetensors checkpoint to GGUF, optionally quantized");
  auto model_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto quant = std::make_shared<std::string>("f16");
  auto recipe = std::make_shared<std::string>();
  auto no_tokenizer = std::make_shared<bool>(false);
  cmd->add_option("-m,--model", *model_path, "Hugging Face folder (config.json + safetensors)")
      ->required();
  cmd->add_option("-o,--out", *out, "output .gguf file (written atomically)")->required();
  cmd->add_option("--quant", *quant,
                  "default tensor type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, "
                  "q3_K, q4_K, q5_K, q6_K (default f16)");
  cmd->add_option("--recipe", *recipe,
                  "per-tensor types, first match wins, e.g. "
                  "\"ffn_*_exps=q4_K,attn_*=q8_0,ffn_*_shexp=q8_0\" (globs on GGUF names)");
  cmd->add_flag("--no-tokenizer", *no_tokenizer, "do not embed tokenizer.json / tokenizer.model");
  return [model_path, out, quant, recipe, no_tokenizer] {
    model::ConvertOptions options;
    options.type = with_context("--quant", [&] { return model::parse_convert_type(*quant); });
    options.recipe = with_context("--recipe", [&] { return model::parse_recipe(*recipe); });
    options.tokenizer = !*no_tokenizer;
    const model::ConvertReport r = model::convert_to_gguf(*model_path, *out, options);
    std::string types;
    for (const auto& [name, count] : r.tensors_per_type) {
      types += fmt::format("{}{} {}", types.empty() ? "" : ", ", name, count);
    }
    fmt::print(stderr, "wrote {}: {} ({}), {} tensors ({}), {:.1f} MiB, {}\n", *out, r.arch,
               ggml_type_info(options.type).name, r.tensors, types,
               static_cast<double>(r.bytes) / (1 << 20),
               r.tokenizer ? "tokenizer embedded" : "no tokenizer");
    return 0;
  };
}

}  // namespace sy::app
