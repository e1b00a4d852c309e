// switchyard convert (model/convert.h): Hugging Face safetensors -> GGUF.
//  - Every architecture of tests/reference/model_arch.py converted in f32 gives the file the
//    independent Python writer (model_arch_gguf.py, llama.cpp's converter reproduced) writes:
//    same keys and values in the same order (general.name aside: ours is the folder's name),
//    same tensor names, types, shapes and bytes; and the converted file runs to the safetensors
//    model's logits.
//  - Quantized with a recipe, each tensor has the type the rules give (written out here by hand)
//    and the bytes of kernels::quantize of the Python file's f32 tensor.
//  - Option parsing and every error path, with the exact messages.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/quant/quant.h"
#include "model/convert.h"
#include "model/convert_plan.h"
#include "model/model.h"
#include "support/reference.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"

namespace sy::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<int32_t> kTokens = {1, 17, 42, 5, 99, 23, 64, 8, 31, 77, 2, 50};
const std::string kTypes =
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs";

using ::sy::test::error_of;

std::string bytes_of(const io::GgufFile& f, const io::GgufTensorInfo& t) {
  const Tensor raw = f.raw(t);
  return {reinterpret_cast<const char*>(raw.bytes()), raw.nbytes()};
}

std::string bytes_of(const std::vector<uint8_t>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

// The same file but for general.name: kvs in order, then tensor infos and bytes.
void expect_same_gguf(const io::GgufFile& got, const io::GgufFile& want) {
  std::vector<const io::GgufKv*> a, b;
  for (const io::GgufKv& kv : got.kvs()) {
    if (kv.key != "general.name") a.push_back(&kv);
  }
  for (const io::GgufKv& kv : want.kvs()) {
    if (kv.key != "general.name") b.push_back(&kv);
  }
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]->key, b[i]->key) << "kv " << i;
    EXPECT_TRUE(a[i]->value == b[i]->value)
        << a[i]->key << ": " << a[i]->value.describe() << ", expected " << b[i]->value.describe();
  }
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (size_t i = 0; i < got.tensors().size(); ++i) {
    const io::GgufTensorInfo& x = got.tensors()[i];
    const io::GgufTensorInfo& y = want.tensors()[i];
    EXPECT_EQ(x.name, y.name) << "tensor " << i;
    EXPECT_EQ(x.type, y.type) << x.name;
    EXPECT_EQ(x.ne, y.ne) << x.name;
    EXPECT_TRUE(bytes_of(got, x) == bytes_of(want, y)) << x.name << ": bytes differ";
  }
}

Tensor logits_of(const std::string& path) {
  const std::unique_ptr<Model> m = Model::load(path);
  KvCache cache = m->new_cache(static_cast<int64_t>(kTokens.size()), DType::F32);
  return m->forward(kTokens, cache, /*all_logits=*/true);
}

double relative_error(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(got.shape(), ref.shape());
  if (got.shape() != ref.shape()) return INFINITY;
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    diff =
        std::max(diff, std::fabs(static_cast<double>(got.data<float>()[i]) - ref.data<float>()[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(ref.data<float>()[i])));
  }
  return diff / std::max(scale, 1e-30);
}

// The reference script's case (tests/reference/model_arch.py) writing a checkpoint of `arch`
// into dir for the test tokens, with the params of `extra` too (overrides, dtype, gguf, ...).
test::ReferenceCase checkpoint_case(const std::string& arch, const std::string& dir, int seed,
                                    const json& extra = json::object()) {
  test::ReferenceCase c;
  c.params = {{"case", arch}, {"dir", dir}, {"seed", seed}, {"tokens", json(kTokens)}};
  c.params.update(extra);
  return c;
}

ConvertOptions with_type(GgmlType type) {
  ConvertOptions o;
  o.type = type;
  o.progress = false;
  return o;
}

const std::vector<std::string> kArchs = {"mixtral",          "qwen2_moe",   "qwen3_moe",  "olmoe",
                                         "deepseek_v2_lite", "deepseek_v2", "deepseek_v3"};

