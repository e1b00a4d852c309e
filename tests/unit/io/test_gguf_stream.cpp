// GgufStreamWriter: the header first, then tensor bytes in pieces; the same bytes as GgufWriter,
// written atomically, with every inconsistency an error that leaves no file behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "io/atomic_file.h"
#include "io/gguf.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"

namespace sy::io {
namespace {

namespace fs = std::filesystem;

using ::sy::test::error_of;

// Deterministic bytes, different per tensor.
std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed)) & 0xff);
  return s;
}

struct Content {
  std::vector<GgufKv> kvs;
  std::vector<GgufTensorDecl> decls;
  std::vector<std::string> data;
};

// f32 of 3 values (12 bytes, padded), an empty q8_0, a q4_K of two rows, an f16 of odd length.
Content sample(uint32_t alignment) {
  Content c;
  c.kvs.push_back({"general.architecture", GgufValue::string("llama")});
  if (alignment != 32) c.kvs.push_back({"general.alignment", GgufValue::u32(alignment)});
  c.kvs.push_back({"tokenizer.ggml.tokens", GgufValue::strings({"a", "b\xc3\xa9", ""})});
  c.decls = {{"a", GgmlType::kF32, {3}},
             {"empty", GgmlType::kQ8_0, {32, 0}},
             {"q", GgmlType::kQ4_K, {256, 2}},
             {"h", GgmlType::kF16, {5, 1, 1}}};
  c.data = {pattern(12, 1), "", pattern(2 * 144, 2), pattern(10, 3)};
  return c;
}

std::string writer_bytes(const Content& c) {
  GgufWriter w;
  for (const GgufKv& kv : c.kvs) w.add_kv(kv.key, kv.value);
  for (size_t i = 0; i < c.decls.size(); ++i) {
    w.add_tensor(c.decls[i].name, c.decls[i].type, c.decls[i].ne, c.data[i]);
  }
  return w.to_bytes();
}

TEST(GgufStream, BytesEqualGgufWriterWhateverThePieces) {
  test::TempDir dir("sy_gguf_stream");
  for (uint32_t alignment : {32u, 64u, 8u}) {
    const Content c = sample(alignment);
    std::string all;
    for (const std::string& d : c.data) all += d;
    const std::string expected = writer_bytes(c);
    // One piece; every byte alone; pieces of 7 that cross tensor ends.
    for (size_t piece : {all.size(), size_t{1}, size_t{7}}) {
      SCOPED_TRACE("alignment " + std::to_string(alignment) + ", pieces of " +
                   std::to_string(piece));
      const std::string path = (dir.path / "out.gguf").string();
      GgufStreamWriter w(path, c.kvs, c.decls);
      EXPECT_EQ(w.tensor_count(), 4u);
      EXPECT_EQ(w.current(), 0u);
      EXPECT_EQ(w.remaining(), 12u);
      for (size_t at = 0; at < all.size(); at += piece) {
        w.append(std::string_view(all).substr(at, piece));
      }
      EXPECT_EQ(w.current(), 4u);
      EXPECT_EQ(w.remaining(), 0u);
      w.finish();
      EXPECT_EQ(read_file(path), expected);
      EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"out.gguf"});
    }
  }
  // The file parses back with the data where the infos say.
  const GgufFile f = GgufFile::open((dir.path / "out.gguf").string());
  EXPECT_EQ(f.alignment(), 8u);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"a", "b\xc3\xa9", ""}));
  const Tensor q = f.raw("q");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(q.bytes()), q.nbytes()), pattern(288, 2));
  EXPECT_EQ(f.tensor_info("h").ne, (std::vector<int64_t>{5, 1, 1}));
}

TEST(GgufStream, TracksTheCurrentTensorAcrossPieces) {
  test::TempDir dir("sy_gguf_stream");
  const Content c = sample(32);
  GgufStreamWriter w((dir.path / "x.gguf").string(), c.kvs, c.decls);
  w.append(std::string(5, 'a'));
  EXPECT_EQ(w.current(), 0u);
  EXPECT_EQ(w.remaining(), 7u);
  w.append(std::string(7, 'a'));  // completes "a"; the empty q8_0 is skipped at once
  EXPECT_EQ(w.current(), 2u);
  EXPECT_EQ(w.remaining(), 288u);
  w.append(std::string(290, 'b'));
  EXPECT_EQ(w.current(), 3u);
  EXPECT_EQ(w.remaining(), 8u);
}

TEST(GgufStream, NoTensorsAtAll) {
  test::TempDir dir("sy_gguf_stream");
  const std::string path = (dir.path / "meta.gguf").string();
  GgufStreamWriter w(path, {{"k", GgufValue::u8(7)}}, {});
  EXPECT_EQ(w.current(), 0u);
  w.finish();
  GgufWriter ref;
  ref.add_kv("k", GgufValue::u8(7));
  EXPECT_EQ(read_file(path), ref.to_bytes());
}

