#include "models/inception.h"

#include "models/builders.h"
#include "models/init.h"
#include "tensor/error.h"

namespace scalpel::models {

BasicConv2d::BasicConv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel, int64_t stride,
                         std::array<int64_t, 2> padding)
    : Module("BasicConv2d") {
  nn::Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = nn::Padding2d::symmetric(padding[0], padding[1]);
  conv = register_module("conv", std::make_shared<nn::Conv2d>(in_channels, out_channels, kernel, o, false));
  bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(out_channels, 1e-3));
}

Tensor BasicConv2d::forward(const Tensor& x) { return nn::relu((*bn)((*conv)(x))); }

std::shared_ptr<BasicConv2d> InceptionBlock::add_conv(const std::string& name, int64_t in, int64_t out,
                                                      std::array<int64_t, 2> kernel, int64_t stride,
                                                      std::array<int64_t, 2> padding) {
  return register_module(name, std::make_shared<BasicConv2d>(in, out, kernel, stride, padding));
}

Tensor InceptionBlock::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4 && x.size(1) == in_channels, "{} ({}): expected {} channels, got input {}", label(),
                type(), in_channels, shape_str(x.shape()));
  std::vector<Tensor> outputs;
  for (const Branch& b : branches) {
    Tensor y = x;
    if (b.pool != Pool::none) {
      nn::Pool2dOptions p;
      p.kernel = {3, 3};
      if (b.pool == Pool::avg3_s1) {
        p.stride = {1, 1};
        p.padding = nn::Padding2d::symmetric(1);  // count_include_pad, as F.avg_pool2d's default
        y = nn::avg_pool2d(y, p, label());
      } else {
        p.stride = {2, 2};
        y = nn::max_pool2d(y, p, label());
      }
    }
    for (const auto& conv : b.convs) y = (*conv)(y);
    if (b.split.empty()) {
      outputs.push_back(y);
    } else {
      std::vector<Tensor> parts;
      for (const auto& conv : b.split) parts.push_back((*conv)(y));
      outputs.push_back(concat(parts, 1));
    }
  }
  return concat(outputs, 1);
}

std::string InceptionBlock::describe() const { return fmt::format("{}->{}", in_channels, out_channels); }

