// Data pipeline throughput: JPEG decode, fit to 224x224, and full training batches (decode +
// fit + augment + normalize) through the prefetching loader, in images per second.
// Compare with the model's training images/s (`scalpel bench --model mobilenet_v2 --train`):
// loading keeps up when its images/s is higher.
//   build/bin/bench_data --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <filesystem>

#include "data/loader.h"
#include "tensor/random.h"

namespace {
using namespace scalpel::data;

// 64 synthetic 512x384 RGB JPEGs (smooth shapes plus noise, like photographs) in a temp dir.
const Dataset& jpeg_dataset() {
  static const Dataset dataset = [] {
    const auto dir = std::filesystem::temp_directory_path() / "scalpel_bench_data";
    std::filesystem::create_directories(dir);
    Dataset d;
    d.root = dir.string();
    d.classes = {"a", "b"};
    for (int i = 0; i < 64; ++i) {
      Sample s;
      s.path = (dir / ("img" + std::to_string(i) + ".jpg")).string();
      s.label = i % 2;
      if (!std::filesystem::exists(s.path)) {
        Image im(512, 384, 3);
        uint32_t state = 12345u + i;
        for (int y = 0; y < im.height; ++y)
          for (int x = 0; x < im.width; ++x) {
            state = state * 1664525u + 1013904223u;
            const double v = 128 + 60 * std::sin(x * 0.02 + i) * std::cos(y * 0.03) + ((state >> 24) % 16);
            for (int c = 0; c < 3; ++c) im.at(y, x, c) = static_cast<uint8_t>(std::clamp(v - 20 * c, 0.0, 255.0));
          }
        save_image(s.path, im, 90);
      }
      d.samples.push_back(s);
    }
    return d;
  }();
  return dataset;
}

void BM_DecodeJpeg512x384(benchmark::State& state) {
  const Dataset& d = jpeg_dataset();
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(load_image(d.samples[i++ % d.samples.size()].path));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJpeg512x384)->Unit(benchmark::kMillisecond);

void BM_FitTo224(benchmark::State& state) {
  const Image im = load_image(jpeg_dataset().samples[0].path);
  Preprocess p;
  for (auto _ : state) benchmark::DoNotOptimize(fit_image(im, p));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FitTo224)->Unit(benchmark::kMillisecond);

// Augmentation of one fitted 224x224 image (float conversion included). Arg: preset.
void BM_Augment224(benchmark::State& state) {
  static const char* kPresets[] = {"none", "xray", "dermoscopy"};
  const ImageF im = to_float(fit_image(load_image(jpeg_dataset().samples[0].path), Preprocess{}));
  const AugmentConfig cfg = parse_augment(kPresets[state.range(0)]);
  scalpel::Generator gen(1);
  for (auto _ : state) benchmark::DoNotOptimize(augment(im, cfg, gen));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(kPresets[state.range(0)]);
}
BENCHMARK(BM_Augment224)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// One epoch of 64 images in batches of 32, 224x224, with an augmentation preset.
// Args: workers, preset (0 none, 1 xray, 2 dermoscopy), cache.
void BM_LoaderEpoch(benchmark::State& state) {
  LoaderConfig cfg;
  cfg.batch_size = 32;
  cfg.workers = static_cast<int>(state.range(0));
  static const char* kPresets[] = {"none", "xray", "dermoscopy"};
  cfg.augment = parse_augment(kPresets[state.range(1)]);
  cfg.cache = state.range(2) != 0;
  cfg.sampling = Sampling::shuffle;
  Warnings warnings;
  DataLoader loader(jpeg_dataset(), cfg, warnings);
  int64_t epoch = 0, images = 0;
  if (cfg.cache) {  // fill the cache outside the timing
    loader.start_epoch(epoch++);
    for (Batch b; loader.next(b);) {}
  }
  for (auto _ : state) {
    loader.start_epoch(epoch++);
    for (Batch b; loader.next(b);) images += b.size();
  }
  state.SetItemsProcessed(images);
  state.SetLabel(std::string(kPresets[state.range(1)]) + (cfg.cache ? " cached" : ""));
}
BENCHMARK(BM_LoaderEpoch)
    ->ArgNames({"workers", "preset", "cache"})
    ->Args({1, 0, 0})
    ->Args({1, 1, 0})
    ->Args({1, 2, 0})
    ->Args({2, 1, 0})
    ->Args({2, 2, 0})
    ->Args({2, 2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
