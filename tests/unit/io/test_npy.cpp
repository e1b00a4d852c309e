#include <gtest/gtest.h>

#include <filesystem>

#include "io/npy.h"
#include "support/reference.h"
#include "support/tensor_testing.h"

namespace sy::io {
namespace {

using ::sy::test::error_of;

TEST(Npy, RoundTripsEveryDtype) {
  const std::string path = ::testing::TempDir() + "/sy_npy_roundtrip.npy";
  Rng rng(1);
  const Tensor f = test::random_normal({3, 4, 5}, rng);
  for (const Tensor& t :
       {f, f.to(DType::F16), Tensor::zeros({7}, DType::I32), Tensor::zeros({2, 2}, DType::I64),
        Tensor::zeros({5}, DType::U8), Tensor::zeros({0, 3})}) {
    write_npy(path, t);
    const Tensor back = read_npy(path);
    EXPECT_EQ(back.dtype(), t.dtype());
    EXPECT_EQ(back.shape(), t.shape());
    ASSERT_EQ(back.nbytes(), t.nbytes());
    if (t.nbytes() > 0) {  // an empty tensor may have no buffer; memcmp(nullptr, ...) is UB
      EXPECT_EQ(std::memcmp(back.bytes(), t.bytes(), t.nbytes()), 0);
    }
  }
  std::filesystem::remove(path);
}

TEST(Npy, NumpyReadsWhatWeWriteAndWeReadWhatNumpyWrites) {
  // The identity script loads our files with NumPy and saves them back through NumPy.
  Rng rng(2);
  const Tensor x = test::random_normal({4, 3}, rng);
  Tensor ids = Tensor::zeros({5}, DType::I32);
  for (int i = 0; i < 5; ++i) ids.mutable_data<int32_t>()[i] = i * 1000 - 2;
  auto out = test::run_reference("identity", {{"x", x}, {"ids", ids}});
  EXPECT_TRUE(test::all_close(out.at("x"), x, 0.0f, 0.0f));
  ASSERT_EQ(out.at("ids").dtype(), DType::I64);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out.at("ids").data<int64_t>()[i], i * 1000 - 2);
}

TEST(Npy, BadFilesGiveErrorsNamingTheField) {
  EXPECT_EQ(error_of([] { parse_npy("NOTNPY", "a.npy"); }),
            "a.npy: not an npy file (magic bytes missing)");
  const auto make = [](const std::string& dict, size_t payload) {
    std::string header = dict;
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string s = "\x93NUMPY";
    s += '\x01';
    s += '\x00';
    s += static_cast<char>(header.size() & 0xff);
    s += static_cast<char>(header.size() >> 8);
    return s + header + std::string(payload, '\0');
  };
  EXPECT_NE(error_of([&] {
              parse_npy(make("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8),
                        "b.npy");
            }).find("'descr' is '>f4'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              parse_npy(make("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8),
                        "c.npy");
            }).find("fortran_order"),
            std::string::npos);
  const std::string short_payload = error_of([&] {
    parse_npy(make("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 8), "d.npy");
  });
  EXPECT_NE(short_payload.find("d.npy"), std::string::npos) << short_payload;
  EXPECT_NE(short_payload.find("24"), std::string::npos) << short_payload;
  // Truncated anywhere: always a clean error, never a crash.
  const std::string good = make("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_THROW(parse_npy(std::string_view(good).substr(0, n), "t.npy"), Error) << n;
  }
  EXPECT_NO_THROW(parse_npy(good, "t.npy"));
}

}  // namespace
}  // namespace sy::io
