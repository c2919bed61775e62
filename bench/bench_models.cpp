// Whole-model timings for bench/compare.sh (used while `scalpel bench` is not built): best-of-N
// milliseconds of model zoo networks, one JSON object per line in the format of
// bench/peers/torch_bench.py. Not a Google Benchmark binary: the comparison needs one number
// per (model, batch, mode) in the same format as the peers.
//
//   bench_models [--models a,b] [--batches 1,8] [--size 224] [--iters 5] [--threads 2]
//                [--train] [--fuse all|bn|none] [--profile] [--precision fp32|bf16|both] [--rounds R]
//                [--no-prepack]
// --precision: the float GEMMs in fp32 or bf16 (tensor/gemm_bf16.h); both alternates them in
// R interleaved rounds in this one process (one line per round and precision), so their
// ratio is taken under the same machine load. --no-prepack drops the conv weights that
// --fuse all declared constant to the GEMM (prepack_constant_a), so bf16 converts them per call.
// --fuse: all (default) = models::fuse_for_inference (BatchNorm folded, conv + activation in
// one pass), bn = models::fuse_batchnorm only, none = the model as trained.
// --profile adds, per inference run, the time by layer type (convs also by output plane), the
// mean of kProfileRuns passes, measured with a forward hook
// (the time since the previous module call ends; composite modules get the functional ops of
// their forward: residual adds, activations called as functions).
#include <sys/resource.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "layers/loss.h"
#include "layers/modules.h"
#include "layers/optim.h"
#include "models/fuse.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "models/registry.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace {

using namespace scalpel;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// CPU time of the whole process (all threads), in ms.
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// Best of `iters` runs after `warmup`: wall-clock ms, and the process CPU ms of a run. On a
// shared, oversubscribed machine the CPU time (the work done, waiting threads sleep under
// OMP_WAIT_POLICY=PASSIVE) varies far less than the wall time, so A/B comparisons use it.
struct Timing {
  double ms = std::numeric_limits<double>::infinity();
  double cpu_ms = std::numeric_limits<double>::infinity();
};
Timing best_ms(const std::function<void()>& fn, int iters, int warmup = 2) {
  for (int i = 0; i < warmup; ++i) fn();
  Timing best;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_ms();
    fn();
    best.cpu_ms = std::min(best.cpu_ms, process_cpu_ms() - c0);
    best.ms = std::min(best.ms, ms_since(t0));
  }
  return best;
}

double rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

// Per leaf-module type and output plane: "Conv2d 1x1 @14x14", "Conv2d dw3x3 @56x56", "BatchNorm2d @7x7",
// and a block's own ops: "functional ops in InvertedResidual::forward @14x14" (its fused projection), ...
std::string layer_kind(nn::Module& m, const Tensor& y) {
  const std::string plane = y.dim() == 4 ? " @" + std::to_string(y.shape()[2]) + "x" + std::to_string(y.shape()[3]) : "";
  if (auto* conv = dynamic_cast<nn::Conv2d*>(&m)) {
    const std::string k = std::to_string(conv->kernel[0]) + "x" + std::to_string(conv->kernel[1]);
    const bool depthwise = conv->options.groups == conv->in_channels && conv->in_channels > 1;
    return "Conv2d " + std::string(depthwise ? "dw" : "") + k + plane;
  }
  return (m.named_children().empty() ? m.type() : "functional ops in " + m.type() + "::forward") + plane;
}

// The profile is the mean of this many forward passes (one pass moved a layer type by 10 %).
constexpr int kProfileRuns = 3;

std::string profile_json(nn::Module& model, const Tensor& x) {
  std::map<std::string, double> ms;
  auto last = Clock::now();
  {
    nn::ForwardHookGuard hook([&](nn::Module& m, const Tensor&, const Tensor& y) {
      ms[layer_kind(m, y)] += ms_since(last);
      last = Clock::now();
    });
    for (int run = 0; run < kProfileRuns; ++run) {
      last = Clock::now();
      model(x);
    }
  }
  std::string out = "{";
  for (const auto& [kind, t] : ms)
    out += (out.size() > 1 ? ", \"" : "\"") + kind + "\": " + std::to_string(t / kProfileRuns);
  return out + "}";
}

}  // namespace

