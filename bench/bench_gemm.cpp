// SGEMM benchmarks: our packed GEMM (each micro-kernel), Eigen, and PyTorch's torch.mm, on
// 2048^3 and on the convolutions of resnet50 / mobilenet_v2 written as GEMMs
// (M = output channels, N = output pixels, K = input channels * kernel area; batch 1, 224x224).
// Every GEMM row reports GFLOP/s of its best iteration and that as a percentage of the FMA
// peak measured by the probe below at the same thread count (the machine is shared, so best
// of N is the stable figure; the mean time is Google Benchmark's usual column). The *_cpu
// counters use the calling thread's CPU time instead of wall time: on a machine busy with
// other work they stay meaningful (time slices lost to other processes do not count), but
// they assume the other threads ran alongside the calling one.
//
//   build-*/bin/bench_gemm --benchmark_filter='2048'        # the headline number
//   SCALPEL_BENCH_TORCH=0 build-*/bin/bench_gemm            # skip the PyTorch rows
//   build-*/bin/bench_gemm --benchmark_filter='scalpel(_bf16)?/'  # bf16 next to fp32
//
// Eigen here is built with the project's flags (baseline x86-64: SSE2 only), which is what
// scalpel would get from it; PyTorch rows run /usr/bin/python3 once per shape and report
// best-of-N times with torch.set_num_threads(threads) (see torch_mm_seconds).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <immintrin.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_internal.h"

namespace {

using Clock = std::chrono::steady_clock;

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
using scalpel::Isa;
using scalpel::gemm_detail::Packing;

// ---- FMA peak probe ------------------------------------------------------------------------

// 16 independent FMA chains per thread: more than latency (4) x FMA ports (2) needs, so the
// loop runs at the FMA throughput limit. Returns a value so the work is not optimised away.
[[SCALPEL_TARGET_AVX512]] float fma_chains_avx512(int64_t iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);
  for (int64_t n = 0; n < iters; ++n)
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  for (int i = 1; i < 16; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  return _mm512_reduce_add_ps(acc[0]);
}

[[SCALPEL_TARGET_AVX2]] float fma_chains_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
  for (int64_t n = 0; n < iters; ++n)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  for (int i = 1; i < 12; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, acc[0]);
  return out[0];
}

// Seconds for `iters` probe iterations on each of `threads` threads, and the flops done.
struct ProbeRun {
  double seconds, cpu_seconds, flops;
};

ProbeRun fma_probe(int threads, int64_t iters) {
  const bool wide = scalpel::cpu_supports(Isa::avx512);
  float sink = 0;
  const double cpu_start = thread_cpu_seconds();
  const auto start = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
  sink += wide ? fma_chains_avx512(iters) : fma_chains_avx2(iters);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = thread_cpu_seconds() - cpu_start;
  benchmark::DoNotOptimize(sink);
  const double flops_per_iter = wide ? 16 * 16 * 2 : 12 * 8 * 2;
  return {seconds, cpu_seconds, flops_per_iter * static_cast<double>(iters) * threads};
}

// Best-of-N FMA GFLOP/s for a thread count (wall time, or CPU time of the calling thread),
// measured once per process.
struct Peak {
  double wall, cpu;
};
Peak peak_gflops(int threads) {
  static std::map<int, Peak> cache;
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  Peak best{0, 0};
  for (int rep = 0; rep < 20; ++rep) {
    const ProbeRun r = fma_probe(threads, 2'000'000);
    best.wall = std::max(best.wall, r.flops / r.seconds / 1e9);
    best.cpu = std::max(best.cpu, r.flops / r.cpu_seconds / 1e9);
  }
  return cache[threads] = best;
}

void BM_FmaPeak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double best = 0, best_cpu = 0;
  for (auto _ : state) {
    const ProbeRun r = fma_probe(threads, 2'000'000);
    state.SetIterationTime(r.seconds);
    best = std::max(best, r.flops / r.seconds / 1e9);
    best_cpu = std::max(best_cpu, r.flops / r.cpu_seconds / 1e9);
  }
  state.counters["GFLOPs_best"] = best;
  state.counters["GFLOPs_cpu"] = best_cpu;
  state.SetLabel(scalpel::cpu_supports(Isa::avx512) ? "avx512 fma" : "avx2 fma");
}
BENCHMARK(BM_FmaPeak)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---- GEMM shapes ---------------------------------------------------------------------------

