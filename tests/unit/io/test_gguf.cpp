#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "core/dtype.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "support/tensor_testing.h"

namespace sy::io {
namespace {

using VT = GgufValueType;

using ::sy::test::error_of;

std::string parse_error(const std::string& bytes, const std::string& name = "x.gguf") {
  return error_of([&] { GgufFile::parse(bytes, name); });
}

// Little-endian bytes written field by field: the tests' own encoder, independent of GgufWriter.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& raw(std::string_view v) {
    s_.append(v);
    return *this;
  }
  Bytes& str(std::string_view v) { return u64(v.size()).raw(v); }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kvs) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kvs);
  }
  // A key and its value type; the caller writes the value.
  Bytes& key(std::string_view k, VT type) { return str(k).u32(static_cast<uint32_t>(type)); }
  Bytes& array(VT element_type, uint64_t count) {
    return u32(static_cast<uint32_t>(element_type)).u64(count);
  }
  Bytes& tensor(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
                uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t alignment) {
    s_.resize((s_.size() + alignment - 1) / alignment * alignment, '\0');
    return *this;
  }
  Bytes& fill(size_t n, uint8_t first) {
    for (size_t i = 0; i < n; ++i) s_ += static_cast<char>((first + i * 7) & 0xff);
    return *this;
  }
  size_t size() const { return s_.size(); }
  const std::string& bytes() const { return s_; }

 private:
  std::string s_;
};

const std::string kUtf8 = "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac";  // "héllo ✓ 日本"

struct HandTensor {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> ne;
  uint64_t nbytes;
  uint64_t offset = 0;
};

struct HandFile {
  std::string bytes;
  uint64_t data_offset = 0;
  std::vector<HandTensor> tensors;
  std::map<std::string, size_t> marks;  // byte positions of chosen fields
};

// Every value type, nested arrays, UTF-8, and f32 / f16 / q8_0 / q4_K tensors. alignment 0
// leaves general.alignment out (the default, 32, applies). No padding after the last tensor,
// so every proper prefix of the file is invalid.
HandFile hand_built(uint32_t alignment, uint32_t version = 3) {
  HandFile h;
  h.tensors = {{"tok_embd.weight", GgmlType::kF32, {4, 3}, 4 * 3 * 4},
               {"norm.weight", GgmlType::kF16, {5}, 5 * 2},
               {"blk.0.ffn_up.weight", GgmlType::kQ8_0, {64, 2}, 2 * 2 * 34},
               {"blk.0.ffn_down_exps.weight", GgmlType::kQ4_K, {256, 2, 2}, 4 * 144}};
  const uint64_t align = alignment == 0 ? 32 : alignment;
  uint64_t at = 0;
  for (HandTensor& t : h.tensors) {
    t.offset = at;
    at = (at + t.nbytes + align - 1) / align * align;
  }
  Bytes b;
  b.header(version, h.tensors.size(), alignment == 0 ? 17 : 18);
  b.key("general.architecture", VT::kString).str("llama");
  if (alignment != 0) b.key("general.alignment", VT::kU32).u32(alignment);
  b.key("t.u8", VT::kU8).put<uint8_t>(200);
  b.key("t.i8", VT::kI8).put<int8_t>(-100);
  b.key("t.u16", VT::kU16).put<uint16_t>(65000);
  b.key("t.i16", VT::kI16).put<int16_t>(-32000);
  b.key("t.u32", VT::kU32).u32(4000000000u);
  b.key("t.i32", VT::kI32).put<int32_t>(-2000000000);
  b.key("t.f32", VT::kF32).put<float>(0.15625f);
  b.key("t.bool", VT::kBool).put<uint8_t>(1);
  b.key("t.utf8", VT::kString).str(kUtf8);
  b.key("t.u64", VT::kU64).u64((uint64_t{1} << 40) + 3);
  b.key("t.i64", VT::kI64).put<int64_t>(-(int64_t{1} << 40));
  b.key("t.f64", VT::kF64).put<double>(0.1);
  b.key("t.small", VT::kU64).u64(7);
  b.key("t.tokens", VT::kArray).array(VT::kString, 3).str("<s>").str("\xc3\x9f").str("");
  b.key("t.nested", VT::kArray).array(VT::kArray, 3);
  b.array(VT::kI16, 2).put<int16_t>(1).put<int16_t>(-2);
  b.array(VT::kI16, 0);
  b.array(VT::kI16, 1).put<int16_t>(3);
  b.key("t.scores", VT::kArray).array(VT::kF32, 2).put<float>(0.5f);
  h.marks["second score"] = b.size();
  b.put<float>(-1.25f);
  for (const HandTensor& t : h.tensors) {
    if (&t == &h.tensors[2]) h.marks["ne[1] of tensor 2"] = b.size() + 8 + t.name.size() + 4 + 8;
    if (&t == &h.tensors[3]) h.marks["name of tensor 3"] = b.size() + 8;
    b.tensor(t.name, t.ne, static_cast<uint32_t>(t.type), t.offset);
  }
  b.pad(align);
  h.data_offset = b.size();
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const HandTensor& t = h.tensors[i];
    b.pad(align);
    EXPECT_EQ(b.size(), h.data_offset + t.offset);
    if (t.type == GgmlType::kF32) {
      for (int j = 0; j < 12; ++j) b.put<float>(0.5f * static_cast<float>(j) - 1.0f);
    } else if (t.type == GgmlType::kF16) {
      for (int j = 0; j < 5; ++j) b.put<uint16_t>(f32_to_f16(static_cast<float>(j) + 0.25f));
    } else {
      b.fill(t.nbytes, static_cast<uint8_t>(i * 40));
    }
  }
  h.bytes = b.bytes();
  return h;
}