int main(int argc, char** argv) {
  std::string models = "resnet50,mobilenet_v2,efficientnet_b0", batches = "1,8";
  int64_t size = 224;
  int iters = 5, threads = 2;
  std::string fuse = "all";
  std::string precision = "fp32";
  int rounds = 1;
  bool train = false, profile = false, prepack = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_models: %s needs a value\n", a.c_str());
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "--models") models = value();
    else if (a == "--batches") batches = value();
    else if (a == "--size") size = std::stoll(value());
    else if (a == "--iters") iters = std::stoi(value());
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--train") train = true;
    else if (a == "--fuse") fuse = value();
    else if (a == "--profile") profile = true;
    else if (a == "--precision") precision = value();
    else if (a == "--rounds") rounds = std::stoi(value());
    else if (a == "--no-prepack") prepack = false;
    else {
      std::fprintf(stderr, "bench_models: unknown argument %s\n", a.c_str());
      return 1;
    }
  }
  if (fuse != "all" && fuse != "bn" && fuse != "none") {
    std::fprintf(stderr, "bench_models: --fuse must be all, bn or none, not %s\n", fuse.c_str());
    return 1;
  }
  if (precision != "fp32" && precision != "bf16" && precision != "both") {
    std::fprintf(stderr, "bench_models: --precision must be fp32, bf16 or both, not %s\n", precision.c_str());
    return 1;
  }
  if (precision != "fp32" && !bf16_gemm_supported()) {
    std::fprintf(stderr, "bench_models: --precision %s: this CPU has no AVX512_BF16\n", precision.c_str());
    return 1;
  }
  const std::vector<std::string> precisions =
      precision == "both" ? std::vector<std::string>{"fp32", "bf16"} : std::vector<std::string>{precision};
  try {
    set_num_threads(threads);
    for (const std::string& name : split(models)) {
      auto model = models::create_model(name);
      model->eval();
      if (fuse == "all") models::fuse_for_inference(*model, {1, 3, size, size});
      if (fuse == "bn") models::fuse_batchnorm(*model, {1, 3, size, size});
      if (!prepack) forget_prepacked_constants();
      for (const std::string& b : split(batches)) {
        const int64_t batch = std::stoll(b);
        const Tensor x = randn({batch, 3, size, size});
        NoGradGuard no_grad;
        for (int round = 0; round < rounds; ++round)
          for (const std::string& p : precisions) {
            set_float32_matmul_precision(p == "bf16" ? MatmulPrecision::bf16 : MatmulPrecision::fp32);
            const Timing t = best_ms([&] { (*model)(x); }, iters);
            std::printf("{\"peer\": \"scalpel\", \"model\": \"%s\", \"batch\": %lld, \"mode\": \"inference\", "
                        "\"ms\": %.3f, \"cpu_ms\": %.3f, \"variant\": \"%s\", \"precision\": \"%s\", \"prepacked\": %s, \"round\": %d, "
                        "\"rss_mb\": %.1f%s%s}\n",
                        name.c_str(), static_cast<long long>(batch), t.ms, t.cpu_ms,
                        fuse == "all" ? "bn folded, conv+act fused" : fuse == "bn" ? "bn folded" : "unfused",
                        p.c_str(), prepack && fuse == "all" ? "true" : "false", round, rss_mb(), profile ? ", \"profile_ms\": " : "",
                        profile ? profile_json(*model, x).c_str() : "");
            std::fflush(stdout);
          }
        set_float32_matmul_precision(MatmulPrecision::fp32);  // training below stays fp32
        std::fflush(stdout);
      }
      if (train) {
        auto trainee = models::create_model(name);  // unfused: training needs the real BN layers
        trainee->train();
        models::fuse_for_training(*trainee, {1, 3, size, size});  // as `scalpel train` runs it
        nn::SGD sgd({nn::ParamGroup{trainee->parameters(), 0.01}}, nn::SGDOptions{.momentum = 0.9});
        const Tensor x = randn({8, 3, size, size});
        std::vector<double> labels;
        for (int i = 0; i < 8; ++i) labels.push_back(i * 97 % 1000);
        const Tensor y = Tensor::from_vector(labels, {8}, DType::I64);
        const Timing t = best_ms(
            [&] {
              sgd.zero_grad();
              backward(nn::cross_entropy((*trainee)(x), y));
              sgd.step();
            },
            std::max(2, iters / 2), 1);
        std::printf("{\"peer\": \"scalpel\", \"model\": \"%s\", \"batch\": 8, \"mode\": \"train\", \"ms\": %.3f, "
                    "\"cpu_ms\": %.3f, \"variant\": \"sgd momentum 0.9\", \"rss_mb\": %.1f}\n",
                    name.c_str(), t.ms, t.cpu_ms, rss_mb());
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
