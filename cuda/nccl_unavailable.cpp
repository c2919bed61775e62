// cuda/nccl.h in a build without NCCL (no nvcc, or no nccl.h): load_error() says so; the
// other entry points are never reached (distributed training checks load_error() first).
#include "cuda/nccl.h"

#if !SCALPEL_HAVE_NCCL

#include "tensor/error.h"

namespace scalpel::cuda::nccl {
namespace {
[[noreturn]] void unavailable() { fail("NCCL: {}", load_error()); }
}  // namespace

bool compiled() { return false; }
std::vector<std::string> library_candidates() { return {}; }
const std::string& load_error() {
  static const std::string why =
      "this scalpel was built without NCCL (it needs nvcc and nccl.h from the CUDA Toolkit or libnccl-dev "
      "at build time)";
  return why;
}
std::string version() { return ""; }
UniqueId unique_id() { unavailable(); }
Communicator::Communicator(const UniqueId&, int, int) { unavailable(); }
Communicator::~Communicator() = default;
void Communicator::allreduce_sum(void*, int64_t, Element, const Stream&) { unavailable(); }
void Communicator::group_start() { unavailable(); }
void Communicator::group_end() { unavailable(); }
void Communicator::check_async() { unavailable(); }
void Communicator::abort() {}

}  // namespace scalpel::cuda::nccl
#endif