void expect_hand_built_contents(const GgufFile& f, const HandFile& h, uint64_t alignment) {
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset(), h.data_offset);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get("t.u8").as_int<uint8_t>(), 200);
  EXPECT_EQ(f.get("t.i8").as_int<int8_t>(), -100);
  EXPECT_EQ(f.get("t.u16").as_int<uint16_t>(), 65000);
  EXPECT_EQ(f.get("t.i16").as_int<int16_t>(), -32000);
  EXPECT_EQ(f.get_u32("t.u32"), 4000000000u);
  EXPECT_EQ(f.get_i32("t.i32"), -2000000000);
  EXPECT_EQ(f.get_f32("t.f32"), 0.15625f);
  EXPECT_TRUE(f.get_bool("t.bool"));
  EXPECT_EQ(f.get_string("t.utf8"), kUtf8);
  EXPECT_EQ(f.get_u64("t.u64"), (uint64_t{1} << 40) + 3);
  EXPECT_EQ(f.get_i64("t.i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f.get_f64("t.f64"), 0.1);
  EXPECT_EQ(f.get_strings("t.tokens"), (std::vector<std::string>{"<s>", "\xc3\x9f", ""}));
  EXPECT_EQ(f.get_f32s("t.scores"), (std::vector<float>{0.5f, -1.25f}));
  const GgufValue::Array& nested = f.get("t.nested").as_array();
  ASSERT_EQ(nested.type, VT::kArray);
  ASSERT_EQ(nested.items.size(), 3u);
  EXPECT_EQ(nested.items[0].as_ints<int16_t>(), (std::vector<int16_t>{1, -2}));
  EXPECT_TRUE(nested.items[1].as_ints<int16_t>().empty());
  EXPECT_EQ(nested.items[2].as_ints<int64_t>(), (std::vector<int64_t>{3}));
  // Every value type appears, in file order.
  std::vector<VT> types;
  for (const GgufKv& kv : f.kvs()) types.push_back(kv.value.type());
  for (uint32_t id = 0; id <= 12; ++id) {
    EXPECT_NE(std::find(types.begin(), types.end(), static_cast<VT>(id)), types.end()) << id;
  }
  EXPECT_EQ(f.kvs().front().key, "general.architecture");

  ASSERT_EQ(f.tensors().size(), h.tensors.size());
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    const HandTensor& want = h.tensors[i];
    SCOPED_TRACE(want.name);
    EXPECT_EQ(t.name, want.name);
    EXPECT_EQ(t.type, want.type);
    EXPECT_EQ(t.ne, std::vector<int64_t>(want.ne.begin(), want.ne.end()));
    EXPECT_EQ(t.shape(), Shape(want.ne.rbegin(), want.ne.rend()));
    EXPECT_EQ(t.offset, want.offset);
    EXPECT_EQ(t.file_offset, h.data_offset + want.offset);
    EXPECT_EQ(t.nbytes, want.nbytes);
    EXPECT_EQ(&f.tensor_info(want.name), &t);
    const Tensor raw = f.raw(want.name);
    EXPECT_EQ(raw.dtype(), DType::U8);
    EXPECT_EQ(raw.shape(), Shape{static_cast<int64_t>(want.nbytes)});
    EXPECT_EQ(raw.storage(), f.storage());  // a view, not a copy
    EXPECT_EQ(std::memcmp(raw.bytes(), h.bytes.data() + t.file_offset, t.nbytes), 0);
  }
  const Tensor embd = f.tensor("tok_embd.weight");
  EXPECT_EQ(embd.dtype(), DType::F32);
  EXPECT_EQ(embd.shape(), (Shape{3, 4}));
  EXPECT_EQ(embd.data<float>()[5], 0.5f * 5 - 1.0f);  // row 1, column 1
  const Tensor norm = f.tensor("norm.weight");
  EXPECT_EQ(norm.dtype(), DType::F16);
  EXPECT_EQ(norm.to_f32().data<float>()[4], 4.25f);
  EXPECT_EQ(error_of([&] { f.tensor("blk.0.ffn_up.weight"); }),
            f.name() +
                ": tensor 'blk.0.ffn_up.weight' is q8_0, expected f32, f16, bf16, i32 or i64 for a "
                "typed view (read block-quantized data with raw())");
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  EXPECT_EQ(error_of([&] { f.raw("nope"); }),
            f.name() + ": no tensor named 'nope' (4 tensors in the file)");
}

