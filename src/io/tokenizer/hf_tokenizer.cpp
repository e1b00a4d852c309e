#include "io/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <array>

#include "core/error.h"
#include "io/tokenizer/hf_spec.h"
#include "io/tokenizer/unicode.h"

namespace sy::io::tok {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, i)) {
    out.append(s, i, at - i);
    out += to;
    i = at + from.size();
  }
  if (i == 0) return;
  out.append(s, i);
  s = std::move(out);
}

// Whitespace code point starting at byte i of s: its size in bytes, or 0.
size_t space_at(std::string_view s, size_t i) {
  const size_t n = utf8_sequence_size(s.substr(i));
  if (n == 0) return 0;
  const std::vector<CodePoint> cp = decode_utf8(s.substr(i, n));
  return char_class(cp[0].cp) == CharClass::kSpace ? n : 0;
}

// Names that mean end-of-sequence when tokenizer_config.json does not say (Llama 2 / Mixtral,
// GPT-2 / Qwen / OLMoE, Llama 3, DeepSeek).
constexpr std::array<std::string_view, 4> kEosNames = {"</s>", "<|endoftext|>", "<|end_of_text|>",
                                                       "<｜end▁of▁sentence｜>"};

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(HfSpec spec, const std::string& name, const SpecialTokenNames& names)
      : spec_(std::move(spec)),
        model_(std::move(spec_.vocab), spec_.merges, spec_.bpe, name, spec_.merge_ranks,
               spec_.merges_field) {
    spec_.merges = {};
    spec_.merge_ranks = {};
    int32_t size = 0;
    for (const auto& [token, id] : model_.vocab()) size = std::max(size, id + 1);
    for (const AddedToken& a : spec_.added) size = std::max(size, a.id + 1);
    if (spec_.vocab_size > 0) {
      SY_CHECK(size <= spec_.vocab_size, "{}: token id {} is not below the vocabulary size {}",
               name, size - 1, spec_.vocab_size);
      size = spec_.vocab_size;
    } else {
      // Real vocabularies are dense; a huge id would only make us allocate gigabytes.
      const int64_t entries = static_cast<int64_t>(model_.vocab().size() + spec_.added.size());
      SY_CHECK(size <= 2 * entries + 1024,
               "{}: token id {} is too large for a vocabulary of {} entries (ids must be below {})",
               name, size - 1, entries, 2 * entries + 1024);
    }
    tokens_.resize(size);
    kind_.assign(size, Kind::kUnused);
    for (const auto& [token, id] : model_.vocab()) {
      tokens_[id] = token;
      kind_[id] = Kind::kVocab;
    }
    for (size_t i = 0; i < spec_.added.size(); ++i) {
      const AddedToken& a = spec_.added[i];
      tokens_[a.id] = a.content;
      kind_[a.id] = a.special ? Kind::kSpecial : Kind::kAdded;
      added_by_first_[static_cast<uint8_t>(a.content[0])].push_back(i);
    }
    for (auto& list : added_by_first_) {  // longest first: leftmost-longest matching
      std::stable_sort(list.begin(), list.end(), [&](size_t x, size_t y) {
        return spec_.added[x].content.size() > spec_.added[y].content.size();
      });
    }
    for (const int32_t id : spec_.prefix) check_id(id, name, "post_processor");
    for (const int32_t id : spec_.suffix) check_id(id, name, "post_processor");
    bos_ = resolve(names.bos, name, "bos_token");
    eos_ = resolve(names.eos, name, "eos_token");
    if (!names.bos && spec_.prefix.size() == 1) bos_ = spec_.prefix[0];
    if (!names.eos && spec_.suffix.size() == 1) eos_ = spec_.suffix[0];
    if (spec_.bos) bos_ = check_id(*spec_.bos, name, "bos");
    if (spec_.eos) eos_ = check_id(*spec_.eos, name, "eos");
    for (std::string_view eos : kEosNames) {
      if (!eos_) eos_ = token_to_id(eos);
    }
    for (const DecoderStep& d : spec_.decoders) {
      if ((d.kind == DecoderStep::Kind::kStrip && d.pattern == " " && d.start > 0) ||
          (d.kind == DecoderStep::Kind::kMetaspace && d.prepend != PrependScheme::kNever)) {
        strips_space_ = true;
      }
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> out;
    if (add_special) out = spec_.prefix;
    size_t gap = 0;  // start of the text not yet encoded
    size_t i = 0;
    while (i < text.size()) {
      const AddedToken* hit = nullptr;
      for (size_t k : added_by_first_[static_cast<uint8_t>(text[i])]) {
        if (text.substr(i).starts_with(spec_.added[k].content)) {
          hit = &spec_.added[k];
          break;
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      size_t gap_end = i;
      if (hit->lstrip) {
        while (gap_end > gap) {
          size_t start = gap_end - 1;
          while (start > gap && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
          if (space_at(text, start) != gap_end - start) break;
          gap_end = start;
        }
      }
      encode_section(text.substr(gap, gap_end - gap), gap == 0, out);
      out.push_back(hit->id);
      i += hit->content.size();
      if (hit->rstrip) {
        while (i < text.size()) {
          const size_t n = space_at(text, i);
          if (n == 0) break;
          i += n;
        }
      }
      gap = i;
    }
    encode_section(text.substr(gap), gap == 0, out);
    if (add_special) out.insert(out.end(), spec_.suffix.begin(), spec_.suffix.end());
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    std::vector<std::string> run;
    size_t run_start = 0;
    for (size_t i = 0; i <= ids.size(); ++i) {
      if (i < ids.size()) check_decodable(ids[i]);
      const bool added = i < ids.size() && kind_[ids[i]] != Kind::kVocab;
      if (i == ids.size() || added) {
        if (!run.empty()) out += decode_run(run, run_start == 0, i == ids.size(), false);
        run.clear();
        run_start = i + 1;
        if (added) out += tokens_[ids[i]];
        continue;
      }
      run.push_back(tokens_[ids[i]]);
    }
    return out;
  }

  std::string decode_piece(int32_t id) const override {
    check_decodable(id);
    if (kind_[id] != Kind::kVocab) return tokens_[id];
    return decode_run({tokens_[id]}, false, false, true);
  }

  bool strips_leading_space() const override { return strips_space_; }
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    for (const AddedToken& a : spec_.added) {
      if (a.content == token) return a.id;
    }
    return model_.find(token);
  }

  std::string id_to_token(int32_t id) const override {
    check_decodable(id);
    return tokens_[id];
  }

  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && kind_[id] == Kind::kSpecial;
  }

 private:
  enum class Kind : uint8_t { kUnused, kVocab, kAdded, kSpecial };

  int32_t check_id(int32_t id, const std::string& name, std::string_view where) const {
    SY_CHECK(id >= 0 && id < vocab_size() && kind_[id] != Kind::kUnused,
             "{}: {}: token id {} is not in the vocabulary", name, where, id);
    return id;
  }
  void check_decodable(int32_t id) const {
    SY_CHECK(id >= 0 && id < vocab_size(), "tokenizer: token id {} is out of range [0, {})", id,
             vocab_size());
    SY_CHECK(kind_[id] != Kind::kUnused, "tokenizer: token id {} is unused in the vocabulary", id);
  }
  std::optional<int32_t> resolve(const std::optional<std::string>& token, const std::string& name,
                                 std::string_view field) const {
    if (!token) return std::nullopt;
    const auto id = token_to_id(*token);
    SY_CHECK(id.has_value(), "{}: {} '{}' is not in the vocabulary", name, field, *token);
    return id;
  }

  void encode_section(std::string_view section, bool first, std::vector<int32_t>& out) const {
    if (section.empty()) return;
    std::string text(section);
    for (const NormalizerStep& n : spec_.normalizers) {
      switch (n.kind) {
        case NormalizerStep::Kind::kPrepend:
          if (!text.empty()) text.insert(0, n.text);
          break;
        case NormalizerStep::Kind::kReplace:
          replace_all(text, n.text, n.replacement);
          break;
        case NormalizerStep::Kind::kNfc:
          text = normalize_unicode(text, UnicodeForm::kNfc);
          break;
        case NormalizerStep::Kind::kNfkc:
          text = normalize_unicode(text, UnicodeForm::kNfkc);
          break;
      }
    }
    std::vector<std::string> pieces{std::move(text)};
    for (const PreTokenizerStep& step : spec_.pre_tokenizers) {
      std::vector<std::string> next;
      for (size_t p = 0; p < pieces.size(); ++p) {
        apply(step, std::move(pieces[p]), first && p == 0, next);
      }
      pieces = std::move(next);
    }
    for (const std::string& piece : pieces) model_.encode_word(piece, out);
  }

  static void apply(const PreTokenizerStep& step, std::string piece, bool at_origin,
                    std::vector<std::string>& out) {
    switch (step.kind) {
      case PreTokenizerStep::Kind::kSplit:
        for (std::string_view s : split_pieces(step.pattern, piece)) out.emplace_back(s);
        return;
      case PreTokenizerStep::Kind::kByteLevel: {
        if (step.add_prefix_space && !piece.starts_with(' ')) piece.insert(0, " ");
        std::vector<std::string_view> parts{piece};
        if (step.use_regex) parts = split_pieces(SplitPattern::kGpt2, piece);
        for (std::string_view s : parts) {
          std::string mapped;
          for (char b : s) mapped += byte_to_unicode()[static_cast<uint8_t>(b)];
          out.push_back(std::move(mapped));
        }
        return;
      }
      case PreTokenizerStep::Kind::kMetaspace: {
        const std::string& r = step.replacement;
        replace_all(piece, " ", r);
        const bool prepend = step.prepend == PrependScheme::kAlways ||
                             (step.prepend == PrependScheme::kFirst && at_origin);
        if (prepend && !piece.starts_with(r)) piece.insert(0, r);
        if (!step.split) {
          out.push_back(std::move(piece));
          return;
        }
        size_t start = 0;
        for (size_t at = piece.find(r, 1); at != std::string::npos; at = piece.find(r, at + 1)) {
          out.push_back(piece.substr(start, at - start));
          start = at;
        }
        out.push_back(piece.substr(start));
        return;
      }
    }
  }

  // The decoder chain over one run of ordinary tokens. `raw_bytes` keeps byte-fallback bytes
  // as they are (streaming) instead of replacing invalid UTF-8 with U+FFFD.
  std::string decode_run(std::vector<std::string> tokens, bool at_start, bool at_end,
                         bool raw_bytes) const {
    bool fused = false;
    for (const DecoderStep& d : spec_.decoders) {
      switch (d.kind) {
        case DecoderStep::Kind::kByteLevel:
          for (std::string& t : tokens) {
            std::string bytes;
            for (const CodePoint& c : decode_utf8(t)) {
              const int b = unicode_to_byte(c.cp);
              if (b >= 0) {
                bytes += static_cast<char>(b);
              } else {
                bytes.append(t, c.offset, c.size);
              }
            }
            t = std::move(bytes);
          }
          break;
        case DecoderStep::Kind::kReplace:
          for (std::string& t : tokens) replace_all(t, d.pattern, d.content);
          break;
        case DecoderStep::Kind::kByteFallback:
          tokens = byte_fallback(std::move(tokens), raw_bytes);
          break;
        case DecoderStep::Kind::kFuse: {
          std::string all;
          for (const std::string& t : tokens) all += t;
          tokens = {std::move(all)};
          fused = true;
          break;
        }
        case DecoderStep::Kind::kStrip:
          for (std::string& t : tokens) {
            if (!fused || at_start) strip(t, d.pattern, d.start, true);
            if (!fused || at_end) strip(t, d.pattern, d.stop, false);
          }
          break;
        case DecoderStep::Kind::kMetaspace:
          for (size_t i = 0; i < tokens.size(); ++i) {
            replace_all(tokens[i], d.pattern, " ");
            if (i == 0 && at_start && d.prepend != PrependScheme::kNever &&
                tokens[i].starts_with(' ')) {
              tokens[i].erase(0, 1);
            }
          }
          break;
      }
    }
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }

  static void strip(std::string& t, const std::string& c, int count, bool front) {
    for (int k = 0; k < count && !c.empty(); ++k) {
      if (front && t.starts_with(c)) {
        t.erase(0, c.size());
      } else if (!front && t.ends_with(c)) {
        t.erase(t.size() - c.size());
      } else {
        break;
      }
    }
  }

  static std::vector<std::string> byte_fallback(std::vector<std::string> tokens, bool raw) {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    const auto flush = [&] {
      if (count == 0) return;
      bool valid = true;
      for (size_t i = 0; i < bytes.size() && valid;) {
        const size_t n = utf8_sequence_size(std::string_view(bytes).substr(i));
        valid = n > 0;
        i += n;
      }
      if (valid || raw) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < count; ++k) out.emplace_back("\xEF\xBF\xBD");  // U+FFFD
      }
      bytes.clear();
      count = 0;
    };
    for (std::string& t : tokens) {
      const int b = BpeModel::fallback_byte(t);
      if (b >= 0) {
        bytes += static_cast<char>(b);
        ++count;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    return out;
  }

  HfSpec spec_;
  BpeModel model_;
  std::vector<std::string> tokens_;
  std::vector<Kind> kind_;
  std::array<std::vector<size_t>, 256> added_by_first_;
  std::optional<int32_t> bos_;
  std::optional<int32_t> eos_;
  bool strips_space_ = false;
};

}  // namespace

std::unique_ptr<Tokenizer> parse_hf_tokenizer(std::string_view json_text, const std::string& name,
                                              const SpecialTokenNames& names) {
  return std::make_unique<HfTokenizer>(parse_hf_spec(json_text, name), name, names);
}

std::unique_ptr<Tokenizer> make_hf_tokenizer(HfSpec spec, const std::string& name,
                                             const SpecialTokenNames& names) {
  return std::make_unique<HfTokenizer>(std::move(spec), name, names);
}

}  // namespace sy::io::tok
