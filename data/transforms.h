#pragma once
// Deterministic image transforms on HWC images (uint8 or float, 0..255 scale) and the
// conversion to a normalized float NCHW tensor.
#include <array>
#include <string>

#include "data/image.h"
#include "tensor/tensor.h"

namespace scalpel {
class Generator;
}

namespace scalpel::data {

// ---- resize ----
// bilinear/bicubic: separable convolution with a triangle / Keys cubic (a = -0.5) kernel,
// sampling at pixel centres (align_corners=False). With `antialias` and a shrinking axis the
// kernel is widened by the scale factor, exactly as PIL's Image.resize and torchvision's
// resize(antialias=True) do; weights are renormalized at the borders as PIL does.
// area: each output pixel is the mean of the input pixels in
// [floor(i * in / out), ceil((i + 1) * in / out)), torch's interpolate(mode="area")
// (adaptive average pooling); `antialias` does not apply.
// nearest: input pixel floor((i + 0.5) * in / out) (PIL's NEAREST), for masks.
// The horizontal pass runs first, then the vertical one. For uint8 images the intermediate
// is rounded and clamped to uint8 as in PIL (PIL's fixed-point weights can still make a
// result differ by 1); float images stay float throughout (torchvision on float tensors).
enum class Interp { nearest, bilinear, bicubic, area };
Interp parse_interp(const std::string& name);  // "nearest", "bilinear", "bicubic", "area"

template <typename T>
ImageT<T> resize(const ImageT<T>& image, int width, int height, Interp interp = Interp::bilinear,
                 bool antialias = true);
// Scales so that the shorter side becomes `size`, keeping the aspect ratio (the longer side
// is floor(size * long / short), as torchvision's Resize(int)).
template <typename T>
ImageT<T> resize_short_side(const ImageT<T>& image, int size, Interp interp = Interp::bilinear,
                            bool antialias = true);

// ---- geometry ----
// Crop of the rectangle [x, x + width) x [y, y + height); must lie inside the image.
template <typename T>
ImageT<T> crop(const ImageT<T>& image, int x, int y, int width, int height);
// Centre crop; when the image is smaller it is first padded with zeros (torchvision's
// CenterCrop). Offsets are round((in - out) / 2), as torchvision.
template <typename T>
ImageT<T> center_crop(const ImageT<T>& image, int width, int height);
// Adds borders of `value` (or edge replication when `replicate`).
template <typename T>
ImageT<T> pad(const ImageT<T>& image, int left, int top, int right, int bottom, T value = T{},
              bool replicate = false);
// Scales to fit inside width x height keeping the aspect ratio, then pads symmetrically
// (the extra pixel of an odd difference goes right/bottom) with `value`.
template <typename T>
ImageT<T> letterbox(const ImageT<T>& image, int width, int height, Interp interp = Interp::bilinear,
                    T value = T{});
template <typename T>
ImageT<T> hflip(const ImageT<T>& image);
template <typename T>
ImageT<T> vflip(const ImageT<T>& image);

// torchvision RandomResizedCrop.get_params: up to 10 tries of an area fraction in `scale`
// and a log-uniform aspect ratio in `ratio`, falling back to a centre crop clamped to
// `ratio`. Returns the rectangle {x, y, width, height} in the input image.
struct Rect { int x = 0, y = 0, width = 0, height = 0; };
Rect random_resized_crop_rect(int width, int height, Generator& gen,
                              std::array<double, 2> scale = {0.08, 1.0},
                              std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});
template <typename T>
ImageT<T> random_resized_crop(const ImageT<T>& image, int out_width, int out_height, Generator& gen,
                              std::array<double, 2> scale = {0.08, 1.0},
                              std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0},
                              Interp interp = Interp::bilinear);

// ---- normalization ----
// out[c] = (in[src(c)] * scale - mean[c]) / std[c], with `in` on the 0..255 scale and
// src(c) = 2 - c when `bgr` (channel order reversed for Caffe-trained models).
//   imagenet: scale 1/255, torchvision mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
//   tf:       scale 1/127.5, mean 1, std 1                     -> [-1, 1]
//   unit:     scale 1/255, mean 0, std 1                       -> [0, 1]
//   caffe:    scale 1, BGR, mean (103.939, 116.779, 123.68), std 1 (Keras ResNet50)
//   none:     scale 1, mean 0, std 1                           -> raw 0..255
// For a one-channel image, per-channel constants are averaged over the three channels.
struct Normalization {
  std::string name = "imagenet";
  double scale = 1.0 / 255.0;
  std::array<double, 3> mean{0.485, 0.456, 0.406};
  std::array<double, 3> std{0.229, 0.224, 0.225};
  bool bgr = false;
};
Normalization normalization_preset(const std::string& name);  // Error names unknown presets

// Writes the normalized CHW planes of `image` into out[0 .. C*H*W) (a slot of an NCHW batch).
template <typename T>
void normalize_to_chw(const ImageT<T>& image, const Normalization& norm, float* out);
// One image -> float32 tensor [1, C, H, W].
template <typename T>
Tensor to_tensor(const ImageT<T>& image, const Normalization& norm);

}  // namespace scalpel::data
