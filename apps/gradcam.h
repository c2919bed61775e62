#pragma once
// Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.
//   A = the output of the layer [1, K, h, w], y = the logit of the class;
//   weights w_k = mean over (h, w) of dy/dA_k; cam = ReLU(sum_k w_k A_k);
//   upsampled bilinearly (align_corners=false) to the input size, divided by its maximum
//   (all zeros when the maximum is 0).
// Used by `scalpel gradcam`, the eval report's gallery and the server's /api/gradcam.
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/preprocess.h"
#include "models/model.h"
#include "tensor/tensor.h"

namespace scalpel {

struct GradCamResult {
  int width = 0, height = 0;
  std::vector<float> heatmap;  // height * width values in [0, 1], row-major
  int64_t class_index = 0;     // the class explained
  double probability = 0;      // its softmax probability
  std::string layer;           // the layer whose activation was used
};

// `input` is one preprocessed image [1, C, H, W] on the model's device. class_index -1
// explains the top class, 0..classes-1 that class (anything else is an Error); `layer` empty means model.feature_layer(). Runs the model in
// evaluation mode (its mode is restored) with autograd for this one call. Error naming the
// layer when it is not a module of the model or its output is not a 4-D map, and naming the
// class when it is out of range.
GradCamResult gradcam(models::Model& model, const Tensor& input, int64_t class_index = -1,
                      const std::string& layer = "");

// The heatmap moved from the model's input frame back onto the original image of
// `image_width` x `image_height` that `p` fitted to that input (stretch: resized back; crop: the
// centre crop's region of the image, 0 where the crop cut the image away; letterbox: the
// padding dropped). What `scalpel gradcam` writes: the overlay and .npy at the image's own size.
GradCamResult heatmap_on_image(const GradCamResult& cam, int image_width, int image_height,
                               const data::Preprocess& p);

// The heatmap as colours (a jet-like map: blue 0 -> cyan -> yellow -> red 1) blended over
// `image` (resized to the heatmap's size first when it differs): out = (1-alpha) image +
// alpha colour. Gray images become RGB.
data::Image gradcam_overlay(const data::Image& image, const GradCamResult& cam, double alpha = 0.45);

// The jet-like colour of v in [0, 1] (clamped), as RGB.
void jet_color(double v, uint8_t rgb[3]);

}  // namespace scalpel
