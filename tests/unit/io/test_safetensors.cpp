#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/temp_dir.h"
#include "support/tensor_testing.h"

namespace sy::io {
namespace {

namespace fs = std::filesystem;

using ::sy::test::error_of;

// A file as the format describes it: u64 LE header length, header, data.
std::string file_of(const std::string& header, const std::string& data = "") {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return out + header + data;
}

// Parses a hand-built file from memory; `name` is what messages call it.
SafetensorsFile parse_file(const std::string& header, const std::string& data = "") {
  return SafetensorsFile::parse(file_of(header, data), "t.safetensors");
}
std::string parse_error(const std::string& header, const std::string& data = "") {
  return error_of([&] { parse_file(header, data); });
}

std::string bytes_of(const std::vector<float>& values) {
  return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)};
}

std::string bytes_of(const Tensor& t) {
  return t.nbytes() == 0 ? std::string()
                         : std::string(reinterpret_cast<const char*>(t.bytes()), t.nbytes());
}

// A fresh empty folder under the test temp dir.
std::string temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("sy_safetensors_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

TEST(Safetensors, RoundTripsEveryDtypeAndShapeAsZeroCopyAlignedViews) {
  const std::string dir = temp_dir("roundtrip");
  const std::string path = dir + "/a.safetensors";
  Rng rng(3);
  NamedTensors tensors;
  int k = 0;
  for (const Shape& shape : std::vector<Shape>{{3, 4}, {5}, {}, {0}, {2, 0, 3}, {1, 1, 1, 7}}) {
    const Tensor f = test::random_normal(shape, rng);
    tensors.emplace_back("f32." + std::to_string(k), f);
    tensors.emplace_back("f16." + std::to_string(k), f.to(DType::F16));
    tensors.emplace_back("bf16." + std::to_string(k), f.to(DType::BF16));
    ++k;
  }
  Tensor ids = Tensor::zeros({3}, DType::I64);
  ids.mutable_data<int64_t>()[2] = -5;
  tensors.emplace_back("ids", ids);
  tensors.emplace_back("mask", Tensor::zeros({2, 3}, DType::U8));
  tensors.emplace_back("pos", Tensor::zeros({1}, DType::I32));
  write_safetensors(path, tensors, {{"format", "pt"}, {"step", "12"}});
  // Streamed piece by piece, the file holds exactly the bytes built in memory.
  EXPECT_EQ(read_file(path), serialize_safetensors(tensors, {{"format", "pt"}, {"step", "12"}}));

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}}));
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const Tensor back = file.tensor(name);
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_EQ(back.shape(), t.shape());
    EXPECT_EQ(bytes_of(back), bytes_of(t));
    EXPECT_EQ(back.storage(), file.storage());  // a view of the mapping, not a copy
    EXPECT_TRUE(back.storage()->is_mapped());
    EXPECT_EQ(file.info(name).file_offset % dtype_size(t.dtype()), 0u);
  }
  EXPECT_EQ(file.tensor("ids").data<int64_t>()[2], -5);
  EXPECT_THROW(file.tensor("f32.0").mutable_bytes(), Error);  // read-only mapping
}

