#include "io/tokenizer/spm_tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/tokenizer/bpe.h"

namespace sy::io::tok {

namespace {

class SpmTokenizer final : public Tokenizer {
 public:
  SpmTokenizer(std::string_view bytes, const std::string& name) {
    const auto status = sp_.LoadFromSerializedProto(bytes);
    SY_CHECK(status.ok(), "{}: not a SentencePiece model: {}", name, status.ToString());
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    SY_CHECK(status.ok(), "tokenizer: SentencePiece encode failed: {}", status.ToString());
    std::vector<int32_t> out;
    out.reserve(ids.size() + 1);
    if (add_special && sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids) check(id);
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    SY_CHECK(status.ok(), "tokenizer: SentencePiece decode failed: {}", status.ToString());
    return text;
  }

  std::string decode_piece(int32_t id) const override {
    check(id);
    if (sp_.IsControl(id)) return "";
    const std::string piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {
      const int b = BpeModel::fallback_byte(piece);
      if (b >= 0) return std::string(1, static_cast<char>(b));
    }
    if (sp_.IsUnknown(id)) return sp_.DecodeIds(std::vector<int>{id});
    std::string out;
    static constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581
    for (size_t i = 0; i < piece.size();) {
      if (std::string_view(piece).substr(i).starts_with(kSpace)) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += piece[i++];
      }
    }
    return out;
  }

  bool strips_leading_space() const override { return true; }
  int32_t vocab_size() const override { return sp_.GetPieceSize(); }
  std::optional<int32_t> bos_id() const override { return optional_id(sp_.bos_id()); }
  std::optional<int32_t> eos_id() const override { return optional_id(sp_.eos_id()); }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int id = sp_.PieceToId(token);  // the unknown id when absent
    if (id < 0 || sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  std::string id_to_token(int32_t id) const override {
    check(id);
    return sp_.IdToPiece(id);
  }
  bool is_special(int32_t id) const override {
    return id >= 0 && id < vocab_size() && sp_.IsControl(id);
  }

 private:
  void check(int32_t id) const {
    SY_CHECK(id >= 0 && id < vocab_size(), "tokenizer: token id {} is out of range [0, {})", id,
             vocab_size());
  }
  static std::optional<int32_t> optional_id(int id) {
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  }

  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> parse_sentencepiece(std::string_view model_bytes,
                                               const std::string& name) {
  return std::make_unique<SpmTokenizer>(model_bytes, name);
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) {
  return parse_sentencepiece(read_file(path), path);
}

}  // namespace sy::io::tok