TEST(Convert, EveryArchitectureGivesThePythonConvertersFileAndTheSameLogits) {
  test::TempDir root("sy_convert");
  std::vector<test::ReferenceCase> cases;
  for (const std::string& arch : kArchs) {
    test::ReferenceCase c = checkpoint_case(arch, (root.path / arch).string(), 1);
    // GGUF has no clip_qkv (llama.cpp does not clamp): the GGUF logits match only unclipped.
    if (arch == "olmoe") c.params["overrides"] = {{"clip_qkv", nullptr}};
    cases.push_back(c);
  }
  test::run_reference_cases("model_arch", cases);
  for (const std::string& arch : kArchs) {
    SCOPED_TRACE(arch);
    const fs::path dir = root.path / arch;
    const std::string out = (dir / "converted.gguf").string();
    const ConvertReport r = convert_to_gguf(dir.string(), out, with_type(GgmlType::kF32));
    EXPECT_TRUE(r.notes.empty()) << r.notes.front();
    EXPECT_FALSE(r.tokenizer);
    const io::GgufFile got = io::GgufFile::open(out);
    const io::GgufFile want = io::GgufFile::open((dir / "model.gguf").string());
    expect_same_gguf(got, want);
    EXPECT_EQ(got.get_string("general.name"), arch);
    EXPECT_EQ(r.arch, want.get_string("general.architecture"));
    EXPECT_EQ(r.tensors, want.tensors().size());
    EXPECT_EQ(r.tensors_per_type, (std::map<std::string, size_t>{{"f32", r.tensors}}));
    EXPECT_EQ(r.bytes, fs::file_size(out));
    EXPECT_LT(relative_error(logits_of(out), logits_of(dir.string())), 1e-5);
  }
}

// bf16 weights in two shards (and an f32 router bias for DeepSeek-V3): --quant bf16 keeps the
// matrices' bytes, f32 widens them exactly, and both run to the safetensors model's logits.
TEST(Convert, Bf16ShardsConvertExactly) {
  test::TempDir root("sy_convert");
  std::vector<test::ReferenceCase> cases;
  for (const std::string arch : {"mixtral", "deepseek_v3"}) {
    cases.push_back(checkpoint_case(arch, (root.path / arch).string(), 2,
                                    {{"dtype", "bf16"}, {"shards", 2}, {"gguf", false}}));
  }
  test::run_reference_cases("model_arch", cases);
  for (const std::string arch : {"mixtral", "deepseek_v3"}) {
    SCOPED_TRACE(arch);
    const fs::path dir = root.path / arch;
    const io::SafetensorsCheckpoint ckpt = io::SafetensorsCheckpoint::open(dir.string());
    ASSERT_EQ(ckpt.files().size(), 2u);
    const Tensor ref = logits_of(dir.string());
    for (const GgmlType type : {GgmlType::kF32, GgmlType::kBF16}) {
      const std::string out = (dir / "out.gguf").string();
      convert_to_gguf(dir.string(), out, with_type(type));
      EXPECT_LT(relative_error(logits_of(out), ref), 1e-5);
      const io::GgufFile f = io::GgufFile::open(out);
      // A plain copy: the output norm (1-D, so f32) and the embedding (2-D, so `type`).
      const Tensor norm = ckpt.tensor("model.norm.weight").to_f32();
      EXPECT_EQ(f.tensor_info("output_norm.weight").type, GgmlType::kF32);
      EXPECT_EQ(bytes_of(f, f.tensor_info("output_norm.weight")),
                std::string(reinterpret_cast<const char*>(norm.bytes()), norm.nbytes()));
      const Tensor embd = ckpt.tensor("model.embed_tokens.weight");
      const Tensor embd_as = type == GgmlType::kBF16 ? embd : embd.to_f32();
      EXPECT_EQ(f.tensor_info("token_embd.weight").type, type);
      EXPECT_EQ(bytes_of(f, f.tensor_info("token_embd.weight")),
                std::string(reinterpret_cast<const char*>(embd_as.bytes()), embd_as.nbytes()));
      if (arch == std::string("deepseek_v3")) {
        EXPECT_EQ(f.tensor_info("blk.1.exp_probs_b.bias").type, GgmlType::kF32);
        EXPECT_EQ(f.tensor_info("blk.1.ffn_gate_inp.weight").type, GgmlType::kF32);
      }
    }
  }
}

