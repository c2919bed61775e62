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
