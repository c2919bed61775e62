#pragma once
// Images in memory, decoding and encoding (stb_image / stb_image_write).
//
// An image is interleaved HWC: pixel (y, x) channel c is at ((y * width + x) * channels + c).
// `Image` holds uint8 values 0..255 (what decoders produce and what the loader caches);
// `ImageF` holds float values on the same 0..255 scale, so converting between them is exact
// for integers and transforms behave the same on both.
#include <cstdint>
#include <string>
#include <vector>

namespace scalpel::data {

template <typename T>
struct ImageT {
  int width = 0, height = 0, channels = 0;
  std::vector<T> pixels;  // height * width * channels values, HWC

  ImageT() = default;
  ImageT(int w, int h, int c, T fill = T{})
      : width(w), height(h), channels(c), pixels(static_cast<size_t>(w) * h * c, fill) {}
  bool empty() const { return pixels.empty(); }
  size_t index(int y, int x, int c = 0) const {
    return (static_cast<size_t>(y) * width + x) * channels + c;
  }
  T& at(int y, int x, int c = 0) { return pixels[index(y, x, c)]; }
  const T& at(int y, int x, int c = 0) const { return pixels[index(y, x, c)]; }
};

using Image = ImageT<uint8_t>;
using ImageF = ImageT<float>;

// Exact widening; narrowing rounds half away from zero and clamps to 0..255.
ImageF to_float(const Image& image);
Image to_uint8(const ImageF& image);

// ---- decoding ----
// Formats stb_image reads: JPEG (baseline and progressive), PNG (8 and 16 bit), BMP, and
// also TGA/GIF (first frame)/PSD/PNM. Channels are as stored: 1 gray, 2 gray+alpha, 3 RGB,
// 4 RGBA. `name` only appears in error messages.
// Throws Error naming `name` for an empty, truncated/corrupt or unsupported file, and for one
// whose header declares more than max_image_pixels() pixels (checked before decoding).
// load_* read only regular files (tensor/atomic_file.h): a FIFO or a device is an Error.
Image decode_image(const void* bytes, size_t size, const std::string& name);
// Same, keeping 16-bit precision: 16-bit PNG samples v map to v * 255 / 65535.
ImageF decode_image_float(const void* bytes, size_t size, const std::string& name);
Image load_image(const std::string& path);
ImageF load_image_float(const std::string& path);

// Decompression bombs: a few hundred KB of PNG can declare 20000x20000 pixels and cost
// gigabytes to decode. Decoders and probe_image refuse an image whose header declares more
// than this many pixels (width x height). Process-wide: commands set it from --max-pixels.
constexpr int64_t kDefaultMaxImagePixels = 50'000'000;
void set_max_image_pixels(int64_t pixels);  // Error unless positive
int64_t max_image_pixels();

// Cheap header check (no pixel decode): width/height/channels of a supported file.
// Returns false (and fills `reason`) for an empty, unreadable (not a regular file, ...) or
// unsupported file, and one that declares more than max_image_pixels() pixels.
struct ImageInfo { int width = 0, height = 0, channels = 0; bool is_16_bit = false; };
bool probe_image(const std::string& path, ImageInfo& info, std::string& reason);

// True when the extension (case-insensitive) is one the image folder loaders pick up:
// .jpg .jpeg .png .bmp .tga .gif .pnm .ppm .pgm.
bool has_image_extension(const std::string& path);

// ---- encoding ----
// Writes PNG, JPEG (quality 1..100) or BMP chosen by the extension of `path`
// (.png/.jpg/.jpeg/.bmp), through a temporary file and a rename. 1..4 channels.
void save_image(const std::string& path, const Image& image, int jpeg_quality = 95);
std::vector<uint8_t> encode_png(const Image& image);
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 95);

// ---- channels ----
// Converts to `channels` (1 or 3; 4 keeps/adds an opaque alpha):
//   gray -> RGB replicates; RGB -> gray is ITU-R 601 luma (PIL's "L": (299 R + 587 G + 114 B)
//   / 1000, rounded); an alpha channel is dropped (PIL's RGBA -> RGB).
template <typename T>
ImageT<T> convert_channels(const ImageT<T>& image, int channels);

}  // namespace scalpel::data
