// Convolution lab: y = conv(x, w) + bias, NCHW, float32. Variants:
//   1 direct          the backend's conv2d_direct_kernel (CudaConvAlgorithm::Direct): one thread
//                     per output
//   2 im2col + GEMM   the backend's default (CudaConvAlgorithm::Im2colGemm)   sweep: GEMM C tile 32, 64, 128
//   3 implicit GEMM   lab candidate (cuda/lab/kernels/conv_implicit_gemm.cu)  sweep: tile 16, 32
//   4 cuDNN           cuda/cudnn.h (GPU with cuDNN only): the unit of measurement
// usage: lab_conv [VARIANT] [--emu] [--repeat R] [--size N C H W K R S STRIDE PAD [GROUPS]]
// Defaults: ResNet-50's first 3x3 of layer1 at batch 32 on a GPU (32 64 56 56 64 3 3 1 1);
// under emulation 2 6 11 9 4 3 3 2 1 2 (odd sizes, stride 2, two groups).
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
    if (!lab::parse_options(argc, argv, 4,
                            "lab_conv [VARIANT 1-4] [--emu] [--repeat R] [--size N C H W K R S STRIDE PAD [GROUPS]]",
                            options))
      return 0;
    lab::Harness h("Convolution lab", options, "cuDNN");
    std::vector<int64_t> size = h.options().size;
    if (size.empty())
      size = h.on_gpu() ? std::vector<int64_t>{32, 64, 56, 56, 64, 3, 3, 1, 1}
                        : std::vector<int64_t>{2, 6, 11, 9, 4, 3, 3, 2, 1, 2};
    SCALPEL_CHECK(size.size() == 9 || size.size() == 10,
                  "--size takes N C H W K R S STRIDE PAD [GROUPS], got {} values", size.size());
    for (size_t i = 0; i < size.size(); ++i)
      SCALPEL_CHECK(size[i] > 0 || i == 8, "--size: only PAD may be 0 (value {} is 0)", i + 1);
    Conv2dGeometry p;
    p.batch = size[0], p.in_channels = size[1], p.in_h = size[2], p.in_w = size[3], p.out_channels = size[4],
    p.kernel_h = size[5], p.kernel_w = size[6];
    p.stride_h = p.stride_w = size[7];
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = size[8];
    p.groups = size.size() == 10 ? size[9] : 1;
    p.set_output_size();
    SCALPEL_CHECK(p.in_channels % p.groups == 0 && p.out_channels % p.groups == 0,
                  "--size: groups {} must divide C {} and K {}", p.groups, p.in_channels, p.out_channels);
    SCALPEL_CHECK(p.out_h > 0 && p.out_w > 0, "--size: the {}x{} kernel does not fit the padded {}x{} input",
                  p.kernel_h, p.kernel_w, p.in_h, p.in_w);
    std::printf(
        "x [%lld,%lld,%lld,%lld] * w [%lld,%lld,%lld,%lld], stride %lld, pad %lld, groups %lld -> "
        "[%lld,%lld,%lld,%lld]\n",
        (long long)p.batch, (long long)p.in_channels, (long long)p.in_h, (long long)p.in_w, (long long)p.out_channels,
        (long long)(p.in_channels / p.groups), (long long)p.kernel_h, (long long)p.kernel_w, (long long)p.stride_h,
        (long long)p.pad_top, (long long)p.groups, (long long)p.batch, (long long)p.out_channels, (long long)p.out_h,
        (long long)p.out_w);

    const std::vector<float> x = lab::random_values(p.batch * p.in_channels * p.in_h * p.in_w, 1);
    const std::vector<float> w =
        lab::random_values(p.out_channels * (p.in_channels / p.groups) * p.kernel_h * p.kernel_w, 2);
    const std::vector<float> bias = lab::random_values(p.out_channels, 3);
    const std::vector<float> want = lab::conv2d_forward_reference(p, x, w, bias);
    lab::DeviceBuffer X(h.stream(), x), W(h.stream(), w), Bias(h.stream(), bias);
    lab::DeviceBuffer Y(h.stream(), std::vector<float>(want.size()));
    lab::DeviceBuffer workspace(h.stream(), std::vector<float>(conv2d_workspace_floats(p)));
    const double flops =
        2.0 * p.batch * p.out_channels * p.out_h * p.out_w * (p.in_channels / p.groups) * p.kernel_h * p.kernel_w;
    const double bytes = 4.0 * (x.size() + w.size() + want.size());
    const Stream s = h.stream();

    if (h.on_gpu() && cudnn::compiled())
      h.run(4, "cuDNN", "", [&] { cudnn::conv2d_forward(s, p, X.get(), W.get(), Bias.get(), Y.get()); }, Y, want,
            flops, bytes, /*vendor=*/true);
    else
      h.skip(4, "cuDNN", h.on_gpu() ? "this build has no cuDNN" : "needs a GPU (cuDNN cannot be emulated)");

    h.run(1, "direct", "", [&] {
      SCALPEL_CUDA_CALL(s, conv2d_forward, p, X.get(), W.get(), Bias.get(), Y.get(), workspace.get(),
                        ConvConfig{CudaConvAlgorithm::Direct, {}});
    }, Y, want, flops, bytes);
    for (const int tile : {32, 64, 128})
      h.run(2, "im2col+gemm", fmt::format("tile {}", tile), [&] {
        SCALPEL_CUDA_CALL(s, conv2d_forward, p, X.get(), W.get(), Bias.get(), Y.get(), workspace.get(),
                          ConvConfig{CudaConvAlgorithm::Im2colGemm, GemmConfig{GemmVariant::Auto, tile}});
      }, Y, want, flops, bytes);
    for (const int tile : {16, 32})
      h.run(3, "implicit-gemm", fmt::format("tile {}", tile), [&] {
        SCALPEL_CUDA_CALL(s, lab::conv2d_implicit_gemm, p, X.get(), W.get(), Bias.get(), Y.get(), tile);
      }, Y, want, flops, bytes);
    return h.finish();
  });
}
