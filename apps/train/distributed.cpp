// MPI communicator and gradient buckets (see distributed.h).
#include "apps/train/distributed.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#ifdef SCALPEL_HAVE_MPI
#include <mpi.h>
#endif

#include "tensor/error.h"

namespace scalpel::train {
namespace {

#ifdef SCALPEL_HAVE_MPI
void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("{}: {}", what, std::string(text, static_cast<size_t>(length)));
}

class MpiCommunicator : public nn::Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    // Errors come back as codes (turned into Error) rather than ending the process silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override { MPI_Finalize(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override { reduce(data, n, MPI_FLOAT); }
  void allreduce_sum(double* data, int64_t n) override { reduce(data, n, MPI_DOUBLE); }
  void broadcast(double* data, int64_t n, int root) override {
    SCALPEL_CHECK(n <= std::numeric_limits<int>::max(), "broadcast of {} values is too large", n);
    check_mpi(MPI_Bcast(data, static_cast<int>(n), MPI_DOUBLE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }

 private:
  void reduce(void* data, int64_t n, MPI_Datatype type) {
    SCALPEL_CHECK(n <= std::numeric_limits<int>::max(), "allreduce of {} values is too large", n);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  int rank_ = 0, size_ = 1;
};
#endif

}  // namespace

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  }
  return 1;
}

std::unique_ptr<nn::Communicator> start_distributed(const std::string& backend) {
  SCALPEL_CHECK(backend != "nccl",
                "--distributed-backend nccl: not available yet (GPU data-parallel training is planned); "
                "use mpi on CPUs");
  SCALPEL_CHECK(backend == "mpi", "--distributed-backend: unknown backend '{}' (mpi)", backend);
#ifdef SCALPEL_HAVE_MPI
  return std::make_unique<MpiCommunicator>();
#else
  fail("distributed training needs MPI, and this scalpel was built without it (install libopenmpi-dev, "
       "then rebuild: make){}",
       launcher_world_size() > 1 ? fmt::format("; mpirun started {} ranks", launcher_world_size()) : "");
#endif
}

void abort_distributed(nn::Communicator& comm, const std::string& what) {
  std::fprintf(stderr, "error: rank %d of %d: %s\n", comm.rank(), comm.size(), what.c_str());
  std::fflush(stderr);
#ifdef SCALPEL_HAVE_MPI
  MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::_Exit(1);
}

void allreduce_gradients(const std::vector<Tensor>& params, nn::Communicator& comm, int64_t bucket_bytes) {
  const auto capacity = static_cast<size_t>(std::max<int64_t>(bucket_bytes / 4, 1));
  std::vector<float> bucket;
  std::vector<Tensor> members;  // the parameters whose gradients are in `bucket`, in order
  const auto flush = [&] {
    if (members.empty()) return;
    comm.allreduce_sum(bucket.data(), static_cast<int64_t>(bucket.size()));
    size_t offset = 0;
    for (Tensor& p : members) {
      const Tensor g = p.grad();
      p.set_grad(Tensor::from_data(bucket.data() + offset, g.shape()));
      offset += static_cast<size_t>(g.numel());
    }
    bucket.clear();
    members.clear();
  };
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const Tensor g = it->grad();
    if (!g.defined()) continue;
    SCALPEL_CHECK(g.dtype() == DType::F32 && g.device().is_cpu(),
                  "distributed training: gradients must be float32 on the CPU, got {}", g.str());
    const std::vector<float> values = g.values<float>();
    if (!members.empty() && bucket.size() + values.size() > capacity) flush();
    bucket.insert(bucket.end(), values.begin(), values.end());
    members.push_back(*it);
  }
  flush();
}

}  // namespace scalpel::train
