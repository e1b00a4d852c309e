// The tokenizer part of the converter: tokenizer.json or tokenizer.model as tokenizer.ggml.*
// keys, following llama.cpp's convert_hf_to_gguf.py (get_vocab_base, _set_vocab_gpt2,
// _set_vocab_sentencepiece) and gguf-py's SpecialVocab.
//  - Byte-level BPE tokenizer.json (Qwen, OLMoE, DeepSeek): model "gpt2", tokens by id in their
//    byte-mapped form ("[PAD<i>]", type unused, for ids the file lacks), token types (added
//    special tokens and ones that look special -> control, other added tokens -> user-defined,
//    the rest normal), merges "left right" (spaces inside a pair as U+0120), and
//    tokenizer.ggml.pre named from the pre-tokenizer: llama.cpp identifies it by hashing the
//    tokenization of a test text; here it is read off the pre-tokenizer's regexes (GPT-2 ->
//    "gpt-2", or "olmo" for OLMoE; Llama 3 -> "llama-bpe"; Qwen2 -> "qwen2"; DeepSeek-V3 ->
//    "deepseek-v3"; DeepSeek LLM / V2 -> "deepseek-llm"); others are a note and no tokenizer is
//    written.
//  - SentencePiece tokenizer.model (preferred for Mixtral, as llama.cpp's LlamaModel does):
//    model "llama", pre "default", pieces, scores and types (unknown, control, unused, byte,
//    normal) from the SentencePiece library; added tokens of tokenizer_config.json's
//    added_tokens_decoder as control / user-defined with score -1000.
//  - SentencePiece-style BPE in tokenizer.json (byte_fallback, "▁" for spaces; Mixtral without
//    tokenizer.model): model "llama" with <0xXX> tokens as type byte and each token's score
//    minus the rank of the first merge that makes it, so that score order is merge order (what
//    llama.cpp's SPM tokenizer and our GGUF reader need; llama.cpp's LlamaHfVocab writes a
//    constant placeholder instead); tokenizer.ggml.add_space_prefix false when the file adds no
//    leading "▁".
// Then, as SpecialVocab does: bos/eos/unknown/seperator/padding/cls/mask ids from
// tokenizer_config.json's "<type>_token" looked up among tokenizer.json's added tokens, else
// config.json's "<type>_token_id"; add_bos_token / add_eos_token from the post-processor's
// template (both written, true or false, when there is a TemplateProcessing), overridden by
// tokenizer_config.json's; chat_template (a string) from tokenizer_config.json. An id that names
// no token is left out with a note; with no BOS (EOS) id, add_bos_token (add_eos_token) is
// written false.
// What is written always loads back as a GGUF vocabulary that splits text as tokenizer.json does
// (tests/fuzz/fuzz_convert_vocab.cpp checks both): files the tokenizers library refuses (merges
// of tokens not in the vocabulary, one token at two ids) are errors, and text steps llama.cpp
// does not have (a ByteLevel prefix space, normalizers other than NFC on byte-level BPE, other
// than "▁" for spaces on SentencePiece-style BPE, pre-tokenizers other than Metaspace there) are
// notes with no tokenizer written.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/error.h"
#include "io/tokenizer/pretokenize.h"
#include "model/convert_plan.h"

