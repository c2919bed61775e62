// Depthwise convolution lab (groups == C == K, MobileNet/EfficientNet). Memory-bound: judge
// it in GB/s. Variants:
//   1 naive    the backend's depthwise kernel (cuda/kernels/depthwise_conv.cu): one thread per output
//   2 tiled    lab candidate (cuda/lab/kernels/depthwise_tiled.cu): input window in shared memory
//              sweep: tile 8, 16, 32 outputs per side
//   3 cuDNN    a grouped convolution through cuda/cudnn.h (GPU with cuDNN only)
// usage: lab_depthwise [VARIANT] [--emu] [--repeat R] [--size N C H W R STRIDE]
// Padding is R / 2 (same size at stride 1). Defaults: MobileNetV2's 3x3 depthwise on 144
// channels at 56x56, batch 32, on a GPU; under emulation 2 3 13 10 3 2 (odd sizes).
#include <fmt/format.h>

#include "cuda/cudnn.h"
#include "cuda/lab/lab.h"
#include "cuda/lab/lab_kernels.h"
#include "cuda/lab/reference.h"
#include "tensor/error.h"

using namespace scalpel;
using namespace scalpel::cuda;

int main(int argc, char** argv) {
  return lab::lab_main([&] {
    lab::Options options;
    if (!lab::parse_options(argc, argv, 3, "lab_depthwise [VARIANT 1-3] [--emu] [--repeat R] [--size N C H W R STRIDE]",
                            options))
      return 0;
    lab::Harness h("Depthwise convolution lab", options, "cuDNN");
    std::vector<int64_t> size = h.options().size;
    if (size.empty())
      size = h.on_gpu() ? std::vector<int64_t>{32, 144, 56, 56, 3, 1} : std::vector<int64_t>{2, 3, 13, 10, 3, 2};
    SCALPEL_CHECK(size.size() == 6, "--size takes N C H W R STRIDE, got {} values", size.size());
    for (const int64_t v : size) SCALPEL_CHECK(v > 0, "--size: N C H W R STRIDE must be positive");
    Conv2dGeometry p;
    p.batch = size[0], p.in_channels = p.out_channels = p.groups = size[1], p.in_h = size[2], p.in_w = size[3],
    p.kernel_h = p.kernel_w = size[4];
    p.stride_h = p.stride_w = size[5];
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = p.kernel_h / 2;
    p.set_output_size();
    SCALPEL_CHECK(p.out_h > 0 && p.out_w > 0, "--size: the {}x{} kernel does not fit the padded {}x{} input",
                  p.kernel_h, p.kernel_w, p.in_h, p.in_w);
    std::printf("x [%lld,%lld,%lld,%lld], %lldx%lld depthwise, stride %lld, pad %lld -> [%lld,%lld,%lld,%lld]\n",
                (long long)p.batch, (long long)p.in_channels, (long long)p.in_h, (long long)p.in_w,
                (long long)p.kernel_h, (long long)p.kernel_w, (long long)p.stride_h, (long long)p.pad_top,
                (long long)p.batch, (long long)p.in_channels, (long long)p.out_h, (long long)p.out_w);

    const std::vector<float> x = lab::random_values(p.batch * p.in_channels * p.in_h * p.in_w, 1);
    const std::vector<float> w = lab::random_values(p.in_channels * p.kernel_h * p.kernel_w, 2);
    const std::vector<float> bias = lab::random_values(p.in_channels, 3);
    const std::vector<float> want = lab::conv2d_forward_reference(p, x, w, bias);
    lab::DeviceBuffer X(h.stream(), x), W(h.stream(), w), Bias(h.stream(), bias);
    lab::DeviceBuffer Y(h.stream(), std::vector<float>(want.size()));
    const double flops = 2.0 * p.batch * p.in_channels * p.out_h * p.out_w * p.kernel_h * p.kernel_w;
    const double bytes = 4.0 * (x.size() + w.size() + want.size());
    const Stream s = h.stream();

    if (h.on_gpu() && cudnn::compiled())
      h.run(3, "cuDNN", "", [&] { cudnn::conv2d_forward(s, p, X.get(), W.get(), Bias.get(), Y.get()); }, Y, want,
            flops, bytes, /*vendor=*/true);
    else
      h.skip(3, "cuDNN", h.on_gpu() ? "this build has no cuDNN" : "needs a GPU (cuDNN cannot be emulated)");

    h.run(1, "naive", "", [&] {
      SCALPEL_CUDA_CALL(s, depthwise_conv2d_forward, p, X.get(), W.get(), Bias.get(), Y.get());
    }, Y, want, flops, bytes);
    for (const int tile : {8, 16, 32})
      h.run(2, "tiled", fmt::format("tile {}", tile), [&] {
        SCALPEL_CUDA_CALL(s, lab::depthwise_conv2d_tiled, p, X.get(), W.get(), Bias.get(), Y.get(), tile);
      }, Y, want, flops, bytes);
    return h.finish();
  });
}
