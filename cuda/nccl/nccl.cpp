// NCCL through dlopen (see cuda/nccl.h): the functions scalpel calls are looked up once, by the
// prototypes of the build's nccl.h, and called through pointers.
#include "cuda/nccl.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "cuda/dynamic_library.h"
#include "tensor/error.h"

namespace scalpel::cuda::nccl {
namespace {

struct Library {
  void* handle = nullptr;
  std::string error;
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&ncclGetErrorString) get_error_string = nullptr;
  decltype(&ncclGetLastError) get_last_error = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
};

template <typename Fn>
void find(Library& l, Fn& fn, const char* name) {
  fn = reinterpret_cast<Fn>(dlsym(l.handle, name));
  if (!fn && l.error.empty())
    l.error = fmt::format("the NCCL library has no {} (too old? scalpel needs NCCL 2.x)", name);
}

const Library& library() {
  static const Library lib = [] {
    Library l;
    l.handle = open_first(library_candidates(), l.error);
    if (!l.handle) {
      l.error = fmt::format(
          "libnccl is not loadable ({}; it comes with NCCL: the CUDA Toolkit's, or Debian's libnccl2)", l.error);
      return l;
    }
    find(l, l.get_version, "ncclGetVersion");
    find(l, l.get_unique_id, "ncclGetUniqueId");
    find(l, l.comm_init_rank, "ncclCommInitRank");
    find(l, l.comm_destroy, "ncclCommDestroy");
    find(l, l.comm_abort, "ncclCommAbort");
    find(l, l.comm_get_async_error, "ncclCommGetAsyncError");
    find(l, l.get_error_string, "ncclGetErrorString");
    find(l, l.get_last_error, "ncclGetLastError");
    find(l, l.all_reduce, "ncclAllReduce");
    find(l, l.group_start, "ncclGroupStart");
    find(l, l.group_end, "ncclGroupEnd");
    return l;
  }();
  return lib;
}

const Library& loaded() {
  const Library& l = library();
  SCALPEL_CHECK(l.error.empty(), "NCCL: {}", l.error);
  return l;
}

void check(ncclResult_t result, const char* call, ncclComm_t comm = nullptr) {
  if (result == ncclSuccess) return;
  const Library& l = library();
  const char* last = l.get_last_error ? l.get_last_error(comm) : nullptr;
  fail("{} failed: {}{}", call, l.get_error_string(result), last && *last ? fmt::format(" ({})", last) : std::string());
}

ncclDataType_t nccl_type(Element type) { return type == Element::F32 ? ncclFloat32 : ncclFloat64; }

}  // namespace

bool compiled() { return true; }

std::vector<std::string> library_candidates() {
  if (const char* forced = std::getenv("SCALPEL_NCCL_LIBRARY"); forced && *forced) return {forced};
  std::vector<std::string> files = {"libnccl.so." + std::to_string(NCCL_MAJOR)};
  if (std::strlen(SCALPEL_NCCL_BUILD_LIBRARY) > 0) files.push_back(SCALPEL_NCCL_BUILD_LIBRARY);
  return files;
}

const std::string& load_error() { return library().error; }

std::string version() {
  const Library& l = library();
  int v = 0;
  if (!l.error.empty() || l.get_version(&v) != ncclSuccess) return "";
  // NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch.
  return fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);
}

UniqueId unique_id() {
  static_assert(sizeof(UniqueId) == sizeof(ncclUniqueId));
  ncclUniqueId id;
  check(loaded().get_unique_id(&id), "ncclGetUniqueId");
  UniqueId out;
  std::memcpy(out.bytes, id.internal, sizeof(out.bytes));
  return out;
}

Communicator::Communicator(const UniqueId& id, int ranks, int rank) {
  ncclUniqueId nccl_id;
  std::memcpy(nccl_id.internal, id.bytes, sizeof(id.bytes));
  ncclComm_t comm = nullptr;
  check(loaded().comm_init_rank(&comm, ranks, nccl_id, rank), "ncclCommInitRank");
  comm_ = comm;
}

Communicator::~Communicator() {
  if (comm_) library().comm_destroy(static_cast<ncclComm_t>(comm_));
}

void Communicator::allreduce_sum(void* data, int64_t n, Element type, const Stream& stream) {
  SCALPEL_CHECK(comm_, "NCCL allreduce on a communicator that was aborted");
  const auto comm = static_cast<ncclComm_t>(comm_);
  check(library().all_reduce(data, data, static_cast<size_t>(n), nccl_type(type), ncclSum, comm,
                             static_cast<cudaStream_t>(stream.handle)),
        "ncclAllReduce", comm);
}

void Communicator::group_start() { check(library().group_start(), "ncclGroupStart"); }
void Communicator::group_end() { check(library().group_end(), "ncclGroupEnd", static_cast<ncclComm_t>(comm_)); }

void Communicator::check_async() {
  if (!comm_) return;
  const auto comm = static_cast<ncclComm_t>(comm_);
  ncclResult_t state = ncclSuccess;
  check(library().comm_get_async_error(comm, &state), "ncclCommGetAsyncError", comm);
  if (state != ncclInProgress) check(state, "an NCCL collective", comm);
}

void Communicator::abort() {
  if (!comm_) return;
  library().comm_abort(static_cast<ncclComm_t>(comm_));
  comm_ = nullptr;
}

}  // namespace scalpel::cuda::nccl