TEST(Safetensors, ReadsAHandBuiltFile) {
  // Pretty-printed JSON, entries in no particular order, trailing spaces, a scalar, an empty
  // tensor sharing an offset, and a dtype we list but do not load.
  const std::string header = R"({
  "b": {"data_offsets": [8, 16], "shape": [2], "dtype": "F32"},
  "__metadata__": {"format": "pt", "note": "caf\u00e9"},
  "scalar": {"dtype": "BF16", "shape": [], "data_offsets": [16, 18]},
  "a": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},
  "empty": {"dtype": "F16", "shape": [4, 0], "data_offsets": [8, 8]},
  "q": {"dtype": "I8", "shape": [2], "data_offsets": [18, 20]}
}   )";
  const std::string data = bytes_of({1.5f, -2.0f, 3.0f, 4.25f}) + std::string("\x80\x3f", 2) +
                           std::string("\x7f\x80", 2);
  const SafetensorsFile f = parse_file(header, data);
  EXPECT_EQ(f.header_bytes(), header.size());
  EXPECT_EQ(f.data_offset(), 8 + header.size());
  EXPECT_EQ(f.file_size(), 8 + header.size() + 20);
  EXPECT_EQ(f.metadata().at("note"), "caf\xc3\xa9");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "empty", "b", "scalar", "q"}));

  const Tensor a = f.tensor("a");
  EXPECT_EQ(a.shape(), (Shape{1, 2}));
  EXPECT_EQ(a.data<float>()[0], 1.5f);
  EXPECT_EQ(a.data<float>()[1], -2.0f);
  EXPECT_EQ(f.tensor("b").data<float>()[1], 4.25f);
  const Tensor s = f.tensor("scalar");
  EXPECT_EQ(s.dtype(), DType::BF16);
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.to_f32().data<float>()[0], 1.0f);
  EXPECT_EQ(f.tensor("empty").shape(), (Shape{4, 0}));
  EXPECT_EQ(f.tensor("empty").numel(), 0);

  const SafetensorsTensorInfo& q = f.info("q");
  EXPECT_EQ(q.dtype_name, "I8");
  EXPECT_FALSE(q.dtype.has_value());
  EXPECT_EQ(q.begin, 18u);
  EXPECT_EQ(q.end, 20u);
  EXPECT_EQ(q.file_offset, 8 + header.size() + 18);
  EXPECT_EQ(error_of([&] { f.tensor("q"); }),
            "t.safetensors: tensor 'q' has dtype I8, which switchyard does not load (it loads F32, "
            "F16, BF16, I32, I64 and U8; raw() gives the bytes)");
  const Tensor raw = f.raw("q");
  EXPECT_EQ(raw.dtype(), DType::U8);
  EXPECT_EQ(bytes_of(raw), std::string("\x7f\x80", 2));
  EXPECT_EQ(error_of([&] { f.tensor("nope"); }), "t.safetensors: no tensor 'nope'");
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Safetensors, MisalignedDataIsCopiedAlignedDataIsViewed) {
  // Header of 9 bytes: the data section starts at byte 17, so an F32 at offset 0 is misaligned.
  const std::string odd = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} )";
  ASSERT_EQ(odd.size() % 4, 3u);
  const SafetensorsFile f = parse_file(odd, bytes_of({7.0f, -1.0f}));
  const Tensor x = f.tensor("x");
  EXPECT_NE(x.storage(), f.storage());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.bytes()) % 4, 0u);
  EXPECT_EQ(x.data<float>()[0], 7.0f);
  EXPECT_EQ(x.data<float>()[1], -1.0f);
  const SafetensorsFile g = parse_file(odd + " ", bytes_of({7.0f, -1.0f}));
  EXPECT_EQ(g.tensor("x").storage(), g.storage());
}

