#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {

Interp parse_interp(const std::string& name) {
  if (name == "nearest") return Interp::nearest;
  if (name == "bilinear") return Interp::bilinear;
  if (name == "bicubic") return Interp::bicubic;
  if (name == "area") return Interp::area;
  fail("unknown interpolation '{}' (nearest, bilinear, bicubic, area)", name);
}

namespace {

// The weights of one resampling axis: output i reads inputs [start[i], start[i] + count[i])
// with weights w[i * ksize + k].
struct AxisWeights {
  int ksize = 0;
  std::vector<int> start, count;
  std::vector<float> w;
};

double triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Keys cubic convolution with a = -0.5 (PIL, and torchvision when antialiasing).
double cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// PIL's precompute_coeffs (Imaging/Resample.c), which torchvision's antialiased kernels copy.
AxisWeights filter_weights(int in, int out, Interp interp, bool antialias) {
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = antialias ? std::max(scale, 1.0) : 1.0;
  const double base_support = interp == Interp::bicubic ? 2.0 : 1.0;
  const double support = base_support * filter_scale;
  AxisWeights a;
  a.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.start.resize(out);
  a.count.resize(out);
  a.w.assign(static_cast<size_t>(out) * a.ksize, 0.0f);
  std::vector<double> k(a.ksize);
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    // Truncation toward zero, as the C original.
    int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    int hi = std::min(static_cast<int>(center + support + 0.5), in);
    int n = std::min(hi - lo, a.ksize);
    double total = 0;
    for (int j = 0; j < n; ++j) {
      double x = (j + lo - center + 0.5) / filter_scale;
      k[j] = interp == Interp::bicubic ? cubic(x) : triangle(x);
      total += k[j];
    }
    a.start[i] = lo;
    a.count[i] = n;
    for (int j = 0; j < n; ++j)
      a.w[static_cast<size_t>(i) * a.ksize + j] = static_cast<float>(total != 0 ? k[j] / total : 0);
  }
  return a;
}

AxisWeights area_weights(int in, int out) {
  AxisWeights a;
  a.ksize = (in + out - 1) / out + 1;  // widest bin: ceil(in / out) + 1
  a.start.resize(out);
  a.count.resize(out);
  a.w.assign(static_cast<size_t>(out) * a.ksize, 0.0f);
  for (int i = 0; i < out; ++i) {
    int lo = static_cast<int>((static_cast<int64_t>(i) * in) / out);
    int hi = static_cast<int>((static_cast<int64_t>(i + 1) * in + out - 1) / out);
    a.start[i] = lo;
    a.count[i] = hi - lo;
    for (int j = 0; j < hi - lo; ++j) a.w[static_cast<size_t>(i) * a.ksize + j] = 1.0f / (hi - lo);
  }
  return a;
}

AxisWeights nearest_weights(int in, int out) {
  AxisWeights a;
  a.ksize = 1;
  a.start.resize(out);
  a.count.assign(out, 1);
  a.w.assign(out, 1.0f);
  const double scale = static_cast<double>(in) / out;
  for (int i = 0; i < out; ++i) a.start[i] = std::min(static_cast<int>((i + 0.5) * scale), in - 1);
  return a;
}

AxisWeights axis_weights(int in, int out, Interp interp, bool antialias) {
  switch (interp) {
    case Interp::nearest: return nearest_weights(in, out);
    case Interp::area: return area_weights(in, out);
    default: return filter_weights(in, out, interp, antialias);
  }
}

template <typename T>
T store(float v) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    // Round half away from zero (values are >= 0 after the clamp).
    return static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f) + 0.5f);
  } else {
    return v;
  }
}

}  // namespace

