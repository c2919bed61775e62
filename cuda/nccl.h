#pragma once
// NCCL, the GPU collectives of data-parallel training (apps/train/distributed.h), opened at run
// time (dlopen of libnccl.so.2, as cuda/cudnn/loader.h opens cuDNN) so that a scalpel built with
// it still starts where NCCL is missing. Built from cuda/nccl/*.cpp when CMake finds CUDA and
// nccl.h (SCALPEL_HAVE_NCCL); otherwise load_error() says so and nothing else may be called.
//
// Contracts: buffers are device memory of the current CUDA device (cuda:0 of the process: a
// rank sees only its own GPU, apps/train/distributed.h); collectives are enqueued on the
// stream and return at once; every rank makes the same calls in the same order with the same
// counts. NCCL failures throw scalpel::Error "<call> failed: <ncclGetErrorString> (<last error>)".
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/backend.h"

namespace scalpel::cuda::nccl {

// True when this build has the NCCL path (SCALPEL_HAVE_NCCL).
bool compiled();

// The library files tried, in order: $SCALPEL_NCCL_LIBRARY alone when set (a file name or a
// path: a non-standard NCCL install, or a test pointing it at a missing file), otherwise
// libnccl.so.<major of the build's nccl.h>, then the library CMake found at build time.
std::vector<std::string> library_candidates();

// Why NCCL cannot be used here ("" when it can): the build has no NCCL path, no candidate
// loads (each named with dlopen's reason), or the library lacks a function scalpel calls.
// Loads the library on the first call.
const std::string& load_error();

// The loaded library's version, "2.28.3" ("" when it did not load).
std::string version();

// Who is who in a communicator: rank 0 creates it, the others receive it (over MPI).
struct UniqueId {
  unsigned char bytes[128];
};
UniqueId unique_id();  // ncclGetUniqueId

enum class Element : uint8_t { F32, F64 };

// One rank's member of an NCCL communicator over `ranks` processes, on the current CUDA device.
class Communicator {
 public:
  // ncclCommInitRank: blocks until every rank has called it with rank 0's id.
  Communicator(const UniqueId& id, int ranks, int rank);
  ~Communicator();  // ncclCommDestroy (nothing after abort())
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // In place: data[i] becomes the sum over the ranks (ncclAllReduce), enqueued on `stream`.
  void allreduce_sum(void* data, int64_t n, Element type, const Stream& stream);
  // Collectives between group_start() and group_end() are launched together (ncclGroupStart/End).
  void group_start();
  void group_end();
  // Throws when the communicator has failed asynchronously (ncclCommGetAsyncError: a peer's
  // network connection broke, ...); a no-op while it is healthy.
  void check_async();
  // ncclCommAbort: ends the collectives in flight (their kernels return, so the stream drains)
  // and frees the communicator. Used when a peer does not respond within --dist-timeout.
  void abort();

 private:
  void* comm_ = nullptr;  // ncclComm_t
};

}  // namespace scalpel::cuda::nccl