// Mixtral at width 256 (K-quant blocks are 256 values) with a recipe: the type of every tensor
// by the rules, written out by hand, and the bytes of kernels::quantize of the f32 tensor the
// Python converter wrote (stacked and permuted there, independently of ours).
TEST(Convert, RecipeTypesAndQuantizedBytes) {
  test::TempDir dir("sy_convert");
  test::run_reference_cases(
      "model_arch",
      {checkpoint_case("mixtral", dir.str(), 3,
                       {{"overrides", {{"hidden_size", 256}, {"intermediate_size", 256}}}})});
  ConvertOptions o = with_type(GgmlType::kQ8_0);
  o.recipe = parse_recipe("ffn_*_exps=q4_K, attn_q.*=q6_K, attn_*=q5_0, token_embd=q5_K");
  const std::string out = (dir.path / "q.gguf").string();
  const ConvertReport r = convert_to_gguf(dir.str(), out, o);
  EXPECT_TRUE(r.notes.empty());
  const io::GgufFile f = io::GgufFile::open(out);
  const io::GgufFile ref = io::GgufFile::open((dir.path / "model.gguf").string());
  EXPECT_EQ(f.get_u32("general.file_type"), 7u);  // MOSTLY_Q8_0
  EXPECT_EQ(f.get_u32("general.quantization_version"), 2u);
  const auto expected_type = [](const std::string& name) {
    const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
    if (has("norm") || has("ffn_gate_inp")) return GgmlType::kF32;
    if (has("_exps")) return GgmlType::kQ4_K;
    if (has("attn_q.")) return GgmlType::kQ6_K;
    if (has("attn_")) return GgmlType::kQ5_0;  // attn_k, attn_v, attn_output
    if (has("token_embd")) return GgmlType::kQ5_K;
    return GgmlType::kQ8_0;  // output.weight
  };
  ASSERT_EQ(f.tensors().size(), ref.tensors().size());
  std::map<std::string, size_t> counts;
  for (const io::GgufTensorInfo& t : f.tensors()) {
    SCOPED_TRACE(t.name);
    const GgmlType type = expected_type(t.name);
    ++counts[std::string(ggml_type_info(type).name)];
    EXPECT_EQ(t.type, type);
    EXPECT_EQ(t.ne, ref.tensor_info(t.name).ne);
    const Tensor f32 = ref.tensor(t.name);
    const std::string want =
        type == GgmlType::kF32
            ? std::string(reinterpret_cast<const char*>(f32.bytes()), f32.nbytes())
            : bytes_of(kernels::quantize(f32, type));
    EXPECT_TRUE(bytes_of(f, t) == want) << "bytes differ";
  }
  EXPECT_EQ(r.tensors_per_type, counts);
  // The packed model runs, and agrees with the f32 path on the same (dequantized) weights up to
  // the packed kernels' own rounding (test_model_quant bounds that and the weights' error).
  io::GgufWriter twin;
  for (const io::GgufKv& kv : f.kvs()) twin.add_kv(kv.key, kv.value);
  for (const io::GgufTensorInfo& t : f.tensors()) {
    const Tensor raw = f.raw(t);
    twin.add_tensor(t.name, kernels::dequantize(raw.bytes(), raw.nbytes(), t.type, t.shape()));
  }
  const std::string twin_path = (dir.path / "twin.gguf").string();
  twin.write(twin_path);
  const double err = relative_error(logits_of(out), logits_of(twin_path));
  std::printf("packed vs dequantized twin: %.3g\n", err);
  EXPECT_LT(err, 0.05);
}

