#include "train/data.h"

#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>

#include "core/error.h"
#include "core/rng.h"
#include "io/atomic_file.h"

namespace sy::train {

namespace {

using json = nlohmann::json;

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Calls fn(line, number) for each line of `text` (1-based numbers), without its "\n" or "\r\n".
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  if (text.starts_with(kBom)) text.remove_prefix(kBom.size());
  int64_t number = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    fn(line, ++number);
  }
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\f\v") == std::string_view::npos;
}

const char* json_kind(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::binary:
      return "binary data";
    default:
      return "a number";
  }
}

// Training sentences for the SentencePiece trainer, one line at a time.
class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(std::vector<std::string_view> lines) : lines_(std::move(lines)) {
    if (!lines_.empty()) value_ = lines_[0];
  }
  bool done() const override { return next_ >= lines_.size(); }
  void Next() override {
    if (++next_ < lines_.size()) value_ = lines_[next_];
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::vector<std::string_view> lines_;
  size_t next_ = 0;
  std::string value_;
};

uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  return seed ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(epoch + 1));
}

}  // namespace

// ---- Documents ---------------------------------------------------------------------------------

std::vector<std::string> parse_text_documents(std::string_view text) {
  std::vector<std::string> docs;
  std::string current;
  bool open = false;
  for_each_line(text, [&](std::string_view line, int64_t) {
    if (blank(line)) {
      if (open) docs.push_back(std::move(current));
      current.clear();
      open = false;
      return;
    }
    if (open) current += '\n';
    current += line;
    open = true;
  });
  if (open) docs.push_back(std::move(current));
  return docs;
}

std::vector<std::string> parse_jsonl_documents(std::string_view text, const std::string& name) {
  std::vector<std::string> docs;
  for_each_line(text, [&](std::string_view line, int64_t number) {
    if (blank(line)) return;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {  // syntax, or a number out of range
      fail("{}:{}: not valid JSON: {}", name, number, e.what());
    }
    SY_CHECK(j.is_object(), "{}:{}: expected a JSON object with a \"text\" string, got {}", name,
             number, json_kind(j));
    const auto it = j.find("text");
    SY_CHECK(it != j.end(), "{}:{}: no \"text\" key", name, number);
    SY_CHECK(it->is_string(), "{}:{}: \"text\" is {}, expected a string", name, number,
             json_kind(*it));
    std::string doc = it->get<std::string>();
    if (!doc.empty()) docs.push_back(std::move(doc));
  });
  return docs;
}

std::vector<std::string> read_documents(const std::string& path) {
  const std::string bytes = io::read_file(path);
  std::vector<std::string> docs =
      path.ends_with(".jsonl") ? parse_jsonl_documents(bytes, path) : parse_text_documents(bytes);
  SY_CHECK(!docs.empty(), "{}: no documents (the file holds no text)", path);
  return docs;
}

// ---- Tokenizer ---------------------------------------------------------------------------------

std::string train_sentencepiece(const std::vector<std::string>& documents,
                                const TokenizerTrainOptions& options) {
  SY_CHECK(options.vocab_size > 0, "train tokenizer: vocab_size = {} is not positive",
           options.vocab_size);
  SY_CHECK(options.character_coverage > 0 && options.character_coverage <= 1,
           "train tokenizer: character_coverage = {} is not in (0, 1]", options.character_coverage);
  SY_CHECK(options.max_sentences >= 0, "train tokenizer: max_sentences = {} is negative",
           options.max_sentences);
  std::vector<std::string_view> lines;
  for (const std::string& doc : documents) {
    for_each_line(doc, [&](std::string_view line, int64_t) {
      if (!line.empty()) lines.push_back(line);
    });
  }
  SY_CHECK(!lines.empty(), "train tokenizer: the documents hold no text");
  const auto n = static_cast<int64_t>(lines.size());
  if (options.max_sentences > 0 && n > options.max_sentences) {
    std::vector<std::string_view> picked;
    for (int64_t k = 0; k < options.max_sentences; ++k) {
      picked.push_back(lines[static_cast<size_t>(k * n / options.max_sentences)]);
    }
    lines = std::move(picked);
  }
  size_t longest = 0;
  for (std::string_view line : lines) longest = std::max(longest, line.size());
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", fmt::format("{}", options.character_coverage)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      // Every line counts (the library skips longer ones), all lines in the given order.
      {"max_sentence_length", std::to_string(std::max<size_t>(longest, 4192))},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"num_threads", std::to_string(std::max(1, options.num_threads))},
      {"minloglevel", "1"},  // the library's progress log is noise in our output
  };
  LineIterator it(std::move(lines));
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  SY_CHECK(status.ok(), "train tokenizer: SentencePiece training failed: {}", status.ToString());
  return model;
}

