#pragma once
// Controls of the CUDA emulation (cuda/emu/runtime.h): the order in which the threads of a
// block run, and what it has run. Host code only; kernels never include this.
#include <cstdint>

namespace scalpel::cuda::emu {

// The order in which the threads of a block are started and resumed after each barrier.
// A kernel that is correct gives the same result under all three; one that lacks a
// __syncthreads() gives a wrong result under at least one (tests run all three).
enum class Schedule : uint8_t { Forward, Reverse, Shuffled };

const char* schedule_name(Schedule s);
// Process-wide setting (default Forward). Shuffled orders are seeded by `seed`, the block
// index and a launch counter, so a run is reproducible.
void set_schedule(Schedule s, uint64_t seed = 0x5ca1);
Schedule schedule();

// Sets a schedule for a scope and restores the previous one.
class ScheduleGuard {
 public:
  explicit ScheduleGuard(Schedule s);
  ~ScheduleGuard();
  ScheduleGuard(const ScheduleGuard&) = delete;
  ScheduleGuard& operator=(const ScheduleGuard&) = delete;

 private:
  Schedule previous_;
};

// Counters since process start (or the last reset).
struct EmuStats {
  uint64_t launches = 0;
  uint64_t blocks = 0;
  uint64_t threads = 0;
  uint64_t fiber_switches = 0;  // context switches, the cost of barriers under emulation
};
EmuStats stats();
void reset_stats();

}  // namespace scalpel::cuda::emu
