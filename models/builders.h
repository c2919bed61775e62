#pragma once
// Builders of the model families, called by the registry (models/registry.h is the public way
// to build a model by name). Each checks its options and names the model in its errors.
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "models/model.h"

namespace scalpel::models {

// Error naming the model when `options` sets a model-specific option not in `allowed`
// ("width", "activation", "padding", "base_width", "bilinear", "dropout", "drop_path",
// "aux_logits"), or
// when classes / in_channels are not positive.
void check_options(const std::string& name, const ModelOptions& options,
                   std::initializer_list<std::string_view> allowed);

// depth 11, 13, 16 or 19
std::shared_ptr<Model> make_vgg(const std::string& name, int depth, bool batch_norm, const ModelOptions& options);
// depth 18, 34, 50, 101 or 152
std::shared_ptr<Model> make_resnet(const std::string& name, int depth, const ModelOptions& options);
// depth 50, 101 or 152
std::shared_ptr<Model> make_resnet_v2(const std::string& name, int depth, const ModelOptions& options);
std::shared_ptr<Model> make_mobilenet_v1(const std::string& name, const ModelOptions& options);
std::shared_ptr<Model> make_mobilenet_v2(const std::string& name, const ModelOptions& options);
// variant 0..7 (b0..b7)
std::shared_ptr<Model> make_efficientnet(const std::string& name, int variant, const ModelOptions& options);
std::shared_ptr<Model> make_unet(const std::string& name, const ModelOptions& options);
// depth 121, 169 or 201 (torchvision layout)
std::shared_ptr<Model> make_densenet(const std::string& name, int depth, const ModelOptions& options);
std::shared_ptr<Model> make_inception_v3(const std::string& name, const ModelOptions& options);
std::shared_ptr<Model> make_xception(const std::string& name, const ModelOptions& options);

}  // namespace scalpel::models