namespace {

// One output row of the horizontal pass for C channels: src is one input row in float.
template <int C>
void resample_row(const float* src, const AxisWeights& ax, int width, float* dst) {
  for (int x = 0; x < width; ++x) {
    const float* w = &ax.w[static_cast<size_t>(x) * ax.ksize];
    const float* s = src + static_cast<size_t>(ax.start[x]) * C;
    float acc[C] = {};
    for (int k = 0; k < ax.count[x]; ++k)
      for (int c = 0; c < C; ++c) acc[c] += w[k] * s[k * C + c];
    for (int c = 0; c < C; ++c) dst[x * C + c] = acc[c];
  }
}

void resample_row(const float* src, const AxisWeights& ax, int width, int channels, float* dst) {
  switch (channels) {
    case 1: return resample_row<1>(src, ax, width, dst);
    case 2: return resample_row<2>(src, ax, width, dst);
    case 3: return resample_row<3>(src, ax, width, dst);
    case 4: return resample_row<4>(src, ax, width, dst);
  }
  fail("resize: {} channels (1..4 supported)", channels);
}

}  // namespace

template <typename T>
ImageT<T> resize(const ImageT<T>& image, int width, int height, Interp interp, bool antialias) {
  SCALPEL_CHECK(width > 0 && height > 0, "resize to {}x{}: sizes must be positive", width, height);
  SCALPEL_CHECK(!image.empty(), "resize of an empty image");
  const int C = image.channels, W = image.width, H = image.height;
  if (W == width && H == height) return image;
  const AxisWeights ax = axis_weights(W, width, interp, antialias);
  const AxisWeights ay = axis_weights(H, height, interp, antialias);
  // Horizontal pass into a float buffer [H, width, C], then the vertical pass: separable, so
  // the cost is H*width*kx + height*width*ky instead of height*width*kx*ky.
  std::vector<float> tmp(static_cast<size_t>(H) * width * C);
  std::vector<float> row(static_cast<size_t>(W) * C);
  for (int y = 0; y < H; ++y) {
    std::copy_n(&image.pixels[image.index(y, 0)], row.size(), row.begin());
    float* trow = &tmp[static_cast<size_t>(y) * width * C];
    resample_row(row.data(), ax, width, C, trow);
    // uint8 images keep a uint8 intermediate, as PIL does (bicubic overshoot is clipped).
    if constexpr (std::is_same_v<T, uint8_t>)
      for (int i = 0; i < width * C; ++i) trow[i] = static_cast<float>(store<T>(trow[i]));
  }
  ImageT<T> out(width, height, C);
  std::vector<float> acc(static_cast<size_t>(width) * C);
  for (int y = 0; y < height; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const float* w = &ay.w[static_cast<size_t>(y) * ay.ksize];
    for (int k = 0; k < ay.count[y]; ++k) {
      const float* trow = &tmp[static_cast<size_t>(ay.start[y] + k) * width * C];
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += w[k] * trow[i];
    }
    T* orow = &out.pixels[out.index(y, 0)];
    for (size_t i = 0; i < acc.size(); ++i) orow[i] = store<T>(acc[i]);
  }
  return out;
}

template <typename T>
ImageT<T> resize_short_side(const ImageT<T>& image, int size, Interp interp, bool antialias) {
  SCALPEL_CHECK(size > 0, "resize_short_side: size {} must be positive", size);
  const int W = image.width, H = image.height;
  if (W <= H) return resize(image, size, static_cast<int>(static_cast<int64_t>(size) * H / W), interp, antialias);
  return resize(image, static_cast<int>(static_cast<int64_t>(size) * W / H), size, interp, antialias);
}

template <typename T>
ImageT<T> crop(const ImageT<T>& image, int x, int y, int width, int height) {
  SCALPEL_CHECK(width > 0 && height > 0 && x >= 0 && y >= 0 && x + width <= image.width &&
                    y + height <= image.height,
                "crop {}x{} at ({}, {}) does not fit in a {}x{} image", width, height, x, y,
                image.width, image.height);
  ImageT<T> out(width, height, image.channels);
  const size_t row = static_cast<size_t>(width) * image.channels;
  for (int r = 0; r < height; ++r)
    std::copy_n(&image.pixels[image.index(y + r, x)], row, &out.pixels[out.index(r, 0)]);
  return out;
}

