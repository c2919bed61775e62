// conv2d engines on representative ResNet-50 and MobileNetV2 / EfficientNet layers, float32,
// for the forward pass and both backward passes. Counters: FLOP/s (2 * MACs per pass) and,
// for the memory-bound depthwise layers, B/s (input + output + weight bytes touched once).
//   build-*/bin/bench_conv --benchmark_filter='r50_l1_3x3'
// The reference engine is timed too (one short run per case): the yardstick for speed-ups.
// Also resnet50's max pool (r50_maxpool_*), whose training forward sits between its convs.
#include <benchmark/benchmark.h>

#include <iterator>
#include <string>
#include <vector>

#include "layers/ops/conv2d.h"
#include "layers/ops/pooling.h"
#include "tensor/constants.h"
#include "tensor/random.h"

namespace {

using scalpel::Conv2dGeometry;
using scalpel::ops::CpuConvAlgorithm;

struct Layer {
  const char* name;
  int64_t batch, in_channels, size, out_channels, kernel, stride, groups;
};

// Square inputs, padding (kernel - 1) / 2 as torchvision.
const std::vector<Layer> kLayers = {
    {"r50_conv1_7x7s2", 1, 3, 224, 64, 7, 2, 1},
    {"r50_l1_3x3", 1, 64, 56, 64, 3, 1, 1},
    {"r50_l1_3x3_batch8", 8, 64, 56, 64, 3, 1, 1},
    {"r50_l1_1x1_expand", 1, 64, 56, 256, 1, 1, 1},
    {"r50_l1_1x1_reduce", 1, 256, 56, 64, 1, 1, 1},
    {"r50_l2_3x3s2", 1, 128, 56, 128, 3, 2, 1},
    {"r50_l2_down_1x1s2", 1, 256, 56, 512, 1, 2, 1},
    {"r50_l2_3x3", 1, 128, 28, 128, 3, 1, 1},
    {"r50_l2_3x3_batch8", 8, 128, 28, 128, 3, 1, 1},
    {"r50_l3_3x3", 1, 256, 14, 256, 3, 1, 1},
    {"r50_l3_3x3_batch8", 8, 256, 14, 256, 3, 1, 1},
    {"r50_l4_3x3", 1, 512, 7, 512, 3, 1, 1},
    {"r50_l4_3x3_batch8", 8, 512, 7, 512, 3, 1, 1},
    {"mv2_pw_96_24_56", 1, 96, 56, 24, 1, 1, 1},
    // ResNet-50's 1x1 convs at batch 8 on the small planes, where one sample's GEMM is narrow
    // (N = 196 or 49 columns).
    {"r50_l3_1x1_expand_batch8", 8, 256, 14, 1024, 1, 1, 1},
    {"r50_l3_1x1_reduce_batch8", 8, 1024, 14, 256, 1, 1, 1},
    {"r50_l4_1x1_expand_batch8", 8, 512, 7, 2048, 1, 1, 1},
    {"r50_l4_1x1_reduce_batch8", 8, 2048, 7, 512, 1, 1, 1},
    {"mv2_last_1x1_batch8", 8, 320, 7, 1280, 1, 1, 1},
    {"effb0_project_1x1_batch8", 8, 1152, 7, 320, 1, 1, 1},
    // DenseNet's 3x3 conv (128 -> growth 32) on each dense block's plane.
    {"dn_3x3_128_32_56", 1, 128, 56, 32, 3, 1, 1},
    {"dn_3x3_128_32_28", 1, 128, 28, 32, 3, 1, 1},
    {"dn_3x3_128_32_14", 1, 128, 14, 32, 3, 1, 1},
    {"dn_3x3_128_32_7", 1, 128, 7, 32, 3, 1, 1},
    {"dn_3x3_128_32_56_batch8", 8, 128, 56, 32, 3, 1, 1},
    {"dn_3x3_128_32_28_batch8", 8, 128, 28, 32, 3, 1, 1},
    {"dn_3x3_128_32_14_batch8", 8, 128, 14, 32, 3, 1, 1},
    // Every depthwise shape of mobilenet_v2 and efficientnet_b0 at 224x224 (multiplier 1;
    // efficientnet_b0's 3x3 layers on 112x112 and its 144@56 s1 are mobilenet_v2's).
    {"mv2_dw3x3_32_112", 1, 32, 112, 32, 3, 1, 32},
    {"mv2_dw3x3s2_96_112", 1, 96, 112, 96, 3, 2, 96},
    {"mv2_dw3x3_144_56", 1, 144, 56, 144, 3, 1, 144},
    {"mv2_dw3x3_144_56_batch8", 8, 144, 56, 144, 3, 1, 144},
    {"mv2_dw3x3s2_144_56", 1, 144, 56, 144, 3, 2, 144},
    {"mv2_dw3x3_192_28", 1, 192, 28, 192, 3, 1, 192},
    {"mv2_dw3x3s2_192_28", 1, 192, 28, 192, 3, 2, 192},
    {"mv2_dw3x3_384_14", 1, 384, 14, 384, 3, 1, 384},
    {"mv2_dw3x3_576_14", 1, 576, 14, 576, 3, 1, 576},
    {"mv2_dw3x3s2_576_14", 1, 576, 14, 576, 3, 2, 576},
    {"mv2_dw3x3_960_7", 1, 960, 7, 960, 3, 1, 960},
    {"effb0_dw5x5s2_144_56", 1, 144, 56, 144, 5, 2, 144},
    {"effb0_dw5x5_240_28", 1, 240, 28, 240, 5, 1, 240},
    {"effb0_dw3x3s2_240_28", 1, 240, 28, 240, 3, 2, 240},
    {"effb0_dw5x5s2_240_28", 1, 240, 28, 240, 5, 2, 240},  // not in the model; kept for older figures
    {"effb0_dw3x3_480_14", 1, 480, 14, 480, 3, 1, 480},
    {"effb0_dw5x5_480_14", 1, 480, 14, 480, 5, 1, 480},
    {"effb0_dw5x5_672_14", 1, 672, 14, 672, 5, 1, 672},
    {"effb0_dw5x5s2_672_14", 1, 672, 14, 672, 5, 2, 672},
    {"effb0_dw5x5_1152_7", 1, 1152, 7, 1152, 5, 1, 1152},
    {"effb0_dw3x3_1152_7", 1, 1152, 7, 1152, 3, 1, 1152},
};

Conv2dGeometry geometry(const Layer& l) {
  Conv2dGeometry g;
  g.batch = l.batch;
  g.in_channels = l.in_channels;
  g.in_h = g.in_w = l.size;
  g.out_channels = l.out_channels;
  g.kernel_h = g.kernel_w = l.kernel;
  g.stride_h = g.stride_w = l.stride;
  g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = (l.kernel - 1) / 2;
  g.groups = l.groups;
  g.set_output_size();
  return g;
}

// ForwardConstant: the forward pass with the weights declared constant (tensor/constants.h), as
// models::fuse_for_inference declares them: Winograd transforms them once instead of per call.
enum class Pass { Forward, ForwardConstant, BackwardInput, BackwardWeight };

void run(benchmark::State& state, const Layer& layer, CpuConvAlgorithm engine, Pass pass) {
  const Conv2dGeometry g = geometry(layer);
  scalpel::Generator gen(1);
  const auto x = scalpel::randn({g.batch, g.in_channels, g.in_h, g.in_w}, gen);
  const auto w = scalpel::randn({g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}, gen);
  const auto b = scalpel::randn({g.out_channels}, gen);
  auto y = scalpel::randn({g.batch, g.out_channels, g.out_h, g.out_w}, gen);
  auto gx = scalpel::Tensor::empty(x.shape());
  auto gw = scalpel::Tensor::empty(w.shape());
  if (pass == Pass::ForwardConstant) scalpel::declare_constant(w.data<float>(), w.storage());
  for (auto _ : state) {
    switch (pass) {
      case Pass::Forward:
      case Pass::ForwardConstant:
        scalpel::ops::conv2d_forward(engine, g, x.data<float>(), w.data<float>(), b.data<float>(),
                                     y.data<float>());
        break;
      case Pass::BackwardInput:
        scalpel::ops::conv2d_backward_input(engine, g, y.data<float>(), w.data<float>(),
                                            gx.data<float>());
        break;
      case Pass::BackwardWeight:
        scalpel::ops::conv2d_backward_weight(engine, g, x.data<float>(), y.data<float>(),
                                             gw.data<float>());
        break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(g.macs()),
                                                benchmark::Counter::kIsIterationInvariantRate);
  if (g.is_depthwise()) {
    const double bytes = 4.0 * double(x.numel() + y.numel() + w.numel());
    state.counters["B/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  }
}

const int kRegistered = [] {
  const std::pair<Pass, const char*> passes[] = {
      {Pass::Forward, "fwd"},
      {Pass::ForwardConstant, "fwd_constant"},
      {Pass::BackwardInput, "bwd_input"},
      {Pass::BackwardWeight, "bwd_weight"}};
  for (const Layer& layer : kLayers) {
    const Conv2dGeometry g = geometry(layer);
    std::vector<CpuConvAlgorithm> engines(std::begin(scalpel::ops::kFastCpuConvAlgorithms),
                                          std::end(scalpel::ops::kFastCpuConvAlgorithms));
    engines.push_back(CpuConvAlgorithm::Reference);
    for (CpuConvAlgorithm engine : engines) {
      if (!scalpel::ops::cpu_conv_algorithm_supports(engine, g)) continue;
      for (const auto& [pass, pass_name] : passes) {
        if (pass == Pass::ForwardConstant && engine != CpuConvAlgorithm::Winograd) continue;  // the same as fwd
        const std::string name = std::string(layer.name) + "/" + pass_name + "/" +
                                 std::string(scalpel::ops::cpu_conv_algorithm_name(engine));
        auto* b = benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
          run(s, layer, engine, pass);
        });
        b->Unit(benchmark::kMillisecond)->UseRealTime();
        if (engine == CpuConvAlgorithm::Reference) b->Iterations(1);
      }
    }
  }
  return 0;
}();

// The max pool after resnet50's stem, at batch 8 (the training forward's argmax path, its
// reference scan, and inference's values-only path): a layer that sits between the convs.
void max_pool(benchmark::State& state, int variant) {
  scalpel::Generator gen(1);
  const auto x = scalpel::randn({8, 64, 112, 112}, gen);
  scalpel::nn::Pool2dOptions options;
  options.kernel = {3, 3};
  options.stride = {2, 2};
  options.padding = scalpel::nn::Padding2d::symmetric(1);
  const scalpel::ops::Pool2dGeometry g = scalpel::ops::pool2d_geometry(x, options, "maxpool");
  for (auto _ : state) {
    if (variant == 0) benchmark::DoNotOptimize(scalpel::ops::max_pool2d_forward(x, g));
    if (variant == 1) benchmark::DoNotOptimize(scalpel::ops::max_pool2d_forward_reference(x, g));
    if (variant == 2) benchmark::DoNotOptimize(scalpel::ops::max_pool2d_values(x, g));
  }
}
BENCHMARK_CAPTURE(max_pool, r50_maxpool_3x3s2_batch8/argmax, 0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(max_pool, r50_maxpool_3x3s2_batch8/argmax_reference, 1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(max_pool, r50_maxpool_3x3s2_batch8/values, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
