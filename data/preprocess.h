#pragma once
// The deterministic path from a decoded image to a model input: channel conversion, fitting
// to the input size, normalization. Shared by the loader (train and eval) and by predict.
#include <string>

#include "data/image.h"
#include "data/transforms.h"

namespace scalpel::data {

// How an image of any size is fitted to width x height:
//   stretch    resize to exactly width x height (aspect ratio not kept)
//   crop       resize the shorter side to round(side / crop_fraction), then centre crop
//              (torchvision's Resize(256) + CenterCrop(224) for crop_fraction 0.875)
//   letterbox  fit inside keeping the aspect ratio, pad with black
enum class Fit { stretch, crop, letterbox };
Fit parse_fit(const std::string& name);  // "stretch", "crop", "letterbox"

struct Preprocess {
  int width = 224, height = 224;
  int channels = 3;  // 1 or 3: gray is replicated to RGB, RGB reduced to luma, alpha dropped
  Fit fit = Fit::stretch;
  double crop_fraction = 0.875;
  Interp interp = Interp::bilinear;  // antialiased when shrinking
  Normalization norm;
};

// Channel conversion and fit: a width x height x channels uint8 image (what the loader caches).
Image fit_image(const Image& image, const Preprocess& p);
// The same geometry for a one-channel mask of the image `image_width` x `image_height`:
// resized (nearest) to the image size first when it differs, then fitted with nearest.
Image fit_mask(const Image& mask, int image_width, int image_height, const Preprocess& p);
// fit_image + normalization: float32 [1, channels, height, width].
Tensor preprocess(const Image& image, const Preprocess& p);
Tensor preprocess_file(const std::string& path, const Preprocess& p);

}  // namespace scalpel::data