// f16 is the default type; 2-D tensors round to nearest even, 1-D stay f32.
TEST(Convert, F16Default) {
  test::TempDir dir("sy_convert");
  test::run_reference_cases("model_arch", {checkpoint_case("qwen3_moe", dir.str(), 4)});
  ConvertOptions o;
  o.progress = false;
  EXPECT_EQ(o.type, GgmlType::kF16);
  const std::string out = (dir.path / "h.gguf").string();
  convert_to_gguf(dir.str(), out, o);
  const io::GgufFile f = io::GgufFile::open(out);
  const io::GgufFile ref = io::GgufFile::open((dir.path / "model.gguf").string());
  EXPECT_EQ(f.get_u32("general.file_type"), 1u);
  for (const io::GgufTensorInfo& t : f.tensors()) {
    SCOPED_TRACE(t.name);
    const Tensor f32 = ref.tensor(t.name);
    const bool keep = t.ne.size() == 1 || t.name.find("ffn_gate_inp") != std::string::npos;
    EXPECT_EQ(t.type, keep ? GgmlType::kF32 : GgmlType::kF16);
    const Tensor want = keep ? f32 : f32.to(DType::F16);
    EXPECT_TRUE(bytes_of(f, t) ==
                std::string(reinterpret_cast<const char*>(want.bytes()), want.nbytes()));
  }
  EXPECT_LT(relative_error(logits_of(out), logits_of(dir.str())), 1e-2);
}

// Rows that are not whole blocks fall back (q4_K -> q5_0 -> f16), each with a note.
TEST(Convert, BlockFallbacksAreNoted) {
  test::TempDir dir("sy_convert");
  test::run_reference_cases("model_arch", {checkpoint_case("deepseek_v2_lite", dir.str(), 5)});
  const std::string out = (dir.path / "k.gguf").string();
  const ConvertReport r = convert_to_gguf(dir.str(), out, with_type(GgmlType::kQ4_K));
  const io::GgufFile f = io::GgufFile::open(out);
  // Width 64: no 256-blocks anywhere, so q4_K -> q5_0 for rows of 64 or 32 (o_proj, down) and
  // f16 for attn_k_b (rows of nope = 16); routers and norms stay f32 without a note.
  EXPECT_EQ(f.tensor_info("blk.1.ffn_up_exps.weight").type, GgmlType::kQ5_0);
  EXPECT_EQ(f.tensor_info("blk.1.ffn_down_exps.weight").type, GgmlType::kQ5_0);
  EXPECT_EQ(f.tensor_info("blk.0.attn_k_b.weight").type, GgmlType::kF16);
  EXPECT_EQ(f.tensor_info("blk.0.attn_v_b.weight").type, GgmlType::kQ5_0);
  EXPECT_EQ(f.tensor_info("blk.1.ffn_gate_inp.weight").type, GgmlType::kF32);
  EXPECT_EQ(f.get_u32("general.file_type"), 14u);  // MOSTLY_Q4_K_S
  ASSERT_FALSE(r.notes.empty());
  EXPECT_EQ(r.notes.front(),
            "token_embd.weight: rows of 64 values are not whole 256-blocks of q4_K; written as "
            "q5_0");
  size_t f16_notes = 0;
  for (const std::string& n : r.notes) {
    if (n ==
        "blk.0.attn_k_b.weight: rows of 16 values are not whole 256-blocks of q4_K; "
        "written as f16") {
      ++f16_notes;
    }
  }
  EXPECT_EQ(f16_notes, 1u);
  // Every tensor that is not f32 by rule has a note, and only those.
  size_t fell_back = 0;
  for (const io::GgufTensorInfo& t : f.tensors()) fell_back += t.type != GgmlType::kF32;
  EXPECT_EQ(r.notes.size(), fell_back);
  EXPECT_EQ(logits_of(out).shape(), (Shape{12, 120}));
}

// iq4_xs falls back to iq4_nl, as llama-quantize does, and the file runs.
TEST(Convert, Iq4XsFallsBackToIq4Nl) {
  test::TempDir dir("sy_convert");
  test::run_reference_cases("model_arch", {checkpoint_case("deepseek_v2_lite", dir.str(), 5)});
  const std::string out = (dir.path / "iq4.gguf").string();
  const ConvertReport r = convert_to_gguf(dir.str(), out, with_type(GgmlType::kIQ4_XS));
  const io::GgufFile f = io::GgufFile::open(out);
  EXPECT_EQ(f.tensor_info("blk.1.ffn_up_exps.weight").type, GgmlType::kIQ4_NL);
  EXPECT_EQ(f.tensor_info("blk.0.attn_k_b.weight").type, GgmlType::kF16);
  EXPECT_EQ(f.get_u32("general.file_type"), 30u);  // MOSTLY_IQ4_XS
  ASSERT_FALSE(r.notes.empty());
  EXPECT_EQ(r.notes.front(),
            "token_embd.weight: rows of 64 values are not whole 256-blocks of iq4_xs; written as "
            "iq4_nl");
  const Tensor logits = logits_of(out);
  EXPECT_EQ(logits.shape(), (Shape{12, 120}));
  for (int64_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(logits.data<float>()[i]));
}