namespace sy::model::convert {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

struct Vocab {
  std::string model;  // "gpt2" or "llama"
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<float> scores;  // llama only
  std::vector<int32_t> types;
  std::vector<std::string> merges;  // gpt2 only
  std::optional<bool> add_space_prefix;
};

std::optional<json> read_json(const fs::path& path) {
  if (!fs::exists(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  SY_CHECK(in.good(), "{}: cannot open", path.string());
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  SY_CHECK(!j.is_discarded() && j.is_object(), "{}: not a JSON object", path.string());
  return j;
}

// gguf-py's does_token_look_special.
bool looks_special(std::string_view t) {
  const auto wraps = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.substr(0, open.size()) == open &&
           t.substr(t.size() - close.size()) == close;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wraps("<|", "|>") ||
         wraps("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || wraps("<unused", ">");
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

bool is_byte_token(std::string_view t) {
  const auto hex = [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)) != 0; };
  return t.size() == 6 && t.substr(0, 3) == "<0x" && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// Every step of a (possibly nested) Sequence, in order.
void flatten(const json& step, std::vector<json>& out) {
  if (!step.is_object()) return;
  const json* type = step.contains("type") ? &step.at("type") : nullptr;
  if (type != nullptr && *type == "Sequence") {
    for (const char* key : {"pretokenizers", "decoders", "normalizers"}) {
      if (step.contains(key) && step.at(key).is_array()) {
        for (const json& s : step.at(key)) flatten(s, out);
      }
    }
    return;
  }
  out.push_back(step);
}

std::vector<json> steps_of(const json& tok, const char* key) {
  std::vector<json> out;
  if (tok.contains(key)) flatten(tok.at(key), out);
  return out;
}

bool has_step(const std::vector<json>& steps, std::string_view type) {
  for (const json& s : steps) {
    if (s.value("type", "") == type) return true;
  }
  return false;
}

// llama.cpp's pre-tokenizer name for a byte-level tokenizer.json, or "" when not recognised:
// the Split regexes (and ByteLevel's own GPT-2 regex) in order must be exactly the steps of one
// of llama.cpp's pre-tokenizers (the table in io/tokenizer/gguf_vocab.cpp runs them back).
std::string pre_name(const std::vector<json>& steps, const ModelConfig& config) {
  using io::tok::SplitPattern;
  std::vector<SplitPattern> patterns;
  for (const json& s : steps) {
    const std::string type = s.value("type", "");
    if (type == "ByteLevel") {
      if (s.value("use_regex", true)) patterns.push_back(SplitPattern::kGpt2);
    } else if (type == "Split" && s.contains("pattern") && s.at("pattern").is_object() &&
               s.at("pattern").contains("Regex") && s.at("pattern").at("Regex").is_string()) {
      const auto p = io::tok::find_split_pattern(s.at("pattern").at("Regex").get<std::string>());
      if (!p) return "";
      patterns.push_back(*p);
    } else {
      return "";
    }
  }
  static const std::vector<std::pair<std::string, std::vector<SplitPattern>>> kKnown = {
      {"gpt-2", {SplitPattern::kGpt2}},
      {"llama-bpe", {SplitPattern::kLlama3}},
      {"qwen2", {SplitPattern::kQwen2}},
      {"deepseek-v3",
       {SplitPattern::kDigits3, SplitPattern::kDeepSeekV3Cjk, SplitPattern::kDeepSeekV3}},
      {"deepseek-llm",
       {SplitPattern::kDeepSeekLlmNewline, SplitPattern::kDeepSeekLlmLetters,
        SplitPattern::kDeepSeekLlmPunct, SplitPattern::kDeepSeekLlmTrailing,
        SplitPattern::kDeepSeekLlmCjk, SplitPattern::kDigitRuns}},
  };
  for (const auto& [name, known] : kKnown) {
    if (patterns == known) return name == "gpt-2" && config.arch == "olmoe" ? "olmo" : name;
  }
  return "";
}

// What llama.cpp does to text before BPE: nothing for gpt2 vocabularies (it leaves out NFC, as
// the Python converter does for Qwen2), and for llama ones spaces to "▁" and perhaps a "▁" in
// front. Says which step of a tokenizer.json does something else, or nullopt when none does.
std::optional<std::string> unsupported_text_steps(const json& tok, const std::vector<json>& pre,
                                                  bool byte_level) {
  const std::string space(kSpmSpace);
  bool spaces = false;  // spaces become "▁" (SentencePiece style)
  for (const json& s : steps_of(tok, "normalizer")) {
    const std::string type = s.value("type", "");
    const bool ok = byte_level ? type == "NFC"
                               : (type == "Prepend" && s.value("prepend", "") == space) ||
                                     (type == "Replace" && s.value("content", "") == space &&
                                      s.contains("pattern") && s.at("pattern").is_object() &&
                                      s.at("pattern").value("String", "") == " ");
    if (!ok) return fmt::format("the normalizer step '{}' changes the text", type);
    spaces = spaces || type == "Replace";
  }
  if (byte_level) return std::nullopt;  // pre_name judges the pre-tokenizer steps
  for (const json& s : pre) {
    const std::string type = s.value("type", "");
    if (type != "Metaspace" || s.value("replacement", space) != space) {
      return fmt::format("the pre-tokenizer step '{}' splits or changes the text", type);
    }
    spaces = true;
  }
  if (!spaces) {
    return std::optional<std::string>(
        "spaces stay spaces (no Replace normalizer or Metaspace pre-tokenizer makes them "
        "\"\xE2\x96\x81\")");
  }
  return std::nullopt;
}

// tokenizer.json's BPE model as a vocabulary; nullopt (with a note) when it cannot be one.
std::optional<Vocab> from_tokenizer_json(const fs::path& path, const json& tok,
                                         const ModelConfig& config,
                                         std::vector<std::string>& notes) {
  const std::string file = path.string();
  SY_CHECK(tok.contains("model") && tok.at("model").is_object(), "{}: key 'model' is missing",
           file);
  const json& model = tok.at("model");
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    notes.push_back(fmt::format(
        "{}: model type '{}' cannot be written as a GGUF vocabulary (BPE only); no tokenizer "
        "embedded",
        file, type));
    return std::nullopt;
  }
  SY_CHECK(model.contains("vocab") && model.at("vocab").is_object(),
           "{}: key 'model.vocab' is missing or not an object", file);
  const auto n = static_cast<int32_t>(config.vocab_size);
  Vocab v;
  v.tokens.assign(static_cast<size_t>(n), "");
  v.types.assign(static_cast<size_t>(n), kUnused);
  std::vector<bool> seen(static_cast<size_t>(n), false);
  const auto place = [&](const std::string& token, const json& id_json, int32_t type_id) {
    SY_CHECK(id_json.is_number_integer(), "{}: token '{}' has id {}, expected an integer", file,
             token, id_json.dump());
    const auto id = id_json.get<int64_t>();
    SY_CHECK(id >= 0 && id < n,
             "{}: token '{}' has id {}, outside the model's vocabulary [0, {}) (config.json "
             "vocab_size)",
             file, token, id, n);
    SY_CHECK(type_id != kNormal || !seen[static_cast<size_t>(id)],
             "{}: model.vocab: tokens '{}' and '{}' both have id {}", file,
             v.tokens[static_cast<size_t>(id)], token, id);
    v.tokens[static_cast<size_t>(id)] = token;
    v.types[static_cast<size_t>(id)] = type_id;
    seen[static_cast<size_t>(id)] = true;
  };
  for (const auto& [token, id] : model.at("vocab").items()) place(token, id, kNormal);

  const std::vector<json> pre = steps_of(tok, "pre_tokenizer");
  const std::vector<json> dec = steps_of(tok, "decoder");
  const bool byte_level = has_step(pre, "ByteLevel") || has_step(dec, "ByteLevel");
  const bool spm =
      !byte_level && (model.value("byte_fallback", false) || has_step(dec, "ByteFallback") ||
                      has_step(dec, "Metaspace") || has_step(pre, "Metaspace"));
  if (!byte_level && !spm) {
    notes.push_back(fmt::format(
        "{}: neither byte-level nor SentencePiece-style BPE; no tokenizer embedded", file));
    return std::nullopt;
  }
  if (const std::optional<std::string> why = unsupported_text_steps(tok, pre, byte_level)) {
    notes.push_back(fmt::format("{}: {}, which a GGUF vocabulary cannot do; no tokenizer embedded",
                                file, *why));
    return std::nullopt;
  }

  // Merges: "a b" strings, or [a, b] pairs (transformers >= 4.45).
  std::vector<std::pair<std::string, std::string>> merges;
  if (model.contains("merges")) {
    SY_CHECK(model.at("merges").is_array(), "{}: key 'model.merges' is not a list", file);
    for (const json& m : model.at("merges")) {
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        SY_CHECK(space != std::string::npos && space > 0 && space + 1 < s.size() &&
                     s.find(' ', space + 1) == std::string::npos,
                 "{}: merge '{}' is not 'left right'", file, s);
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else {
        SY_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                 "{}: merge {} is not a pair of strings", file, m.dump());
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      }
    }
  }

  std::optional<std::string> unk;
  if (model.contains("unk_token") && model.at("unk_token").is_string()) {
    unk = model.at("unk_token").get<std::string>();
  }
  if (tok.contains("added_tokens")) {
    SY_CHECK(tok.at("added_tokens").is_array(), "{}: key 'added_tokens' is not a list", file);
    for (const json& a : tok.at("added_tokens")) {
      SY_CHECK(
          a.is_object() && a.contains("id") && a.contains("content") && a.at("content").is_string(),
          "{}: added token {} has no id or content", file, a.dump());
      std::string content = a.at("content").get<std::string>();
      const bool control = a.value("special", false) || looks_special(content);
      // llama.cpp matches user-defined tokens on raw text: SentencePiece spaces become spaces.
      if (!control) content = replace_all(content, kSpmSpace, " ");
      place(content, a.at("id"), control ? kControl : kUserDefined);
    }
  }
  // Each token has one id, and merges join two tokens into a third, all three in the vocabulary:
  // the tokenizers library refuses the file otherwise, and the GGUF loader the vocabulary
  // written from it. An added token that takes another token's id removes that token.
  std::unordered_map<std::string_view, int32_t> present;
  for (int32_t i = 0; i < n; ++i) {
    if (!seen[static_cast<size_t>(i)]) continue;
    const auto [at, fresh] = present.emplace(v.tokens[static_cast<size_t>(i)], i);
    SY_CHECK(fresh, "{}: token '{}' has ids {} and {}", file, at->first, at->second, i);
  }
  for (size_t r = 0; r < merges.size(); ++r) {
    auto [a, b] = merges[r];
    if (byte_level) {  // a space inside a part of a pair is the byte-level U+0120
      a = replace_all(a, " ", "\xC4\xA0");
      b = replace_all(b, " ", "\xC4\xA0");
    }
    const std::string joined = a + b;
    for (const std::string* t : std::initializer_list<const std::string*>{&a, &b, &joined}) {
      SY_CHECK(present.contains(*t), "{}: model.merges[{}]: {}token '{}' is not in the vocabulary",
               file, r, t == &joined ? "merged " : "", *t);
    }
    merges[r] = {std::move(a), std::move(b)};
  }
  for (int32_t i = 0; i < n; ++i) {
    if (!seen[static_cast<size_t>(i)]) v.tokens[static_cast<size_t>(i)] = fmt::format("[PAD{}]", i);
  }

  if (byte_level) {
    v.model = "gpt2";
    for (const json& s : pre) {
      if (s.value("type", "") == "ByteLevel" && s.value("add_prefix_space", true)) {
        notes.push_back(fmt::format(
            "{}: the ByteLevel pre-tokenizer adds a space before the text (add_prefix_space, "
            "true when absent), which llama.cpp's gpt2 vocabularies do not; no tokenizer embedded",
            file));
        return std::nullopt;
      }
    }
    v.pre = pre_name(pre, config);
    if (v.pre.empty()) {
      notes.push_back(fmt::format(
          "{}: the pre-tokenizer is not one whose llama.cpp name is known (GPT-2, Llama 3, "
          "Qwen2, DeepSeek-V3, DeepSeek LLM); no tokenizer embedded",
          file));
      return std::nullopt;
    }
    for (const auto& [a, b] : merges) v.merges.push_back(std::string(a).append(" ").append(b));
    return v;
  }

  v.model = "llama";
  v.pre = "default";
  std::map<std::string, size_t> first_rank;
  for (size_t r = 0; r < merges.size(); ++r) {
    first_rank.emplace(merges[r].first + merges[r].second, r);
  }
  v.scores.assign(static_cast<size_t>(n), 0.0f);
  for (int32_t i = 0; i < n; ++i) {
    const auto at = static_cast<size_t>(i);
    if (v.types[at] != kNormal) continue;
    if (is_byte_token(v.tokens[at])) {
      v.types[at] = kByte;
    } else {
      const auto it = first_rank.find(v.tokens[at]);
      v.scores[at] = -static_cast<float>(it != first_rank.end() ? it->second : merges.size());
    }
  }
  if (unk) {  // the unknown token is typed so even when it is also an added token
    for (int32_t i = 0; i < n; ++i) {
      if (v.tokens[static_cast<size_t>(i)] == *unk) v.types[static_cast<size_t>(i)] = kUnknown;
    }
  }
  // A leading "▁" comes from a Prepend normalizer or a Metaspace step that prepends.
  bool prefix = false;
  for (const json& s : steps_of(tok, "normalizer")) {
    prefix = prefix || (s.value("type", "") == "Prepend" && s.value("prepend", "") == kSpmSpace);
  }
  for (const json& s : pre) {
    if (s.value("type", "") == "Metaspace") {
      prefix = prefix || s.value("prepend_scheme",
                                 s.value("add_prefix_space", true) ? "always" : "never") != "never";
    }
  }
  if (!prefix) v.add_space_prefix = false;
  return v;
}

Vocab from_sentencepiece(const fs::path& path, const std::optional<json>& tok_config,
                         const ModelConfig& config) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(path.string());
  SY_CHECK(status.ok(), "{}: {}", path.string(), status.ToString());
  const auto n = static_cast<int32_t>(config.vocab_size);
  SY_CHECK(sp.GetPieceSize() <= n,
           "{}: {} pieces, more than the model's vocabulary of {} (config.json vocab_size)",
           path.string(), sp.GetPieceSize(), n);
  Vocab v;
  v.model = "llama";
  v.pre = "default";
  for (int32_t i = 0; i < n; ++i) {
    v.tokens.push_back(fmt::format("[PAD{}]", i));
    v.scores.push_back(-10000.0f);
    v.types.push_back(kUnused);
  }
  for (int32_t i = 0; i < sp.GetPieceSize(); ++i) {
    const auto at = static_cast<size_t>(i);
    v.tokens[at] = sp.IdToPiece(i);
    v.scores[at] = sp.GetScore(i);
    v.types[at] = sp.IsUnknown(i)   ? kUnknown
                  : sp.IsControl(i) ? kControl
                  : sp.IsUnused(i)  ? kUnused
                  : sp.IsByte(i)    ? kByte
                                    : kNormal;
  }
  if (tok_config && tok_config->contains("added_tokens_decoder") &&
      tok_config->at("added_tokens_decoder").is_object()) {
    for (const auto& [key, data] : tok_config->at("added_tokens_decoder").items()) {
      int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        continue;
      }
      if (id < 0 || id >= n || !data.is_object() || !data.contains("content") ||
          !data.at("content").is_string()) {
        continue;
      }
      std::string content = data.at("content").get<std::string>();
      const bool control = data.value("special", false) || looks_special(content);
      if (!control) content = replace_all(content, kSpmSpace, " ");
      const auto at = static_cast<size_t>(id);
      v.tokens[at] = content;
      v.scores[at] = -1000.0f;
      v.types[at] = control ? kControl : kUserDefined;
    }
  }
  return v;
}

