// MPI communicator and gradient buckets (see distributed.h).
#include "apps/train/distributed.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <list>
#include <thread>

#include <fmt/ranges.h>

#ifdef SCALPEL_HAVE_MPI
#include <mpi.h>
#endif
#include <dlfcn.h>

#include "cuda/device.h"
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

int checked_count(int64_t n, const char* what) {
  SCALPEL_CHECK(n <= std::numeric_limits<int>::max(), "{} of {} values is too large", what, n);
  return static_cast<int>(n);
}

// Every collective is non-blocking and waited for by polling, so that a rank that stops
// responding cannot block the others forever: when a collective makes no progress for
// `timeout_s`, the waiting rank fails naming the ranks that did not reach it. To know them,
// a rank that has waited `notice_after` seconds sends each peer a notice "waiting in collective
// k" (point to point, on a communicator of its own); the ranks without a notice for k by the
// timeout are the silent ones. Collectives are numbered alike on every rank (same order).
class MpiCommunicator : public nn::Communicator {
 public:
  explicit MpiCommunicator(double timeout_s) : timeout_s_(timeout_s), notice_after_s_(std::min(1.0, timeout_s / 4)) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    // Errors come back as codes (turned into Error) rather than ending the process silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &notices_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(notices_, MPI_ERRORS_RETURN);
    last_notice_.assign(static_cast<size_t>(size_), -1);
    post_notice_receive();
  }
  ~MpiCommunicator() override {
    MPI_Cancel(&notice_receive_);
    MPI_Wait(&notice_receive_, MPI_STATUS_IGNORE);
    for (auto& [request, value] : notice_sends_) MPI_Request_free(&request);
    MPI_Comm_free(&notices_);
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override { reduce(data, n, MPI_FLOAT, "allreduce"); }
  void allreduce_sum(double* data, int64_t n) override { reduce(data, n, MPI_DOUBLE, "allreduce"); }
  void broadcast(double* data, int64_t n, int root) override {
    std::vector<Pending> one(1, {MPI_REQUEST_NULL, sequence_++, "broadcast"});
    check_mpi(MPI_Ibcast(data, checked_count(n, "broadcast"), MPI_DOUBLE, root, MPI_COMM_WORLD, &one[0].request),
              "MPI_Ibcast");
    wait(one);
  }
  void start_allreduce_sum(float* data, int64_t n) override {
    pending_.push_back({MPI_REQUEST_NULL, sequence_++, "gradient allreduce"});
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(n, "allreduce"), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                             &pending_.back().request),
              "MPI_Iallreduce");
  }
  void progress() override {
    for (Pending& p : pending_) {
      int done = 0;
      if (p.request != MPI_REQUEST_NULL) check_mpi(MPI_Test(&p.request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    }
    poll_notices();
  }
  void wait_all() override {
    wait(pending_);
    pending_.clear();
  }

 private:
  struct Pending {
    MPI_Request request;
    int64_t sequence;
    const char* what;
  };

  void reduce(void* data, int64_t n, MPI_Datatype type, const char* what) {
    std::vector<Pending> one(1, {MPI_REQUEST_NULL, sequence_++, what});
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, checked_count(n, what), type, MPI_SUM, MPI_COMM_WORLD, &one[0].request),
              "MPI_Iallreduce");
    wait(one);
  }

  // Polls until every request is done; fails when the oldest one makes no progress for timeout_s.
  void wait(std::vector<Pending>& ops) {
    using Clock = std::chrono::steady_clock;
    int64_t stuck_at = -1;  // the oldest unfinished collective
    Clock::time_point since;
    bool noticed = false;
    for (int64_t polls = 0;; ++polls) {
      const Pending* oldest = nullptr;
      for (Pending& p : ops) {
        if (p.request == MPI_REQUEST_NULL) continue;
        int done = 0;
        check_mpi(MPI_Test(&p.request, &done, MPI_STATUS_IGNORE), p.what);
        if (!done && !oldest) oldest = &p;
      }
      if (!oldest) return;
      poll_notices();
      if (oldest->sequence != stuck_at) {  // progress: the clock restarts
        stuck_at = oldest->sequence;
        since = Clock::now();
        noticed = false;
      }
      const double waited = std::chrono::duration<double>(Clock::now() - since).count();
      if (!noticed && waited >= notice_after_s_) {
        send_notices(stuck_at);
        noticed = true;
      }
      if (waited >= timeout_s_) fail_silent(*oldest);
      // Spin briefly (a collective usually completes within microseconds), then leave the core
      // to the ranks still computing.
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  [[noreturn]] void fail_silent(const Pending& op) const {
    std::vector<int> silent;
    for (int r = 0; r < size_; ++r) {
      if (r != rank_ && last_notice_[static_cast<size_t>(r)] < op.sequence) silent.push_back(r);
    }
    if (silent.empty()) {
      fail("collective {} ({}) made no progress for --dist-timeout {} s although every rank reached it "
           "(a network failure?)",
           op.sequence, op.what, timeout_s_);
    }
    fail("{} {} did not reach collective {} ({}) within --dist-timeout {} s: hung, stopped, or busy for longer "
         "(rank 0 validates and writes checkpoints alone; raise --dist-timeout if that takes longer)",
         silent.size() == 1 ? "rank" : "ranks", fmt::join(silent, ", "), op.sequence, op.what, timeout_s_);
  }

  void post_notice_receive() {
    check_mpi(MPI_Irecv(&notice_in_, 1, MPI_INT64_T, MPI_ANY_SOURCE, 0, notices_, &notice_receive_), "MPI_Irecv");
  }
  void poll_notices() {
    for (;;) {
      int done = 0;
      MPI_Status status;
      check_mpi(MPI_Test(&notice_receive_, &done, &status), "MPI_Test");
      if (!done) break;
      int64_t& last = last_notice_[static_cast<size_t>(status.MPI_SOURCE)];
      last = std::max(last, notice_in_);
      post_notice_receive();
    }
    notice_sends_.remove_if([](std::pair<MPI_Request, int64_t>& send) {
      int done = 0;
      MPI_Test(&send.first, &done, MPI_STATUS_IGNORE);
      return done != 0;
    });
  }
  void send_notices(int64_t sequence) {
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      auto& [request, value] = notice_sends_.emplace_back(MPI_REQUEST_NULL, sequence);
      check_mpi(MPI_Isend(&value, 1, MPI_INT64_T, r, 0, notices_, &request), "MPI_Isend");
    }
  }

  int rank_ = 0, size_ = 1;
  double timeout_s_, notice_after_s_;
  int64_t sequence_ = 0;             // collectives started so far
  std::vector<Pending> pending_;     // started gradient allreduces
  MPI_Comm notices_ = MPI_COMM_NULL;
  MPI_Request notice_receive_ = MPI_REQUEST_NULL;
  int64_t notice_in_ = 0;
  std::vector<int64_t> last_notice_;                     // per rank, the latest collective it waits in
  std::list<std::pair<MPI_Request, int64_t>> notice_sends_;  // in flight (a list: payloads stay put)
};
#endif

}  // namespace

