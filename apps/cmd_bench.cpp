// scalpel bench: time a model's forward pass (or a whole training step) on random input and
// print the figures as one JSON object (see ../shared/interface.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "apps/cli.h"
#include "apps/model_flags.h"
#include "autograd/autograd.h"
#include "layers/loss.h"
#include "layers/optim.h"
#include "models/fuse.h"
#include "tensor/error.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

namespace scalpel::cli {
namespace {

// Peak resident set size of this process in KiB (VmHWM of /proc/self/status); -1 when unknown.
int64_t peak_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmHWM:")) return std::strtoll(line.c_str() + 6, nullptr, 10);
  return -1;
}

int run_bench(const std::vector<std::string>& argv) {
  Args args("bench", "--model M [--batch N] [--size H W] [--iters K] [--warmup W] [--train] [--threads T] [--precision fp32|bf16] --json");
  add_model_flags(args, /*with_weights=*/false);
  args.option("batch", "images per pass", "1")
      .option("size", "input height and width (default: the model's input size)", "", 2)
      .option("iters", "timed iterations", "10")
      .option("warmup", "untimed iterations first (allocator and caches warm up)", "2")
      .flag("train", "time forward + backward + SGD step instead of an evaluation-mode forward")
      .option("threads", "CPU threads, 0 = all cores", "0")
      .flag("json", "print one JSON object (the only output format; accepted for scripts)");
  add_precision_flag(args);
  if (!args.parse(argv)) return 0;
  const MatmulPrecision precision = apply_precision_flag(args, parse_device(args.get("device")));
  const int64_t batch = args.get_int("batch"), iters = args.get_int("iters"), warmup = args.get_int("warmup");
  SCALPEL_CHECK(batch > 0, "--batch must be positive, got {}", batch);
  SCALPEL_CHECK(iters > 0, "--iters must be positive, got {}", iters);
  SCALPEL_CHECK(warmup >= 0, "--warmup must be >= 0, got {}", warmup);
  set_num_threads(static_cast<int>(args.get_int("threads")));

  ModelSetup s = load_model_from_flags(args);
  int64_t h = s.info.input_size, w = s.info.input_size;
  if (args.has("size")) {
    const auto hw = args.get_hw("size");
    h = hw[0];
    w = hw[1];
  }
  const bool train = args.has("train");
  const Tensor x = randn({batch, s.model->in_channels(), h, w}).to(s.device);
  Tensor target;
  std::unique_ptr<nn::SGD> sgd;
  if (train) {
    SCALPEL_CHECK(s.info.task == "classification", "bench --train: {} is a {} model; only classifiers are supported",
                  s.info.name, s.info.task);
    std::vector<double> labels(batch);
    for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<double>(i % s.model->options().classes);
    target = Tensor::from_vector(labels, {batch}, DType::I64).to(s.device);
    sgd = std::make_unique<nn::SGD>(std::vector<nn::ParamGroup>{{s.model->parameters(), 0.01}},
                                    nn::SGDOptions{.momentum = 0.9});
  }
  s.model->train(train);
  // Inference benchmarks time the deployed form: BatchNorm folded, conv + activation fused;
  // training ones the form `scalpel train` runs (BatchNorm + ReLU pairs fused).
  if (!train && s.device.is_cpu()) models::fuse_for_inference(*s.model, {1, s.model->in_channels(), h, w});
  if (train) models::fuse_for_training(*s.model, {1, s.model->in_channels(), h, w});

  // One timed unit. Copying a result back to the CPU waits for a device to finish.
  auto step = [&] {
    if (train) {
      sgd->zero_grad();
      const Tensor loss = nn::cross_entropy((*s.model)(x), target);
      backward(loss);
      sgd->step();
      (void)loss.detach().to(Device::cpu());
    } else {
      NoGradGuard no_grad;
      (void)(*s.model)(x).to(Device::cpu());
    }
  };
  for (int64_t i = 0; i < warmup; ++i) step();
  std::vector<double> ms;
  for (int64_t i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;

  Json out = Json::object();
  out["model"] = s.model->name();
  out["mode"] = train ? "train" : "eval";
  out["device"] = s.device.str();
  out["batch"] = batch;
  out["height"] = h;
  out["width"] = w;
  out["threads"] = num_threads();
  out["precision"] = precision == MatmulPrecision::bf16 ? "bf16" : "fp32";
  out["warmup"] = warmup;
  out["iters"] = iters;
  out["ms_min"] = ms.front();
  out["ms_median"] = median;
  out["ms_max"] = ms.back();
  out["images_per_s"] = batch * 1000.0 / median;
  out["peak_rss_mib"] = peak_rss_kib() / 1024.0;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

SCALPEL_REGISTER_COMMAND({"bench", "time a model's forward (or training step); prints one JSON object", run_bench});

}  // namespace
}  // namespace scalpel::cli