template <typename T>
ImageT<T> pad(const ImageT<T>& image, int left, int top, int right, int bottom, T value,
              bool replicate) {
  SCALPEL_CHECK(left >= 0 && top >= 0 && right >= 0 && bottom >= 0, "pad: negative border");
  const int W = image.width, H = image.height, C = image.channels;
  ImageT<T> out(W + left + right, H + top + bottom, C, value);
  for (int y = 0; y < out.height; ++y) {
    int sy = y - top;
    if (!replicate && (sy < 0 || sy >= H)) continue;
    sy = std::clamp(sy, 0, H - 1);
    for (int x = 0; x < out.width; ++x) {
      int sx = x - left;
      if (!replicate && (sx < 0 || sx >= W)) continue;
      sx = std::clamp(sx, 0, W - 1);
      for (int c = 0; c < C; ++c) out.at(y, x, c) = image.at(sy, sx, c);
    }
  }
  return out;
}

template <typename T>
ImageT<T> center_crop(const ImageT<T>& image, int width, int height) {
  SCALPEL_CHECK(width > 0 && height > 0, "center_crop to {}x{}: sizes must be positive", width, height);
  if (image.width < width || image.height < height) {
    const int dw = std::max(width - image.width, 0), dh = std::max(height - image.height, 0);
    ImageT<T> padded = pad(image, dw / 2, dh / 2, (dw + 1) / 2, (dh + 1) / 2);
    return center_crop(padded, width, height);
  }
  const int x = static_cast<int>(std::round((image.width - width) / 2.0));
  const int y = static_cast<int>(std::round((image.height - height) / 2.0));
  return crop(image, x, y, width, height);
}

template <typename T>
ImageT<T> letterbox(const ImageT<T>& image, int width, int height, Interp interp, T value) {
  SCALPEL_CHECK(width > 0 && height > 0, "letterbox to {}x{}: sizes must be positive", width, height);
  const double s = std::min(static_cast<double>(width) / image.width,
                            static_cast<double>(height) / image.height);
  const int w = std::clamp(static_cast<int>(std::round(image.width * s)), 1, width);
  const int h = std::clamp(static_cast<int>(std::round(image.height * s)), 1, height);
  ImageT<T> scaled = resize(image, w, h, interp);
  const int dw = width - w, dh = height - h;
  return pad(scaled, dw / 2, dh / 2, dw - dw / 2, dh - dh / 2, value);
}

template <typename T>
ImageT<T> hflip(const ImageT<T>& image) {
  ImageT<T> out(image.width, image.height, image.channels);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      for (int c = 0; c < image.channels; ++c) out.at(y, image.width - 1 - x, c) = image.at(y, x, c);
  return out;
}

template <typename T>
ImageT<T> vflip(const ImageT<T>& image) {
  ImageT<T> out(image.width, image.height, image.channels);
  const size_t row = static_cast<size_t>(image.width) * image.channels;
  for (int y = 0; y < image.height; ++y)
    std::copy_n(&image.pixels[image.index(y, 0)], row, &out.pixels[out.index(image.height - 1 - y, 0)]);
  return out;
}