std::string nccl_unavailable_reason() {
  std::vector<std::string> missing;
  // Opened at run time, as cuDNN is (cuda/cudnn/loader.h): the binary starts without it.
  void* nccl = nullptr;
  std::string why;
  for (const char* file : {"libnccl.so.2", "libnccl.so"}) {
    if ((nccl = dlopen(file, RTLD_NOW | RTLD_LOCAL))) break;
    const char* error = dlerror();
    why += (why.empty() ? "" : "; ") + std::string(error ? error : file);
  }
  int version = 0;
  if (!nccl) {
    missing.push_back(fmt::format("libnccl is not loadable ({}; it comes with NCCL, e.g. Debian's libnccl2)", why));
  } else if (auto get_version = reinterpret_cast<int (*)(int*)>(dlsym(nccl, "ncclGetVersion"));
             !get_version || get_version(&version) != 0) {
    missing.push_back("libnccl has no working ncclGetVersion");
  }
  try {
    cuda::require_device(parse_device("cuda"));
  } catch (const Error& e) {
    missing.push_back(fmt::format("no usable GPU ({})", e.what()));
  }
  if (missing.empty()) {
    return fmt::format("NCCL {} and a GPU are here, but GPU data-parallel training is not implemented yet", version);
  }
  return fmt::format("{}", fmt::join(missing, "; "));
}

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  }
  return 1;
}

std::unique_ptr<nn::Communicator> start_distributed(const std::string& backend, double timeout_s) {
  SCALPEL_CHECK(backend != "nccl", "--distributed-backend nccl: not available: {}; use mpi on CPUs",
                nccl_unavailable_reason());
  SCALPEL_CHECK(backend == "mpi", "--distributed-backend: unknown backend '{}' (mpi)", backend);
  SCALPEL_CHECK(timeout_s > 0, "--dist-timeout must be positive, got {}", timeout_s);
#ifdef SCALPEL_HAVE_MPI
  return std::make_unique<MpiCommunicator>(timeout_s);
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

GradientBuckets::GradientBuckets(const std::vector<Tensor>& params, nn::Communicator& comm, int64_t bucket_bytes)
    : comm_(comm) {
  const int64_t capacity = std::max<int64_t>(bucket_bytes / 4, 1);
  int64_t filled = 0;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (buckets_.empty() || (filled > 0 && filled + it->numel() > capacity)) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().members.push_back(*it);
    filled += it->numel();
    bucket_of_[it->autograd_meta_ptr().get()] = buckets_.size() - 1;
  }
}

void GradientBuckets::ready(const Tensor& param) {
  const auto it = bucket_of_.find(param.autograd_meta_ptr().get());
  if (it != bucket_of_.end()) ++buckets_[it->second].ready;
  // In bucket order (every rank starts the same collectives in the same order).
  while (launched_ < buckets_.size() && buckets_[launched_].ready == static_cast<int64_t>(buckets_[launched_].members.size()))
    launch(buckets_[launched_++]);
  comm_.progress();
}

void GradientBuckets::launch(Bucket& bucket) {
  for (const Tensor& p : bucket.members) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    SCALPEL_CHECK(g.dtype() == DType::F32 && g.device().is_cpu(),
                  "distributed training: gradients must be float32 on the CPU, got {}", g.str());
    const Tensor c = g.contiguous();
    bucket.values.insert(bucket.values.end(), c.data<float>(), c.data<float>() + c.numel());
  }
  if (!bucket.values.empty()) comm_.start_allreduce_sum(bucket.values.data(), static_cast<int64_t>(bucket.values.size()));
}

void GradientBuckets::finish() {
  while (launched_ < buckets_.size()) launch(buckets_[launched_++]);
  comm_.wait_all();
  for (Bucket& bucket : buckets_) {
    size_t offset = 0;
    for (Tensor& p : bucket.members) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      p.set_grad(Tensor::from_data(bucket.values.data() + offset, g.shape()));
      offset += static_cast<size_t>(g.numel());
    }
  }
}

}  // namespace scalpel::train