TEST(Gguf, ReadsAHandBuiltFileWithDefaultAlignment) {
  const HandFile h = hand_built(0);
  const GgufFile f = GgufFile::parse(h.bytes, "hand.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_FALSE(f.has("general.alignment"));
  expect_hand_built_contents(f, h, 32);
}

TEST(Gguf, ReadsAHandBuiltFileWithCustomAlignmentFromDisk) {
  const HandFile h = hand_built(64);
  const std::string path = ::testing::TempDir() + "/sy_gguf_hand64.gguf";
  write_file_atomic(path, h.bytes);
  const GgufFile f = GgufFile::open(path);
  EXPECT_TRUE(f.storage()->is_mapped());
  EXPECT_EQ(f.file_size(), h.bytes.size());
  expect_hand_built_contents(f, h, 64);
  std::filesystem::remove(path);
}

TEST(Gguf, ReadsVersion2AndRefusesVersion1AndBigEndian) {
  const HandFile h = hand_built(0, 2);
  const GgufFile f = GgufFile::parse(h.bytes, "v2.gguf");
  EXPECT_EQ(f.version(), 2u);
  expect_hand_built_contents(f, h, 32);
  EXPECT_EQ(parse_error(Bytes().raw("GGUF").u32(1).u32(0).u32(0).bytes()),
            "x.gguf: GGUF version 1 (32-bit counts) is not supported, expected version 2 or 3");
  EXPECT_EQ(parse_error(Bytes().header(4, 0, 0).bytes()),
            "x.gguf: GGUF version 4 is not supported, expected 2 or 3");
  // A big-endian writer stores 3 as 00 00 00 03.
  EXPECT_EQ(parse_error(Bytes().raw("GGUF").raw(std::string("\0\0\0\3", 4)).u64(0).u64(0).bytes()),
            "x.gguf: GGUF file is big-endian (version field reads 0x03000000, 3 byte-swapped); "
            "only little-endian files are supported");
  EXPECT_EQ(parse_error(Bytes().raw("GGUX").u32(3).u64(0).u64(0).bytes()),
            "x.gguf: not a GGUF file: magic bytes are 47 47 55 58, expected 47 47 55 46 ('GGUF')");
}

TEST(Gguf, EveryTruncationIsACleanError) {
  const HandFile h = hand_built(64);
  ASSERT_NO_THROW(GgufFile::parse(h.bytes, "t.gguf"));
  for (size_t n = 0; n < h.bytes.size(); ++n) {
    const std::string err = parse_error(h.bytes.substr(0, n), "t.gguf");
    EXPECT_EQ(err.rfind("t.gguf: ", 0), 0u) << "prefix " << n << ": " << err;
  }
  EXPECT_EQ(parse_error(h.bytes.substr(0, 2), "t.gguf"),
            "t.gguf: truncated at byte 0 reading magic: needs 4 bytes, 2 left");
  EXPECT_EQ(parse_error(h.bytes.substr(0, 6), "t.gguf"),
            "t.gguf: truncated at byte 4 reading version: needs 4 bytes, 2 left");
  EXPECT_EQ(parse_error(h.bytes.substr(0, 20), "t.gguf"),
            "t.gguf: truncated at byte 16 reading metadata_kv_count: needs 8 bytes, 4 left");
  EXPECT_EQ(parse_error(h.bytes.substr(0, 30), "t.gguf"),
            "t.gguf: tensor_count is 4, but the 6 bytes after the header hold at most 0 tensor "
            "infos");
  // An array whose elements cannot all fit is refused at its length.
  const size_t score = h.marks.at("second score");
  EXPECT_EQ(parse_error(h.bytes.substr(0, score + 2), "t.gguf"),
            fmt::format("t.gguf: truncated at byte {} reading value of key 't.scores': an array "
                        "of 2 f32 needs at least 4 bytes each, 6 bytes left",
                        score - 4));
  const size_t name = h.marks.at("name of tensor 3");
  EXPECT_EQ(parse_error(h.bytes.substr(0, name + 5), "t.gguf"),
            fmt::format("t.gguf: truncated at byte {} reading name of tensor 3: needs 26 bytes, 5 "
                        "left",
                        name));
  const size_t ne1 = h.marks.at("ne[1] of tensor 2");
  EXPECT_EQ(parse_error(h.bytes.substr(0, ne1 + 3), "t.gguf"),
            fmt::format("t.gguf: truncated at byte {} reading ne[1] of tensor "
                        "'blk.0.ffn_up.weight': needs 8 bytes, 3 left",
                        ne1));
  EXPECT_EQ(parse_error(h.bytes.substr(0, h.bytes.size() - 1), "t.gguf"),
            fmt::format("t.gguf: tensor 'blk.0.ffn_down_exps.weight': data ends at byte {}, file "
                        "has {} bytes",
                        h.bytes.size(), h.bytes.size() - 1));
}

TEST(Gguf, TypedGettersAcceptAnyFittingIntegerAndNameTheKey) {
  const HandFile h = hand_built(0);
  const GgufFile f = GgufFile::parse(h.bytes, "m.gguf");
  EXPECT_EQ(f.get_u32("t.small"), 7u);  // stored as u64
  EXPECT_EQ(f.get_i32("t.u16"), 65000);
  EXPECT_EQ(f.get_i64("t.u32"), 4000000000);
  EXPECT_EQ(f.get_f64("t.f32"), 0.15625);
  EXPECT_EQ(error_of([&] { f.get_u32("t.u64"); }),
            "m.gguf: key 't.u64' is u64 1099511627779, expected a value that fits u32 "
            "(0..4294967295)");
  EXPECT_EQ(error_of([&] { f.get_u32("t.i8"); }),
            "m.gguf: key 't.i8' is i8 -100, expected a value that fits u32 (0..4294967295)");
  EXPECT_EQ(error_of([&] { f.get_u32("general.architecture"); }),
            "m.gguf: key 'general.architecture' is string 'llama', expected an integer (u32)");
  EXPECT_EQ(error_of([&] { f.get_u32("t.f32"); }),
            "m.gguf: key 't.f32' is f32 0.15625, expected an integer (u32)");
  EXPECT_EQ(error_of([&] { f.get_string("t.u32"); }),
            "m.gguf: key 't.u32' is u32 4000000000, expected string");
  EXPECT_EQ(error_of([&] { f.get_bool("t.u8"); }), "m.gguf: key 't.u8' is u8 200, expected bool");
  EXPECT_EQ(error_of([&] { f.get_f32("t.tokens"); }),
            "m.gguf: key 't.tokens' is array of 3 string, expected f32 or f64");
  EXPECT_EQ(error_of([&] { f.get_strings("t.scores"); }),
            "m.gguf: key 't.scores' is array of 2 f32, expected array of string");
  EXPECT_EQ(error_of([&] { f.get_i32s("t.tokens"); }),
            "m.gguf: key 't.tokens'[0] is string '<s>', expected an integer (i32)");
  EXPECT_EQ(error_of([&] { f.get("missing.key"); }), "m.gguf: key 'missing.key' not found");
  EXPECT_EQ(f.find("missing.key"), nullptr);
  EXPECT_EQ(GgufValue::string(std::string(50, 'a')).describe(),
            "string '" + std::string(40, 'a') + "...' (50 bytes)");
  EXPECT_EQ(error_of([] {
              GgufValue::array(VT::kU8, {GgufValue::u8(1), GgufValue::i8(2)});
            }),
            "gguf array of u8: item 1 is i8 2");
}

// A file with one kv and one tensor info given as raw bytes, then `data` bytes of data section.
std::string one_tensor_file(const std::function<void(Bytes&)>& kvs, uint64_t n_kvs,
                            const std::function<void(Bytes&)>& infos, uint64_t n_tensors,
                            size_t data_bytes, size_t alignment = 32) {
  Bytes b;
  b.header(3, n_tensors, n_kvs);
  kvs(b);
  infos(b);
  b.pad(alignment).fill(data_bytes, 0);
  return b.bytes();
}

const auto kNoKvs = [](Bytes&) {};

TEST(Gguf, BadMetadataGivesErrorsNamingTheKey) {
  EXPECT_EQ(
      parse_error(one_tensor_file([](Bytes& b) { b.str("a.b").u32(13).u32(0); }, 1, kNoKvs, 0, 0)),
      "x.gguf: value type of key 'a.b' is 13, expected 0 to 12");
  EXPECT_EQ(parse_error(one_tensor_file([](Bytes& b) { b.key("a.b", VT::kArray).u32(99).u64(0); },
                                        1, kNoKvs, 0, 0)),
            "x.gguf: array element type of key 'a.b' is 99, expected 0 to 12");
  EXPECT_EQ(parse_error(one_tensor_file([](Bytes& b) { b.key("a.b", VT::kBool).put<uint8_t>(2); },
                                        1, kNoKvs, 0, 0)),
            "x.gguf: value of key 'a.b' is bool 2, expected 0 or 1");
  EXPECT_EQ(parse_error(one_tensor_file(
                [](Bytes& b) {
                  b.key("a", VT::kU8).put<uint8_t>(1);
                  b.key("a", VT::kU8).put<uint8_t>(2);
                },
                2, kNoKvs, 0, 0)),
            "x.gguf: key 'a' appears twice (kvs 0 and 1)");
  // An array claiming more elements than the file has bytes: refused before allocating.
  const std::string huge = one_tensor_file(
      [](Bytes& b) { b.key("a", VT::kArray).array(VT::kU32, uint64_t{1} << 60).u32(5); }, 1, kNoKvs,
      0, 0);
  EXPECT_EQ(parse_error(huge),
            "x.gguf: truncated at byte 49 reading value of key 'a': an array of "
            "1152921504606846976 u32 needs at least 4 bytes each, 15 bytes left");
  const std::string long_key =
      Bytes().header(3, 0, 1).u64(~uint64_t{0}).raw("abcdefgh").u32(0).bytes();
  EXPECT_EQ(parse_error(long_key),
            "x.gguf: truncated at byte 32 reading key of kv 0: needs 18446744073709551615 bytes, "
            "12 left");
  // Nesting: 8 levels of arrays are fine, 9 are refused.
  const auto nested = [](int depth) {
    Bytes b;
    b.header(3, 0, 1).key("n", VT::kArray);
    for (int i = 1; i < depth; ++i) b.array(VT::kArray, 1);
    b.array(VT::kU8, 1).put<uint8_t>(9);
    return b.bytes();
  };
  EXPECT_EQ(GgufFile::parse(nested(8), "n.gguf").get("n").describe(), "array of 1 array");
  EXPECT_EQ(parse_error(nested(9)), "x.gguf: value of key 'n' nests arrays more than 8 deep");
  for (uint32_t bad : {0u, 12u}) {
    EXPECT_EQ(
        parse_error(one_tensor_file(
            [&](Bytes& b) { b.key("general.alignment", VT::kU32).u32(bad); }, 1, kNoKvs, 0, 0)),
        fmt::format("x.gguf: key 'general.alignment' is {}, expected a nonzero multiple of 8",
                    bad));
  }
  EXPECT_EQ(
      parse_error(one_tensor_file(
          [](Bytes& b) { b.key("general.alignment", VT::kString).str("x"); }, 1, kNoKvs, 0, 0)),
      "x.gguf: key 'general.alignment' is string 'x', expected an integer (u32)");
}

TEST(Gguf, BadTensorInfosGiveErrorsNamingTheTensor) {
  const auto one = [](const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset,
                      size_t data) {
    return parse_error(one_tensor_file(
        kNoKvs, 0, [&](Bytes& b) { b.tensor("w", ne, type, offset); }, 1, data));
  };
  EXPECT_EQ(one({4}, 4, 0, 64), "x.gguf: tensor 'w' has ggml type id 4, which is not a known type");
  EXPECT_EQ(one({4}, 1000, 0, 64),
            "x.gguf: tensor 'w' has ggml type id 1000, which is not a known type");
  EXPECT_EQ(one({1, 1, 1, 1, 1}, 0, 0, 64), "x.gguf: tensor 'w' has n_dims 5, expected at most 4");
  EXPECT_EQ(one({33, 2}, 8, 0, 128),
            "x.gguf: tensor 'w' (q8_0) has ne[0] = 33, expected a multiple of the block size 32");
  EXPECT_EQ(one({100}, 12, 0, 1024),
            "x.gguf: tensor 'w' (q4_K) has ne[0] = 100, expected a multiple of the block size 256");
  EXPECT_EQ(one({4}, 0, 16, 64),
            "x.gguf: tensor 'w' has offset 16, expected a multiple of the alignment 32");
  // Header 24 + info (8 + 1 + 4 + 8 + 4 + 8 = 33) = 57, data section at 64.
  EXPECT_EQ(one({8}, 0, 0, 31), "x.gguf: tensor 'w': data ends at byte 96, file has 95 bytes");
  EXPECT_EQ(one({8}, 0, 32, 63), "x.gguf: tensor 'w': data ends at byte 128, file has 127 bytes");
  EXPECT_EQ(one({uint64_t{1} << 63}, 0, 0, 0),
            "x.gguf: tensor 'w' has ne[0] = 9223372036854775808, expected at most 2^63 - 1");
  EXPECT_EQ(one({uint64_t{1} << 62, 4}, 0, 0, 0),
            "x.gguf: tensor 'w' has ne [4611686018427387904, 4]: the element count overflows 64 "
            "bits");
  EXPECT_EQ(one({0, uint64_t{1} << 62, 4}, 0, 0, 0),  // zero elements, but absurd sizes
            "x.gguf: tensor 'w' has ne [0, 4611686018427387904, 4]: the element count overflows "
            "64 bits");
  EXPECT_EQ(one({uint64_t{1} << 62}, 0, 0, 0),
            "x.gguf: tensor 'w' (f32, ne [4611686018427387904]) has a byte size that overflows 64 "
            "bits");
  EXPECT_EQ(one({8}, 0, ~uint64_t{31}, 0),
            "x.gguf: tensor 'w': offset 18446744073709551584 + 32 bytes overflows 64 bits");
  EXPECT_EQ(one({8}, 0, 0, 32), "(no error)");
  // Zero-size tensors take no bytes and overlap nothing.
  EXPECT_EQ(one({0, 4}, 8, 0, 0), "(no error)");

  const auto two = [](uint64_t offset_b, const std::string& name_b) {
    return parse_error(one_tensor_file(
        kNoKvs, 0,
        [&](Bytes& b) {
          b.tensor("a", {16}, 0, 0);
          b.tensor(name_b, {16}, 0, offset_b);
        },
        2, 256));
  };
  EXPECT_EQ(two(64, "b"), "(no error)");
  EXPECT_EQ(two(32, "b"),
            "x.gguf: tensors 'a' (data bytes 0..64) and 'b' (data bytes 32..96) overlap");
  EXPECT_EQ(two(0, "b"),
            "x.gguf: tensors 'a' (data bytes 0..64) and 'b' (data bytes 0..64) overlap");
  EXPECT_EQ(two(64, "a"), "x.gguf: tensor name 'a' appears twice (tensors 0 and 1)");
}

TEST(Gguf, CountsAreBoundedByTheFileSizeBeforeAllocating) {
  const std::string pad(100, '\0');
  EXPECT_EQ(parse_error(Bytes().header(3, uint64_t{1} << 40, 0).raw(pad).bytes()),
            "x.gguf: tensor_count is 1099511627776, but the 100 bytes after the header hold at "
            "most 4 tensor infos");
  EXPECT_EQ(parse_error(Bytes().header(3, 0, ~uint64_t{0}).raw(pad).bytes()),
            "x.gguf: metadata_kv_count is 18446744073709551615, but the 100 bytes after the header "
            "hold at most 7 key-value pairs");
  EXPECT_EQ(parse_error(Bytes().header(3, 4, 7).raw(pad).bytes()),
            "x.gguf: tensor_count 4 and metadata_kv_count 7 need at least 187 bytes after the "
            "header, the file has 100");
  EXPECT_EQ(error_of([] {
              GgufFile::open("/nonexistent-dir/m.gguf");
            }).rfind("/nonexistent-dir/m.gguf: cannot open", 0),
            0u);
  EXPECT_EQ(parse_error(""), "x.gguf: truncated at byte 0 reading magic: needs 4 bytes, 0 left");
}

std::vector<GgufKv> every_kind_kvs() {
  std::vector<GgufKv> w;
  w.push_back({"general.architecture", GgufValue::string("olmoe")});
  w.push_back({"general.alignment", GgufValue::u32(64)});
  w.push_back({"a.u8", GgufValue::u8(1)});
  w.push_back({"a.i8", GgufValue::i8(-2)});
  w.push_back({"a.u16", GgufValue::u16(3)});
  w.push_back({"a.i16", GgufValue::i16(-4)});
  w.push_back({"a.u32", GgufValue::u32(5)});
  w.push_back({"a.i32", GgufValue::i32(-6)});
  w.push_back({"a.f32", GgufValue::f32(7.5f)});
  w.push_back({"a.bool", GgufValue::boolean(false)});
  w.push_back({"a.str", GgufValue::string(kUtf8)});
  w.push_back({"a.u64", GgufValue::u64(~uint64_t{0})});
  w.push_back({"a.i64", GgufValue::i64(std::numeric_limits<int64_t>::min())});
  w.push_back({"a.f64", GgufValue::f64(-1e300)});
  w.push_back({"a.tokens", GgufValue::strings({"a", "bb", kUtf8})});
  w.push_back({"a.scores", GgufValue::f32s({1.0f, -2.0f})});
  w.push_back({"a.types", GgufValue::i32s({1, 2, 3})});
  w.push_back({"a.nested",
               GgufValue::array(VT::kArray, {GgufValue::strings({"x"}), GgufValue::strings({})})});
  return w;
}

TEST(Gguf, WriterRoundTripsEveryKindOfValueAndTensor) {
  GgufWriter w;
  for (const GgufKv& kv : every_kind_kvs()) w.add_kv(kv.key, kv.value);
  Tensor f32 = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  w.add_tensor("f32", f32);
  w.add_tensor("f16", f32.to(DType::F16));
  w.add_tensor("bf16", f32.to(DType::BF16).reshape({3, 2}));
  Tensor ids = Tensor::zeros({5}, DType::I32);
  for (int i = 0; i < 5; ++i) ids.mutable_data<int32_t>()[i] = i - 2;
  w.add_tensor("ids", ids);
  std::string q4k(2 * 144, '\0');
  for (size_t i = 0; i < q4k.size(); ++i) q4k[i] = static_cast<char>(i * 13);
  w.add_tensor("q4k", GgmlType::kQ4_K, {256, 2}, q4k);
  w.add_tensor("empty", GgmlType::kQ8_0, {0, 3}, std::string_view());

  const std::string path = ::testing::TempDir() + "/sy_gguf_writer.gguf";
  w.write(path);
  EXPECT_EQ(read_file(path), w.to_bytes());
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  const std::vector<GgufKv> kvs = every_kind_kvs();
  ASSERT_EQ(f.kvs().size(), kvs.size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    EXPECT_EQ(f.kvs()[i].key, kvs[i].key);
    EXPECT_TRUE(f.kvs()[i].value == kvs[i].value)
        << kvs[i].key << ": " << f.kvs()[i].value.describe();
  }
  EXPECT_EQ(f.get("a.nested"),
            GgufValue::array(VT::kArray, {GgufValue::strings({"x"}), GgufValue::strings({})}));
  EXPECT_EQ(f.get("a.u64").as_u64(), ~uint64_t{0});
  EXPECT_EQ(f.get("a.i64").as_i64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_f64("a.f64"), -1e300);
  EXPECT_EQ(f.get_strings("a.tokens"), (std::vector<std::string>{"a", "bb", kUtf8}));
  EXPECT_EQ(f.get_i32s("a.types"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(f.get("a.i8"), GgufValue::i8(-2));
  EXPECT_FALSE(f.get("a.i8") == GgufValue::u8(254));

  ASSERT_EQ(f.tensors().size(), 6u);
  for (const GgufTensorInfo& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  EXPECT_EQ(f.tensor_info("f32").ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(f.tensor_info("bf16").ne, (std::vector<int64_t>{2, 3}));
  for (const char* name : {"f32", "f16", "bf16"}) {
    const Tensor t = f.tensor(name);
    EXPECT_EQ(t.numel(), 6) << name;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(t.to_f32().data<float>()[i], i + 1.0f) << name;
  }
  EXPECT_EQ(f.tensor("f32").shape(), (Shape{2, 3}));
  EXPECT_EQ(f.tensor("bf16").shape(), (Shape{3, 2}));
  EXPECT_EQ(f.tensor("ids").data<int32_t>()[4], 2);
  const Tensor q = f.raw("q4k");
  ASSERT_EQ(q.nbytes(), q4k.size());
  EXPECT_EQ(std::memcmp(q.bytes(), q4k.data(), q4k.size()), 0);
  EXPECT_EQ(f.tensor_info("empty").nbytes, 0u);
  std::filesystem::remove(path);
}

TEST(Gguf, WriterMatchesTheHandBuiltBytes) {
  // The same content through GgufWriter gives the hand-built bytes plus padding after the end.
  const HandFile h = hand_built(64);
  const GgufFile f = GgufFile::parse(h.bytes, "hand.gguf");
  GgufWriter w;
  for (const GgufKv& kv : f.kvs()) w.add_kv(kv.key, kv.value);
  for (const GgufTensorInfo& t : f.tensors()) w.add_tensor(t.name, t.type, t.ne, f.raw(t));
  const std::string out = w.to_bytes();
  ASSERT_GE(out.size(), h.bytes.size());
  EXPECT_EQ(out.substr(0, h.bytes.size()), h.bytes);
  EXPECT_EQ(out.substr(h.bytes.size()), std::string(out.size() - h.bytes.size(), '\0'));
  EXPECT_EQ(out.size() % 64, 0u);
}

TEST(Gguf, WriterRejectsInconsistentInput) {
  GgufWriter w;
  w.add_kv("k", GgufValue::u8(1));
  EXPECT_EQ(error_of([&] { w.add_kv("k", GgufValue::u8(2)); }), "gguf writer: key 'k' added twice");
  EXPECT_EQ(error_of([&] { w.add_kv("general.alignment", GgufValue::u64(64)); }),
            "gguf writer: key 'general.alignment' is u64 64, expected u32");
  EXPECT_EQ(error_of([&] { w.add_kv("general.alignment", GgufValue::u32(4)); }),
            "gguf writer: key 'general.alignment' is 4, expected a nonzero multiple of 8");
  w.add_tensor("t", GgmlType::kF32, {2}, std::string(8, '\0'));
  EXPECT_EQ(error_of([&] { w.add_tensor("t", GgmlType::kF32, {2}, std::string(8, '\0')); }),
            "gguf writer: tensor 't' added twice");
  EXPECT_EQ(error_of([&] {
              w.add_tensor("u", GgmlType::kQ8_0, {32, 2}, std::string(60, '\0'));
            }),
            "gguf writer: tensor 'u' (q8_0 ne [32, 2]) has 60 bytes, expected 68");
  EXPECT_EQ(error_of([&] { w.add_tensor("u", GgmlType::kQ8_0, {16}, std::string(17, '\0')); }),
            "gguf writer: tensor 'u' (q8_0) has ne[0] = 16, expected a multiple of the block size "
            "32");
  EXPECT_EQ(error_of([&] {
              w.add_tensor("u", GgmlType::kF32, {1, 1, 1, 1, 1}, "abcd");
            }),
            "gguf writer: tensor 'u' has 5 dims ne [1, 1, 1, 1, 1], expected at most 4");
  EXPECT_EQ(error_of([&] { w.add_tensor("u", Tensor::zeros({2}, DType::U8)); }),
            "gguf writer: tensor 'u' has dtype u8, expected f32, f16, bf16, i32 or i64");
}

// Writes `prefix`-0000i-of-0000n.gguf parts; `edit(i, writer)` may change part i.
std::vector<std::string> write_split(const std::string& prefix, int n, int tensors_count,
                                     const std::function<void(int, GgufWriter&)>& edit) {
  std::vector<std::string> paths;
  for (int i = 0; i < n; ++i) {
    GgufWriter w;
    if (i == 0) w.add_kv("general.architecture", GgufValue::string("deepseek2"));
    w.add_kv("split.no", GgufValue::u16(static_cast<uint16_t>(i)));
    w.add_kv("split.count", GgufValue::u16(static_cast<uint16_t>(n)));
    w.add_kv("split.tensors.count", GgufValue::i32(tensors_count));
    // Part i holds tensors "t<i>.a" and, after the first, "t<i>.b".
    w.add_tensor(fmt::format("t{}.a", i), Tensor::from_f32({2}, {1.0f * i, 2.0f * i}));
    if (i > 0) w.add_tensor(fmt::format("t{}.b", i), Tensor::from_f32({1}, {-1.0f * i}));
    if (edit) edit(i, w);
    paths.push_back(fmt::format("{}-{:05d}-of-{:05d}.gguf", prefix, i + 1, n));
    w.write(paths.back());
  }
  return paths;
}

TEST(Gguf, SplitSetsMergeTheirPartsAndNameWhatIsWrong) {
  const std::string dir = ::testing::TempDir() + "/sy_gguf_split";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string prefix = dir + "/m";
  std::vector<std::string> paths = write_split(prefix, 3, 5, nullptr);
  const GgufSet set = GgufSet::open(paths[0]);
  EXPECT_EQ(set.parts().size(), 3u);
  EXPECT_EQ(set.meta().get_string("general.architecture"), "deepseek2");
  ASSERT_EQ(set.tensor_count(), 5u);
  std::vector<std::string> names;
  for (const auto& [part, info] : set.tensors())
    names.push_back(fmt::format("{}:{}", part, info->name));
  EXPECT_EQ(names, (std::vector<std::string>{"0:t0.a", "1:t1.a", "1:t1.b", "2:t2.a", "2:t2.b"}));
  EXPECT_EQ(set.tensor("t2.a").data<float>()[1], 4.0f);
  EXPECT_EQ(set.tensor("t1.b").data<float>()[0], -1.0f);
  EXPECT_EQ(set.raw("t1.a").nbytes(), 8u);
  EXPECT_EQ(set.tensor_info("t2.b").ne, std::vector<int64_t>{1});
  EXPECT_EQ(set.find_tensor("t9"), nullptr);
  EXPECT_EQ(error_of([&] { set.tensor("t9"); }),
            paths[0] + ": no tensor named 't9' (5 tensors in 3 part(s))");

  EXPECT_EQ(error_of([&] { GgufSet::open(paths[1]); }),
            paths[1] +
                ": this is part 2 of 3 of a split model (split.no = 1); open the first "
                "part, whose name ends in -00001-of-00003.gguf");
  const std::string renamed = dir + "/renamed.gguf";
  std::filesystem::copy_file(paths[0], renamed);
  EXPECT_EQ(error_of([&] { GgufSet::open(renamed); }),
            renamed +
                ": key 'split.count' is 3, but the file name does not end in "
                "-00001-of-00003.gguf");
  std::filesystem::remove(paths[2]);
  EXPECT_EQ(error_of([&] { GgufSet::open(paths[0]); }),
            paths[2] + ": part 3 of 3 of the split model '" + paths[0] + "' is missing");

  write_split(prefix, 3, 6, nullptr);
  EXPECT_EQ(error_of([&] { GgufSet::open(paths[0]); }),
            paths[0] + ": key 'split.tensors.count' is 6, but the 3 part(s) hold 5 tensors");
  write_split(prefix, 3, 5, [](int i, GgufWriter& w) {
    if (i == 2) w.add_tensor("t1.b", Tensor::from_f32({1}, {0.0f}));
  });
  EXPECT_EQ(error_of([&] { GgufSet::open(paths[0]); }),
            paths[2] + ": tensor 't1.b' is also in '" + paths[1] + "'");
  // A part whose own split keys disagree with the first part.
  write_split(prefix, 3, 5, nullptr);
  {
    GgufWriter w;
    w.add_kv("split.no", GgufValue::u16(1));
    w.add_kv("split.count", GgufValue::u16(4));
    w.write(paths[1]);
  }
  EXPECT_EQ(error_of([&] { GgufSet::open(paths[0]); }),
            paths[1] + ": key 'split.count' is 4, expected 3 as in '" + paths[0] + "'");
  {
    GgufWriter w;
    w.add_kv("split.no", GgufValue::u16(2));
    w.add_kv("split.count", GgufValue::u16(3));
    w.write(paths[1]);
  }
  EXPECT_EQ(error_of([&] { GgufSet::open(paths[0]); }),
            paths[1] + ": key 'split.no' is 2, expected 1");

  // A file that is not split is a set of one.
  GgufWriter w;
  w.add_tensor("only", Tensor::from_f32({1}, {3.0f}));
  w.write(dir + "/single.gguf");
  const GgufSet single = GgufSet::open(dir + "/single.gguf");
  EXPECT_EQ(single.parts().size(), 1u);
  EXPECT_EQ(single.tensor("only").data<float>()[0], 3.0f);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sy::io
