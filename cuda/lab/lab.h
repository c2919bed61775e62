#pragma once
// The kernel lab's shared harness, after llm.c's dev/cuda. Each lab executable (gemm.cpp,
// conv.cpp, depthwise.cpp) runs numbered variants of one op family, naive to fast, with the
// vendor library (cuBLAS/cuDNN) as one more numbered variant: "an expert upper bound, and a
// unit of measurement". For every variant and every block size of its sweep the harness
//   - checks the output against the CPU reference (outputs start as NaN, so an element a
//     kernel forgets to write fails);
//   - on a GPU, times it (a warm-up run, then the median of --repeat runs, each after the L2
//     cache was overwritten) and prints ms, GFLOP/s, GB/s and the fraction of the vendor's
//     speed;
//   - without a GPU, or with --emu, runs the very same kernels through cuda-emu on small odd
//     shapes under the forward, reverse and shuffled thread schedules, correctness only, and
//     says that timing needs a GPU (the emulation's speed says nothing about a GPU's).
// Every lab takes: [VARIANT] [--emu] [--repeat R] [--size N...] (the sizes are the lab's own).
// The exit status is 1 when any check failed, so CTest runs the labs under emulation.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cuda/backend.h"

namespace scalpel::cuda::lab {

struct Options {
  int variant = 0;            // 0: every variant
  bool emulate = false;       // --emu (forced when no GPU is present)
  int repeats = 20;           // --repeat
  std::vector<int64_t> size;  // --size (each >= 0): the lab's shape; empty = the lab's default
};
// Parses the arguments above for a lab with variants 1..variant_count; `usage` is printed for
// --help and in errors (scalpel::Error). Returns false when --help was printed.
bool parse_options(int argc, char** argv, int variant_count, const std::string& usage, Options& options);

// Float32 device memory on the lab's device (a GPU or cuda-emu), through the backend's
// allocator and counted copies.
class DeviceBuffer {
 public:
  DeviceBuffer(const Stream& s, const std::vector<float>& values);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* get() { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<float>& values);
  std::vector<float> download() const;

 private:
  Stream stream_;
  size_t n_;
  float* ptr_;
};

class Harness {
 public:
  // `vendor_name` ("cuBLAS", "cuDNN") heads the fraction column.
  Harness(std::string title, Options options, std::string vendor_name);

  bool on_gpu() const { return on_gpu_; }
  const Stream& stream() const { return stream_; }
  const Options& options() const { return options_; }
  // Whether to run `variant` (all when no VARIANT was given).
  bool wants(int variant) const { return options_.variant == 0 || options_.variant == variant; }

  // Runs one variant in one configuration: `launch` must write `out` (refilled with NaN
  // before each run). `flops` and `bytes` are the op's useful work, for GFLOP/s and GB/s.
  // `vendor`: this is the vendor library, the 100 % of the fraction column.
  void run(int variant, const std::string& name, const std::string& config,
           const std::function<void()>& launch, DeviceBuffer& out, const std::vector<float>& want,
           double flops, double bytes, bool vendor = false);
  // Says why a variant does not run here (e.g. cuDNN without a GPU).
  void skip(int variant, const std::string& name, const std::string& reason);
  // Prints the table (GPU) or the verdict (emulation); returns the exit status.
  int finish();

 private:
  struct Row {
    int variant;
    std::string name, config;
    double ms, flops, bytes;
    bool vendor;
  };
  bool check(const std::string& what, const std::vector<float>& got, const std::vector<float>& want);

  std::string title_, vendor_name_;
  Options options_;
  bool on_gpu_ = false;
  Stream stream_;
  std::vector<Row> rows_;
  int checks_ = 0, failures_ = 0;
};

// Deterministic values in [-1, 1) (an LCG, the same on every platform).
std::vector<float> random_values(size_t n, uint32_t seed);

// The lab executables' main: runs `body` and turns a scalpel::Error into "error: ..." and
// exit status 1.
int lab_main(const std::function<int()>& body);

}  // namespace scalpel::cuda::lab