TEST(Safetensors, WritesTheBytesTheHfLibraryWrites) {
  // The HF library's own serialization tests: compact JSON, header padded to 8 with spaces.
  const std::string v = bytes_of({0, 1, 2, 3, 4, 5});
  const Tensor attn = Tensor::from_f32({1, 2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(serialize_safetensors({{"attn.0", attn}}),
            std::string("\x40\0\0\0\0\0\0\0", 8) +
                R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})" + v);
  EXPECT_EQ(serialize_safetensors({{"attn0", attn.reshape({1, 1, 2, 3})}}),
            std::string("\x48\0\0\0\0\0\0\0", 8) +
                R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )" + v);
  EXPECT_EQ(serialize_safetensors({}), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  EXPECT_EQ(serialize_safetensors({}, {{"framework", "pt"}}),
            std::string("\x28\0\0\0\0\0\0\0", 8) + R"({"__metadata__":{"framework":"pt"}}     )");

  // Order: by dtype, largest alignment first (I64, F32, I32, BF16, F16, U8), then by name.
  Tensor u8 = Tensor::zeros({3}, DType::U8);
  u8.mutable_data<uint8_t>()[0] = 9;
  const Tensor bf = Tensor::from_f32({1}, {1.0f}).to(DType::BF16);
  const Tensor hf = Tensor::from_f32({}, {2.0f}).to(DType::F16);
  const Tensor i64 = Tensor::zeros({1}, DType::I64);
  const std::string got = serialize_safetensors({{"c", u8},
                                                 {"b", Tensor::from_f32({1}, {1.0f})},
                                                 {"h", hf},
                                                 {"a", Tensor::from_f32({2}, {3.0f, 4.0f})},
                                                 {"z", bf},
                                                 {"l", i64}});
  const std::string header = R"({"l":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},)"
                             R"("z":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]},)"
                             R"("h":{"dtype":"F16","shape":[],"data_offsets":[22,24]},)"
                             R"("c":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}})";
  ASSERT_EQ(header.size(), 327u);  // padded with 1 space to 328 = 0x148
  const std::string data = std::string(8, '\0') + bytes_of({3.0f, 4.0f, 1.0f}) +
                           std::string("\x80\x3f\x00\x40\x09\x00\x00", 7);
  EXPECT_EQ(got, std::string("\x48\x01\0\0\0\0\0\0", 8) + header + " " + data);
}

TEST(Safetensors, ShardedFolderRoundTripAndResave) {
  const std::string dir = temp_dir("sharded");
  Rng rng(5);
  NamedTensors tensors;
  for (int i = 0; i < 5; ++i) {
    tensors.emplace_back("model.layers." + std::to_string(i) + ".w",
                         test::random_normal({4, 8}, rng));  // 128 bytes each
  }
  tensors.emplace_back("big", test::random_normal({100}, rng));  // 400 bytes: a shard of its own
  const auto written = write_safetensors_sharded(dir, tensors, {{"format", "pt"}},
                                                 {.max_shard_bytes = 300, .prefix = "model"});
  // 128+128 | 128+128 | 128 (next would overflow) | 400
  const std::vector<std::string> expected = {
      dir + "/model-00001-of-00004.safetensors", dir + "/model-00002-of-00004.safetensors",
      dir + "/model-00003-of-00004.safetensors", dir + "/model-00004-of-00004.safetensors",
      dir + "/model.safetensors.index.json"};
  EXPECT_EQ(written, expected);
  const auto index = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 5 * 128 + 400);
  EXPECT_EQ(index["weight_map"]["model.layers.2.w"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00004-of-00004.safetensors");

  for (const std::string& path : {dir, dir + "/model.safetensors.index.json"}) {
    const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(path);
    EXPECT_EQ(c.index_path(), dir + "/model.safetensors.index.json");
    EXPECT_EQ(c.files().size(), 4u);
    EXPECT_EQ(c.size(), tensors.size());
    EXPECT_EQ(c.metadata().at("total_size"), "1040");
    EXPECT_EQ(c.names().front(), "big");
    EXPECT_EQ(c.file_of("model.layers.4.w").name(), dir + "/model-00003-of-00004.safetensors");
    EXPECT_EQ(c.file_of("big").metadata().at("format"), "pt");
    for (const auto& [name, t] : tensors) EXPECT_EQ(bytes_of(c.tensor(name)), bytes_of(t)) << name;
    EXPECT_EQ(c.info("big").shape, (Shape{100}));
    EXPECT_EQ(error_of([&] { c.tensor("nope"); }), path + ": no tensor 'nope'");
  }

  // Saving again in one file removes the shards and the index of the earlier save.
  fs::copy_file(dir + "/model-00001-of-00004.safetensors",
                dir + "/other-00001-of-00004.safetensors");
  EXPECT_EQ(write_safetensors_sharded(dir, tensors, {}, {}),
            std::vector<std::string>{dir + "/model.safetensors"});
  EXPECT_EQ(test::file_names(dir),
            (std::vector<std::string>{"model.safetensors", "other-00001-of-00004.safetensors"}));
  const SafetensorsCheckpoint single = SafetensorsCheckpoint::open(dir);
  EXPECT_EQ(single.index_path(), "");
  EXPECT_EQ(single.size(), tensors.size());
  EXPECT_EQ(bytes_of(single.tensor("big")), bytes_of(tensors.back().second));
}

TEST(Safetensors, TruncatedHeaderLengthAndHeaderBounds) {
  for (size_t n = 0; n < 8; ++n) {
    EXPECT_EQ(
        error_of([&] { SafetensorsFile::parse(std::string(n, '\0'), "t.safetensors"); }),
        fmt::format("t.safetensors: file is {} bytes, too short for the 8-byte header length", n));
  }
  EXPECT_EQ(error_of([] {
              SafetensorsFile::parse(std::string("\x01\xe1\xf5\x05\0\0\0\0{}", 10),
                                     "t.safetensors");
            }),
            "t.safetensors: header length is 100000001 bytes, more than the limit of 100000000");
  EXPECT_EQ(error_of([] {
              SafetensorsFile::parse(std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8), "x");
            }),
            "x: header length is 18446744073709551615 bytes, more than the limit of 100000000");
  EXPECT_EQ(error_of([] {
              SafetensorsFile::parse(std::string("\x10\0\0\0\0\0\0\0{}", 10), "t.safetensors");
            }),
            "t.safetensors: header of 16 bytes ends at byte 24, file has 10 bytes");
  EXPECT_EQ(parse_error(""),
            "t.safetensors: header starts with nothing (length 0), expected a JSON object "
            "starting with '{'");
  EXPECT_EQ(parse_error(" {}"),
            "t.safetensors: header starts with byte 0x20, expected a JSON object starting with "
            "'{'");
  // Every proper prefix of a valid file is rejected with an error, never a crash.
  const std::string whole = serialize_safetensors(
      {{"a", Tensor::from_f32({2}, {1, 2})}, {"b", Tensor::zeros({3}, DType::F16)}});
  EXPECT_NO_THROW(SafetensorsFile::parse(whole, "t.safetensors"));
  for (size_t n = 0; n < whole.size(); ++n) {
    EXPECT_THROW(SafetensorsFile::parse(whole.substr(0, n), "t.safetensors"), Error) << n;
  }
  EXPECT_EQ(error_of([&] { SafetensorsFile::parse(whole.substr(0, whole.size() - 1), "t"); }),
            "t: tensor 'b': data ends at byte 14 of the data section, which has 13 bytes");
}

TEST(Safetensors, BadJsonAndBadMetadata) {
  const std::string bad = parse_error(R"({"a": )");
  EXPECT_EQ(bad.rfind("t.safetensors: header is not valid JSON: ", 0), 0u) << bad;
  EXPECT_EQ(parse_error("{} x").rfind("t.safetensors: header is not valid JSON: ", 0), 0u);
  // Padding is spaces; anything else after the object is not JSON.
  EXPECT_EQ(
      parse_error(std::string("{}\0  ", 5)).rfind("t.safetensors: header is not valid JSON", 0),
      0u);
  EXPECT_NO_THROW(parse_file("{} \n\t "));
  EXPECT_EQ(
      parse_error(std::string("{\"\xff\":1}")).rfind("t.safetensors: header is not valid JSON", 0),
      0u);
  EXPECT_EQ(parse_error(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{}})", "abcd"),
            "t.safetensors: header has the key 'a' twice, expected unique keys");
  EXPECT_EQ(parse_error(R"({"__metadata__":{"k":"1","k":"2"}})"),
            "t.safetensors: header has the key 'k' twice, expected unique keys");
  EXPECT_EQ(parse_error(R"({"__metadata__":[1]})"),
            "t.safetensors: '__metadata__' is array [1], expected an object of strings");
  EXPECT_EQ(parse_error(R"({"__metadata__":{"step":12}})"),
            "t.safetensors: '__metadata__' value of 'step' is number 12, expected a string");
  EXPECT_TRUE(parse_file(R"({"__metadata__":null})").metadata().empty());
}

TEST(Safetensors, BadTensorEntries) {
  const auto entry = [](const std::string& body, const std::string& data = "") {
    return parse_error(R"({"w":)" + body + "}", data);
  };
  EXPECT_EQ(entry("7"),
            "t.safetensors: tensor 'w' is number 7, expected an object with dtype, shape and "
            "data_offsets");
  EXPECT_EQ(entry(R"({"shape":[],"data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w' has no 'dtype'");
  EXPECT_EQ(entry(R"({"dtype":"F32","data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w' has no 'shape'");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[]})"),
            "t.safetensors: tensor 'w' has no 'data_offsets'");
  EXPECT_EQ(entry(R"({"dtype":4,"shape":[],"data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w': 'dtype' is number 4, expected a string");
  EXPECT_EQ(entry(R"({"dtype":"F7","shape":[],"data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w': dtype 'F7' is unknown, expected one of BOOL F4 F6_E2M3 "
            "F6_E3M2 U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 F8_E4M3FNUZ F8_E5M2FNUZ I16 U16 F16 BF16 I32 "
            "U32 F32 C64 F64 I64 U64");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":"2","data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w': 'shape' is string \"2\", expected an array of "
            "non-negative integers");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w': shape[1] is number -3, expected a non-negative 64-bit "
            "integer");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w': shape[0] is number 1.0, expected a non-negative 64-bit "
            "integer");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]})"),
            "t.safetensors: tensor 'w': shape[0] is number 9223372036854775808, expected a "
            "non-negative 64-bit integer");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})"),
            "t.safetensors: tensor 'w': shape [4294967296, 4294967296] has more elements than "
            "fit in 64 bits");
  EXPECT_EQ(entry(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]})"),
            "t.safetensors: tensor 'w': shape [4611686018427387904] of F64 has more bytes than "
            "fit in 64 bits");
  EXPECT_EQ(entry(R"({"dtype":"F4","shape":[3],"data_offsets":[0,1]})"),
            "t.safetensors: tensor 'w': shape [3] of F4 is 12 bits, not a whole number of bytes");
  EXPECT_EQ(parse_file(R"({"w":{"dtype":"F4","shape":[2,3],"data_offsets":[0,3]}})", "abc")
                .info("w")
                .nbytes(),
            3u);
  for (const std::string offsets : {"[0]", "[0,4,8]", "[-1,4]", "[0,4.5]", "{}", "null"}) {
    const std::string got =
        entry(R"({"dtype":"F32","shape":[1],"data_offsets":)" + offsets + "}", "abcd");
    EXPECT_EQ(got.rfind("t.safetensors: tensor 'w': 'data_offsets' is ", 0), 0u) << got;
    EXPECT_NE(got.find(", expected [begin, end] of non-negative integers"), std::string::npos);
  }
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})"),
            "t.safetensors: tensor 'w': 'data_offsets' is array [0,4,8], expected [begin, end] of "
            "non-negative integers");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})", "abcdefgh"),
            "t.safetensors: tensor 'w': data_offsets [8, 4] end before they begin");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})", std::string(20, 'x')),
            "t.safetensors: tensor 'w': shape [2, 3] of F32 needs 24 bytes, data_offsets [0, 20] "
            "hold 20");
  EXPECT_EQ(entry(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", std::string(8, 'x')),
            "t.safetensors: tensor 'w': data ends at byte 12 of the data section, which has 8 "
            "bytes");
  EXPECT_EQ(
      entry(
          R"({"dtype":"F32","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]})"),
      "t.safetensors: tensor 'w': data ends at byte 18446744073709551615 of the data "
      "section, which has 0 bytes");
}

