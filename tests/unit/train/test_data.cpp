#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/atomic_file.h"
#include "io/tokenizer/tokenizer.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"
#include "train/data.h"

namespace sy::train {
namespace {

using ::sy::test::error_of;

const std::string kBrown = std::string(SY_SOURCE_DIR) + "/data/brown.txt";

std::vector<int32_t> row(const Tensor& t, int64_t r) {
  const int32_t* p = t.data<int32_t>() + r * t.dim(1);
  return {p, p + t.dim(1)};
}

// ---- Documents ---------------------------------------------------------------------------------

TEST(TrainData, PlainTextDocumentsAreSeparatedByBlankLines) {
  EXPECT_EQ(parse_text_documents("a b\nc\n\n\nd\r\ne\r\n \t\n\nf"),
            (std::vector<std::string>{"a b\nc", "d\ne", "f"}));
  EXPECT_EQ(parse_text_documents("\xEF\xBB\xBF\n\nonly\n"), (std::vector<std::string>{"only"}));
  EXPECT_TRUE(parse_text_documents("").empty());
  EXPECT_TRUE(parse_text_documents("\n \n\t\n").empty());
  // Leading spaces of a non-blank line are kept.
  EXPECT_EQ(parse_text_documents("  x\n"), (std::vector<std::string>{"  x"}));
}

TEST(TrainData, BrownCorpusHas500Documents) {
  const std::vector<std::string> docs = read_documents(kBrown);
  ASSERT_EQ(docs.size(), 500u);
  EXPECT_TRUE(docs.front().starts_with("The Fulton County Grand Jury said Friday"));
  EXPECT_TRUE(docs.back().ends_with("the coral-colored boucle dress was stupefying."));
  for (const std::string& d : docs) EXPECT_EQ(d.find("\n\n"), std::string::npos);
}

TEST(TrainData, JsonlReadsTheTextOfEachLine) {
  const std::string text =
      "{\"text\": \"first doc\", \"id\": 7}\r\n"
      "\n"
      "   \n"
      "{\"meta\": {\"x\": [1, 2]}, \"text\": \"line one\\nline two \\u00e9\\ud83d\\ude00\"}\n"
      "{\"text\": \"\"}\n"
      "{\"text\": \"last\"}";
  EXPECT_EQ(parse_jsonl_documents(text, "c.jsonl"),
            (std::vector<std::string>{"first doc", "line one\nline two \xC3\xA9\xF0\x9F\x98\x80",
                                      "last"}));
  EXPECT_TRUE(parse_jsonl_documents("", "c.jsonl").empty());
}

TEST(TrainData, BadJsonlLinesNameTheFileAndLine) {
  const auto err = [](const std::string& text) {
    return error_of([&] { parse_jsonl_documents(text, "c.jsonl"); });
  };
  const std::string bad_json = err("{\"text\": \"a\"}\n\n{\"text\": \"b\"\n");
  EXPECT_TRUE(bad_json.starts_with("c.jsonl:3: not valid JSON: [json.exception.parse_error.101]"))
      << bad_json;
  EXPECT_TRUE(err("{\"text\": \"a\"} x").starts_with("c.jsonl:1: not valid JSON: "));
  EXPECT_TRUE(err("{\"text\": \"\xFF\"}").starts_with("c.jsonl:1: not valid JSON: "));
  EXPECT_EQ(err("{\"text\": \"a\", \"n\": -1e999}"),
            "c.jsonl:1: not valid JSON: [json.exception.out_of_range.406] number overflow parsing "
            "'-1e999'");
  EXPECT_EQ(err("{\"text\": \"a\"}\n[\"text\"]"),
            "c.jsonl:2: expected a JSON object with a \"text\" string, got an array");
  EXPECT_EQ(err("\"text\""),
            "c.jsonl:1: expected a JSON object with a \"text\" string, got a string");
  EXPECT_EQ(err("12"), "c.jsonl:1: expected a JSON object with a \"text\" string, got a number");
  EXPECT_EQ(err("null"), "c.jsonl:1: expected a JSON object with a \"text\" string, got null");
  EXPECT_EQ(err("{\"Text\": \"a\"}"), "c.jsonl:1: no \"text\" key");
  EXPECT_EQ(err("{\"text\": 3}"), "c.jsonl:1: \"text\" is a number, expected a string");
  EXPECT_EQ(err("{\"text\": null}"), "c.jsonl:1: \"text\" is null, expected a string");
  EXPECT_EQ(err("{\"text\": [\"a\"]}"), "c.jsonl:1: \"text\" is an array, expected a string");
  EXPECT_EQ(err("{\"text\": {\"a\": 1}}"), "c.jsonl:1: \"text\" is an object, expected a string");
  EXPECT_EQ(err("{\"text\": true}"), "c.jsonl:1: \"text\" is a boolean, expected a string");
}

TEST(TrainData, ReadDocumentsPicksTheFormatByName) {
  const test::TempDir dir("sy_data");
  const std::string jsonl = (dir.path / "c.jsonl").string();
  const std::string txt = (dir.path / "c.txt").string();
  io::write_file_atomic(jsonl, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
  io::write_file_atomic(txt, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
  EXPECT_EQ(read_documents(jsonl), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_documents(txt),
            (std::vector<std::string>{"{\"text\": \"a\"}\n{\"text\": \"b\"}"}));
  const std::string empty = (dir.path / "empty.txt").string();
  io::write_file_atomic(empty, "\n\n");
  EXPECT_EQ(error_of([&] { read_documents(empty); }),
            empty + ": no documents (the file holds no text)");
  const std::string missing = (dir.path / "missing.jsonl").string();
  EXPECT_NE(error_of([&] { read_documents(missing); }).find(missing), std::string::npos);
}

// ---- Tokenizer ---------------------------------------------------------------------------------

// The first 20 Brown documents (about 240 KB): enough for a 500-piece vocabulary in a second.
std::vector<std::string> brown_slice() {
  std::vector<std::string> docs = read_documents(kBrown);
  docs.resize(20);
  return docs;
}

TEST(TrainTokenizer, TrainsADeterministicBpeModelWithByteFallback) {
  const test::TempDir dir("sy_tok");
  const std::vector<std::string> docs = brown_slice();
  const std::string path = (dir.path / "tokenizer.model").string();
  const TokenizerTrainOptions options{.vocab_size = 500};
  train_tokenizer(docs, path, options);
  EXPECT_EQ(io::read_file(path), train_sentencepiece(docs, options));  // same bytes again
  const auto tok = io::load_tokenizer(path);
  EXPECT_EQ(tok->vocab_size(), 500);
  EXPECT_EQ(tok->id_to_token(0), "<unk>");
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->id_to_token(3), "<0x00>");
  EXPECT_EQ(tok->id_to_token(3 + 255), "<0xFF>");
  EXPECT_TRUE(tok->token_to_id("\xE2\x96\x81the").has_value());  // "▁the" was learned
  // Text it never saw round-trips exactly: whitespace is kept, unknown characters go through
  // byte pieces (no <unk>).
  const std::vector<std::string> texts = {
      read_documents(kBrown)[300],
      "Two  spaces,\ttabs\tand a trailing space ",
      "na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80",
      "Line one\nLine two 1234567",
  };
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tok->encode(text, false);
    EXPECT_EQ(tok->decode(ids), text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << text;  // never <unk>
  }
  const std::vector<int32_t> cjk = tok->encode("\xE6\x97\xA5", false);
  EXPECT_EQ(cjk, (std::vector<int32_t>{tok->token_to_id("\xE2\x96\x81").value(), 3 + 0xE6, 3 + 0x97,
                                       3 + 0xA5}));
  // Digits are split one by one.
  for (int32_t id : tok->encode("1234567", false)) {
    const std::string piece = tok->id_to_token(id);
    EXPECT_LE(
        std::count_if(piece.begin(), piece.end(), [](char c) { return c >= '0' && c <= '9'; }), 1)
        << piece;
  }
  EXPECT_EQ(tok->encode("Hello", true).front(), 1);  // BOS on request
}

TEST(TrainTokenizer, MaxSentencesSamplesEvenlyAndDeterministically) {
  const std::vector<std::string> docs = brown_slice();
  const TokenizerTrainOptions options{.vocab_size = 400, .max_sentences = 200};
  const std::string a = train_sentencepiece(docs, options);
  EXPECT_EQ(a, train_sentencepiece(docs, options));
  EXPECT_NE(a, train_sentencepiece(docs, {.vocab_size = 400}));
}

TEST(TrainTokenizer, BadInputsAndOptionsAreErrors) {
  const std::vector<std::string> docs = brown_slice();
  EXPECT_EQ(error_of([&] {
              train_sentencepiece({"", "\n"}, {});
            }),
            "train tokenizer: the documents hold no text");
  EXPECT_EQ(error_of([&] { train_sentencepiece(docs, {.vocab_size = 0}); }),
            "train tokenizer: vocab_size = 0 is not positive");
  EXPECT_EQ(error_of([&] { train_sentencepiece(docs, {.character_coverage = 1.5}); }),
            "train tokenizer: character_coverage = 1.5 is not in (0, 1]");
  EXPECT_EQ(error_of([&] { train_sentencepiece(docs, {.max_sentences = -1}); }),
            "train tokenizer: max_sentences = -1 is negative");
  // Too small for the 259 fixed pieces and the characters: the library's message.
  const std::string small = error_of([&] { train_sentencepiece(docs, {.vocab_size = 100}); });
  EXPECT_TRUE(small.starts_with("train tokenizer: SentencePiece training failed: ")) << small;
}

TEST(TrainTokenizer, TokenizeDocumentsEncodesEachDocument) {
  const std::vector<std::string> docs = brown_slice();
  const test::TempDir dir("sy_tok");
  const std::string path = (dir.path / "tokenizer.model").string();
  train_tokenizer(docs, path, {.vocab_size = 400});
  const auto tok = io::load_tokenizer(path);
  const auto ids = tokenize_documents(*tok, docs);
  ASSERT_EQ(ids.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(ids[i], tok->encode(docs[i], false)) << i;
}

// ---- Split and packing -------------------------------------------------------------------------

TEST(TrainData, SplitHoldsOutEveryNthDocument) {
  const DocumentSplit s = split_documents(500, 0.1);
  ASSERT_EQ(s.validation.size(), 50u);
  ASSERT_EQ(s.train.size(), 450u);
  for (size_t k = 0; k < 50; ++k) EXPECT_EQ(s.validation[k], static_cast<int64_t>(10 * k + 9));
  std::set<int64_t> all(s.train.begin(), s.train.end());
  all.insert(s.validation.begin(), s.validation.end());
  EXPECT_EQ(all.size(), 500u);  // a partition
  const DocumentSplit again = split_documents(500, 0.1);
  EXPECT_EQ(again.train, s.train);
  EXPECT_EQ(again.validation, s.validation);
  EXPECT_EQ(split_documents(10, 0.25).validation, (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(split_documents(7, 0.0).train.size(), 7u);
  EXPECT_TRUE(split_documents(7, 0.0).validation.empty());
}

TEST(TrainData, SplitErrors) {
  EXPECT_EQ(error_of([] { split_documents(5, 1.0); }),
            "split: validation_fraction = 1 is not in [0, 1)");
  EXPECT_EQ(error_of([] { split_documents(5, -0.1); }),
            "split: validation_fraction = -0.1 is not in [0, 1)");
  EXPECT_EQ(error_of([] { split_documents(5, 0.1); }),
            "split: validation_fraction = 0.1 of 5 documents holds out no document");
  EXPECT_EQ(error_of([] { split_documents(0, 0.0); }),
            "split: no document left to train on (0 documents)");
}

TEST(TrainData, PackingPutsBosBeforeEachDocumentAndShiftsTargets) {
  const std::vector<std::vector<int32_t>> docs = {{5, 6, 7}, {8, 9}, {10}};
  const PackedSequences p(docs, {0, 1, 2}, 1, 3);
  EXPECT_EQ(p.stream(), (std::vector<int32_t>{1, 5, 6, 7, 1, 8, 9, 1, 10}));
  ASSERT_EQ(p.size(), 2);  // (9 - 1) / 3: the last token only serves as a target
  const Batch b = p.batch({0, 1, 1});
  EXPECT_EQ(b.tokens.shape(), (Shape{3, 3}));
  EXPECT_EQ(b.tokens.dtype(), DType::I32);
  EXPECT_EQ(row(b.tokens, 0), (std::vector<int32_t>{1, 5, 6}));
  EXPECT_EQ(row(b.targets, 0), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(row(b.tokens, 1), (std::vector<int32_t>{7, 1, 8}));
  EXPECT_EQ(row(b.targets, 1), (std::vector<int32_t>{1, 8, 9}));
  EXPECT_EQ(row(b.tokens, 2), row(b.tokens, 1));
  // A subset in another order.
  const PackedSequences q(docs, {2, 0}, 1, 2);
  EXPECT_EQ(q.stream(), (std::vector<int32_t>{1, 10, 1, 5, 6, 7}));
  EXPECT_EQ(q.size(), 2);
  // Exactly one target past the last sequence: 7 tokens, T = 3 -> 2 sequences use all of them.
  EXPECT_EQ(PackedSequences({{2, 3, 4, 5, 6, 7}}, {0}, 1, 3).size(), 2);
  EXPECT_EQ(PackedSequences({{2, 3, 4, 5, 6}}, {0}, 1, 3).size(), 1);
  EXPECT_EQ(PackedSequences(docs, {}, 1, 3).size(), 0);
  EXPECT_EQ(error_of([&] { PackedSequences(docs, {3}, 1, 3); }),
            "pack: document index 3 is out of range [0, 3)");
  EXPECT_EQ(error_of([&] { PackedSequences(docs, {0}, 1, 0); }),
            "pack: seq_len = 0 is not positive");
  EXPECT_EQ(error_of([&] { p.batch({2}); }), "pack: sequence 2 is out of range [0, 2)");
}

TEST(TrainData, TargetsAreInputsShiftedAcrossTheWholeStream) {
  Rng rng(3);
  std::vector<std::vector<int32_t>> docs(40);
  for (auto& d : docs) {
    d.resize(rng.below(50));
    for (int32_t& t : d) t = 3 + static_cast<int32_t>(rng.below(1000));
  }
  const Dataset ds = build_dataset(docs, 1, {.seq_len = 16, .validation_fraction = 0.2});
  EXPECT_EQ(ds.train_documents, 32);
  EXPECT_EQ(ds.validation_documents, 8);
  for (const PackedSequences* p : {&ds.train, &ds.validation}) {
    std::vector<int64_t> all(p->size());
    for (int64_t i = 0; i < p->size(); ++i) all[i] = i;
    const Batch b = p->batch(all);
    const int32_t* x = b.tokens.data<int32_t>();
    const int32_t* y = b.targets.data<int32_t>();
    for (int64_t i = 0; i + 1 < b.tokens.numel(); ++i) ASSERT_EQ(y[i], x[i + 1]) << i;
    for (int64_t i = 0; i < b.tokens.numel(); ++i) ASSERT_EQ(x[i], p->stream()[i]);
    EXPECT_EQ(y[b.tokens.numel() - 1], p->stream()[b.tokens.numel()]);
  }
  // The validation stream is exactly the held-out documents.
  std::vector<int32_t> expected;
  for (int64_t d : {4, 9, 14, 19, 24, 29, 34, 39}) {
    expected.push_back(1);
    expected.insert(expected.end(), docs[d].begin(), docs[d].end());
  }
  EXPECT_EQ(ds.validation.stream(), expected);
}

// ---- Iterator ----------------------------------------------------------------------------------

PackedSequences counting_sequences(int64_t n, int64_t t) {
  std::vector<int32_t> doc(n * t);
  for (size_t i = 0; i < doc.size(); ++i) doc[i] = static_cast<int32_t>(i + 2);
  return PackedSequences({doc}, {0}, 1, t);  // stream 1, 2, 3, ...: sequence i starts at i*t + 1
}

int64_t sequence_of(const Batch& b, int64_t r, int64_t t) {
  return (b.tokens.data<int32_t>()[r * t] - 1) / t;
}

TEST(BatchIterator, EachEpochVisitsEverySequenceOnceInASeededOrder) {
  const PackedSequences data = counting_sequences(23, 4);
  ASSERT_EQ(data.size(), 23);
  BatchIterator it(data, 5, 42);
  EXPECT_EQ(it.batches_per_epoch(), 4);  // 20 of 23 sequences per epoch
  std::vector<std::vector<int64_t>> epochs(3);
  for (auto& e : epochs) {
    for (int k = 0; k < 4; ++k) {
      const Batch b = it.next();
      EXPECT_EQ(b.tokens.shape(), (Shape{5, 4}));
      for (int64_t r = 0; r < 5; ++r) e.push_back(sequence_of(b, r, 4));
    }
    EXPECT_EQ(std::set<int64_t>(e.begin(), e.end()).size(), 20u);  // no repeats in an epoch
  }
  EXPECT_NE(epochs[0], epochs[1]);  // reshuffled
  EXPECT_NE(epochs[1], epochs[2]);
  BatchIterator same(data, 5, 42);
  BatchIterator other(data, 5, 43);
  const Batch a = same.next();
  EXPECT_EQ(sequence_of(a, 0, 4), epochs[0][0]);
  std::vector<int64_t> first_other;
  for (int k = 0; k < 4; ++k) {
    const Batch b = other.next();
    for (int64_t r = 0; r < 5; ++r) first_other.push_back(sequence_of(b, r, 4));
  }
  EXPECT_NE(first_other, epochs[0]);
  // Without shuffling: in order, the tail skipped.
  BatchIterator ordered(data, 5, 42, false);
  for (int k = 0; k < 5; ++k) {
    const Batch b = ordered.next();
    for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(sequence_of(b, r, 4), (k % 4) * 5 + r);
  }
}

TEST(BatchIterator, RestoredStateGivesTheSameNextBatches) {
  const PackedSequences data = counting_sequences(23, 4);
  for (int taken : {0, 3, 4, 9}) {  // start, mid-epoch, epoch end, later epoch
    SCOPED_TRACE(taken);
    BatchIterator a(data, 5, 7);
    for (int k = 0; k < taken; ++k) a.next();
    const BatchIteratorState saved = a.state();
    const BatchIteratorState parsed =
        BatchIteratorState::from_json(nlohmann::json::parse(saved.to_json().dump()), "s.json");
    // In memory, to_json's int64_t counts are signed JSON numbers; parsed text has unsigned ones.
    EXPECT_EQ(BatchIteratorState::from_json(saved.to_json(), "s").to_json(), saved.to_json());
    BatchIterator b(data, 5, 7);
    b.next();  // wherever it was
    b.restore(parsed, "s.json");
    for (int k = 0; k < 6; ++k) {
      const Batch x = a.next();
      const Batch y = b.next();
      ASSERT_EQ(row(x.tokens, 0), row(y.tokens, 0)) << k;
      ASSERT_EQ(std::memcmp(x.tokens.bytes(), y.tokens.bytes(), x.tokens.nbytes()), 0) << k;
      ASSERT_EQ(std::memcmp(x.targets.bytes(), y.targets.bytes(), x.targets.nbytes()), 0) << k;
    }
    EXPECT_EQ(a.state().to_json(), b.state().to_json());
  }
}

TEST(BatchIterator, StateFromOtherDataOrSettingsIsRefused) {
  const PackedSequences data = counting_sequences(23, 4);
  const PackedSequences other = counting_sequences(24, 4);
  BatchIterator it(data, 5, 7);
  it.next();
  const BatchIteratorState s = it.state();
  EXPECT_EQ(s.to_json().dump(),
            R"({"batch_size":5,"epoch":0,"position":1,"seed":7,"sequences":23,"shuffle":true})");
  BatchIterator changed(other, 5, 7);
  EXPECT_EQ(error_of([&] { changed.restore(s, "ck/trainer_state.json"); }),
            "ck/trainer_state.json: the data iterator was saved with seed 7, batch size 5, 23 "
            "sequences, shuffle true; this run has seed 7, batch size 5, 24 sequences, shuffle "
            "true");
  BatchIterator seeded(data, 5, 8);
  EXPECT_NE(error_of([&] { seeded.restore(s, "x"); }).find("this run has seed 8"),
            std::string::npos);
  BatchIteratorState far = s;
  far.position = 5;
  EXPECT_EQ(error_of([&] { it.restore(far, "x"); }),
            "x: data iterator position epoch 0 batch 5 is out of range (an epoch has 4 batches)");
  const auto from = [](const std::string& text) {
    return error_of([&] { BatchIteratorState::from_json(nlohmann::json::parse(text), "x"); });
  };
  EXPECT_EQ(from("[]"), "x: data iterator state: expected a JSON object, got an array");
  EXPECT_EQ(from(R"({"seed":7})"), "x: data iterator state: missing key 'batch_size'");
  EXPECT_EQ(
      from(R"({"batch_size":5,"epoch":-1,"position":1,"seed":7,"sequences":23,"shuffle":true})"),
      "x: data iterator state: 'epoch' is -1, expected an integer >= 0");
  EXPECT_EQ(from(R"({"batch_size":5,"epoch":0,"position":1,"seed":7,"sequences":23,"shuffle":1})"),
            "x: data iterator state: 'shuffle' is 1, expected true or false");
  EXPECT_EQ(BatchIteratorState::from_json(
                nlohmann::json::parse(
                    R"({"batch_size":5,"epoch":0,"position":1,"seed":18446744073709551615,)"
                    R"("sequences":23,"shuffle":false})"),
                "x")
                .seed,
            UINT64_MAX);
  EXPECT_EQ(error_of([&] { BatchIterator(data, 24, 1); }),
            "batch iterator: 23 sequences of 4 tokens do not fill one batch of 24");
  EXPECT_EQ(error_of([&] { BatchIterator(data, 0, 1); }),
            "batch iterator: batch_size = 0 is not positive");
}

}  // namespace
}  // namespace sy::train