TEST(ConvertOptions, TypeNames) {
  EXPECT_EQ(parse_convert_type("q4_K"), GgmlType::kQ4_K);
  EXPECT_EQ(parse_convert_type("Q4_K"), GgmlType::kQ4_K);
  EXPECT_EQ(parse_convert_type("q8_0"), GgmlType::kQ8_0);
  EXPECT_EQ(parse_convert_type("BF16"), GgmlType::kBF16);
  EXPECT_EQ(parse_convert_type("IQ4_XS"), GgmlType::kIQ4_XS);
  EXPECT_EQ(error_of([] { parse_convert_type("q4_k_m"); }),
            "unknown type 'q4_k_m', expected one of " + kTypes);
  EXPECT_EQ(error_of([] { parse_convert_type("mxfp4"); }),
            "unknown type 'mxfp4', expected one of " + kTypes);
  EXPECT_EQ(error_of([] { parse_convert_type(""); }), "unknown type '', expected one of " + kTypes);
}

TEST(ConvertOptions, RecipeSyntax) {
  const std::vector<RecipeRule> rules = parse_recipe(" ffn_*_exps = q4_K ,attn_*=q8_0,x=F16");
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].pattern, "ffn_*_exps");
  EXPECT_EQ(rules[0].type, GgmlType::kQ4_K);
  EXPECT_EQ(rules[1].pattern, "attn_*");
  EXPECT_EQ(rules[1].type, GgmlType::kQ8_0);
  EXPECT_EQ(rules[2].type, GgmlType::kF16);
  EXPECT_TRUE(parse_recipe("").empty());
  EXPECT_TRUE(parse_recipe("  ").empty());
  EXPECT_EQ(error_of([] { parse_recipe("ffn_*_exps"); }),
            "recipe entry 1 'ffn_*_exps' is not pattern=type");
  EXPECT_EQ(error_of([] { parse_recipe("a=q8_0,,b=f16"); }),
            "recipe entry 2 '' is not pattern=type");
  EXPECT_EQ(error_of([] { parse_recipe("a=q8_0,"); }), "recipe entry 2 '' is not pattern=type");
  EXPECT_EQ(error_of([] { parse_recipe("a=b=q8_0"); }),
            "recipe entry 1 'a=b=q8_0' is not pattern=type");
  EXPECT_EQ(error_of([] { parse_recipe("a=q8_0, =q4_K"); }),
            "recipe entry 2 '=q4_K' has an empty pattern");
  EXPECT_EQ(error_of([] { parse_recipe("a=q9"); }),
            "recipe entry 1 'a=q9': unknown type 'q9', expected one of " + kTypes);
  EXPECT_EQ(error_of([] { parse_recipe("a="); }),
            "recipe entry 1 'a=': unknown type '', expected one of " + kTypes);
}

TEST(ConvertOptions, PatternsMatchAnyPartOfTheName) {
  EXPECT_TRUE(recipe_matches("ffn_*_exps", "blk.0.ffn_gate_exps.weight"));
  EXPECT_TRUE(recipe_matches("ffn_*_exps", "blk.12.ffn_down_exps.weight"));
  EXPECT_FALSE(recipe_matches("ffn_*_exps", "blk.0.ffn_gate_shexp.weight"));
  EXPECT_TRUE(recipe_matches("ffn_*_shexp", "blk.0.ffn_gate_shexp.weight"));
  EXPECT_TRUE(recipe_matches("attn_*", "blk.3.attn_output.weight"));
  EXPECT_FALSE(recipe_matches("attn_*", "blk.3.ffn_up.weight"));
  EXPECT_TRUE(recipe_matches("attn_q", "blk.0.attn_q_a.weight"));  // plain substring
  EXPECT_FALSE(recipe_matches("attn_q.", "blk.0.attn_q_a.weight"));
  EXPECT_TRUE(recipe_matches("blk.?.ffn", "blk.7.ffn_up.weight"));
  EXPECT_FALSE(recipe_matches("blk.?.ffn", "blk.17.ffn_up.weight"));
  EXPECT_TRUE(recipe_matches("blk.1?.*exps", "blk.17.ffn_up_exps.weight"));
  EXPECT_TRUE(recipe_matches("*", "x"));
  EXPECT_TRUE(recipe_matches("a*b*c", "xxaybzzcq"));
  EXPECT_FALSE(recipe_matches("a*b*c", "xxaybzzq"));
  EXPECT_TRUE(recipe_matches("output", "output.weight"));
  EXPECT_FALSE(recipe_matches("output.weight.x", "output.weight"));
}

