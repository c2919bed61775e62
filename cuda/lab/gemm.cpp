// GEMM lab: C[M,N] = A[M,K] B[K,N], float32, row-major. The variants are the backend's own
// kernels (cuda/kernels/gemm.cu), called through GemmConfig, never copies:
//   1 naive               gemm_kernel1: one thread per C element       sweep: 8, 16, 32 threads/side
//   2 shared-memory tiles gemm_kernel2<T>                                sweep: T = 8, 16, 32
//   3 register-blocked    gemm_register_blocked, 4x4 (2x2, 8x8) per thread  sweep: C tile 32, 64, 128
//   4 vectorized          variant 3 with float4 loads (GemmVariant::Auto picks it when it applies)
//   5 cuBLAS              cublasSgemm (GPU only): the unit of measurement
// usage: lab_gemm [VARIANT] [--emu] [--repeat R] [--size M N K]
// Defaults: 4096 4096 4096 on a GPU; 67 52 36 under emulation (no size a multiple of a tile,
// N and K multiples of 4 so that variant 4 applies). docs/kernels.md explains the steps.
#include <fmt/format.h>

#include "cuda/lab/lab.h"
#include "cuda/lab/lab_gpu.h"
#include "tensor/error.h"
#include "tensor/gemm.h"

using namespace scalpel;
using namespace scalpel::cuda;

int main(int argc, char** argv) {
  return lab::lab_main([&] {
    lab::Options options;
    if (!lab::parse_options(argc, argv, 5, "lab_gemm [VARIANT 1-5] [--emu] [--repeat R] [--size M N K]", options))
      return 0;
    lab::Harness h("GEMM lab", options, "cuBLAS");
    std::vector<int64_t> size = h.options().size;
    if (size.empty()) size = h.on_gpu() ? std::vector<int64_t>{4096, 4096, 4096} : std::vector<int64_t>{67, 52, 36};
    SCALPEL_CHECK(size.size() == 3, "--size takes M N K, got {} values", size.size());
    const int64_t M = size[0], N = size[1], K = size[2];
    SCALPEL_CHECK(M > 0 && N > 0 && K > 0, "--size: M N K must be positive, got {} {} {}", M, N, K);
    std::printf("C[%lld,%lld] = A[%lld,%lld] B[%lld,%lld]\n", static_cast<long long>(M),
                static_cast<long long>(N), static_cast<long long>(M), static_cast<long long>(K),
                static_cast<long long>(K), static_cast<long long>(N));

    const std::vector<float> a = lab::random_values(M * K, 1), b = lab::random_values(K * N, 2);
    std::vector<float> want(M * N);
    // The plain triple loop at small sizes; at GPU sizes (minutes for that loop) the packed CPU
    // GEMM, which the tensor tests check against the loop.
    if (M * N * K <= (int64_t{1} << 27))
      gemm_reference(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, want.data(), N);
    else
      gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, want.data(), N);
    lab::DeviceBuffer A(h.stream(), a), B(h.stream(), b), C(h.stream(), std::vector<float>(M * N));
    const double flops = 2.0 * M * N * K, bytes = 4.0 * (M * K + K * N + M * N);
    const Stream s = h.stream();

    if (h.on_gpu())
      h.run(5, "cuBLAS", "", [&] { lab::cublas_sgemm(s, M, N, K, A.get(), B.get(), C.get()); }, C, want,
            flops, bytes, /*vendor=*/true);
    else
      h.skip(5, "cuBLAS", "needs a GPU");

    struct Sweep {
      GemmVariant variant;
      const char* name;
      std::vector<int> tiles;
    };
    const Sweep sweeps[] = {{GemmVariant::Naive, "naive", {8, 16, 32}},
                            {GemmVariant::SharedTiled, "shared-tiled", {8, 16, 32}},
                            {GemmVariant::RegisterBlocked, "register-blocked", {32, 64, 128}},
                            {GemmVariant::Vectorized, "vectorized", {32, 64, 128}}};
    for (const Sweep& sw : sweeps) {
      const int number = static_cast<int>(sw.variant);
      if (gemm_resolve(sw.variant, false, false, N, K, A.get(), K, B.get(), N) != sw.variant) {
        h.skip(number, sw.name, "float4 loads need N and K multiples of 4");
        continue;
      }
      for (const int tile : sw.tiles)
        h.run(number, sw.name, fmt::format("tile {}", tile), [&] {
          SCALPEL_CUDA_CALL(s, gemm, GemmConfig{sw.variant, tile}, false, false, M, N, K, 1.0f, A.get(), K,
                            B.get(), N, 0.0f, C.get(), N);
        }, C, want, flops, bytes);
    }
    return h.finish();
  });
}