// The content of tokenizer_config.json's "<typ>_token" (a string or {"content": ...}).
std::optional<std::string> config_token(const std::optional<json>& tok_config,
                                        const std::string& typ) {
  if (!tok_config || !tok_config->contains(typ + "_token")) return std::nullopt;
  const json& entry = tok_config->at(typ + "_token");
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_object() && entry.contains("content") && entry.at("content").is_string()) {
    return entry.at("content").get<std::string>();
  }
  return std::nullopt;
}

// Whether the post-processor's TemplateProcessing adds BOS before and EOS after a single text:
// its first / last item is the BOS / EOS special token (by tokenizer_config.json's names, or
// whatever special token stands there when there is no tokenizer_config.json).
void template_adds(const std::optional<json>& tok, const std::optional<json>& tok_config,
                   std::vector<std::pair<std::string, bool>>& adds) {
  if (!tok || !tok->contains("post_processor") || !tok->at("post_processor").is_object()) return;
  const json& pp = tok->at("post_processor");
  std::vector<json> processors = {pp};
  if (pp.value("type", "") == "Sequence" && pp.contains("processors") &&
      pp.at("processors").is_array()) {
    processors.assign(pp.at("processors").begin(), pp.at("processors").end());
  }
  for (const json& p : processors) {
    if (!p.is_object() || p.value("type", "") != "TemplateProcessing" || !p.contains("single") ||
        !p.at("single").is_array() || p.at("single").size() < 2) {
      continue;
    }
    const auto special_at = [&](const json& item) -> std::optional<std::string> {
      if (item.is_object() && item.contains("SpecialToken") &&
          item.at("SpecialToken").is_object() && item.at("SpecialToken").contains("id") &&
          item.at("SpecialToken").at("id").is_string()) {
        return item.at("SpecialToken").at("id").get<std::string>();
      }
      return std::nullopt;
    };
    const std::optional<std::string> first = special_at(p.at("single").front());
    const std::optional<std::string> last = special_at(p.at("single").back());
    const std::optional<std::string> bos = tok_config ? config_token(tok_config, "bos") : first;
    const std::optional<std::string> eos = tok_config ? config_token(tok_config, "eos") : last;
    adds.emplace_back("add_bos_token", first.has_value() && first == bos);
    adds.emplace_back("add_eos_token", last.has_value() && last == eos);
    return;
  }
}

