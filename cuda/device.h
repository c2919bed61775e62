#pragma once
// Device memory, copies and streams of the CUDA backend, for both devices:
//   cuda      a real GPU (builds with nvcc); memory from cudaMalloc through a caching allocator;
//   cuda-emu  host memory from the same caching allocator, run through the emulation.
// Every host<->device copy goes through the functions here and is counted, so `bench` can
// print how many bytes crossed (nothing migrates silently).
#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/backend.h"
#include "tensor/storage.h"

namespace scalpel::cuda {

// Registers the cuda-emu allocator, and the CUDA one in builds with nvcc, with
// tensor/storage.h's register_allocator. Idempotent; call once at start-up (the CLI and the
// tests do). The CUDA allocator checks for a usable GPU only when it first allocates.
void register_allocators();

// The allocators themselves (the CUDA one throws in a build without nvcc).
Allocator* emu_allocator();
Allocator* gpu_allocator();

// Throws scalpel::Error when `device` cannot run kernels here: no nvcc in this build, no GPU
// or driver, device index out of range, or a compute capability below 8.0. The message says
// to run with `--device cpu` (or `--device cuda-emu`).
void require_device(Device device);
// A stream on `device` (the default stream); checks the device first.
Stream default_stream(Device device);
// Waits until the stream's work is done (a no-op under emulation, which is synchronous).
void synchronize(const Stream& s);
// True when the stream's work is done, without waiting (always, under emulation): lets a
// caller poll with a timeout (apps/train/distributed.cpp waits for NCCL this way).
bool stream_done(const Stream& s);

// Copies between host memory and device memory of the stream's device.
void copy_host_to_device(const Stream& s, void* dst, const void* src, size_t bytes);
void copy_device_to_host(const Stream& s, void* dst, const void* src, size_t bytes);
void copy_device_to_device(const Stream& s, void* dst, const void* src, size_t bytes);

// Counters since start (or the last reset), over both devices.
struct TransferStats {
  uint64_t h2d_copies = 0, h2d_bytes = 0;
  uint64_t d2h_copies = 0, d2h_bytes = 0;
  uint64_t d2d_copies = 0, d2d_bytes = 0;
};
TransferStats transfer_stats();
void reset_transfer_stats();
// "h2d 3 copies 1.2 MiB, d2h 1 copies 4.0 KiB, d2d 0 copies 0 B", for logs and bench.
std::string transfer_summary(const TransferStats& stats);

}  // namespace scalpel::cuda