Rect random_resized_crop_rect(int width, int height, Generator& gen, std::array<double, 2> scale,
                              std::array<double, 2> ratio) {
  SCALPEL_CHECK(scale[0] > 0 && scale[0] <= scale[1] && ratio[0] > 0 && ratio[0] <= ratio[1],
                "random_resized_crop: bad scale [{}, {}] or ratio [{}, {}]", scale[0], scale[1],
                ratio[0], ratio[1]);
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * gen.uniform(scale[0], scale[1]);
    const double aspect = std::exp(gen.uniform(log_lo, log_hi));
    const int w = static_cast<int>(std::round(std::sqrt(target * aspect)));
    const int h = static_cast<int>(std::round(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int y = static_cast<int>(gen.below(static_cast<uint64_t>(height - h + 1)));
      const int x = static_cast<int>(gen.below(static_cast<uint64_t>(width - w + 1)));
      return {x, y, w, h};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio[0]) h = std::max(1, static_cast<int>(std::round(w / ratio[0])));
  else if (in_ratio > ratio[1]) w = std::max(1, static_cast<int>(std::round(h * ratio[1])));
  return {(width - w) / 2, (height - h) / 2, w, h};
}

template <typename T>
ImageT<T> random_resized_crop(const ImageT<T>& image, int out_width, int out_height, Generator& gen,
                              std::array<double, 2> scale, std::array<double, 2> ratio,
                              Interp interp) {
  Rect r = random_resized_crop_rect(image.width, image.height, gen, scale, ratio);
  return resize(crop(image, r.x, r.y, r.width, r.height), out_width, out_height, interp);
}

Normalization normalization_preset(const std::string& name) {
  Normalization n;
  n.name = name;
  if (name == "imagenet") return n;
  if (name == "tf") {
    n.scale = 1.0 / 127.5;
    n.mean = {1, 1, 1};
    n.std = {1, 1, 1};
  } else if (name == "unit") {
    n.mean = {0, 0, 0};
    n.std = {1, 1, 1};
  } else if (name == "caffe") {
    n.scale = 1.0;
    n.mean = {103.939, 116.779, 123.68};
    n.std = {1, 1, 1};
    n.bgr = true;
  } else if (name == "none") {
    n.scale = 1.0;
    n.mean = {0, 0, 0};
    n.std = {1, 1, 1};
  } else {
    fail("unknown normalization '{}' (imagenet, tf, unit, caffe, none)", name);
  }
  return n;
}

template <typename T>
void normalize_to_chw(const ImageT<T>& image, const Normalization& norm, float* out) {
  const int C = image.channels;
  SCALPEL_CHECK(C == 1 || C == 3, "normalize: {} channels (1 or 3 expected)", C);
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  for (int c = 0; c < C; ++c) {
    const int src = norm.bgr && C == 3 ? 2 - c : c;
    double mean = norm.mean[c], stdev = norm.std[c];
    if (C == 1) {
      mean = (norm.mean[0] + norm.mean[1] + norm.mean[2]) / 3;
      stdev = (norm.std[0] + norm.std[1] + norm.std[2]) / 3;
    }
    // (v * scale - mean) / std as one multiply-add per pixel.
    const float a = static_cast<float>(norm.scale / stdev), b = static_cast<float>(-mean / stdev);
    float* dst = out + c * plane;
    for (size_t p = 0; p < plane; ++p) dst[p] = static_cast<float>(image.pixels[p * C + src]) * a + b;
  }
}

template <typename T>
Tensor to_tensor(const ImageT<T>& image, const Normalization& norm) {
  Tensor t = Tensor::empty({1, image.channels, image.height, image.width}, DType::F32);
  normalize_to_chw(image, norm, t.data<float>());
  return t;
}

#define SCALPEL_INSTANTIATE(T)                                                                    \
  template ImageT<T> resize(const ImageT<T>&, int, int, Interp, bool);                            \
  template ImageT<T> resize_short_side(const ImageT<T>&, int, Interp, bool);                      \
  template ImageT<T> crop(const ImageT<T>&, int, int, int, int);                                  \
  template ImageT<T> center_crop(const ImageT<T>&, int, int);                                     \
  template ImageT<T> pad(const ImageT<T>&, int, int, int, int, T, bool);                          \
  template ImageT<T> letterbox(const ImageT<T>&, int, int, Interp, T);                            \
  template ImageT<T> hflip(const ImageT<T>&);                                                     \
  template ImageT<T> vflip(const ImageT<T>&);                                                     \
  template ImageT<T> random_resized_crop(const ImageT<T>&, int, int, Generator&,                  \
                                         std::array<double, 2>, std::array<double, 2>, Interp);   \
  template void normalize_to_chw(const ImageT<T>&, const Normalization&, float*);                 \
  template Tensor to_tensor(const ImageT<T>&, const Normalization&);
SCALPEL_INSTANTIATE(uint8_t)
SCALPEL_INSTANTIATE(float)
#undef SCALPEL_INSTANTIATE

}  // namespace scalpel::data
