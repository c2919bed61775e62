#include "cuda/lab/lab.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cuda/device.h"
#include "cuda/emu/emu.h"
#include "cuda/lab/lab_gpu.h"
#include "tensor/error.h"

namespace scalpel::cuda::lab {

bool parse_options(int argc, char** argv, int variant_count, const std::string& usage, Options& options) {
  auto number = [&](const std::string& text, const char* what, long long minimum) {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    SCALPEL_CHECK(!text.empty() && *end == '\0' && v >= minimum, "{}: '{}' is not an integer >= {}\nusage: {}",
                  what, text, minimum, usage);
    return static_cast<int64_t>(v);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("usage: %s\n", usage.c_str());
      return false;
    }
    if (arg == "--emu") {
      options.emulate = true;
    } else if (arg == "--repeat") {
      SCALPEL_CHECK(i + 1 < argc, "--repeat needs a value\nusage: {}", usage);
      options.repeats = static_cast<int>(number(argv[++i], "--repeat", 1));
    } else if (arg == "--size") {
      while (i + 1 < argc && argv[i + 1][0] != '-') options.size.push_back(number(argv[++i], "--size", 0));
      SCALPEL_CHECK(!options.size.empty(), "--size needs values\nusage: {}", usage);
    } else {
      SCALPEL_CHECK(arg[0] != '-' && options.variant == 0, "unexpected argument '{}'\nusage: {}", arg, usage);
      options.variant = static_cast<int>(number(arg, "VARIANT", 1));
      SCALPEL_CHECK(options.variant <= variant_count, "VARIANT {}: this lab has variants 1 to {}\nusage: {}",
                    options.variant, variant_count, usage);
    }
  }
  return true;
}

DeviceBuffer::DeviceBuffer(const Stream& s, const std::vector<float>& values)
    : stream_(s), n_(values.size()) {
  ptr_ = static_cast<float*>(allocator_for(s.device)->allocate(n_ * sizeof(float)));
  upload(values);
}

DeviceBuffer::~DeviceBuffer() { allocator_for(stream_.device)->deallocate(ptr_, n_ * sizeof(float)); }

void DeviceBuffer::upload(const std::vector<float>& values) {
  SCALPEL_CHECK(values.size() == n_, "DeviceBuffer: {} values for {} floats", values.size(), n_);
  copy_host_to_device(stream_, ptr_, values.data(), n_ * sizeof(float));
}

std::vector<float> DeviceBuffer::download() const {
  std::vector<float> out(n_);
  copy_device_to_host(stream_, out.data(), ptr_, n_ * sizeof(float));
  return out;
}

Harness::Harness(std::string title, Options options, std::string vendor_name)
    : title_(std::move(title)), vendor_name_(std::move(vendor_name)), options_(std::move(options)) {
  register_allocators();
  on_gpu_ = !options_.emulate && gpu_present();
  options_.emulate = !on_gpu_;
  stream_ = on_gpu_ ? default_stream(Device{DeviceType::CUDA, 0}) : Stream{Device{DeviceType::CUDAEmu, 0}, nullptr};
  std::printf("%s on %s\n", title_.c_str(),
              on_gpu_ ? gpu_description() : "cuda-emu (the CPU emulation): correctness only");
}

bool Harness::check(const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
  ++checks_;
  // Float32 sums in a different order: the error grows with the reduction length, which is
  // far longer at the GPU's default sizes than at the emulation's.
  const float tol = on_gpu_ ? 1e-3f : 1e-4f;
  for (size_t i = 0; i < got.size(); ++i) {
    const float scale = std::max(1.0f, std::fabs(want[i]));
    if (!(std::fabs(got[i] - want[i]) <= tol * scale)) {  // NaN fails too
      std::printf("  FAIL %s: element %zu is %g, the CPU reference says %g\n", what.c_str(), i,
                  static_cast<double>(got[i]), static_cast<double>(want[i]));
      ++failures_;
      return false;
    }
  }
  return true;
}

void Harness::run(int variant, const std::string& name, const std::string& config,
                  const std::function<void()>& launch, DeviceBuffer& out, const std::vector<float>& want,
                  double flops, double bytes, bool vendor) {
  if (!wants(variant)) return;
  const std::string what = fmt::format("{} {}{}{}", variant, name, config.empty() ? "" : " ", config);
  const std::vector<float> sentinel(out.size(), NAN);
  if (!on_gpu_) {
    bool ok = true;
    for (const emu::Schedule schedule : {emu::Schedule::Forward, emu::Schedule::Reverse, emu::Schedule::Shuffled}) {
      const emu::ScheduleGuard guard(schedule);
      out.upload(sentinel);
      launch();
      ok = check(fmt::format("{} ({} schedule)", what, emu::schedule_name(schedule)), out.download(), want) && ok;
    }
    std::printf("  %-40s %s\n", what.c_str(), ok ? "ok" : "WRONG");
    return;
  }
  out.upload(sentinel);
  launch();
  synchronize(stream_);
  if (!check(what, out.download(), want)) return;
  const double ms = time_ms(stream_, options_.repeats, launch);
  rows_.push_back({variant, name, config, ms, flops, bytes, vendor});
  std::printf("  %-40s %9.3f ms\n", what.c_str(), ms);
}

void Harness::skip(int variant, const std::string& name, const std::string& reason) {
  if (wants(variant)) std::printf("  %-40s skipped: %s\n", fmt::format("{} {}", variant, name).c_str(), reason.c_str());
}

int Harness::finish() {
  if (!on_gpu_) {
    std::printf("%d checks, %d failed. Timing needs a GPU: these ran through cuda-emu on the CPU.\n",
                checks_, failures_);
    return failures_ == 0 ? 0 : 1;
  }
  double vendor_ms = 0.0;
  for (const Row& r : rows_)
    if (r.vendor) vendor_ms = r.ms;
  std::printf("\n%-3s %-22s %-10s %10s %10s %9s %10s\n", "#", "variant", "config", "ms", "GFLOP/s", "GB/s",
              ("% " + vendor_name_).c_str());
  for (const Row& r : rows_) {
    const std::string fraction = vendor_ms > 0.0 ? fmt::format("{:.1f}", 100.0 * vendor_ms / r.ms) : "-";
    std::printf("%-3d %-22s %-10s %10.4f %10.1f %9.1f %10s\n", r.variant, r.name.c_str(), r.config.c_str(), r.ms,
                r.flops / (r.ms * 1e6), r.bytes / (r.ms * 1e6), fraction.c_str());
  }
  std::printf("%d checks, %d failed.\n", checks_, failures_);
  return failures_ == 0 ? 0 : 1;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t x = seed * 2654435761u + 12345u;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = -1.0f + 2.0f * static_cast<float>(x >> 8) / 16777216.0f;
  }
  return v;
}

int lab_main(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace scalpel::cuda::lab
