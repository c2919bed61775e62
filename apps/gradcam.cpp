// Grad-CAM: gradient-weighted class activation map of one layer (see gradcam.h).
#include "apps/gradcam.h"

#include <algorithm>
#include <cmath>

#include "autograd/autograd.h"
#include "data/transforms.h"
#include "layers/functional.h"
#include "tensor/error.h"

namespace scalpel {
namespace {

// Puts the model in evaluation mode for a scope, restoring its mode afterwards.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(nn::Module& m) : module_(m), was_training_(m.is_training()) { m.eval(); }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  nn::Module& module_;
  bool was_training_;
};

}  // namespace

GradCamResult gradcam(models::Model& model, const Tensor& input, int64_t class_index, const std::string& layer) {
  SCALPEL_CHECK(input.dim() == 4 && input.size(0) == 1, "gradcam: expected one image [1, C, H, W], got {}",
                shape_str(input.shape()));
  GradCamResult r;
  r.layer = layer.empty() ? model.feature_layer() : layer;
  nn::Module* target = nullptr;
  for (auto& [name, module] : model.named_modules())
    if (name == r.layer) target = module;
  SCALPEL_CHECK(target != nullptr, "gradcam: {} has no layer named '{}' (its feature layer is '{}')", model.name(),
                r.layer, model.feature_layer());

  EvalModeGuard eval(model);
  Tensor activation;
  Tensor logits;
  {
    // The layer's output is an intermediate node of the graph; the gradient of the logit
    // with respect to it is what Grad-CAM weighs the channels by.
    nn::ForwardHookGuard hook([&](nn::Module& m, const Tensor&, const Tensor& out) {
      if (&m == target) activation = out;
    });
    logits = model(input);
  }
  SCALPEL_CHECK(activation.defined() && activation.dim() == 4, "gradcam: layer '{}' of {} gives no 4-D feature map",
                r.layer, model.name());
  SCALPEL_CHECK(logits.dim() == 2, "gradcam: {} is not a classifier (output {})", model.name(),
                shape_str(logits.shape()));
  const int64_t classes = logits.size(1);
  const Tensor probs = nn::softmax(logits.detach(), 1).to(Device::cpu());
  const std::vector<double> p = probs.to_vector();
  SCALPEL_CHECK(class_index >= -1 && class_index < classes, "gradcam: class {} is out of range for {} classes (0..{})",
                class_index, classes, classes - 1);
  r.class_index = class_index == -1 ? std::max_element(p.begin(), p.end()) - p.begin() : class_index;
  r.probability = p[r.class_index];

  std::vector<double> onehot(classes, 0.0);
  onehot[r.class_index] = 1;
  const Tensor seed = Tensor::from_vector(onehot, {1, classes}).to(logits.dtype()).to(logits.device());
  const Tensor dA = grad(logits, {activation}, seed)[0].to(Device::cpu()).to(DType::F64).contiguous();
  const Tensor A = activation.detach().to(Device::cpu()).to(DType::F64).contiguous();
  const int64_t K = A.size(1), h = A.size(2), w = A.size(3);
  const std::vector<double> a = A.to_vector(), g = dA.to_vector();
  std::vector<double> cam(h * w, 0.0);
  for (int64_t k = 0; k < K; ++k) {
    double weight = 0;
    for (int64_t i = 0; i < h * w; ++i) weight += g[k * h * w + i];
    weight /= static_cast<double>(h * w);
    for (int64_t i = 0; i < h * w; ++i) cam[i] += weight * a[k * h * w + i];
  }
  for (double& v : cam) v = std::max(v, 0.0);

  r.height = static_cast<int>(input.size(2));
  r.width = static_cast<int>(input.size(3));
  NoGradGuard no_grad;
  const Tensor up = nn::upsample(Tensor::from_vector(cam, {1, 1, h, w}), r.height, r.width, "bilinear", false);
  const std::vector<double> u = up.to_vector();
  const double peak = *std::max_element(u.begin(), u.end());
  r.heatmap.resize(u.size());
  for (size_t i = 0; i < u.size(); ++i) r.heatmap[i] = peak > 0 ? static_cast<float>(std::max(u[i], 0.0) / peak) : 0.f;
  return r;
}