TEST(Safetensors, DataSectionMustBeTiledWithoutOverlapsOrHoles) {
  const std::string two = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[%B]}})";
  const auto with_b = [&](const std::string& b, size_t data) {
    std::string h = two;
    h.replace(h.find("%B"), 2, b);
    return parse_error(h, std::string(data, 'x'));
  };
  EXPECT_EQ(with_b("2,6", 6),
            "t.safetensors: tensors 'a' (bytes [0, 4)) and 'b' (bytes [2, 6)) overlap");
  EXPECT_EQ(with_b("0,4", 4),
            "t.safetensors: tensors 'a' (bytes [0, 4)) and 'b' (bytes [0, 4)) overlap");
  EXPECT_EQ(with_b("6,10", 10),
            "t.safetensors: bytes [4, 6) of the data section belong to no tensor (holes are not "
            "allowed)");
  EXPECT_EQ(with_b("4,8", 9),
            "t.safetensors: bytes [8, 9) of the data section belong to no tensor (holes are not "
            "allowed)");
  EXPECT_EQ(parse_error(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})", "xyz"),
            "t.safetensors: bytes [0, 1) of the data section belong to no tensor (holes are not "
            "allowed)");
  EXPECT_EQ(parse_error("{}", "x"),
            "t.safetensors: bytes [0, 1) of the data section belong to no tensor (holes are not "
            "allowed)");
  // An empty tensor inside another one's bytes overlaps it; one at a boundary does not.
  EXPECT_EQ(parse_error(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                        R"("e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
                        "abcd"),
            "t.safetensors: tensors 'a' (bytes [0, 4)) and 'e' (bytes [2, 2)) overlap");
  EXPECT_NO_THROW(parse_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("e":{"dtype":"U8","shape":[0],"data_offsets":[4,4]},)"
                             R"("f":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})",
                             "abcd"));
  EXPECT_NO_THROW(parse_file("{}"));
}