void train_tokenizer(const std::vector<std::string>& documents, const std::string& model_path,
                     const TokenizerTrainOptions& options) {
  io::write_file_atomic(model_path, train_sentencepiece(documents, options));
}

std::vector<std::vector<int32_t>> tokenize_documents(const io::Tokenizer& tokenizer,
                                                     const std::vector<std::string>& documents) {
  std::vector<std::vector<int32_t>> out(documents.size());
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < documents.size(); ++i) {
    try {
      out[i] = tokenizer.encode(documents[i], false);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

// ---- Split and packing -------------------------------------------------------------------------

DocumentSplit split_documents(int64_t count, double validation_fraction) {
  SY_CHECK(count >= 0, "split: document count {} is negative", count);
  SY_CHECK(
      std::isfinite(validation_fraction) && validation_fraction >= 0 && validation_fraction < 1,
      "split: validation_fraction = {} is not in [0, 1)", validation_fraction);
  DocumentSplit out;
  for (int64_t i = 0; i < count; ++i) {
    const bool held_out = std::floor(static_cast<double>(i + 1) * validation_fraction) >
                          std::floor(static_cast<double>(i) * validation_fraction);
    (held_out ? out.validation : out.train).push_back(i);
  }
  SY_CHECK(validation_fraction == 0 || !out.validation.empty(),
           "split: validation_fraction = {} of {} documents holds out no document",
           validation_fraction, count);
  SY_CHECK(!out.train.empty(), "split: no document left to train on ({} documents)", count);
  return out;
}

PackedSequences::PackedSequences(const std::vector<std::vector<int32_t>>& documents,
                                 const std::vector<int64_t>& which, int32_t bos, int64_t seq_len)
    : seq_len_(seq_len) {
  SY_CHECK(seq_len >= 1, "pack: seq_len = {} is not positive", seq_len);
  size_t total = 0;
  for (int64_t d : which) {
    SY_CHECK(d >= 0 && d < static_cast<int64_t>(documents.size()),
             "pack: document index {} is out of range [0, {})", d, documents.size());
    total += documents[d].size() + 1;
  }
  stream_.reserve(total);
  for (int64_t d : which) {
    stream_.push_back(bos);
    stream_.insert(stream_.end(), documents[d].begin(), documents[d].end());
  }
  count_ = stream_.empty() ? 0 : static_cast<int64_t>(stream_.size() - 1) / seq_len_;
}

void PackedSequences::copy(int64_t i, int32_t* tokens, int32_t* targets) const {
  SY_CHECK(i >= 0 && i < count_, "pack: sequence {} is out of range [0, {})", i, count_);
  const int32_t* s = stream_.data() + i * seq_len_;
  std::memcpy(tokens, s, sizeof(int32_t) * seq_len_);
  std::memcpy(targets, s + 1, sizeof(int32_t) * seq_len_);
}

Batch PackedSequences::batch(const std::vector<int64_t>& indices) const {
  const auto b = static_cast<int64_t>(indices.size());
  Batch out{Tensor::zeros({b, seq_len_}, DType::I32), Tensor::zeros({b, seq_len_}, DType::I32)};
  int32_t* tokens = out.tokens.mutable_data<int32_t>();
  int32_t* targets = out.targets.mutable_data<int32_t>();
  for (int64_t r = 0; r < b; ++r) {
    copy(indices[r], tokens + r * seq_len_, targets + r * seq_len_);
  }
  return out;
}

// ---- Iterator ----------------------------------------------------------------------------------

json BatchIteratorState::to_json() const {
  return {{"seed", seed},       {"batch_size", batch_size}, {"sequences", sequences},
          {"shuffle", shuffle}, {"epoch", epoch},           {"position", position}};
}

BatchIteratorState BatchIteratorState::from_json(const json& j, const std::string& source) {
  SY_CHECK(j.is_object(), "{}: data iterator state: expected a JSON object, got {}", source,
           json_kind(j));
  const auto get = [&](const char* key) -> const json& {
    const auto it = j.find(key);
    SY_CHECK(it != j.end(), "{}: data iterator state: missing key '{}'", source, key);
    return *it;
  };
  // Parsed text holds counts as unsigned JSON numbers, to_json() (int64_t fields) as signed ones.
  const auto count = [&](const char* key, uint64_t max = INT64_MAX) {
    const json& v = get(key);
    const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() <= max
                                           : v.is_number_integer() && v.get<int64_t>() >= 0;
    SY_CHECK(ok, "{}: data iterator state: '{}' is {}, expected an integer >= 0", source, key,
             v.dump().substr(0, 40));
    return v.get<uint64_t>();
  };
  BatchIteratorState s;
  s.seed = count("seed", UINT64_MAX);
  s.batch_size = static_cast<int64_t>(count("batch_size"));
  s.sequences = static_cast<int64_t>(count("sequences"));
  s.epoch = static_cast<int64_t>(count("epoch"));
  s.position = static_cast<int64_t>(count("position"));
  const json& shuffle = get("shuffle");
  SY_CHECK(shuffle.is_boolean(),
           "{}: data iterator state: 'shuffle' is {}, expected true or "
           "false",
           source, shuffle.dump().substr(0, 40));
  s.shuffle = shuffle.get<bool>();
  return s;
}

BatchIterator::BatchIterator(const PackedSequences& data, int64_t batch_size, uint64_t seed,
                             bool shuffle)
    : data_(&data), batch_size_(batch_size), seed_(seed), shuffle_(shuffle) {
  SY_CHECK(batch_size >= 1, "batch iterator: batch_size = {} is not positive", batch_size);
  SY_CHECK(data.size() >= batch_size,
           "batch iterator: {} sequences of {} tokens do not fill one batch of {}", data.size(),
           data.seq_len(), batch_size);
  start_epoch(0);
}

void BatchIterator::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  position_ = 0;
  order_.resize(data_->size());
  for (int64_t i = 0; i < data_->size(); ++i) order_[i] = i;
  if (!shuffle_) return;
  Rng rng(epoch_seed(seed_, epoch));
  for (int64_t i = data_->size() - 1; i > 0; --i) {
    std::swap(order_[i], order_[rng.below(static_cast<uint64_t>(i) + 1)]);
  }
}

Batch BatchIterator::next() {
  if (position_ == batches_per_epoch()) start_epoch(epoch_ + 1);
  const auto first = order_.begin() + position_ * batch_size_;
  ++position_;
  return data_->batch(std::vector<int64_t>(first, first + batch_size_));
}

BatchIteratorState BatchIterator::state() const {
  return {seed_, batch_size_, data_->size(), shuffle_, epoch_, position_};
}

void BatchIterator::restore(const BatchIteratorState& s, const std::string& source) {
  const BatchIteratorState now = state();
  SY_CHECK(s.seed == now.seed && s.batch_size == now.batch_size && s.sequences == now.sequences &&
               s.shuffle == now.shuffle,
           "{}: the data iterator was saved with seed {}, batch size {}, {} sequences, shuffle "
           "{}; this run has seed {}, batch size {}, {} sequences, shuffle {}",
           source, s.seed, s.batch_size, s.sequences, s.shuffle, now.seed, now.batch_size,
           now.sequences, now.shuffle);
  SY_CHECK(s.epoch >= 0 && s.position >= 0 && s.position <= batches_per_epoch(),
           "{}: data iterator position epoch {} batch {} is out of range (an epoch has {} "
           "batches)",
           source, s.epoch, s.position, batches_per_epoch());
  start_epoch(s.epoch);
  position_ = s.position;
}

// ---- Everything at once ------------------------------------------------------------------------

Dataset build_dataset(const std::vector<std::vector<int32_t>>& documents, int32_t bos,
                      const DatasetOptions& options) {
  const DocumentSplit split =
      split_documents(static_cast<int64_t>(documents.size()), options.validation_fraction);
  Dataset out;
  out.train = PackedSequences(documents, split.train, bos, options.seq_len);
  out.validation = PackedSequences(documents, split.validation, bos, options.seq_len);
  out.train_documents = static_cast<int64_t>(split.train.size());
  out.validation_documents = static_cast<int64_t>(split.validation.size());
  return out;
}

}  // namespace sy::train