namespace {

using Pool = InceptionBlock::Pool;

std::shared_ptr<InceptionBlock> inception_a(int64_t in, int64_t pool_features) {
  auto b = std::make_shared<InceptionBlock>("InceptionA", in);
  b->branches.push_back({Pool::none, {b->add_conv("branch1x1", in, 64, {1, 1})}, {}});
  auto b5_1 = b->add_conv("branch5x5_1", in, 48, {1, 1});
  b->branches.push_back({Pool::none, {b5_1, b->add_conv("branch5x5_2", 48, 64, {5, 5}, 1, {2, 2})}, {}});
  auto d1 = b->add_conv("branch3x3dbl_1", in, 64, {1, 1});
  auto d2 = b->add_conv("branch3x3dbl_2", 64, 96, {3, 3}, 1, {1, 1});
  b->branches.push_back({Pool::none, {d1, d2, b->add_conv("branch3x3dbl_3", 96, 96, {3, 3}, 1, {1, 1})}, {}});
  b->branches.push_back({Pool::avg3_s1, {b->add_conv("branch_pool", in, pool_features, {1, 1})}, {}});
  b->out_channels = 64 + 64 + 96 + pool_features;
  return b;
}

std::shared_ptr<InceptionBlock> inception_b(int64_t in) {
  auto b = std::make_shared<InceptionBlock>("InceptionB", in);
  b->branches.push_back({Pool::none, {b->add_conv("branch3x3", in, 384, {3, 3}, 2)}, {}});
  auto d1 = b->add_conv("branch3x3dbl_1", in, 64, {1, 1});
  auto d2 = b->add_conv("branch3x3dbl_2", 64, 96, {3, 3}, 1, {1, 1});
  b->branches.push_back({Pool::none, {d1, d2, b->add_conv("branch3x3dbl_3", 96, 96, {3, 3}, 2)}, {}});
  b->branches.push_back({Pool::max3_s2, {}, {}});
  b->out_channels = 384 + 96 + in;
  return b;
}

std::shared_ptr<InceptionBlock> inception_c(int64_t in, int64_t c7) {
  auto b = std::make_shared<InceptionBlock>("InceptionC", in);
  b->branches.push_back({Pool::none, {b->add_conv("branch1x1", in, 192, {1, 1})}, {}});
  auto s1 = b->add_conv("branch7x7_1", in, c7, {1, 1});
  auto s2 = b->add_conv("branch7x7_2", c7, c7, {1, 7}, 1, {0, 3});
  b->branches.push_back({Pool::none, {s1, s2, b->add_conv("branch7x7_3", c7, 192, {7, 1}, 1, {3, 0})}, {}});
  auto d1 = b->add_conv("branch7x7dbl_1", in, c7, {1, 1});
  auto d2 = b->add_conv("branch7x7dbl_2", c7, c7, {7, 1}, 1, {3, 0});
  auto d3 = b->add_conv("branch7x7dbl_3", c7, c7, {1, 7}, 1, {0, 3});
  auto d4 = b->add_conv("branch7x7dbl_4", c7, c7, {7, 1}, 1, {3, 0});
  b->branches.push_back({Pool::none, {d1, d2, d3, d4, b->add_conv("branch7x7dbl_5", c7, 192, {1, 7}, 1, {0, 3})}, {}});
  b->branches.push_back({Pool::avg3_s1, {b->add_conv("branch_pool", in, 192, {1, 1})}, {}});
  b->out_channels = 4 * 192;
  return b;
}

std::shared_ptr<InceptionBlock> inception_d(int64_t in) {
  auto b = std::make_shared<InceptionBlock>("InceptionD", in);
  auto t1 = b->add_conv("branch3x3_1", in, 192, {1, 1});
  b->branches.push_back({Pool::none, {t1, b->add_conv("branch3x3_2", 192, 320, {3, 3}, 2)}, {}});
  auto s1 = b->add_conv("branch7x7x3_1", in, 192, {1, 1});
  auto s2 = b->add_conv("branch7x7x3_2", 192, 192, {1, 7}, 1, {0, 3});
  auto s3 = b->add_conv("branch7x7x3_3", 192, 192, {7, 1}, 1, {3, 0});
  b->branches.push_back({Pool::none, {s1, s2, s3, b->add_conv("branch7x7x3_4", 192, 192, {3, 3}, 2)}, {}});
  b->branches.push_back({Pool::max3_s2, {}, {}});
  b->out_channels = 320 + 192 + in;
  return b;
}

std::shared_ptr<InceptionBlock> inception_e(int64_t in) {
  auto b = std::make_shared<InceptionBlock>("InceptionE", in);
  b->branches.push_back({Pool::none, {b->add_conv("branch1x1", in, 320, {1, 1})}, {}});
  auto t1 = b->add_conv("branch3x3_1", in, 384, {1, 1});
  auto t2a = b->add_conv("branch3x3_2a", 384, 384, {1, 3}, 1, {0, 1});
  auto t2b = b->add_conv("branch3x3_2b", 384, 384, {3, 1}, 1, {1, 0});
  b->branches.push_back({Pool::none, {t1}, {t2a, t2b}});
  auto d1 = b->add_conv("branch3x3dbl_1", in, 448, {1, 1});
  auto d2 = b->add_conv("branch3x3dbl_2", 448, 384, {3, 3}, 1, {1, 1});
  auto d3a = b->add_conv("branch3x3dbl_3a", 384, 384, {1, 3}, 1, {0, 1});
  auto d3b = b->add_conv("branch3x3dbl_3b", 384, 384, {3, 1}, 1, {1, 0});
  b->branches.push_back({Pool::none, {d1, d2}, {d3a, d3b}});
  b->branches.push_back({Pool::avg3_s1, {b->add_conv("branch_pool", in, 192, {1, 1})}, {}});
  b->out_channels = 320 + 768 + 768 + 192;
  return b;
}

nn::Pool2dOptions max3_s2() {
  nn::Pool2dOptions p;
  p.kernel = {3, 3};
  p.stride = {2, 2};
  return p;
}

}  // namespace

InceptionAux::InceptionAux(int64_t in_channels, int64_t classes) : Module("InceptionAux") {
  conv0 = register_module("conv0", std::make_shared<BasicConv2d>(in_channels, 128, std::array<int64_t, 2>{1, 1}));
  conv1 = register_module("conv1", std::make_shared<BasicConv2d>(128, 768, std::array<int64_t, 2>{5, 5}));
  fc = register_module("fc", std::make_shared<nn::Linear>(768, classes));
}

