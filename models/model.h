#pragma once
// Model: the common face of every network of the zoo (models/registry.h builds them by name).
//
// A model is a Module whose forward is split in two, so that transfer learning, Grad-CAM and
// metadata fusion can stop or start in the middle:
//   forward(x)          = forward_head(forward_features(x))
//   forward_features(x) : checks x, returns the last convolutional feature map [N, C, h, w]
//                         (the output of the module named feature_layer())
//   forward_head(f)     : pooling and classifier -> logits [N, classes]; in headless mode the
//                         classifier's last layer is an Identity and this returns the pooled
//                         features [N, feature_dim()] (U-Net: the 1x1 output conv -> [N, classes,
//                         H, W], headless: the last decoder map)
// Dotted parameter names equal torchvision's state-dict keys where torchvision has the model.
#include <optional>
#include <string>
#include <vector>

#include "layers/module.h"

namespace scalpel::models {

// Options of create_model(). Model-specific options are optional: a model given an option it
// does not take throws Error naming the model and the option.
struct ModelOptions {
  int64_t classes = 1000;    // classifier outputs (U-Net: mask channels)
  int64_t in_channels = 3;   // channels of the input image (the stem conv's input)
  bool headless = false;     // forward() returns pooled features instead of logits

  std::optional<double> width;             // mobilenet_v1 (0.25|0.5|0.75|1.0), mobilenet_v2 (> 0)
  std::optional<std::string> activation;   // mobilenet_v1: relu6 (default) | relu | leaky_relu:<slope>
  std::optional<std::string> padding;      // mobilenet_v1: keras (default) | torch
  std::optional<int64_t> base_width;       // unet: channels of the first level (default 64)
  std::optional<bool> bilinear;            // unet: bilinear up-sampling + conv instead of transposed convs
  std::optional<bool> aux_logits;          // inception_v3: the auxiliary classifier (default true)
  // resnet18..152: imagenet (default: 7x7/2 conv + 3x3/2 max pool) | small (3x3/1 conv, no pool:
  // the ResNet of CIFAR and of MedMNIST's 28x28 benchmark, for inputs from 8 px)
  std::optional<std::string> stem;
  // Classifier dropout (default: the model's own, e.g. 0.5 for VGG, 0.2 for mobilenet_v2 and
  // efficientnet_b0) and stochastic-depth probability of the last block (EfficientNet, 0.2).
  std::optional<double> dropout;
  std::optional<double> drop_path;
};

class Model : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override { return forward_head(forward_features(x)); }
  // Checks x (Error naming the model and the shape: not 4-D, wrong channel count, smaller than
  // min_input_size()), then runs the network up to its last feature map.
  Tensor forward_features(const Tensor& x);
  virtual Tensor forward_head(const Tensor& features) = 0;

  const std::string& name() const { return name_; }  // registry name, e.g. "resnet50"
  const ModelOptions& options() const { return options_; }
  int64_t in_channels() const { return options_.in_channels; }
  // Dotted name of the classifier head ("fc", "classifier.6", "classifier.1", "outc"): the
  // module --classes replaces. Its parameters are head_parameter_names().
  const std::string& head_name() const { return head_name_; }
  // head_name() and any auxiliary classifier (inception_v3's "AuxLogits.fc"): every module
  // sized by --classes, replaced together in transfer learning.
  const std::vector<std::string>& head_names() const { return head_names_; }
  std::vector<std::string> head_parameter_names() const;  // of every head
  // Dotted name of the module whose output forward_features() returns (Grad-CAM's default).
  const std::string& feature_layer() const { return feature_layer_; }
  // Channels of the feature map = size of the pooled features fed to the head (VGG: the
  // 4096 of its penultimate layer, which is what headless mode returns).
  int64_t feature_dim() const { return feature_dim_; }
  // Smallest input height/width the network accepts.
  int64_t min_input_size() const { return min_input_size_; }
  void check_input(const Tensor& x) const;

 protected:
  Model(std::string type, std::string name, ModelOptions options) : Module(std::move(type)), name_(std::move(name)),
                                                                     options_(std::move(options)) {}
  // Called by the constructors of the concrete models once their layers exist.
  void set_layout(std::string head_name, std::string feature_layer, int64_t feature_dim, int64_t min_input_size);
  void add_head(std::string name) { head_names_.push_back(std::move(name)); }  // after set_layout
  // Networks whose class count comes from a file (GraphModel) say it once they know it.
  void set_classes(int64_t classes) { options_.classes = classes; }
  // The network up to the last feature map, on a checked input.
  virtual Tensor features(const Tensor& x) = 0;

 private:
  std::string name_;
  ModelOptions options_;
  std::string head_name_, feature_layer_;
  std::vector<std::string> head_names_;
  int64_t feature_dim_ = 0, min_input_size_ = 1;
};

}  // namespace scalpel::models