TEST(ConvertOptions, TypeRules) {
  ConvertOptions o = with_type(GgmlType::kQ6_K);
  o.recipe = parse_recipe("attn_*=q4_0,*=q2_K");
  std::string note = "stale";
  // 1-D tensors, routers (also Qwen2-MoE's shared-expert gate) and exp_probs_b stay f32.
  EXPECT_EQ(choose_tensor_type("blk.0.attn_norm.weight", {512}, o, &note), GgmlType::kF32);
  EXPECT_EQ(note, "");
  EXPECT_EQ(choose_tensor_type("blk.0.ffn_gate_inp.weight", {512, 8}, o), GgmlType::kF32);
  EXPECT_EQ(choose_tensor_type("blk.0.ffn_gate_inp_shexp.weight", {512, 1}, o), GgmlType::kF32);
  EXPECT_EQ(choose_tensor_type("blk.0.exp_probs_b.bias", {8, 1}, o), GgmlType::kF32);
  // First matching rule wins; the default only when none matches.
  EXPECT_EQ(choose_tensor_type("blk.0.attn_q.weight", {512, 512}, o), GgmlType::kQ4_0);
  EXPECT_EQ(choose_tensor_type("blk.0.ffn_up.weight", {512, 512}, o), GgmlType::kQ2_K);
  EXPECT_EQ(choose_tensor_type("x", {512, 512}, with_type(GgmlType::kQ6_K)), GgmlType::kQ6_K);
  // Fallbacks: q6_K -> q8_0, q2_K and iq4_xs -> iq4_nl, then f16; f16 always fits.
  EXPECT_EQ(choose_tensor_type("x", {96, 4}, with_type(GgmlType::kQ6_K), &note), GgmlType::kQ8_0);
  EXPECT_EQ(note, "x: rows of 96 values are not whole 256-blocks of q6_K; written as q8_0");
  EXPECT_EQ(choose_tensor_type("x", {48, 4}, with_type(GgmlType::kQ6_K), &note), GgmlType::kF16);
  EXPECT_EQ(note, "x: rows of 48 values are not whole 256-blocks of q6_K; written as f16");
  EXPECT_EQ(choose_tensor_type("x", {96, 4}, o, &note), GgmlType::kIQ4_NL);
  EXPECT_EQ(note, "x: rows of 96 values are not whole 256-blocks of q2_K; written as iq4_nl");
  EXPECT_EQ(choose_tensor_type("x", {96, 4}, with_type(GgmlType::kIQ4_XS)), GgmlType::kIQ4_NL);
  EXPECT_EQ(choose_tensor_type("x", {48, 4}, with_type(GgmlType::kIQ4_XS)), GgmlType::kF16);
  EXPECT_EQ(choose_tensor_type("x", {96, 4}, with_type(GgmlType::kQ5_K)), GgmlType::kQ5_1);
  EXPECT_EQ(choose_tensor_type("x", {96, 4}, with_type(GgmlType::kQ4_K)), GgmlType::kQ5_0);
  EXPECT_EQ(choose_tensor_type("x", {48, 4}, with_type(GgmlType::kQ8_0), &note), GgmlType::kF16);
  EXPECT_EQ(note, "x: rows of 48 values are not whole 32-blocks of q8_0; written as f16");
  EXPECT_EQ(choose_tensor_type("x", {3, 4}, with_type(GgmlType::kBF16), &note), GgmlType::kBF16);
  EXPECT_EQ(note, "");
}

// ---- errors -------------------------------------------------------------------------------

