// Vectorized exp / sigmoid / SiLU (tensor/vector_math.h) at each SIMD level this CPU runs, one
// thread. The baseline level is the plain libm expf loop the library used before, so the
// baseline/avx512 ratio of a row pair is the speed-up. Sizes: 48 floats (one GEMM epilogue tile
// row, in L1), 4096 (16 KiB arrays, L1/L2) and 4M (16 MiB, from memory). Rows report
// items_per_second (elements per second of CPU time) and bytes_per_second (read + written).
//
//   build-*/bin/bench_vector_math --benchmark_filter='silu/'
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "tensor/vector_math.h"

namespace {

using scalpel::vecmath::Kernels;
using scalpel::Isa;

enum Op { kExp, kSigmoid, kSilu, kSiluBackward };
const char* const kOpNames[] = {"exp", "sigmoid", "silu", "silu_backward"};

void run(benchmark::State& state, Op op, Isa level, int64_t n) {
  const Kernels& k = scalpel::vecmath::kernels(level);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);  // activations' usual range
  std::vector<float> x(n), g(n), y(n);
  for (float& v : x) v = u(rng);
  for (float& v : g) v = u(rng);
  for (auto _ : state) {
    switch (op) {
      case kExp: k.exp(x.data(), y.data(), n); break;
      case kSigmoid: k.sigmoid(x.data(), y.data(), n); break;
      case kSilu: k.silu(x.data(), y.data(), n); break;
      case kSiluBackward: k.silu_backward(x.data(), g.data(), y.data(), n); break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const int64_t arrays = op == kSiluBackward ? 3 : 2;
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * arrays * static_cast<int64_t>(sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  // Rows named op/level/n, e.g. silu/avx512/4096; levels this CPU cannot run are left out.
  for (Op op : {kExp, kSigmoid, kSilu, kSiluBackward})
    for (int64_t n : {48, 4096, 1 << 22})
      for (Isa level : {Isa::baseline, Isa::avx2, Isa::avx512})
        if (scalpel::cpu_supports(level))
          benchmark::RegisterBenchmark(
              (std::string(kOpNames[op]) + "/" + std::string(scalpel::isa_name(level)) + "/" + std::to_string(n)).c_str(),
              run, op, level, n);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