// SpecialVocab: special ids, add_*_token flags (the template's, overridden by
// tokenizer_config.json's) and the chat template.
void special_keys(const std::optional<json>& tok, const std::optional<json>& tok_config,
                  const HfConfig& hf, const Vocab& vocab, const std::string& where,
                  std::vector<io::GgufKv>& kvs, std::vector<std::string>& notes) {
  const auto n = static_cast<int64_t>(vocab.tokens.size());
  static const std::pair<const char*, const char*> kTypes[] = {
      {"bos", "bos_token_id"},       {"eos", "eos_token_id"},     {"unk", "unknown_token_id"},
      {"sep", "seperator_token_id"}, {"pad", "padding_token_id"}, {"cls", "cls_token_id"},
      {"mask", "mask_token_id"}};
  std::vector<std::pair<std::string, uint32_t>> ids;
  // The first id found for a key wins; one that names no token is dropped with a note.
  const auto set = [&](const char* key, const json& id, const std::string& from) {
    if (!id.is_number_integer()) return;
    const auto v = id.get<int64_t>();
    for (const auto& [k, _] : ids) {
      if (k == key) return;
    }
    if (v < 0 || v >= n || vocab.types[static_cast<size_t>(v)] == kUnused) {
      notes.push_back(
          fmt::format("{} is {}, which is no token of the vocabulary; "
                      "tokenizer.ggml.{} not written",
                      from, v, key));
      return;
    }
    ids.emplace_back(key, static_cast<uint32_t>(v));
  };
  std::vector<std::pair<std::string, bool>> adds;
  template_adds(tok, tok_config, adds);
  for (const auto& [typ, key] : kTypes) {
    const std::string add = fmt::format("add_{}_token", typ);
    if ((std::string_view(typ) == "bos" || std::string_view(typ) == "eos") && tok_config &&
        tok_config->contains(add) && tok_config->at(add).is_boolean()) {
      const bool value = tok_config->at(add).get<bool>();
      bool found = false;
      for (auto& [k, v] : adds) {
        if (k == add) v = value, found = true;
      }
      if (!found) adds.emplace_back(add, value);
    }
    const std::optional<std::string> content = config_token(tok_config, typ);
    if (content && tok && tok->contains("added_tokens") && tok->at("added_tokens").is_array()) {
      for (const json& a : tok->at("added_tokens")) {
        if (a.is_object() && a.contains("content") && a.at("content") == *content &&
            a.contains("id")) {
          set(key, a.at("id"), fmt::format("the id of added token '{}'", *content));
          break;
        }
      }
    }
  }
  for (const auto& [typ, key] : kTypes) {
    const std::string k = fmt::format("{}_token_id", typ);
    if (hf.json().contains(k)) set(key, hf.json().at(k), fmt::format("{}: {}", hf.path(), k));
  }
  // Adding a BOS or EOS needs its id. Without one the flag is written false (a loader's default
  // for an absent add_bos_token can be true: SentencePiece vocabularies, Llama 3's), with a note
  // when the files asked for it.
  for (const auto& [typ, key] : {std::pair{"bos", "bos_token_id"}, {"eos", "eos_token_id"}}) {
    if (std::ranges::find(ids, std::string(key), &std::pair<std::string, uint32_t>::first) !=
        ids.end()) {
      continue;
    }
    const std::string add = fmt::format("add_{}_token", typ);
    const auto it = std::ranges::find(adds, add, &std::pair<std::string, bool>::first);
    if (it == adds.end()) {
      if (std::string_view(typ) == "bos") adds.emplace_back(add, false);
    } else if (it->second) {
      it->second = false;
      notes.push_back(
          fmt::format("{}: {} is true, but no {} token id was found; "
                      "tokenizer.ggml.{} written as false",
                      where, add, typ, add));
    }
  }
  for (const auto& [key, id] : ids) {
    kvs.push_back({"tokenizer.ggml." + key, io::GgufValue::u32(id)});
  }
  for (const auto& [key, value] : adds) {
    kvs.push_back({"tokenizer.ggml." + key, io::GgufValue::boolean(value)});
  }
  if (tok_config && tok_config->contains("chat_template") &&
      tok_config->at("chat_template").is_string()) {
    kvs.push_back({"tokenizer.chat_template",
                   io::GgufValue::string(tok_config->at("chat_template").get<std::string>())});
  }
}

}  // namespace