TEST(GgufStream, RejectsInconsistentContent) {
  test::TempDir dir("sy_gguf_stream");
  const std::string path = (dir.path / "bad.gguf").string();
  const auto make = [&](const std::vector<GgufKv>& kvs, const std::vector<GgufTensorDecl>& decls) {
    return error_of([&] { GgufStreamWriter w(path, kvs, decls); });
  };
  EXPECT_EQ(make({{"k", GgufValue::u8(1)}, {"k", GgufValue::u8(2)}}, {}),
            "gguf writer: key 'k' added twice");
  EXPECT_EQ(make({{"general.alignment", GgufValue::u64(64)}}, {}),
            "gguf writer: key 'general.alignment' is u64 64, expected u32");
  EXPECT_EQ(make({{"general.alignment", GgufValue::u32(12)}}, {}),
            "gguf writer: key 'general.alignment' is 12, expected a nonzero multiple of 8");
  EXPECT_EQ(make({}, {{"t", GgmlType::kF32, {2}}, {"t", GgmlType::kF32, {2}}}),
            "gguf writer: tensor 't' added twice");
  EXPECT_EQ(make({}, {{"u", GgmlType::kQ8_0, {16}}}),
            "gguf writer: tensor 'u' (q8_0) has ne[0] = 16, expected a multiple of the block size "
            "32");
  EXPECT_EQ(make({}, {{"u", GgmlType::kF32, {1, 1, 1, 1, 1}}}),
            "gguf writer: tensor 'u' has 5 dims ne [1, 1, 1, 1, 1], expected at most 4");
  EXPECT_EQ(make({}, {{"u", GgmlType::kF32, {4, -1}}}),
            "gguf writer: tensor 'u' has ne [4, -1], expected sizes >= 0");
  EXPECT_EQ(make({}, {{"u", GgmlType::kF32, {int64_t{1} << 62, 4}}}),
            "gguf writer: tensor 'u' (f32 ne [4611686018427387904, 4]) is too large");
  // Each tensor fits in 2^64 bytes, their offsets do not.
  EXPECT_EQ(make({}, {{"a", GgmlType::kI8, {int64_t{1} << 62, 3}},
                      {"b", GgmlType::kI8, {int64_t{1} << 62}}}),
            "gguf writer: tensor 'b' ends past 2^64 bytes");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{});
  const std::string missing = (dir.path / "no" / "x.gguf").string();
  EXPECT_EQ(error_of([&] { GgufStreamWriter w(missing, {}, {}); }),
            missing + ".tmp." + std::to_string(::getpid()) +
                ": cannot create: No such file or directory");
}

TEST(GgufStream, TooManyBytesIsAnErrorThatWritesNothing) {
  test::TempDir dir("sy_gguf_stream");
  const std::string path = (dir.path / "x.gguf").string();
  const Content c = sample(32);
  GgufStreamWriter w(path, c.kvs, c.decls);
  w.append(std::string(300, 'x'));
  EXPECT_EQ(error_of([&] { w.append(std::string(11, 'x')); }),
            "gguf writer: " + path + ": 11 more bytes appended, but the tensors need only 10 more");
  EXPECT_EQ(w.current(), 3u);
  EXPECT_EQ(w.remaining(), 10u);
  w.append(std::string(10, 'x'));  // the writer is still usable
  w.finish();
  EXPECT_EQ(GgufFile::open(path).tensors().size(), 4u);
}

TEST(GgufStream, UnfinishedFilesLeaveTheOldFileAndNoTemporary) {
  test::TempDir dir("sy_gguf_stream");
  const std::string path = (dir.path / "x.gguf").string();
  write_file_atomic(path, "old");
  const Content c = sample(32);
  {
    GgufStreamWriter w(path, c.kvs, c.decls);
    w.append(std::string(20, 'x'));
    EXPECT_EQ(test::file_names(dir.path).size(), 2u);  // x.gguf and the temporary
  }  // destroyed half way, as by an exception while converting
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"x.gguf"});
  EXPECT_EQ(read_file(path), "old");

  GgufStreamWriter w(path, c.kvs, c.decls);
  w.append(std::string(20, 'x'));
  EXPECT_EQ(error_of([&] { w.finish(); }),
            "gguf writer: " + path + ": tensor 'q' has 8 of its 288 bytes");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"x.gguf"});
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(error_of([&] { w.append("x"); }),
            "gguf writer: " + path + ": append to a writer already finished or abandoned");
  EXPECT_EQ(error_of([&] { w.finish(); }),
            "gguf writer: " + path + ": finish of a writer already finished or abandoned");
}

TEST(GgufStream, FinishReplacesTheOldFileOnce) {
  test::TempDir dir("sy_gguf_stream");
  const std::string path = (dir.path / "x.gguf").string();
  write_file_atomic(path, "old");
  GgufStreamWriter w(path, {}, {{"t", GgmlType::kF32, {1}}});
  w.append(std::string(4, '\0'));
  w.finish();
  EXPECT_EQ(GgufFile::open(path).tensor_info("t").nbytes, 4u);
  EXPECT_EQ(error_of([&] { w.append("x"); }),
            "gguf writer: " + path + ": append to a writer already finished or abandoned");
  EXPECT_EQ(test::file_names(dir.path), std::vector<std::string>{"x.gguf"});
}

}  // namespace
}  // namespace sy::io