// One small Mixtral checkpoint, edited per test.
class ConvertErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    source_ = new test::TempDir("sy_convert_src");
    test::run_reference_cases("model_arch",
                              {checkpoint_case("mixtral", source_->str(), 1, {{"gguf", false}})});
  }
  static void TearDownTestSuite() {
    delete source_;
    source_ = nullptr;
  }
  void SetUp() override {
    fs::copy(source_->path, dir_.path, fs::copy_options::recursive);
    out_ = (dir_.path / "out.gguf").string();
  }
  std::string convert() {
    return error_of([&] { convert_to_gguf(dir_.str(), out_, with_type(GgmlType::kQ8_0)); });
  }
  json config() const {
    std::ifstream in(dir_.path / "config.json");
    return json::parse(in);
  }
  void set_config(const json& j) const { std::ofstream(dir_.path / "config.json") << j.dump(); }
  // Rewrites model.safetensors with `edit` applied to the tensor list.
  void edit_tensors(const std::function<void(io::NamedTensors&)>& edit) const {
    const std::string file = (dir_.path / "model.safetensors").string();
    io::NamedTensors tensors;
    {
      const io::SafetensorsFile f = io::SafetensorsFile::open(file);
      for (const std::string& n : f.names()) tensors.emplace_back(n, f.tensor(n).clone());
    }
    edit(tensors);
    io::write_safetensors(file, tensors);
  }
  // Nothing at the output path and no temporary beside it.
  void expect_no_output() const {
    EXPECT_FALSE(fs::exists(out_));
    for (const auto& e : fs::directory_iterator(dir_.path)) {
      EXPECT_EQ(e.path().filename().string().find("out.gguf"), std::string::npos)
          << e.path().filename();
    }
  }

  static test::TempDir* source_;
  test::TempDir dir_{"sy_convert_err"};
  std::string out_;
};
test::TempDir* ConvertErrors::source_ = nullptr;

TEST_F(ConvertErrors, MissingConfig) {
  fs::remove(dir_.path / "config.json");
  EXPECT_EQ(convert(), dir_.str() + ": no config.json in the folder");
  EXPECT_EQ(error_of([&] {
              convert_to_gguf((dir_.path / "nowhere").string(), out_, with_type(GgmlType::kF32));
            }),
            (dir_.path / "nowhere").string() + ": no such file or folder");
  expect_no_output();
}

TEST_F(ConvertErrors, UnsupportedArchitecture) {
  json j = config();
  j["model_type"] = "llama";
  set_config(j);
  // load_config's message, which lists every architecture the registry reads.
  const std::string e = convert();
  const std::string head = (dir_.path / "config.json").string() +
                           ": model_type 'llama' is not supported; supported: mixtral, qwen2_moe, "
                           "qwen3_moe, olmoe, deepseek_v2, deepseek_v3";
  EXPECT_EQ(e.substr(0, head.size()), head) << e;
  expect_no_output();
  // An architecture the model code runs but the converter has no GGUF layout for.
  ModelConfig c;
  c.arch = "future_moe";
  c.source = "x/config.json";
  EXPECT_EQ(error_of([&] { convert::gguf_arch(c); }),
            "x/config.json: architecture 'future_moe' has no GGUF conversion; supported: "
            "mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3");
}

TEST_F(ConvertErrors, GgufInput) {
  const std::string gguf = (dir_.path / "m.gguf").string();
  convert_to_gguf(dir_.str(), gguf, with_type(GgmlType::kF32));
  EXPECT_EQ(error_of([&] { convert_to_gguf(gguf, out_, with_type(GgmlType::kF32)); }),
            gguf +
                ": convert reads a Hugging Face folder (config.json + safetensors), not a GGUF "
                "file");
}

TEST_F(ConvertErrors, NoSafetensors) {
  fs::remove(dir_.path / "model.safetensors");
  EXPECT_EQ(convert(), dir_.str() +
                           ": no model.safetensors or model.safetensors.index.json in "
                           "the folder");
}

TEST_F(ConvertErrors, MissingTensor) {
  edit_tensors([](io::NamedTensors& t) {
    std::erase_if(t, [](const auto& p) {
      return p.first == "model.layers.1.block_sparse_moe.experts.5.w3.weight";
    });
  });
  EXPECT_EQ(convert(), (dir_.path / "model.safetensors").string() +
                           ": tensor 'model.layers.1.block_sparse_moe.experts.5.w3.weight' is "
                           "missing");
  expect_no_output();
}