// Writes a checkpoint folder by hand: shards from `shards` (file -> tensors), index from `index`.
void write_folder(const std::string& dir, const std::map<std::string, NamedTensors>& shards,
                  const std::string& index) {
  for (const auto& [file, tensors] : shards) {
    write_safetensors((fs::path(dir) / file).string(), tensors);
  }
  write_file_atomic(dir + "/model.safetensors.index.json", index);
}

TEST(Safetensors, CheckpointErrors) {
  const std::string dir = temp_dir("bad_ckpt");
  const std::string idx = dir + "/model.safetensors.index.json";
  const Tensor t = Tensor::from_f32({1}, {1.0f});
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open(dir + "/none"); }),
            dir + "/none: no such file or folder");
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open(dir); }),
            dir + ": folder has neither model.safetensors nor model.safetensors.index.json");

  const auto open_error = [&](const std::map<std::string, NamedTensors>& shards,
                              const std::string& index) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    write_folder(dir, shards, index);
    return error_of([&] { SafetensorsCheckpoint::open(dir); });
  };
  EXPECT_EQ(open_error({}, "[1]"), idx + " is array [1], expected an object with 'weight_map'");
  EXPECT_EQ(open_error({}, "{").rfind(idx + " is not valid JSON: ", 0), 0u);
  EXPECT_EQ(open_error({}, R"({"metadata":{}})"), idx + " has no 'weight_map'");
  EXPECT_EQ(open_error({}, R"({"weight_map":[]})"),
            idx + ": 'weight_map' is array [], expected an object of file names");
  EXPECT_EQ(open_error({}, R"({"weight_map":{}, "metadata": 3})"),
            idx + ": 'metadata' is number 3, expected an object");
  EXPECT_EQ(open_error({}, R"({"weight_map":{"w":1}})"),
            idx + ": weight_map['w'] is number 1, expected a file name");
  EXPECT_EQ(open_error({}, R"({"weight_map":{"w":"../x.safetensors"}})"),
            idx +
                ": weight_map['w'] is '../x.safetensors', expected a file name inside the "
                "checkpoint folder");
  EXPECT_EQ(open_error({}, R"({"weight_map":{"w":"a","w":"b"}})"),
            idx + " has the key 'w' twice, expected unique keys");
  EXPECT_EQ(open_error({{"a.safetensors", {{"w", t}}}},
                       R"({"weight_map":{"w":"a.safetensors","v":"b.safetensors"}})"),
            idx + ": weight_map puts tensor 'v' in 'b.safetensors', which is missing");
  EXPECT_EQ(open_error({{"a.safetensors", {{"w", t}}}, {"b.safetensors", {{"u", t}}}},
                       R"({"weight_map":{"w":"a.safetensors","v":"b.safetensors"}})"),
            idx + ": 'b.safetensors' holds tensor 'u', which weight_map does not list");
  EXPECT_EQ(open_error({{"a.safetensors", {{"w", t}}}, {"b.safetensors", {{"u", t}}}},
                       R"({"weight_map":{"w":"a.safetensors","u":"b.safetensors",)"
                       R"("v":"b.safetensors"}})"),
            idx + ": weight_map puts tensor 'v' in 'b.safetensors', which has no such tensor");
  EXPECT_EQ(open_error({{"a.safetensors", {{"w", t}}}, {"b.safetensors", {{"w", t}, {"u", t}}}},
                       R"({"weight_map":{"w":"a.safetensors","u":"b.safetensors"}})"),
            idx + ": tensor 'w' is in both 'a.safetensors' and 'b.safetensors'");
  // Shards the weight map does not name are not opened; 'w' is only in one of those.
  EXPECT_EQ(open_error({{"a.safetensors", {{"w", t}}}, {"b.safetensors", {{"u", t}}}},
                       R"({"weight_map":{"w":"b.safetensors","u":"b.safetensors"}})"),
            idx + ": weight_map puts tensor 'w' in 'b.safetensors', which has no such tensor");
  // A broken shard reports its own file.
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_file_atomic(dir + "/a.safetensors", "abc");
  write_file_atomic(idx, R"({"weight_map":{"w":"a.safetensors"}})");
  EXPECT_EQ(error_of([&] { SafetensorsCheckpoint::open(dir); }),
            dir + "/a.safetensors: file is 3 bytes, too short for the 8-byte header length");
}