struct Shape {
  const char* name;
  int64_t M, N, K;
  bool trans_b = false;  // scalpel rows only: B stored [N, K], as linear() passes its weight
  int64_t items = 1;     // > 1: also timed as gemm_items, N / items columns per item (a conv's samples)
};

// C[Cout, pixels] = W[Cout, Cin*kh*kw] * cols[Cin*kh*kw, pixels]
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> list = {
      {"square_2048", 2048, 2048, 2048},
      {"resnet50_conv1_7x7s2", 64, 12544, 147},
      {"resnet50_l1_1x1_64", 64, 3136, 64},
      {"resnet50_l1_3x3_64", 64, 3136, 576},
      {"resnet50_l1_1x1_256", 256, 3136, 64},
      {"resnet50_l2_3x3_128", 128, 784, 1152},
      {"resnet50_l3_3x3_256", 256, 196, 2304},
      {"resnet50_l3_1x1_1024", 1024, 196, 256},
      {"resnet50_l4_3x3_512", 512, 49, 4608},
      {"resnet50_l4_1x1_2048", 2048, 49, 512},
      // The small-plane layers at batch 8, N = 8 planes: one matrix, and as 8 items (gemm_items,
      // the samples of conv2d_im2col.cpp's side-by-side path).
      {"resnet50_l3_1x1_1024_b8", 1024, 1568, 256, false, 8},
      {"resnet50_l3_3x3_256_b8", 256, 1568, 2304, false, 8},
      {"resnet50_l4_3x3_512_b8", 512, 392, 4608, false, 8},
      {"resnet50_l4_1x1_2048_b8", 2048, 392, 512, false, 8},
      {"resnet50_fc_b8", 8, 1000, 2048, true},
      {"resnet50_fc_b1", 1, 1000, 2048, true},
      {"mobilenet_v2_conv1_3x3s2", 32, 12544, 27},
      {"mobilenet_v2_expand_96", 96, 12544, 16},
      {"mobilenet_v2_project_24", 24, 3136, 144},
      {"mobilenet_v2_expand_192", 192, 784, 32},
      {"mobilenet_v2_expand_576", 576, 196, 96},
      {"mobilenet_v2_project_160", 160, 49, 960},
      {"mobilenet_v2_last_1280", 1280, 49, 320},
      // efficientnet_b0's 1x1 convs (planes of 112x112 down to 7x7) and its squeeze-excite
      // GEMVs (N = 1: one pixel), where per-call costs and ragged tiles dominate.
      {"effnet_b0_project_16", 16, 12544, 32},
      {"effnet_b0_expand_96", 96, 12544, 16},
      {"effnet_b0_project_24", 24, 3136, 96},
      {"effnet_b0_expand_144", 144, 3136, 24},
      {"effnet_b0_project_40", 40, 784, 144},
      {"effnet_b0_project_80", 80, 196, 240},
      {"effnet_b0_expand_480", 480, 196, 80},
      {"effnet_b0_expand_672", 672, 196, 112},
      {"effnet_b0_project_192", 192, 49, 672},
      {"effnet_b0_expand_1152", 1152, 49, 192},
      {"effnet_b0_project_192_from_1152", 192, 49, 1152},
      {"effnet_b0_project_320", 320, 49, 1152},
      {"effnet_b0_head_1280", 1280, 49, 320},
      {"effnet_b0_se_fc1_1152", 48, 1, 1152},
      {"effnet_b0_se_fc2_1152", 1152, 1, 48},
      {"effnet_b0_se_fc1_672", 28, 1, 672},
      {"effnet_b0_se_fc2_672", 672, 1, 28},
      {"effnet_b0_se_fc1_32", 8, 1, 32},
  };
  return list;
}

struct Operands {
  std::vector<float> A, B, C;
  explicit Operands(const Shape& s) : A(s.M * s.K), B(s.K * s.N), C(s.M * s.N) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& x : A) x = u(rng);
    for (float& x : B) x = u(rng);
  }
};