std::vector<io::GgufKv> tokenizer_metadata(const std::string& folder, const ModelConfig& config,
                                           const HfConfig& hf, std::vector<std::string>& notes) {
  const fs::path dir(folder);
  const std::optional<json> tok = read_json(dir / "tokenizer.json");
  const std::optional<json> tok_config = read_json(dir / "tokenizer_config.json");
  const bool spm_file = fs::exists(dir / "tokenizer.model");
  if (!tok && !spm_file) return {};
  // The readers check the structure they rely on; a key of another type elsewhere throws the
  // JSON library's type_error, named here with the files it can come from.
  const auto named = [&](auto&& read) {
    try {
      return read();
    } catch (const json::exception& e) {
      fail("{} / tokenizer_config.json: a key has an unexpected type: {}",
           (dir / "tokenizer.json").string(), e.what());
    }
  };
  std::optional<Vocab> vocab = named([&]() -> std::optional<Vocab> {
    if (spm_file && (!tok || gguf_arch(config) == "llama")) {
      return from_sentencepiece(dir / "tokenizer.model", tok_config, config);
    }
    return from_tokenizer_json(dir / "tokenizer.json", *tok, config, notes);
  });
  if (!vocab) return {};
  std::vector<io::GgufKv> kvs;
  kvs.push_back({"tokenizer.ggml.model", io::GgufValue::string(vocab->model)});
  kvs.push_back({"tokenizer.ggml.pre", io::GgufValue::string(vocab->pre)});
  kvs.push_back({"tokenizer.ggml.tokens", io::GgufValue::strings(vocab->tokens)});
  if (!vocab->scores.empty()) {
    kvs.push_back({"tokenizer.ggml.scores", io::GgufValue::f32s(vocab->scores)});
  }
  kvs.push_back({"tokenizer.ggml.token_type", io::GgufValue::i32s(vocab->types)});
  if (vocab->add_space_prefix) {
    kvs.push_back(
        {"tokenizer.ggml.add_space_prefix", io::GgufValue::boolean(*vocab->add_space_prefix)});
  }
  // llama.cpp refuses a gpt2 vocabulary without the key, even when it has no merges.
  if (!vocab->merges.empty() || vocab->model == "gpt2") {
    kvs.push_back({"tokenizer.ggml.merges", io::GgufValue::strings(vocab->merges)});
  }
  named([&] {
    special_keys(tok, tok_config, hf, *vocab, folder, kvs, notes);
    return 0;
  });
  return kvs;
}

}  // namespace sy::model::convert
