#include "data/image.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <memory>

#include "data/medmnist.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"

// stb is compiled here with static linkage so that no other library in the program can
// clash with its symbols (use these wrappers instead of including stb elsewhere).
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

namespace scalpel::data {
namespace fs = std::filesystem;

ImageF to_float(const Image& image) {
  ImageF out;
  out.width = image.width;
  out.height = image.height;
  out.channels = image.channels;
  out.pixels.assign(image.pixels.begin(), image.pixels.end());
  return out;
}

Image to_uint8(const ImageF& image) {
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.channels = image.channels;
  out.pixels.resize(image.pixels.size());
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    float v = std::round(image.pixels[i]);
    out.pixels[i] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
  }
  return out;
}

namespace {

std::atomic<int64_t> g_max_image_pixels{kDefaultMaxImagePixels};

std::string pixel_limit_reason(int width, int height) {
  return fmt::format("declares {}x{} = {} pixels, above the limit of {} (--max-pixels)", width, height,
                     static_cast<int64_t>(width) * height, max_image_pixels());
}

bool within_pixel_limit(int width, int height) {
  return static_cast<int64_t>(width) * height <= max_image_pixels();
}

[[noreturn]] void decode_failed(const std::string& name) {
  fail("cannot decode image '{}': {}", name, stbi_failure_reason());
}

// The checks before any pixel is decoded: a readable size, and a header within the pixel limit.
void check_decodable(const stbi_uc* bytes, size_t size, const std::string& name) {
  SCALPEL_CHECK(size > 0, "image file '{}' is empty (0 bytes)", name);
  SCALPEL_CHECK(size <= static_cast<size_t>(INT32_MAX), "image file '{}' is too large", name);
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(bytes, static_cast<int>(size), &width, &height, &channels)) decode_failed(name);
  SCALPEL_CHECK(within_pixel_limit(width, height), "image '{}' {}", name, pixel_limit_reason(width, height));
}

}  // namespace

void set_max_image_pixels(int64_t pixels) {
  SCALPEL_CHECK(pixels > 0, "--max-pixels {}: must be positive", pixels);
  g_max_image_pixels = pixels;
}

int64_t max_image_pixels() { return g_max_image_pixels; }

Image decode_image(const void* bytes, size_t size, const std::string& name) {
  auto* buf = static_cast<const stbi_uc*>(bytes);
  check_decodable(buf, size, name);
  int len = static_cast<int>(size);
  if (stbi_is_16_bit_from_memory(buf, len)) return to_uint8(decode_image_float(bytes, size, name));
  int w = 0, h = 0, c = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load_from_memory(buf, len, &w, &h, &c, 0),
                                                  stbi_image_free);
  if (!data) decode_failed(name);
  Image out;
  out.width = w;
  out.height = h;
  out.channels = c;
  out.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * h * c);
  return out;
}

ImageF decode_image_float(const void* bytes, size_t size, const std::string& name) {
  auto* buf = static_cast<const stbi_uc*>(bytes);
  check_decodable(buf, size, name);
  int len = static_cast<int>(size);
  if (!stbi_is_16_bit_from_memory(buf, len)) return to_float(decode_image(bytes, size, name));
  int w = 0, h = 0, c = 0;
  std::unique_ptr<stbi_us, void (*)(void*)> data(
      stbi_load_16_from_memory(buf, len, &w, &h, &c, 0), stbi_image_free);
  if (!data) decode_failed(name);
  ImageF out(w, h, c);
  for (size_t i = 0; i < out.pixels.size(); ++i)
    out.pixels[i] = static_cast<float>(data.get()[i] * (255.0 / 65535.0));
  return out;
}