TEST_F(ConvertErrors, UntiedHeadMissing) {
  edit_tensors([](io::NamedTensors& t) {
    std::erase_if(t, [](const auto& p) { return p.first == "lm_head.weight"; });
  });
  EXPECT_EQ(convert(),
            (dir_.path / "model.safetensors").string() + ": tensor 'lm_head.weight' is missing");
  // Tied: no lm_head is expected and no output tensor written (llama.cpp reuses token_embd).
  json j = config();
  j["tie_word_embeddings"] = true;
  set_config(j);
  ASSERT_EQ(convert(), "(no error)");
  const io::GgufFile f = io::GgufFile::open(out_);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(Model::load(out_)->config().tie_embeddings, true);
}

TEST_F(ConvertErrors, WrongShapeOrDtype) {
  edit_tensors([](io::NamedTensors& t) {
    for (auto& [name, value] : t) {
      if (name == "model.layers.0.self_attn.k_proj.weight") value = Tensor::zeros({16, 64});
    }
  });
  EXPECT_EQ(convert(), (dir_.path / "model.safetensors").string() +
                           ": tensor 'model.layers.0.self_attn.k_proj.weight' has shape [16, 64], "
                           "expected [32, 64]");
  edit_tensors([](io::NamedTensors& t) {
    for (auto& [name, value] : t) {
      if (name == "model.layers.0.self_attn.k_proj.weight")
        value = Tensor::zeros({32, 64}, DType::I32);
    }
  });
  EXPECT_EQ(convert(), (dir_.path / "model.safetensors").string() +
                           ": tensor 'model.layers.0.self_attn.k_proj.weight' has dtype I32, "
                           "expected F32, F16 or BF16");
  expect_no_output();
}

TEST_F(ConvertErrors, NonFiniteValueWhileQuantizing) {
  edit_tensors([](io::NamedTensors& t) {
    for (auto& [name, value] : t) {
      if (name == "model.layers.1.block_sparse_moe.experts.2.w1.weight") {
        value.mutable_data<float>()[5 * 64 + 3] = NAN;
      }
    }
  });
  const std::string e = convert();
  const std::string prefix = (dir_.path / "model.safetensors").string() +
                             ": tensor 'blk.1.ffn_gate_exps.weight' from "
                             "'model.layers.1.block_sparse_moe.experts.2.w1.weight': ";
  EXPECT_EQ(e.substr(0, prefix.size()), prefix) << e;
  EXPECT_NE(e.find("nan"), std::string::npos) << e;
  expect_no_output();
  // Kept as f32 (no quantizing), the value is carried as it is.
  EXPECT_EQ(error_of([&] { convert_to_gguf(dir_.str(), out_, with_type(GgmlType::kF32)); }),
            "(no error)");
}

TEST_F(ConvertErrors, OutputNotWritableLeavesTheOldFile) {
  const std::string bad = (dir_.path / "no" / "out.gguf").string();
  EXPECT_EQ(
      error_of([&] { convert_to_gguf(dir_.str(), bad, with_type(GgmlType::kF32)); }),
      bad + ".tmp." + std::to_string(::getpid()) + ": cannot create: No such file or directory");
  std::ofstream(out_) << "old";
  edit_tensors([](io::NamedTensors& t) {
    for (auto& [name, value] : t) {
      if (name == "lm_head.weight") value.mutable_data<float>()[7] = INFINITY;
    }
  });
  EXPECT_NE(convert(), "(no error)");
  std::ifstream in(out_);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "old");
}

TEST_F(ConvertErrors, UnusedTensorsAreANote) {
  edit_tensors([](io::NamedTensors& t) {
    t.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", Tensor::zeros({8}));
  });
  const ConvertReport r = convert_to_gguf(dir_.str(), out_, with_type(GgmlType::kF32));
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0], (dir_.path / "model.safetensors").string() +
                            ": 1 tensor(s) have no place in the GGUF and are left out: "
                            "model.layers.0.self_attn.rotary_emb.inv_freq");
}

}  // namespace
}  // namespace sy::model
