// tokenizer.json -> HfSpec, with every field checked before use.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/tokenizer/hf_spec.h"

namespace sy::io::tok {

namespace {

using json = nlohmann::json;

// A JSON value plus its path in the file, for error messages.
struct Node {
  const json& v;
  std::string path;
  const std::string& file;

  [[noreturn]] void bad(std::string_view expected) const {
    fail("{}: {}{}expected {}, got {}", file, path, path.empty() ? "" : ": ", expected,
         v.dump().substr(0, 80));
  }
  bool has(const char* key) const { return v.is_object() && v.contains(key) && !v[key].is_null(); }
  Node at(const char* key) const {
    if (!v.is_object()) bad("an object");
    if (!v.contains(key)) fail("{}: {}: missing field '{}'", file, path, key);
    return {v[key], path.empty() ? key : path + "." + key, file};
  }
  Node at(size_t i) const { return {v[i], fmt::format("{}[{}]", path, i), file}; }
  std::string str() const {
    if (!v.is_string()) bad("a string");
    return v.get<std::string>();
  }
  bool boolean() const {
    if (!v.is_boolean()) bad("true or false");
    return v.get<bool>();
  }
  int64_t integer(int64_t lo, int64_t hi) const {
    if (!v.is_number_integer()) bad("an integer");
    const int64_t x =
        v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX ? INT64_MAX : v.get<int64_t>();
    if (x < lo || x > hi)
      fail("{}: {}: expected an integer in [{}, {}], got {}", file, path, lo, hi, x);
    return x;
  }
  int32_t id() const { return static_cast<int32_t>(integer(0, INT32_MAX - 1)); }
  size_t size_of_array() const {
    if (!v.is_array()) bad("an array");
    return v.size();
  }
  bool opt_bool(const char* key, bool fallback) const {
    return has(key) ? at(key).boolean() : fallback;
  }
  std::string type() const { return at("type").str(); }
};

// Steps of a "Sequence" (under `list_key`) or the single step itself.
std::vector<Node> flatten(const Node& n, const char* list_key) {
  std::vector<Node> out;
  if (n.type() != "Sequence") {
    out.push_back(n);
    return out;
  }
  const Node list = n.at(list_key);
  for (size_t i = 0; i < list.size_of_array(); ++i) {
    for (Node& inner : flatten(list.at(i), list_key)) out.push_back(std::move(inner));
  }
  return out;
}

std::string string_pattern(const Node& n) {
  const Node p = n.at("pattern");
  if (p.has("String")) return p.at("String").str();
  if (p.has("Regex")) {
    fail("{}: {}.Regex: regex patterns are not supported here, got '{}'", n.file, p.path,
         p.at("Regex").str());
  }
  p.bad("{\"String\": ...}");
}

PrependScheme prepend_scheme(const Node& n) {
  if (!n.has("prepend_scheme"))
    return n.opt_bool("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
  const std::string s = n.at("prepend_scheme").str();
  if (s == "always") return PrependScheme::kAlways;
  if (s == "first") return PrependScheme::kFirst;
  if (s == "never") return PrependScheme::kNever;
  fail("{}: {}.prepend_scheme: expected always, first or never, got '{}'", n.file, n.path, s);
}

void parse_model(const Node& root, HfSpec& spec) {
  const Node model = root.at("model");
  const std::string type = model.has("type") ? model.type() : "BPE";
  SY_CHECK(type == "BPE", "{}: model.type is '{}', expected 'BPE' (the only model supported)",
           root.file, type);
  const Node vocab = model.at("vocab");
  if (!vocab.v.is_object()) vocab.bad("an object of token: id");
  std::unordered_map<int32_t, std::string> seen;
  for (const auto& [token, value] : vocab.v.items()) {
    const int32_t id = Node{value, vocab.path + "['" + token + "']", root.file}.id();
    const auto [it, fresh] = seen.emplace(id, token);
    SY_CHECK(fresh, "{}: model.vocab: tokens '{}' and '{}' both have id {}", root.file, it->second,
             token, id);
    spec.vocab.emplace(token, id);
  }
  const Node merges = model.at("merges");
  for (size_t i = 0; i < merges.size_of_array(); ++i) {
    const Node m = merges.at(i);
    if (m.v.is_string()) {
      const std::string s = m.str();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        m.bad("\"left right\" (two tokens separated by one space)");
      }
      spec.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.v.is_array() && m.v.size() == 2) {
      spec.merges.emplace_back(m.at(size_t{0}).str(), m.at(size_t{1}).str());
    } else {
      m.bad("\"left right\" or [left, right]");
    }
  }
  if (model.has("unk_token")) {
    const std::string unk = model.at("unk_token").str();
    const auto it = spec.vocab.find(unk);
    SY_CHECK(it != spec.vocab.end(), "{}: model.unk_token '{}' is not in the vocabulary", root.file,
             unk);
    spec.bpe.unk_id = it->second;
  }
  spec.bpe.fuse_unk = model.opt_bool("fuse_unk", false);
  spec.bpe.byte_fallback = model.opt_bool("byte_fallback", false);
  spec.bpe.ignore_merges = model.opt_bool("ignore_merges", false);
  SY_CHECK(!model.has("dropout"), "{}: model.dropout is set; BPE dropout is not supported",
           root.file);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    SY_CHECK(!model.has(key) || model.at(key).str().empty(),
             "{}: model.{} is '{}'; only null or empty is supported", root.file, key,
             model.at(key).str());
  }
}

void parse_added(const Node& root, HfSpec& spec) {
  if (!root.has("added_tokens")) return;
  const Node list = root.at("added_tokens");
  for (size_t i = 0; i < list.size_of_array(); ++i) {
    const Node t = list.at(i);
    AddedToken a;
    a.id = t.at("id").id();
    a.content = t.at("content").str();
    SY_CHECK(!a.content.empty(), "{}: {}.content is empty", root.file, t.path);
    a.special = t.opt_bool("special", false);
    a.lstrip = t.opt_bool("lstrip", false);
    a.rstrip = t.opt_bool("rstrip", false);
    SY_CHECK(!t.opt_bool("single_word", false), "{}: {} ('{}'): single_word=true is not supported",
             root.file, t.path, a.content);
    spec.added.push_back(std::move(a));
  }
}

void parse_normalizer(const Node& root, HfSpec& spec) {
  if (!root.has("normalizer")) return;
  for (const Node& n : flatten(root.at("normalizer"), "normalizers")) {
    const std::string type = n.type();
    if (type == "Prepend") {
      spec.normalizers.push_back({NormalizerStep::Kind::kPrepend, n.at("prepend").str(), {}});
    } else if (type == "Replace") {
      std::string pattern = string_pattern(n);
      SY_CHECK(!pattern.empty(), "{}: {}.pattern.String is empty", root.file, n.path);
      spec.normalizers.push_back(
          {NormalizerStep::Kind::kReplace, std::move(pattern), n.at("content").str()});
    } else if (type == "NFC" || type == "NFKC") {
      spec.normalizers.push_back(
          {type == "NFC" ? NormalizerStep::Kind::kNfc : NormalizerStep::Kind::kNfkc, {}, {}});
    } else {
      fail("{}: {}: unsupported normalizer type '{}'", root.file, n.path, type);
    }
  }
}

void parse_pre_tokenizer(const Node& root, HfSpec& spec) {
  if (!root.has("pre_tokenizer")) return;
  for (const Node& n : flatten(root.at("pre_tokenizer"), "pretokenizers")) {
    const std::string type = n.type();
    PreTokenizerStep step{};
    if (type == "Split") {
      step.kind = PreTokenizerStep::Kind::kSplit;
      const Node pattern = n.at("pattern");
      if (!pattern.has("Regex")) pattern.bad("{\"Regex\": ...}");
      const std::string regex = pattern.at("Regex").str();
      const auto known = find_split_pattern(regex);
      SY_CHECK(known.has_value(),
               "{}: {}.Regex: unsupported split regex '{}' (known: the GPT-2, Llama 3, Qwen 2, "
               "DeepSeek-V3 and DeepSeek LLM patterns, listed in io/tokenizer/pretokenize.h)",
               root.file, pattern.path, regex);
      step.pattern = *known;
      const std::string behavior = n.at("behavior").str();
      SY_CHECK(behavior == "Isolated", "{}: {}.behavior is '{}', expected 'Isolated'", root.file,
               n.path, behavior);
      SY_CHECK(!n.opt_bool("invert", false), "{}: {}.invert is true, expected false", root.file,
               n.path);
    } else if (type == "ByteLevel") {
      step.kind = PreTokenizerStep::Kind::kByteLevel;
      step.add_prefix_space = n.opt_bool("add_prefix_space", true);
      step.use_regex = n.opt_bool("use_regex", true);
    } else if (type == "Metaspace") {
      step.kind = PreTokenizerStep::Kind::kMetaspace;
      step.replacement = n.at("replacement").str();
      SY_CHECK(!step.replacement.empty(), "{}: {}.replacement is empty", root.file, n.path);
      step.prepend = prepend_scheme(n);
      step.split = n.opt_bool("split", true);
    } else {
      fail("{}: {}: unsupported pre_tokenizer type '{}'", root.file, n.path, type);
    }
    spec.pre_tokenizers.push_back(std::move(step));
  }
}

void parse_post_processor(const Node& root, HfSpec& spec) {
  if (!root.has("post_processor")) return;
  for (const Node& n : flatten(root.at("post_processor"), "processors")) {
    const std::string type = n.type();
    if (type == "ByteLevel") continue;  // offsets only
    if (type == "RobertaProcessing" || type == "BertProcessing") {
      for (const char* key : {"cls", "sep"}) {
        const Node pair = n.at(key);
        if (pair.size_of_array() != 2) pair.bad("[token, id]");
        const int32_t id = pair.at(size_t{1}).id();
        (key[0] == 'c' ? spec.prefix : spec.suffix).push_back(id);
      }
      continue;
    }
    SY_CHECK(type == "TemplateProcessing", "{}: {}: unsupported post_processor type '{}'",
             root.file, n.path, type);
    const Node single = n.at("single");
    const Node specials = n.at("special_tokens");
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size_of_array(); ++i) {
      const Node item = single.at(i);
      if (item.has("Sequence")) {
        SY_CHECK(!seen_sequence, "{}: {}: more than one Sequence item", root.file, single.path);
        seen_sequence = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").str();
      const Node entry = specials.at(name.c_str());
      const Node ids = entry.at("ids");
      for (size_t k = 0; k < ids.size_of_array(); ++k) {
        (seen_sequence ? spec.suffix : spec.prefix).push_back(ids.at(k).id());
      }
    }
    SY_CHECK(seen_sequence, "{}: {}: no Sequence item", root.file, single.path);
  }
}

void parse_decoder(const Node& root, HfSpec& spec) {
  if (!root.has("decoder")) return;
  for (const Node& n : flatten(root.at("decoder"), "decoders")) {
    const std::string type = n.type();
    DecoderStep step{};
    if (type == "ByteLevel") {
      step.kind = DecoderStep::Kind::kByteLevel;
    } else if (type == "Replace") {
      step.kind = DecoderStep::Kind::kReplace;
      step.pattern = string_pattern(n);
      SY_CHECK(!step.pattern.empty(), "{}: {}.pattern.String is empty", root.file, n.path);
      step.content = n.at("content").str();
    } else if (type == "ByteFallback") {
      step.kind = DecoderStep::Kind::kByteFallback;
    } else if (type == "Fuse") {
      step.kind = DecoderStep::Kind::kFuse;
    } else if (type == "Strip") {
      step.kind = DecoderStep::Kind::kStrip;
      step.pattern = n.at("content").str();
      step.start = static_cast<int>(n.at("start").integer(0, 1 << 20));
      step.stop = static_cast<int>(n.at("stop").integer(0, 1 << 20));
    } else if (type == "Metaspace") {
      step.kind = DecoderStep::Kind::kMetaspace;
      step.pattern = n.at("replacement").str();
      step.prepend = prepend_scheme(n);
    } else {
      fail("{}: {}: unsupported decoder type '{}'", root.file, n.path, type);
    }
    spec.decoders.push_back(std::move(step));
  }
}

// Steps that enlarge the text (Replace with a longer content, ByteLevel's two-byte characters,
// Metaspace's replacement) compound along a chain, so a small file could make encode() build
// gigabytes; real files stay far below this bound (GPT-2 x2, Llama 2 x3).
constexpr double kMaxGrowth = 1024;
// The most UTF-8 bytes per input byte that NFC and NFKC write: 3 (U+1D160 MUSICAL SYMBOL EIGHTH
// NOTE, 4 bytes, decomposes into three 4-byte code points) and 11 (U+FDFA, 3 bytes, becomes 18
// code points of 33 bytes).
constexpr double kNfcGrowth = 3;
constexpr double kNfkcGrowth = 11;

double ratio(const std::string& from, const std::string& to) {
  return from.empty() ? 1.0 : std::max(1.0, static_cast<double>(to.size()) / from.size());
}

void check_growth(const HfSpec& spec, const std::string& file) {
  double encode = 1;
  for (const NormalizerStep& n : spec.normalizers) {
    if (n.kind == NormalizerStep::Kind::kReplace) encode *= ratio(n.text, n.replacement);
    if (n.kind == NormalizerStep::Kind::kNfc) encode *= kNfcGrowth;
    if (n.kind == NormalizerStep::Kind::kNfkc) encode *= kNfkcGrowth;
  }
  for (const PreTokenizerStep& p : spec.pre_tokenizers) {
    if (p.kind == PreTokenizerStep::Kind::kByteLevel) encode *= 2;
    if (p.kind == PreTokenizerStep::Kind::kMetaspace) encode *= ratio(" ", p.replacement);
  }
  SY_CHECK(encode <= kMaxGrowth,
           "{}: the normalizer and pre_tokenizer steps can grow the text {:g}-fold, expected at "
           "most {:g}-fold",
           file, encode, kMaxGrowth);
  double decode = 1;
  for (const DecoderStep& d : spec.decoders) {
    if (d.kind == DecoderStep::Kind::kReplace) decode *= ratio(d.pattern, d.content);
  }
  SY_CHECK(decode <= kMaxGrowth,
           "{}: the decoder steps can grow the text {:g}-fold, expected at most {:g}-fold", file,
           decode, kMaxGrowth);
}

}  // namespace

HfSpec parse_hf_spec(std::string_view json_text, const std::string& name) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {  // syntax, or a number out of range
    fail("{}: not valid JSON: {}", name, e.what());
  }
  const Node root{doc, "", name};
  if (!doc.is_object()) root.bad("a JSON object");
  HfSpec spec;
  parse_model(root, spec);
  parse_added(root, spec);
  parse_normalizer(root, spec);
  parse_pre_tokenizer(root, spec);
  parse_post_processor(root, spec);
  parse_decoder(root, spec);
  check_growth(spec, name);
  return spec;
}

}  // namespace sy::io::tok