Image load_image(const std::string& path) {
  if (is_npz_image_name(path)) return load_npz_image(path);
  const std::string bytes = read_file(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

ImageF load_image_float(const std::string& path) {
  const std::string bytes = read_file(path);
  return decode_image_float(bytes.data(), bytes.size(), path);
}

bool probe_image(const std::string& path, ImageInfo& info, std::string& reason) {
  if (is_npz_image_name(path)) {
    try {
      const Image image = load_npz_image(path);
      info = {image.width, image.height, image.channels, false};
      return true;
    } catch (const Error& e) {
      reason = e.what();
      return false;
    }
  }
  const int fd = open_regular_file(path, reason);
  if (fd < 0) return false;
  struct stat file_info {};
  if (::fstat(fd, &file_info) == 0 && file_info.st_size == 0) {
    ::close(fd);
    reason = "empty file (0 bytes)";
    return false;
  }
  FILE* f = ::fdopen(fd, "rb");
  if (!f) {
    ::close(fd);
    reason = "cannot open file";
    return false;
  }
  const int ok = stbi_info_from_file(f, &info.width, &info.height, &info.channels);
  if (ok) info.is_16_bit = stbi_is_16_bit_from_file(f);
  std::fclose(f);
  if (!ok) {
    reason = stbi_failure_reason();
    return false;
  }
  if (!within_pixel_limit(info.width, info.height)) {
    reason = pixel_limit_reason(info.width, info.height);
    return false;
  }
  return true;
}

namespace {
std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return ext;
}
}  // namespace

bool has_image_extension(const std::string& path) {
  static const char* kExtensions[] = {".jpg", ".jpeg", ".png", ".bmp", ".tga",
                                      ".gif", ".pnm", ".ppm", ".pgm"};
  std::string ext = lower_extension(path);
  return std::any_of(std::begin(kExtensions), std::end(kExtensions),
                     [&](const char* e) { return ext == e; });
}

namespace {

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

void check_encodable(const Image& image) {
  SCALPEL_CHECK(image.width > 0 && image.height > 0 && image.channels >= 1 && image.channels <= 4,
                "cannot encode an image of {}x{}x{}", image.width, image.height, image.channels);
}

std::vector<uint8_t> encode_bmp(const Image& image) {
  check_encodable(image);
  std::vector<uint8_t> out;
  SCALPEL_CHECK(stbi_write_bmp_to_func(append_bytes, &out, image.width, image.height,
                                       image.channels, image.pixels.data()),
                "BMP encoding failed");
  return out;
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& image) {
  check_encodable(image);
  std::vector<uint8_t> out;
  SCALPEL_CHECK(stbi_write_png_to_func(append_bytes, &out, image.width, image.height,
                                       image.channels, image.pixels.data(),
                                       image.width * image.channels),
                "PNG encoding failed");
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  check_encodable(image);
  SCALPEL_CHECK(quality >= 1 && quality <= 100, "JPEG quality {} is not in 1..100", quality);
  std::vector<uint8_t> out;
  SCALPEL_CHECK(stbi_write_jpg_to_func(append_bytes, &out, image.width, image.height,
                                       image.channels, image.pixels.data(), quality),
                "JPEG encoding failed");
  return out;
}

void save_image(const std::string& path, const Image& image, int jpeg_quality) {
  std::string ext = lower_extension(path);
  std::vector<uint8_t> bytes;
  if (ext == ".png") bytes = encode_png(image);
  else if (ext == ".jpg" || ext == ".jpeg") bytes = encode_jpeg(image, jpeg_quality);
  else if (ext == ".bmp") bytes = encode_bmp(image);
  else fail("cannot write image '{}': unknown extension (use .png, .jpg or .bmp)", path);
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

template <typename T>
ImageT<T> convert_channels(const ImageT<T>& image, int channels) {
  SCALPEL_CHECK(channels >= 1 && channels <= 4 && channels != 2,
                "cannot convert an image to {} channels (1, 3 or 4)", channels);
  SCALPEL_CHECK(image.channels >= 1 && image.channels <= 4, "image has {} channels (1..4 expected)",
                image.channels);
  if (image.channels == channels) return image;
  ImageT<T> out(image.width, image.height, channels);
  const int src_color = image.channels >= 3 ? 3 : 1;  // channels before any alpha
  const bool src_alpha = image.channels == 2 || image.channels == 4;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  for (size_t p = 0; p < n; ++p) {
    const T* s = &image.pixels[p * image.channels];
    T* d = &out.pixels[p * channels];
    T gray;
    if (src_color == 1) {
      gray = s[0];
    } else if constexpr (std::is_same_v<T, uint8_t>) {
      // PIL's fixed-point luma, so grayscale conversion matches Image.convert("L").
      gray = static_cast<T>((s[0] * 19595 + s[1] * 38470 + s[2] * 7471 + 0x8000) >> 16);
    } else {
      gray = static_cast<T>(0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2]);
    }
    if (channels == 1) {
      d[0] = gray;
      continue;
    }
    for (int c = 0; c < 3; ++c) d[c] = src_color == 3 ? s[c] : gray;
    if (channels == 4) d[3] = src_alpha ? s[image.channels - 1] : T(255);
  }
  return out;
}

template Image convert_channels(const Image&, int);
template ImageF convert_channels(const ImageF&, int);

}  // namespace scalpel::data
