// .npy reading of files written by NumPy, round trips and malformed input.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "tensor/atomic_file.h"
#include "tensor/npy.h"

using namespace scalpel;

static std::string fixture(const std::string& name) { return std::string(SCALPEL_FIXTURES) + "/npy/" + name; }

TEST(Npy, ReadsFilesWrittenByNumpy) {
  Tensor a = load_npy(fixture("f32_2x3.npy"));
  EXPECT_EQ(a.dtype(), DType::F32);
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_DOUBLE_EQ(a.at({1, 2}), 5.0 / 4);
  Tensor b = load_npy(fixture("f64_3.npy"));
  EXPECT_EQ(b.dtype(), DType::F64);
  EXPECT_DOUBLE_EQ(b.at({1}), -2.25);
  EXPECT_DOUBLE_EQ(b.at({2}), 1e-300);
  Tensor c = load_npy(fixture("i64_2x2.npy"));
  EXPECT_EQ(c.data<int64_t>()[3], int64_t(1) << 40);
  Tensor d = load_npy(fixture("u8_4.npy"));
  EXPECT_EQ(d.data<uint8_t>()[3], 255);
  Tensor s = load_npy(fixture("f32_scalar.npy"));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_DOUBLE_EQ(s.item(), 3.5);
  EXPECT_EQ(load_npy(fixture("f32_empty.npy")).shape(), (Shape{0, 3}));
  Tensor v2 = load_npy(fixture("f32_v2.npy"));
  EXPECT_DOUBLE_EQ(v2.at({1, 0}), 3);
}

TEST(Npy, RejectsWhatItCannotRead) {
  EXPECT_THROW(load_npy(fixture("f32_fortran.npy")), Error);
  EXPECT_THROW(load_npy(fixture("f64_bigendian.npy")), Error);
  EXPECT_THROW(load_npy(fixture("missing.npy")), Error);
  try {
    load_npy(fixture("f64_bigendian.npy"));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f64_bigendian.npy"), std::string::npos) << e.what();
  }
}

TEST(Npy, TruncatedAndCorruptInputNeverCrashes) {
  std::string bytes = read_file(fixture("f32_2x3.npy"));
  for (size_t cut = 0; cut < bytes.size(); ++cut) EXPECT_THROW(parse_npy(bytes.substr(0, cut), "cut"), Error) << cut;
  // Flipping any header byte either still parses or throws; it never crashes.
  for (size_t i = 0; i < 128 && i < bytes.size(); ++i) {
    std::string corrupt = bytes;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
    try {
      parse_npy(corrupt, "corrupt");
    } catch (const Error&) {
    }
  }
}

TEST(Npy, RoundTripsEveryDtypeAndViews) {
  const std::string dir = testing::TempDir();
  for (DType t : {DType::F32, DType::F64, DType::I64, DType::U8}) {
    Tensor a = Tensor::arange(0, 12, 1, t).reshape({3, 4});
    Tensor view = a.transpose(0, 1);  // saved in C order
    const std::string path = dir + "/round.npy";
    save_npy(path, view);
    Tensor back = load_npy(path);
    EXPECT_EQ(back.dtype(), t);
    EXPECT_EQ(back.shape(), (Shape{4, 3}));
    EXPECT_EQ(back.to_vector(), view.contiguous().to_vector());
  }
  Tensor big = Tensor::zeros(Shape(40, 1));  // a long shape string still fits a v1 header
  save_npy(dir + "/shape.npy", big);
  EXPECT_EQ(load_npy(dir + "/shape.npy").shape(), big.shape());
  EXPECT_FALSE(std::filesystem::exists(dir + "/shape.npy.tmp." + std::to_string(::getpid())));
}

TEST(Npy, FailedWriteLeavesNoFile) {
  EXPECT_THROW(save_npy("/nonexistent-dir/x.npy", Tensor::zeros({2})), Error);
}
