// The CUDA emulation's scheduler: runs the threads of each block as fibers and implements the
// barriers, warp operations and checks described in cuda/emu/runtime.h.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "cuda/emu/emu.h"
#include "cuda/emu/runtime.h"
#include "tensor/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SCALPEL_EMU_ASAN 1
#else
#define SCALPEL_EMU_ASAN 0
#endif

namespace scalpel::cuda::emu {

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::Forward: return "forward";
    case Schedule::Reverse: return "reverse";
    case Schedule::Shuffled: return "shuffled";
  }
  return "?";
}

namespace {

std::atomic<Schedule> g_schedule{Schedule::Forward};
std::atomic<uint64_t> g_seed{0x5ca1};
std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_threads{0}, g_switches{0};

// Kernels here use little stack (a few registers' worth of locals), so 64 KiB is ample;
// AddressSanitizer's red zones need more. Pages are only touched when used.
constexpr size_t kStackBytes = SCALPEL_EMU_ASAN ? (512u << 10) : (64u << 10);
constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxSharedBytes = 48u << 10;  // CUDA's default limit without opt-in

// A fiber stack with an inaccessible guard page below it, so an overflow faults at once.
class Stack {
 public:
  Stack() : page_(static_cast<size_t>(sysconf(_SC_PAGESIZE))) {
    base_ = mmap(nullptr, kStackBytes + page_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base_ == MAP_FAILED) fail("cuda-emu: cannot map a {} KiB fiber stack", kStackBytes >> 10);
    mprotect(base_, page_, PROT_NONE);
  }
  ~Stack() { munmap(base_, kStackBytes + page_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  void* bottom() const { return static_cast<char*>(base_) + page_; }

 private:
  size_t page_;
  void* base_;
};

enum class State : uint8_t { NotStarted, Ready, Running, AtBarrier, AtWarp, Done };
enum class WarpKind : uint8_t { Sync, Ballot, Shuffle };

struct WarpOp {
  const char* name;
  WarpKind kind;
  detail::ShuffleKind shuffle;
  int arg, width;
};

struct Thread {
  uint3 idx;
  State state = State::NotStarted;
  ucontext_t context;
  WarpOp op;          // the warp operation this thread waits in
  uint64_t bits = 0;  // what it published there
  uint64_t result = 0;
  void* fake_stack = nullptr;  // AddressSanitizer's bookkeeping for this fiber
};

// Lanes waiting in one warp operation. A warp may have several at once when disjoint groups
// of lanes (e.g. its two halves) synchronize separately.
struct WarpGroup {
  unsigned mask = 0, arrived = 0;
  const char* op = nullptr;
};
struct Warp {
  std::vector<WarpGroup> groups;
};

// The state of the block being run on this OS thread. Kept between launches so that thread
// records and stacks are reused (ucontext_t holds a pointer into itself: the vector is only
// resized before any context is made).
struct Block {
  const LaunchConfig* config = nullptr;
  void (*body)(void*) = nullptr;
  void* context = nullptr;
  std::vector<Thread> threads;
  std::vector<int> order;
  std::vector<Warp> warps;
  std::vector<std::unique_ptr<Stack>> stacks;
  std::vector<unsigned char> shared;
  int current = -1;
  bool fibers = true;   // false once the block runs its threads as plain calls
  bool synced = false;  // any barrier or warp operation seen in this block
  int at_barrier = 0, done = 0;
  uint64_t switches = 0;
  ucontext_t scheduler;
  std::exception_ptr error;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
};

thread_local Block t_storage;
thread_local Block* t_block = nullptr;  // non-null while a launch runs on this OS thread

std::string str(uint3 v) { return fmt::format("({},{},{})", v.x, v.y, v.z); }
std::string block_str() { return str(blockIdx); }

Block& active_block(const char* what) {
  if (t_block == nullptr) fail("{} called outside a kernel launched through the CUDA emulation", what);
  return *t_block;
}

// ---- fiber switching (with AddressSanitizer's annotations when it is on) ----

[[noreturn]] void fiber_entry();

void resume(Block& b, int t) {
  Thread& th = b.threads[t];
  if (th.state == State::NotStarted) {
    while (static_cast<int>(b.stacks.size()) <= t) b.stacks.push_back(std::make_unique<Stack>());
    getcontext(&th.context);
    th.context.uc_stack.ss_sp = b.stacks[t]->bottom();
    th.context.uc_stack.ss_size = kStackBytes;
    th.context.uc_link = nullptr;
    makecontext(&th.context, fiber_entry, 0);
  }
  th.state = State::Running;
  b.current = t;
  threadIdx = th.idx;
  ++b.switches;
#if SCALPEL_EMU_ASAN
  __sanitizer_start_switch_fiber(&b.scheduler_fake_stack, b.stacks[t]->bottom(), kStackBytes);
#endif
  swapcontext(&b.scheduler, &th.context);
#if SCALPEL_EMU_ASAN
  __sanitizer_finish_switch_fiber(b.scheduler_fake_stack, nullptr, nullptr);
#endif
}

// Called by a fiber to hand control back to the scheduler; returns when resumed.
void suspend(Block& b, Thread& th) {
#if SCALPEL_EMU_ASAN
  __sanitizer_start_switch_fiber(&th.fake_stack, b.scheduler_stack_bottom, b.scheduler_stack_size);
#endif
  swapcontext(&th.context, &b.scheduler);
#if SCALPEL_EMU_ASAN
  __sanitizer_finish_switch_fiber(th.fake_stack, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
}

void fiber_entry() {
  Block& b = *t_block;
#if SCALPEL_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
  Thread& th = b.threads[b.current];
  try {
    b.body(b.context);
  } catch (...) {
    if (!b.error) b.error = std::current_exception();
  }
  th.state = State::Done;
  ++b.done;
#if SCALPEL_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, b.scheduler_stack_bottom, b.scheduler_stack_size);
#endif
  setcontext(&b.scheduler);
  std::abort();  // setcontext does not return
}

// ---- checks ----

[[noreturn]] void fail_exited_early(const Block& b, const char* what) {
  fail("cuda-emu: kernel {}: thread {} of block {} reached {}, but thread {} had already exited "
       "without any barrier or warp operation (the emulation requires every thread of a block "
       "to take part in __syncthreads, and, when any thread uses one, in warp operations too)",
       b.config->kernel, str(b.threads[b.current].idx), block_str(), what,
       str(b.threads[b.order[0]].idx));
}

[[noreturn]] void fail_stuck(const Block& b) {
  std::string waiting;
  for (const Thread& th : b.threads) {
    if (th.state == State::AtWarp && waiting.size() < 200)
      waiting += fmt::format(" {} in {}", str(th.idx), th.op.name);
  }
  fail("cuda-emu: kernel {}: block {} is stuck: {} threads wait in __syncthreads, {} exited, and "
       "the others wait in warp operations whose lanes never all arrive:{}",
       b.config->kernel, block_str(), b.at_barrier, b.done, waiting);
}

// ---- running a block ----

void make_order(Block& b, Schedule s, uint64_t seed) {
  const int n = static_cast<int>(b.threads.size());
  b.order.resize(n);
  std::iota(b.order.begin(), b.order.end(), 0);
  if (s == Schedule::Reverse) std::reverse(b.order.begin(), b.order.end());
  if (s == Schedule::Shuffled) {
    // splitmix64 + Fisher-Yates: the same order on every platform.
    uint64_t x = seed;
    auto next = [&x] {
      uint64_t z = (x += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      return z ^ (z >> 31);
    };
    for (int i = n - 1; i > 0; --i) std::swap(b.order[i], b.order[next() % (i + 1)]);
  }
}

void rethrow_error(Block& b) {
  if (b.error) {
    std::exception_ptr e = b.error;
    b.error = nullptr;
    std::rethrow_exception(e);
  }
}

void run_block(Block& b) {
  const int n = static_cast<int>(b.threads.size());
  for (Thread& th : b.threads) th.state = State::NotStarted;
  for (Warp& w : b.warps) w.groups.clear();
  b.at_barrier = b.done = 0;
  b.fibers = true;
  b.synced = false;
  b.error = nullptr;
  std::fill(b.shared.begin(), b.shared.end(), 0xFF);  // NaN in every float

  // The first thread runs as a fiber. If it needs no barrier, no thread may (a barrier must be
  // reached by all), so the others run as plain calls; one that does reach a barrier is an error.
  resume(b, b.order[0]);
  rethrow_error(b);
  if (b.threads[b.order[0]].state == State::Done && !b.synced) {
    b.fibers = false;
    for (int k = 1; k < n; ++k) {
      const int t = b.order[k];
      b.current = t;
      threadIdx = b.threads[t].idx;
      b.body(b.context);
      b.threads[t].state = State::Done;
    }
    return;
  }

  while (b.done < n) {
    bool ran = false;
    for (int t : b.order) {
      const State s = b.threads[t].state;
      if (s == State::NotStarted || s == State::Ready) {
        resume(b, t);
        rethrow_error(b);
        ran = true;
      }
    }
    if (b.at_barrier > 0 && b.at_barrier + b.done == n) {
      if (b.done > 0) {
        int exited = 0;
        while (b.threads[exited].state != State::Done) ++exited;
        fail("cuda-emu: kernel {}: __syncthreads in block {} was reached by {} of {} threads; "
             "thread {} exited without reaching it (every thread of a block must reach it)",
             b.config->kernel, block_str(), b.at_barrier, n, str(b.threads[exited].idx));
      }
      for (Thread& th : b.threads)
        if (th.state == State::AtBarrier) th.state = State::Ready;
      b.at_barrier = 0;
      continue;
    }
    if (!ran) fail_stuck(b);
  }
}

// One lane's arrival at a warp operation. The last lane of the mask to arrive computes every
// lane's result and wakes them.
uint64_t warp_op(const WarpOp& op, unsigned mask, uint64_t bits) {
  Block& b = active_block(op.name);
  b.synced = true;
  if (!b.fibers) fail_exited_early(b, op.name);
  const int t = b.current;
  const int lane = t % warpSize, base = t - lane;
  const int n = static_cast<int>(b.threads.size());
  const int lanes = std::min(warpSize, n - base);
  const unsigned existing = lanes == warpSize ? ~0u : (1u << lanes) - 1;
  Thread& th = b.threads[t];
  auto culprit = [&] { return fmt::format("kernel {}: thread {} of block {}", b.config->kernel, str(th.idx), block_str()); };
  if (((mask >> lane) & 1u) == 0)
    fail("cuda-emu: {} calls {} with mask 0x{:08x}, which leaves out its own lane {}", culprit(), op.name, mask, lane);
  if ((mask & ~existing) != 0)
    fail("cuda-emu: {} calls {} with mask 0x{:08x}, but its warp has only {} lanes (block of {} threads)",
         culprit(), op.name, mask, lanes, n);
  if (op.kind == WarpKind::Shuffle && (op.width < 1 || op.width > warpSize || (op.width & (op.width - 1))))
    fail("cuda-emu: {} calls {} with width {} (a power of two up to 32 is required)", culprit(), op.name, op.width);
  for (int l = 0; l < lanes; ++l) {
    if (((mask >> l) & 1u) && b.threads[base + l].state == State::Done)
      fail("cuda-emu: {} reached {}, but lane {} of its mask 0x{:08x} had already exited", culprit(),
           op.name, l, mask);
  }
  Warp& w = b.warps[base / warpSize];
  WarpGroup* group = nullptr;
  for (WarpGroup& g : w.groups) {
    if (g.mask == mask && std::strcmp(g.op, op.name) == 0) {
      group = &g;
    } else if ((g.mask & mask) != 0) {
      fail("cuda-emu: {} reached {} with mask 0x{:08x} while lanes of its warp wait in {} with "
           "the overlapping mask 0x{:08x}", culprit(), op.name, mask, g.op, g.mask);
    }
  }
  if (group == nullptr) group = &w.groups.emplace_back(WarpGroup{mask, 0, op.name});
  th.op = op;
  th.bits = bits;
  group->arrived |= 1u << lane;
  if (group->arrived != group->mask) {
    th.state = State::AtWarp;
    suspend(b, th);
    return th.result;
  }
  w.groups.erase(w.groups.begin() + (group - w.groups.data()));

  unsigned ballot = 0;
  for (int l = 0; l < lanes; ++l)
    if (((mask >> l) & 1u) && b.threads[base + l].bits != 0) ballot |= 1u << l;
  for (int l = 0; l < lanes; ++l) {
    if (((mask >> l) & 1u) == 0) continue;
    Thread& x = b.threads[base + l];
    if (x.op.kind == WarpKind::Ballot) x.result = ballot;
    if (x.op.kind == WarpKind::Shuffle) {
      const int width = x.op.width, start = l / width * width, arg = x.op.arg;
      int src = l;
      switch (x.op.shuffle) {
        case detail::ShuffleKind::Index: src = start + (arg & (width - 1)); break;
        case detail::ShuffleKind::Up: src = l - arg >= start ? l - arg : l; break;
        case detail::ShuffleKind::Down: src = l + arg < start + width ? l + arg : l; break;
        case detail::ShuffleKind::Xor: src = (l ^ arg) < start + width ? (l ^ arg) : l; break;
      }
      if (((mask >> src) & 1u) == 0)
        fail("cuda-emu: kernel {}: lane {} of block {} reads lane {} in {}, which is not in the "
             "mask 0x{:08x}", b.config->kernel, l, block_str(), src, op.name, mask);
      x.result = b.threads[base + src].bits;
    }
    if (base + l != t) x.state = State::Ready;
  }
  return th.result;
}

}  // namespace

void set_schedule(Schedule s, uint64_t seed) {
  g_schedule = s;
  g_seed = seed;
}
Schedule schedule() { return g_schedule; }
ScheduleGuard::ScheduleGuard(Schedule s) : previous_(g_schedule) { g_schedule = s; }
ScheduleGuard::~ScheduleGuard() { g_schedule = previous_; }

EmuStats stats() { return {g_launches, g_blocks, g_threads, g_switches}; }
void reset_stats() { g_launches = g_blocks = g_threads = g_switches = 0; }

void __syncthreads() {
  Block& b = active_block("__syncthreads");
  b.synced = true;
  if (!b.fibers) fail_exited_early(b, "__syncthreads");
  Thread& th = b.threads[b.current];
  th.state = State::AtBarrier;
  ++b.at_barrier;
  suspend(b, th);
}

void __syncwarp(unsigned mask) {
  warp_op({"__syncwarp", WarpKind::Sync, {}, 0, warpSize}, mask, 0);
}

unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(
      warp_op({"__ballot_sync", WarpKind::Ballot, {}, 0, warpSize}, mask, predicate != 0));
}

namespace detail {

uint64_t shuffle(unsigned mask, uint64_t bits, ShuffleKind kind, int arg, int width) {
  static constexpr const char* names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                          "__shfl_xor_sync"};
  return warp_op({names[static_cast<int>(kind)], WarpKind::Shuffle, kind, arg, width}, mask, bits);
}

void* dynamic_shared() {
  Block& b = active_block("dynamic shared memory");
  return b.shared.empty() ? nullptr : b.shared.data();
}

void run_grid(const LaunchConfig& c, void (*thread_body)(void*), void* context) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  SCALPEL_CHECK(t_block == nullptr, "cuda-emu: kernel {} launched from inside kernel {} (not supported)",
                c.kernel, t_block ? t_block->config->kernel : "");
  SCALPEL_CHECK(threads >= 1 && threads <= kMaxThreadsPerBlock && c.block.x <= 1024 &&
                    c.block.y <= 1024 && c.block.z <= 64,
                "cuda-emu: kernel {}: invalid block ({},{},{}) (at most 1024 threads, z at most 64)",
                c.kernel, c.block.x, c.block.y, c.block.z);
  SCALPEL_CHECK(c.grid.x >= 1 && c.grid.y >= 1 && c.grid.z >= 1 && c.grid.x <= 0x7fffffffu &&
                    c.grid.y <= 65535 && c.grid.z <= 65535,
                "cuda-emu: kernel {}: invalid grid ({},{},{})", c.kernel, c.grid.x, c.grid.y, c.grid.z);
  SCALPEL_CHECK(c.shared_bytes <= kMaxSharedBytes,
                "cuda-emu: kernel {}: {} bytes of dynamic shared memory requested, the limit is {}",
                c.kernel, c.shared_bytes, kMaxSharedBytes);

  Block& b = t_storage;
  b.config = &c;
  b.body = thread_body;
  b.context = context;
  const int n = static_cast<int>(threads);
  b.threads.resize(n);
  for (int i = 0; i < n; ++i) {
    const unsigned u = static_cast<unsigned>(i);
    b.threads[i].idx = {u % c.block.x, u / c.block.x % c.block.y, u / (c.block.x * c.block.y)};
  }
  b.warps.resize((n + warpSize - 1) / warpSize);
  b.shared.assign(c.shared_bytes, 0);
  b.switches = 0;
  blockDim = c.block;
  gridDim = c.grid;

  struct Reset {
    ~Reset() { t_block = nullptr; }
  } reset;
  t_block = &b;
  const Schedule s = g_schedule;
  const uint64_t launch_id = g_launches++;
  make_order(b, s, 0);
  uint64_t block_id = 0;
  for (unsigned z = 0; z < c.grid.z; ++z)
    for (unsigned y = 0; y < c.grid.y; ++y)
      for (unsigned x = 0; x < c.grid.x; ++x, ++block_id) {
        blockIdx = {x, y, z};
        if (s == Schedule::Shuffled) make_order(b, s, g_seed ^ (launch_id << 32) ^ block_id);
        run_block(b);
      }
  g_blocks += block_id;
  g_threads += block_id * threads;
  g_switches += b.switches;
}

}  // namespace detail
}  // namespace scalpel::cuda::emu