Tensor InceptionAux::forward(const Tensor& x) {
  SCALPEL_CHECK(x.dim() == 4 && x.size(2) >= 17 && x.size(3) >= 17,
                "{} (InceptionAux): needs a map of at least 17x17 (a 299x299 input), got {}; train at 299x299 or "
                "without the auxiliary head (--aux-logits false)", label(),
                shape_str(x.shape()));
  nn::Pool2dOptions p;
  p.kernel = {5, 5};
  p.stride = {3, 3};
  Tensor y = (*conv1)((*conv0)(nn::avg_pool2d(x, p, label())));
  return (*fc)(flatten(nn::adaptive_avg_pool2d(y, 1, 1), 1));
}

InceptionV3::InceptionV3(std::string name, ModelOptions options)
    : Model("InceptionV3", std::move(name), std::move(options)) {
  const ModelOptions& o = this->options();
  using K = std::array<int64_t, 2>;
  stem.push_back(register_module("Conv2d_1a_3x3", std::make_shared<BasicConv2d>(o.in_channels, 32, K{3, 3}, 2)));
  stem.push_back(register_module("Conv2d_2a_3x3", std::make_shared<BasicConv2d>(32, 32, K{3, 3})));
  stem.push_back(register_module("Conv2d_2b_3x3", std::make_shared<BasicConv2d>(32, 64, K{3, 3}, 1, K{1, 1})));
  stem.push_back(register_module("maxpool1", std::make_shared<nn::MaxPool2d>(max3_s2())));
  stem.push_back(register_module("Conv2d_3b_1x1", std::make_shared<BasicConv2d>(64, 80, K{1, 1})));
  stem.push_back(register_module("Conv2d_4a_3x3", std::make_shared<BasicConv2d>(80, 192, K{3, 3})));
  stem.push_back(register_module("maxpool2", std::make_shared<nn::MaxPool2d>(max3_s2())));
  mixed_6.push_back(register_module("Mixed_5b", inception_a(192, 32)));
  mixed_6.push_back(register_module("Mixed_5c", inception_a(256, 64)));
  mixed_6.push_back(register_module("Mixed_5d", inception_a(288, 64)));
  mixed_6.push_back(register_module("Mixed_6a", inception_b(288)));
  mixed_6.push_back(register_module("Mixed_6b", inception_c(768, 128)));
  mixed_6.push_back(register_module("Mixed_6c", inception_c(768, 160)));
  mixed_6.push_back(register_module("Mixed_6d", inception_c(768, 160)));
  mixed_6.push_back(register_module("Mixed_6e", inception_c(768, 192)));
  if (o.aux_logits.value_or(true) && !o.headless) aux = register_module("AuxLogits", std::make_shared<InceptionAux>(768, o.classes));
  mixed_7.push_back(register_module("Mixed_7a", inception_d(768)));
  mixed_7.push_back(register_module("Mixed_7b", inception_e(1280)));
  mixed_7.push_back(register_module("Mixed_7c", inception_e(2048)));
  avgpool = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(o.dropout.value_or(0.5)));
  fc = register_module("fc", o.headless ? nn::ModulePtr(std::make_shared<nn::Identity>())
                                        : nn::ModulePtr(std::make_shared<nn::Linear>(2048, o.classes)));
  // torchvision also sets stddev 0.01 on AuxLogits.conv1, but on the BasicConv2d, which its
  // init loop never looks at (it reads the attribute of the Conv2d inside): that conv gets 0.1.
  init_truncated_normal(*this, 0.1, {{"AuxLogits.fc", 0.001}});
  set_layout("fc", "Mixed_7c", 2048, 75);
  if (aux) add_head("AuxLogits.fc");
}

Tensor InceptionV3::features(const Tensor& x) {
  Tensor y = x;
  for (auto& m : stem) y = (*m)(y);
  for (auto& m : mixed_6) y = (*m)(y);
  aux_logits_ = aux && is_training() ? (*aux)(y) : Tensor();
  for (auto& m : mixed_7) y = (*m)(y);
  return y;
}

Tensor InceptionV3::forward_head(const Tensor& f) { return (*fc)(flatten((*dropout)((*avgpool)(f)), 1)); }

std::shared_ptr<Model> make_inception_v3(const std::string& name, const ModelOptions& options) {
  check_options(name, options, {"aux_logits", "dropout"});
  return std::make_shared<InceptionV3>(name, options);
}

}  // namespace scalpel::models