// Times fn() per iteration, reports best-iteration GFLOP/s and % of the measured peak.
template <typename Fn>
void time_gemm(benchmark::State& state, const Shape& s, int threads, Fn&& fn) {
  const double flops = 2.0 * s.M * s.N * s.K;
  const Peak peak = peak_gflops(threads);
  fn();  // warm-up: packing buffers, thread pool, caches
  double best = 1e30, best_cpu = 1e30;
  for (auto _ : state) {
    const double cpu_start = thread_cpu_seconds();
    const auto start = Clock::now();
    fn();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    best = std::min(best, seconds);
    best_cpu = std::min(best_cpu, thread_cpu_seconds() - cpu_start);
  }
  state.counters["GFLOPs_best"] = flops / best / 1e9;
  state.counters["pct_peak"] = 100.0 * flops / best / 1e9 / peak.wall;
  state.counters["GFLOPs_cpu"] = flops / best_cpu / 1e9;
  state.counters["pct_peak_cpu"] = 100.0 * flops / best_cpu / 1e9 / peak.cpu;
}

void BM_Scalpel(benchmark::State& state, Shape s, Isa kernel) {
  if (!scalpel::cpu_supports(kernel)) {
    state.SkipWithError("kernel not supported by this CPU");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  Operands o(s);
  time_gemm(state, s, threads, [&] {
    scalpel::gemm_detail::gemm_with_kernel(kernel, threads, Packing::automatic, false, s.trans_b,
                                           s.M, s.N, s.K, 1.0f, o.A.data(), s.K, o.B.data(),
                                           s.trans_b ? s.K : s.N, 0.0f, o.C.data(), s.N);
  });
  const scalpel::gemm_detail::KernelInfo& ki = scalpel::gemm_detail::kernel_info(kernel);
  state.SetLabel(fmt::format("{} kc {} nc {}", ki.name, ki.kc, ki.nc));  // nc fitted to the L2
}

// gemm_items: the same product as s.items matrices side by side in B and C.
void BM_ScalpelItems(benchmark::State& state, Shape s) {
  const int threads = static_cast<int>(state.range(0));
  Operands o(s);
  const int64_t width = s.N / s.items;
  const scalpel::ColumnItems items{s.items, width, s.K * width, s.M * width};
  time_gemm(state, s, threads, [&] {
    scalpel::gemm_detail::gemm_items_with_kernel(scalpel::gemm_detail::best_kernel(), threads, Packing::automatic,
                                                 false, s.M, s.K, items, 1.0f, o.A.data(), s.K, o.B.data(), width,
                                                 0.0f, o.C.data(), width);
  });
  state.SetLabel(fmt::format("{} items of {} columns", s.items, width));
}

// The bf16 GEMM with A declared constant (prepack_constant_a, as fuse_for_inference does for
// conv weights), so A is converted once, not per call.
void BM_ScalpelBf16Prepacked(benchmark::State& state, Shape s) {
  if (!scalpel::bf16_gemm_supported()) {
    state.SkipWithError("this CPU has no AVX512_BF16");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  Operands o(s);
  auto owner = std::make_shared<int>(0);
  scalpel::prepack_constant_a(o.A.data(), s.M, s.K, s.K, owner);
  time_gemm(state, s, threads, [&] {
    scalpel::gemm_bf16(false, s.trans_b, s.M, s.N, s.K, 1.0f, o.A.data(), s.K, o.B.data(), s.trans_b ? s.K : s.N,
                       0.0f, o.C.data(), s.N, {}, threads);
  });
  scalpel::forget_prepacked_constants();
  state.SetLabel("avx512_bf16_8x48, A prepacked");
}

// The bf16 GEMM (tensor/gemm_bf16.h): the same product with bf16 operands, float sums.
// pct_peak is against the float FMA probe: vdpbf16ps does twice an FMA's multiply-adds.
void BM_ScalpelBf16(benchmark::State& state, Shape s) {
  if (!scalpel::bf16_gemm_supported()) {
    state.SkipWithError("this CPU has no AVX512_BF16");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  Operands o(s);
  time_gemm(state, s, threads, [&] {
    scalpel::gemm_bf16(false, s.trans_b, s.M, s.N, s.K, 1.0f, o.A.data(), s.K, o.B.data(), s.trans_b ? s.K : s.N,
                       0.0f, o.C.data(), s.N, {}, threads);
  });
  state.SetLabel("avx512_bf16_8x48");
}

void BM_Eigen(benchmark::State& state, Shape s) {
  const int threads = static_cast<int>(state.range(0));
  Operands o(s);
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const Matrix> a(o.A.data(), s.M, s.K), b(o.B.data(), s.K, s.N);
  Eigen::Map<Matrix> c(o.C.data(), s.M, s.N);
  Eigen::setNbThreads(threads);
  time_gemm(state, s, threads, [&] { c.noalias() = a * b; });
  state.SetLabel(Eigen::SimdInstructionSetsInUse());
}

// Runs torch.mm in a Python subprocess; its best-of-N wall and calling-thread CPU seconds
// (< 0 on failure).
struct TorchRun {
  double seconds = -1, cpu_seconds = -1;
};
// torch.mm goes to the system BLAS (Debian: reference netlib BLAS); with `onednn` the same
// product runs as oneDNN's inner product (mkldnn_linear with B given as [N, K]), which is
// what PyTorch's own convolutions use here.
TorchRun torch_mm_seconds(const Shape& s, int threads, bool onednn) {
  const std::string call = onednn ? "torch._C._nn.mkldnn_linear(am, wm, None)"
                                  : "torch.mm(a, b, out=c)";
  const std::string script = fmt::format(
      "import time, torch\n"
      "torch.set_num_threads({})\n"
      "a = torch.randn({}, {}); b = torch.randn({}, {}); c = torch.empty({}, {})\n"
      "am = a.to_mkldnn(); wm = b.t().contiguous().to_mkldnn()\n"
      "{}\n"
      "best = cpu = 1e30\n"
      "for _ in range({}):\n"
      "    t = time.perf_counter(); u = time.thread_time(); {}\n"
      "    best = min(best, time.perf_counter() - t); cpu = min(cpu, time.thread_time() - u)\n"
      "print(best, cpu)\n",
      threads, s.M, s.K, s.K, s.N, s.M, s.N, call,
      s.M * s.N * s.K > 1'000'000'000 ? (onednn ? 10 : 2) : 30, call);
  const std::string command = "/usr/bin/python3 -c '" + script + "' 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {};
  TorchRun run;
  if (std::fscanf(pipe, "%lf %lf", &run.seconds, &run.cpu_seconds) != 2) run = {};
  pclose(pipe);
  return run;
}

void BM_Torch(benchmark::State& state, Shape s, bool onednn) {
  const char* enabled = std::getenv("SCALPEL_BENCH_TORCH");
  if (enabled && std::string(enabled) == "0") {
    state.SkipWithError("SCALPEL_BENCH_TORCH=0");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  const TorchRun best = torch_mm_seconds(s, threads, onednn);
  if (best.seconds <= 0 || best.cpu_seconds <= 0) {
    state.SkipWithError("could not run torch.mm through /usr/bin/python3");
    return;
  }
  for (auto _ : state) state.SetIterationTime(best.seconds);
  const double flops = 2.0 * s.M * s.N * s.K;
  const Peak peak = peak_gflops(threads);
  state.counters["GFLOPs_best"] = flops / best.seconds / 1e9;
  state.counters["pct_peak"] = 100.0 * flops / best.seconds / 1e9 / peak.wall;
  state.counters["GFLOPs_cpu"] = flops / best.cpu_seconds / 1e9;
  state.counters["pct_peak_cpu"] = 100.0 * flops / best.cpu_seconds / 1e9 / peak.cpu;
  state.SetLabel(onednn ? "oneDNN inner product, best of N" : "torch.mm (system BLAS), best of N");
}

// Every shape at 2 threads; 2048^3 also at 1 thread and with the AVX2 kernel.
const bool registered = [] {
  for (const Shape& s : shapes()) {
    const bool square = s.M == 2048 && s.N == 2048;
    auto reg = [&](const std::string& name, auto fn, auto... args) {
      auto* b = benchmark::RegisterBenchmark(name.c_str(), fn, s, args...);
      b->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);
      if (square) b->Arg(1)->Iterations(5);
      return b;
    };
    reg(std::string("scalpel/") + s.name, BM_Scalpel, scalpel::gemm_detail::best_kernel());
    if (square) reg(std::string("scalpel_avx2/") + s.name, BM_Scalpel, Isa::avx2);
    if (s.items > 1) reg(std::string("scalpel_items/") + s.name, BM_ScalpelItems);
    reg(std::string("scalpel_bf16/") + s.name, BM_ScalpelBf16);
    reg(std::string("scalpel_bf16_prepacked/") + s.name, BM_ScalpelBf16Prepacked);
    reg(std::string("eigen/") + s.name, BM_Eigen);
    reg(std::string("torch_onednn/") + s.name, BM_Torch, true)->Iterations(1);
    reg(std::string("torch_mm/") + s.name, BM_Torch, false)->Iterations(1);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