TEST(Safetensors, WriterErrors) {
  const Tensor t = Tensor::from_f32({1}, {1.0f});
  EXPECT_EQ(error_of([&] {
              serialize_safetensors({{"a", t}, {"a", t}});
            }),
            "safetensors writer: tensor 'a' is given twice");
  EXPECT_EQ(error_of([&] {
              serialize_safetensors({{"__metadata__", t}});
            }),
            "safetensors writer: '__metadata__' cannot name a tensor");
  EXPECT_EQ(error_of([&] {
              serialize_safetensors({{"u", Tensor()}});
            }),
            "safetensors writer: tensor 'u' is undefined");
  EXPECT_EQ(error_of([&] {
              serialize_safetensors({{"\xff", t}});
            }).rfind("safetensors writer: a tensor name or metadata string is not valid UTF-8", 0),
            0u);
  const std::string dir = temp_dir("writer_errors");
  EXPECT_EQ(error_of([&] {
              write_safetensors(dir + "/x.safetensors", {{"a", t}, {"a", t}});
            }),
            dir + "/x.safetensors: tensor 'a' is given twice");
  EXPECT_FALSE(fs::exists(dir + "/x.safetensors"));
  EXPECT_EQ(error_of([&] { write_safetensors_sharded(dir, {}, {}, {.max_shard_bytes = 0}); }),
            dir + ": max_shard_bytes is 0, expected at least 1");
  EXPECT_EQ(error_of([&] { write_safetensors_sharded(dir, {}, {}, {.prefix = "a/b"}); }),
            dir + ": shard prefix 'a/b' is not a plain file name");
}

}  // namespace
}  // namespace sy::io
