// Training data: documents from plain text or JSONL files, a SentencePiece BPE tokenizer trained
// on them with the SentencePiece library, token ids packed into fixed-length sequences with a
// held-out validation split, and a seeded batch iterator whose position can be saved and
// restored (a resumed run sees the same batches as an uninterrupted one).
//
// Legend: B sequences per batch, T tokens per sequence.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/tokenizer/tokenizer.h"

namespace sy::train {

// ---- Documents ---------------------------------------------------------------------------------

// Plain text: documents are separated by blank lines (empty or only spaces and tabs); the lines
// of a document are joined with '\n' ("\r\n" line ends become '\n'). A leading UTF-8 byte order
// mark is dropped. The bundled Brown corpus (data/brown.txt) is 500 such documents.
std::vector<std::string> parse_text_documents(std::string_view text);

// JSONL: one JSON object per line with a string "text" (other keys are ignored); blank lines
// are skipped, documents with empty text too. A bad line is an error naming the file and line:
// "corpus.jsonl:3: not valid JSON: ...", "corpus.jsonl:4: expected a JSON object with a "text"
// string, got an array", "corpus.jsonl:5: no "text" key", "corpus.jsonl:6: "text" is a number,
// expected a string".
std::vector<std::string> parse_jsonl_documents(std::string_view text, const std::string& name);

// Reads `path`: JSONL when its name ends in ".jsonl", plain text otherwise. Throws sy::Error
// naming the file when it cannot be read or holds no document.
std::vector<std::string> read_documents(const std::string& path);

// ---- Tokenizer ---------------------------------------------------------------------------------

// A SentencePiece BPE model trained the way Llama's was: byte_fallback (no unknown tokens),
// identity normalization, whitespace kept as it is (not collapsed), a dummy-prefix space, digits
// split, whitespace-only pieces allowed; ids 0 <unk>, 1 <s> (BOS), 2 </s> (EOS), no padding.
// Every non-empty line of every document is one training sentence.
struct TokenizerTrainOptions {
  int32_t vocab_size = 8000;           // including the 3 control and 256 byte pieces
  double character_coverage = 0.9995;  // rarer characters are left to byte fallback
  // At most this many lines (0: all), picked evenly through the corpus: deterministic.
  int64_t max_sentences = 0;
  int32_t num_threads = 1;
};

// The serialized model (the bytes of a tokenizer.model). Same documents and options: same bytes.
// Throws sy::Error with the library's message when training fails (e.g. a vocabulary too small
// for the characters plus the 259 fixed pieces).
std::string train_sentencepiece(const std::vector<std::string>& documents,
                                const TokenizerTrainOptions& options);
// train_sentencepiece written atomically to `model_path` (io/atomic_file.h).
void train_tokenizer(const std::vector<std::string>& documents, const std::string& model_path,
                     const TokenizerTrainOptions& options);

// Token ids of each document (tokenizer.encode without special tokens), in parallel.
std::vector<std::vector<int32_t>> tokenize_documents(const io::Tokenizer& tokenizer,
                                                     const std::vector<std::string>& documents);

// ---- Split and packing -------------------------------------------------------------------------

// Document indices of each side, ascending. Document i is held out when
// floor((i + 1) * fraction) > floor(i * fraction): floor(count * fraction) documents spread
// evenly (fraction 0.1 holds out documents 9, 19, 29, ...), so every genre of an ordered corpus
// is represented. Deterministic; no randomness.
struct DocumentSplit {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};
// fraction in [0, 1); a fraction > 0 that holds out no document, or leaves none to train on, is
// an error.
DocumentSplit split_documents(int64_t count, double validation_fraction);

struct Batch {
  Tensor tokens;   // i32 [B, T]
  Tensor targets;  // i32 [B, T]: the next token of each position
};

// Fixed-length training sequences cut from one token stream: the listed documents in order,
// each preceded by BOS (BOS d0 BOS d1 BOS d2 ...). Sequence i holds stream[i*T, i*T + T) as
// inputs and stream[i*T + 1, i*T + T + 1) as targets; the tail too short for one more sequence
// is dropped. Attention is not masked at document boundaries (the usual packing).
class PackedSequences {
 public:
  PackedSequences() = default;
  // seq_len >= 1; document indices must be in range.
  PackedSequences(const std::vector<std::vector<int32_t>>& documents,
                  const std::vector<int64_t>& which, int32_t bos, int64_t seq_len);

  int64_t size() const { return count_; }  // sequences
  int64_t seq_len() const { return seq_len_; }
  const std::vector<int32_t>& stream() const { return stream_; }
  // Sequence i (in [0, size())) into T inputs and T targets.
  void copy(int64_t i, int32_t* tokens, int32_t* targets) const;
  // The sequences `indices` as one batch.
  Batch batch(const std::vector<int64_t>& indices) const;

 private:
  std::vector<int32_t> stream_;
  int64_t seq_len_ = 0;
  int64_t count_ = 0;
};

// Where a BatchIterator stands, with what it was built from (so that restoring into different
// data or settings is refused instead of silently giving other batches).
struct BatchIteratorState {
  uint64_t seed = 0;
  int64_t batch_size = 0;
  int64_t sequences = 0;
  bool shuffle = true;
  int64_t epoch = 0;     // epochs completed
  int64_t position = 0;  // batches taken in the current epoch

  nlohmann::json to_json() const;
  // Every key required, with its type; errors name `source` and the key.
  static BatchIteratorState from_json(const nlohmann::json& j, const std::string& source);
};

// Batches of B sequences. Each epoch visits the sequences in a fresh order, a Fisher-Yates
// shuffle seeded by (seed, epoch) (or in order when shuffle is off), B at a time; the last
// size() % B sequences of an epoch's order are skipped that epoch. Runs forever.
class BatchIterator {
 public:
  // `data` must outlive the iterator and hold at least batch_size >= 1 sequences.
  BatchIterator(const PackedSequences& data, int64_t batch_size, uint64_t seed,
                bool shuffle = true);

  Batch next();
  int64_t batches_per_epoch() const { return data_->size() / batch_size_; }

  BatchIteratorState state() const;
  // Continues from a saved state: the next batch is the one the saved iterator would have
  // given. Throws sy::Error naming `source` when the state was made with another seed, batch
  // size, sequence count or shuffle setting, or its position is out of range.
  void restore(const BatchIteratorState& state, const std::string& source);

 private:
  void start_epoch(int64_t epoch);

  const PackedSequences* data_;
  int64_t batch_size_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
  std::vector<int64_t> order_;
};

// ---- Everything at once ------------------------------------------------------------------------

struct DatasetOptions {
  int64_t seq_len = 256;             // T
  double validation_fraction = 0.1;  // see split_documents
};

struct Dataset {
  PackedSequences train;
  PackedSequences validation;
  int64_t train_documents = 0;
  int64_t validation_documents = 0;
};

// Splits tokenized documents and packs both sides with `bos` between documents.
Dataset build_dataset(const std::vector<std::vector<int32_t>>& documents, int32_t bos,
                      const DatasetOptions& options);

}  // namespace sy::train
