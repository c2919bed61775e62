#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include "data/image.h"
#include "data_test_util.h"
#include "support/hostile_inputs.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/npy.h"

namespace scalpel::data {
namespace {
using testing::pattern_image;
using testing::TempDir;
using testing::write_text;

TEST(Image, PngAndBmpRoundTripExactly) {
  TempDir dir;
  for (int c : {1, 2, 3, 4}) {
    const Image im = pattern_image(13, 7, c, 3);
    for (const char* ext : {".png", ".bmp"}) {
      if (c == 2 && std::string(ext) == ".bmp") continue;  // BMP has no gray+alpha
      const std::string path = dir / ("im" + std::to_string(c) + ext);
      save_image(path, im);
      const Image back = load_image(path);
      ASSERT_EQ(back.width, 13);
      ASSERT_EQ(back.height, 7);
      // stb writes 1-channel BMP as 24-bit; compare the first channel then.
      if (back.channels == c) {
        EXPECT_EQ(back.pixels, im.pixels) << path;
      } else {
        EXPECT_EQ(convert_channels(back, 1).pixels, im.pixels) << path;
      }
    }
  }
}

TEST(Image, JpegRoundTripIsClose) {
  TempDir dir;
  Image im(16, 16, 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c) im.at(y, x, c) = static_cast<uint8_t>(40 + 8 * x + 4 * y + 10 * c);
  save_image(dir / "a.jpg", im, 100);
  const Image back = load_image(dir / "a.jpg");
  ASSERT_EQ(back.channels, 3);
  double err = 0;
  for (size_t i = 0; i < im.pixels.size(); ++i) err = std::max(err, std::abs(double(im.pixels[i]) - back.pixels[i]));
  EXPECT_LT(err, 8);
}

TEST(Image, Decodes16BitPngKeepingPrecision) {
  const std::string dir = std::string(SCALPEL_FIXTURES) + "/data";
  const Tensor expected = load_npy(dir + "/gray16.npy");  // raw uint16 values as float64
  const ImageF f = load_image_float(dir + "/gray16.png");
  ASSERT_EQ(f.channels, 1);
  ASSERT_EQ(f.height, expected.size(0));
  ASSERT_EQ(f.width, expected.size(1));
  const auto v = expected.to_vector();
  const Image u = load_image(dir + "/gray16.png");
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(f.pixels[i], v[i] * 255.0 / 65535.0, 1e-3);
    EXPECT_EQ(u.pixels[i], static_cast<int>(std::round(v[i] * 255.0 / 65535.0)));
  }
}

TEST(Image, BadFilesThrowNamingTheFile) {
  TempDir dir;
  write_text(dir / "empty.png", "");
  write_text(dir / "text.png", "this is not an image");
  testing::write_image(dir / "good.jpg", pattern_image(32, 32, 3, 1));
  {
    std::ifstream in(dir / "good.jpg", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    write_text(dir / "truncated.jpg", bytes.substr(0, 20));
  }
  for (const char* name : {"empty.png", "text.png", "truncated.jpg", "missing.png"}) {
    try {
      load_image(dir / name);
      FAIL() << name << " decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    ImageInfo info;
    std::string reason;
    EXPECT_FALSE(probe_image(dir / name, info, reason)) << name;
    EXPECT_FALSE(reason.empty());
  }
  ImageInfo info;
  std::string reason;
  ASSERT_TRUE(probe_image(dir / "good.jpg", info, reason)) << reason;
  EXPECT_EQ(info.width, 32);
  EXPECT_EQ(info.channels, 3);
  EXPECT_THROW(save_image(dir / "x.tiff", pattern_image(4, 4, 3, 1)), Error);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Image, ReadsOnlyRegularFiles) {
  // A FIFO would block the reader until a writer comes (forever); /dev/zero and /dev/urandom
  // never end. Each is refused before reading, naming the path.
  TempDir dir;
  const std::string fifo_path = dir / "pipe.png";
  {
    test::FifoTrap fifo(fifo_path, std::chrono::seconds(5));
    const std::string error = error_of([&] { load_image(fifo_path); });
    ASSERT_FALSE(fifo.released_a_reader()) << "load_image blocked on a FIFO; then: " << error;
    EXPECT_EQ(error, "cannot read " + fifo_path + ": not a regular file (a FIFO)");
    ImageInfo info;
    std::string reason;
    EXPECT_FALSE(probe_image(fifo_path, info, reason));
    EXPECT_EQ(reason, "not a regular file (a FIFO)");
    EXPECT_EQ(error_of([&] { read_file(fifo_path); }), "cannot read " + fifo_path + ": not a regular file (a FIFO)");
  }
  for (const char* device : {"/dev/zero", "/dev/urandom"}) {
    EXPECT_EQ(error_of([&] { load_image_float(device); }),
              std::string("cannot read ") + device + ": not a regular file (a character device)");
    ImageInfo info;
    std::string reason;
    EXPECT_FALSE(probe_image(device, info, reason)) << device;
  }
  EXPECT_EQ(error_of([&] { load_image(dir.str()); }), "cannot read " + dir.str() + ": not a regular file (a directory)");
}

TEST(Image, RefusesDeclaredSizeAboveThePixelLimitBeforeDecoding) {
  TempDir dir;
  const std::string bomb = test::png_declaring(20000, 20000);  // 400 MP in ~70 bytes
  testing::write_text(dir / "bomb.png", bomb);
  const std::string expected =
      "image '" + (dir / "bomb.png") + "' declares 20000x20000 = 400000000 pixels, above the limit of 50000000 "
      "(--max-pixels)";
  EXPECT_EQ(max_image_pixels(), kDefaultMaxImagePixels);
  EXPECT_EQ(error_of([&] { load_image(dir / "bomb.png"); }), expected);
  EXPECT_EQ(error_of([&] { load_image_float(dir / "bomb.png"); }), expected);
  EXPECT_TRUE(error_of([&] { decode_image(bomb.data(), bomb.size(), "upload.png"); })
                  .starts_with("image 'upload.png' declares 20000x20000 = 400000000 pixels"));
  ImageInfo info;
  std::string reason;
  EXPECT_FALSE(probe_image(dir / "bomb.png", info, reason));
  EXPECT_EQ(reason, "declares 20000x20000 = 400000000 pixels, above the limit of 50000000 (--max-pixels)");

  // The limit is the caller's: a real 32x32 image passes 1024 and fails 1023.
  testing::write_image(dir / "small.png", pattern_image(32, 32, 3, 1));
  set_max_image_pixels(1024);
  EXPECT_EQ(load_image(dir / "small.png").width, 32);
  EXPECT_TRUE(probe_image(dir / "small.png", info, reason)) << reason;
  set_max_image_pixels(1023);
  EXPECT_NE(error_of([&] { load_image(dir / "small.png"); }).find("declares 32x32 = 1024 pixels"), std::string::npos);
  EXPECT_FALSE(probe_image(dir / "small.png", info, reason));
  EXPECT_THROW(set_max_image_pixels(0), Error);
  set_max_image_pixels(kDefaultMaxImagePixels);
}

TEST(Image, ChannelConversion) {
  Image rgba(2, 1, 4);
  rgba.pixels = {10, 20, 30, 255, 200, 100, 50, 0};
  const Image rgb = convert_channels(rgba, 3);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{10, 20, 30, 200, 100, 50}));
  const Image g = convert_channels(rgb, 1);
  // PIL: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
  EXPECT_EQ(g.pixels[0], (10 * 19595 + 20 * 38470 + 30 * 7471 + 0x8000) >> 16);
  EXPECT_EQ(g.pixels[1], (200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16);
  const Image g3 = convert_channels(g, 3);
  EXPECT_EQ(g3.pixels, (std::vector<uint8_t>{g.pixels[0], g.pixels[0], g.pixels[0], g.pixels[1], g.pixels[1], g.pixels[1]}));
  Image ga(1, 1, 2);
  ga.pixels = {77, 9};
  EXPECT_EQ(convert_channels(ga, 3).pixels, (std::vector<uint8_t>{77, 77, 77}));
  EXPECT_EQ(convert_channels(ga, 4).pixels, (std::vector<uint8_t>{77, 77, 77, 9}));
  EXPECT_THROW(convert_channels(g, 2), Error);
}

TEST(Image, FloatConversionRoundsAndClamps) {
  ImageF f(4, 1, 1);
  f.pixels = {-3.f, 1.5f, 254.4f, 300.f};
  EXPECT_EQ(to_uint8(f).pixels, (std::vector<uint8_t>{0, 2, 254, 255}));
  EXPECT_TRUE(has_image_extension("a/b/C.JPEG"));
  EXPECT_FALSE(has_image_extension("notes.txt"));
}

}  // namespace
}  // namespace scalpel::data
