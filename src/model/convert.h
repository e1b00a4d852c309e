// `switchyard convert`: a Hugging Face checkpoint (config.json + safetensors in f32, f16 or
// bf16, one file or shards) to one GGUF file, the file llama.cpp's convert_hf_to_gguf.py writes
// for it (then llama-quantize, when a quantized type is asked for):
//  - general.architecture "llama" (Mixtral), "qwen2moe", "qwen3moe", "olmoe" or "deepseek2"
//    (DeepSeek-V2, V2-Lite, V3), the converter's per-architecture keys, general.file_type and
//    general.quantization_version 2 (tests/reference/model_arch_gguf.py lists them);
//  - llama.cpp's tensor names, routed experts stacked into ffn_{gate,up,down}_exps [E, rows,
//    cols], Mixtral's q/k rows permuted per head for interleaved RoPE, DeepSeek's kv_b_proj split
//    into attn_k_b [H, kv_lora_rank, nope] and attn_v_b [H, v, kv_lora_rank] (no attn_kv_b);
//    Qwen-MoE dense layers as blk.N.ffn_{gate,up,down} (model/arch reads them so);
//  - the tokenizer (tokenizer.json or tokenizer.model beside config.json) as tokenizer.ggml.*
//    (convert_vocab.cpp says how), when there is one.
// Where the file differs from what the Python converter writes: general.name is the folder's
// name; llama.cpp's other general.* keys (size label, license, ...) are not written.
//
// Tensor types. 1-D tensors (norms, biases), routers (names with ffn_gate_inp, which includes
// Qwen2-MoE's shared-expert gate) and exp_probs_b stay f32 whatever the options say, as
// llama.cpp keeps them. Every other tensor gets the first recipe rule whose pattern matches its
// GGUF name, else the default type. When a tensor's rows (ne[0]) are not whole blocks of that
// type it falls back as llama-quantize does: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, q2_K and
// q3_K -> q4_0 (llama.cpp uses iq4_nl, which has no quantizer here), then f16 when the rows are
// not whole 32-blocks either; each fallback is a note on stderr and in the report. Quantized
// bytes are kernels::quantize of the f32 tensor (what llama-quantize writes without an
// importance matrix); f16/bf16 round to nearest even.
//
// Streaming: tensors are read from the memory-mapped shards and written one at a time, in row
// chunks of at most 16 MB of f32 (a stacked expert tensor expert by expert), so peak memory is
// about one layer's matrix, not the model. The file is written atomically (a temporary renamed
// into place when complete); on any error no file is left at the output path.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/ggml_types.h"

namespace sy::model {

// One recipe rule: tensors whose GGUF name matches `pattern` get `type`.
struct RecipeRule {
  // A glob matched against any part of the name: '*' is any run of characters, '?' any one;
  // without either it is a plain substring ("attn_q" matches "blk.0.attn_q.weight").
  std::string pattern;
  GgmlType type = GgmlType::kF16;
};

struct ConvertOptions {
  GgmlType type = GgmlType::kF16;  // default type of the tensors no recipe rule matches
  std::vector<RecipeRule> recipe;  // first match wins
  bool tokenizer = true;           // embed tokenizer.json / tokenizer.model when present
  bool progress = true;            // one line per tensor on stderr when stderr is a terminal
};

// The types convert writes: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K,
// q6_K (names case-insensitive). Throws "unknown type '<name>', expected one of ...".
GgmlType parse_convert_type(std::string_view name);
// "pattern=type,pattern=type,...", spaces around items ignored; "" is no rules. Throws naming
// the entry: "recipe entry 2 'x' is not pattern=type", "... has an empty pattern", or
// "recipe entry 1 'a=q9': unknown type 'q9', expected one of ...".
std::vector<RecipeRule> parse_recipe(std::string_view text);
// Whether the glob `pattern` matches some part of `name` (see RecipeRule).
bool recipe_matches(std::string_view pattern, std::string_view name);

// The type a tensor of GGUF name `name` and ggml sizes `ne` (ne[0] = row length) gets under
// `options`, following the rules above; `note` (when not null) receives the fallback note, or
// is cleared when there is none.
GgmlType choose_tensor_type(std::string_view name, const std::vector<int64_t>& ne,
                            const ConvertOptions& options, std::string* note = nullptr);

struct ConvertReport {
  std::string arch;                                // general.architecture written
  size_t tensors = 0;                              // tensors written
  uint64_t bytes = 0;                              // size of the file
  bool tokenizer = false;                          // a tokenizer was embedded
  std::map<std::string, size_t> tensors_per_type;  // "f32" -> count, ...
  std::vector<std::string> notes;  // also printed on stderr: fallbacks, ignored tensors, ...
};

// Converts the checkpoint at `hf_path` (a folder with config.json, as model::load_config takes
// it) into `out_path`. Throws sy::Error naming the file and the field: a missing config.json or
// tensor, an unsupported architecture, a tensor of the wrong shape or dtype, a non-finite value
// in a tensor being quantized, an output that cannot be written.
ConvertReport convert_to_gguf(const std::string& hf_path, const std::string& out_path,
                              const ConvertOptions& options);

}  // namespace sy::model