GradCamResult heatmap_on_image(const GradCamResult& cam, int image_width, int image_height,
                               const data::Preprocess& p) {
  SCALPEL_CHECK(image_width > 0 && image_height > 0 && cam.width == p.width && cam.height == p.height,
                "gradcam: a {}x{} heatmap is not the {}x{} input of the preprocessing", cam.width, cam.height, p.width,
                p.height);
  data::ImageF heat(cam.width, cam.height, 1);
  std::copy(cam.heatmap.begin(), cam.heatmap.end(), heat.pixels.begin());
  // The part of the input frame that shows the image, and the image's size in that frame.
  int scaled_width = p.width, scaled_height = p.height;
  if (p.fit == data::Fit::letterbox) {
    const double s = std::min(static_cast<double>(p.width) / image_width, static_cast<double>(p.height) / image_height);
    scaled_width = std::clamp(static_cast<int>(std::round(image_width * s)), 1, p.width);
    scaled_height = std::clamp(static_cast<int>(std::round(image_height * s)), 1, p.height);
  } else if (p.fit == data::Fit::crop) {
    // As data/preprocess.cpp: the short side resized to round(max(W, H) / crop_fraction).
    const int side = static_cast<int>(std::round(std::max(p.width, p.height) / p.crop_fraction));
    scaled_width = image_width <= image_height ? side : static_cast<int>(static_cast<int64_t>(side) * image_width / image_height);
    scaled_height = image_width <= image_height ? static_cast<int>(static_cast<int64_t>(side) * image_height / image_width) : side;
  }
  if (p.fit != data::Fit::stretch) {
    // Input pixel (x, y) shows scaled pixel (x + x0, y + y0): a centred crop of a larger image,
    // or a smaller one centred with padding (data/transforms.h center_crop, letterbox).
    auto offset = [](int scaled, int input) {
      return scaled >= input ? static_cast<int>(std::round((scaled - input) / 2.0)) : -((input - scaled) / 2);
    };
    const int x0 = offset(scaled_width, p.width), y0 = offset(scaled_height, p.height);
    data::ImageF scaled(scaled_width, scaled_height, 1, 0.f);  // 0 where the crop cut the image away
    for (int y = 0; y < scaled_height; ++y)
      for (int x = 0; x < scaled_width; ++x) {
        const int ix = x - x0, iy = y - y0;
        if (ix >= 0 && iy >= 0 && ix < p.width && iy < p.height) scaled.at(y, x) = heat.at(iy, ix);
      }
    heat = std::move(scaled);
  }
  const data::ImageF back = data::resize(heat, image_width, image_height, data::Interp::bilinear);
  GradCamResult out = cam;
  out.width = image_width;
  out.height = image_height;
  out.heatmap.resize(back.pixels.size());
  for (size_t i = 0; i < back.pixels.size(); ++i) out.heatmap[i] = std::clamp(back.pixels[i], 0.f, 1.f);
  return out;
}

void jet_color(double v, uint8_t rgb[3]) {
  v = std::clamp(v, 0.0, 1.0);
  // Piecewise-linear jet: each channel is a tent centred at 0.75 (R), 0.5 (G), 0.25 (B).
  auto tent = [&](double centre) { return std::clamp(1.5 - std::abs(4 * v - 4 * centre), 0.0, 1.0); };
  rgb[0] = static_cast<uint8_t>(std::lround(255 * tent(0.75)));
  rgb[1] = static_cast<uint8_t>(std::lround(255 * tent(0.5)));
  rgb[2] = static_cast<uint8_t>(std::lround(255 * tent(0.25)));
}

data::Image gradcam_overlay(const data::Image& image, const GradCamResult& cam, double alpha) {
  SCALPEL_CHECK(!image.empty() && cam.width > 0 && cam.height > 0, "gradcam overlay: empty image or heatmap");
  data::Image base = data::convert_channels(image, 3);
  if (base.width != cam.width || base.height != cam.height) base = data::resize(base, cam.width, cam.height);
  data::Image out(cam.width, cam.height, 3);
  for (int y = 0; y < cam.height; ++y)
    for (int x = 0; x < cam.width; ++x) {
      uint8_t rgb[3];
      jet_color(cam.heatmap[static_cast<size_t>(y) * cam.width + x], rgb);
      for (int c = 0; c < 3; ++c)
        out.at(y, x, c) = static_cast<uint8_t>(std::lround((1 - alpha) * base.at(y, x, c) + alpha * rgb[c]));
    }
  return out;
}

}  // namespace scalpel
