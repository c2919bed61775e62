// MPI and NCCL communicators, backend choice, and gradient buckets (see distributed.h).
#include "apps/train/distributed.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <list>
#include <string_view>
#include <thread>

#include <fmt/ranges.h>

#ifdef SCALPEL_HAVE_MPI
#include <mpi.h>
#endif
#include "cuda/device.h"
#include "cuda/nccl.h"
#include "tensor/error.h"
#include "tensor/ops.h"

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
  std::string backend() const override { return "mpi"; }
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

  // For the NCCL communicator, whose collectives are numbered with these and whose waits name
  // the silent ranks with these notices.
  int64_t next_sequence() { return sequence_++; }
  double timeout_s() const { return timeout_s_; }
  double notice_after_s() const { return notice_after_s_; }
  void send_notices(int64_t sequence) {
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      auto& [request, value] = notice_sends_.emplace_back(MPI_REQUEST_NULL, sequence);
      check_mpi(MPI_Isend(&value, 1, MPI_INT64_T, r, 0, notices_, &request), "MPI_Isend");
    }
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
  // Collective `sequence` (`what`) made no progress for timeout_s: fails naming the ranks that
  // sent no notice of waiting in it.
  [[noreturn]] void fail_silent(int64_t sequence, const char* what) const {
    std::vector<int> silent;
    for (int r = 0; r < size_; ++r) {
      if (r != rank_ && last_notice_[static_cast<size_t>(r)] < sequence) silent.push_back(r);
    }
    if (silent.empty()) {
      fail(
          "collective {} ({}) made no progress for --dist-timeout {} s although every rank reached it "
          "(a network failure?)",
          sequence, what, timeout_s_);
    }
    fail(
        "{} {} did not reach collective {} ({}) within --dist-timeout {} s: hung, stopped, or busy for longer "
        "(rank 0 validates and writes checkpoints alone; raise --dist-timeout if that takes longer)",
        silent.size() == 1 ? "rank" : "ranks", fmt::join(silent, ", "), sequence, what, timeout_s_);
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
      if (waited >= timeout_s_) fail_silent(oldest->sequence, oldest->what);
      // Spin briefly (a collective usually completes within microseconds), then leave the core
      // to the ranks still computing.
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  void post_notice_receive() {
    check_mpi(MPI_Irecv(&notice_in_, 1, MPI_INT64_T, MPI_ANY_SOURCE, 0, notices_, &notice_receive_), "MPI_Irecv");
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

// MPI for the start-up (rank 0's NCCL id goes to the others by broadcast), for the small host
// reductions (loss sums, validation metrics, --sync-bn's per-channel sums) and for the notices
// naming silent ranks; NCCL for the gradient buckets, which stay in GPU memory and are reduced
// on the compute stream (after the backward kernels that wrote them). A wait that makes no
// progress for timeout_s aborts the NCCL communicator (its kernels return) and fails as MPI's.
class NcclCommunicator : public nn::Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> mpi, Device device) : mpi_(std::move(mpi)), device_(device) {
    try {
      stream_ = cuda::default_stream(device);  // checks for a usable GPU
      cuda::nccl::UniqueId id{};
      if (mpi_->rank() == 0) id = cuda::nccl::unique_id();
      double words[sizeof(id) / sizeof(double)];  // MPI moves the bits; no arithmetic touches them
      std::memcpy(words, id.bytes, sizeof(id));
      mpi_->broadcast(words, std::size(words), 0);
      std::memcpy(id.bytes, words, sizeof(id));
      nccl_ = std::make_unique<cuda::nccl::Communicator>(id, mpi_->size(), mpi_->rank());
    } catch (const std::exception& e) {  // the other ranks may wait for this one's NCCL id: end them
      abort_distributed(*mpi_, e.what());
    }
  }
  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  std::string backend() const override { return "nccl"; }
  void allreduce_sum(float* data, int64_t n) override { mpi_->allreduce_sum(data, n); }
  void allreduce_sum(double* data, int64_t n) override { mpi_->allreduce_sum(data, n); }
  void broadcast(double* data, int64_t n, int root) override { mpi_->broadcast(data, n, root); }
  Device buffer_device() const override { return device_; }
  void start_allreduce_sum(float* data, int64_t n) override {
    in_flight_.push_back(mpi_->next_sequence());
    nccl_->allreduce_sum(data, n, cuda::nccl::Element::F32, stream_);
  }
  void group_start() override { nccl_->group_start(); }
  void group_end() override { nccl_->group_end(); }
  void progress() override {
    nccl_->check_async();
    mpi_->poll_notices();
  }
  // Polls the stream (the allreduces follow the step's kernels on it) with the timeout.
  void wait_all() override {
    if (in_flight_.empty()) return;
    using Clock = std::chrono::steady_clock;
    const int64_t first = in_flight_.front();
    const Clock::time_point since = Clock::now();
    bool noticed = false;
    for (int64_t polls = 0;; ++polls) {
      nccl_->check_async();
      if (cuda::stream_done(stream_)) break;
      mpi_->poll_notices();
      const double waited = std::chrono::duration<double>(Clock::now() - since).count();
      if (!noticed && waited >= mpi_->notice_after_s()) {
        mpi_->send_notices(first);
        noticed = true;
      }
      if (waited >= mpi_->timeout_s()) {
        nccl_->abort();
        mpi_->fail_silent(first, "gradient allreduce, NCCL");
      }
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    in_flight_.clear();
  }

 private:
  std::unique_ptr<MpiCommunicator> mpi_;  // declared first: finalized after NCCL is destroyed
  Device device_;
  cuda::Stream stream_;
  std::unique_ptr<cuda::nccl::Communicator> nccl_;
  std::vector<int64_t> in_flight_;  // sequence numbers of the started gradient allreduces
};
#endif

}  // namespace

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  }
  return 1;
}

int launcher_local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    if (const char* v = std::getenv(name)) return std::max(0, std::atoi(v));
  }
  return -1;
}

std::string gpu_for_local_rank(int local_rank, const char* visible) {
  if (!visible || !*visible) return std::to_string(local_rank);
  std::vector<std::string> gpus;
  for (std::string_view rest = visible;;) {
    const size_t comma = rest.find(',');
    gpus.emplace_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (gpus.size() == 1) return gpus[0];
  SCALPEL_CHECK(local_rank < static_cast<int>(gpus.size()),
                "local rank {} needs a GPU of its own, but CUDA_VISIBLE_DEVICES={} lists {}: start at most {} ranks "
                "per machine (one per GPU)",
                local_rank, visible, gpus.size(), gpus.size());
  return gpus[static_cast<size_t>(local_rank)];
}

std::string choose_backend(const std::string& requested, Device device, const std::string& nccl_error) {
  SCALPEL_CHECK(requested == "auto" || requested == "mpi" || requested == "nccl",
                "--distributed-backend: unknown backend '{}' (auto, mpi, nccl)", requested);
  const bool gpu = device.type == DeviceType::CUDA;
  if (requested == "nccl") {
    SCALPEL_CHECK(gpu,
                  "--distributed-backend nccl needs --device cuda (NCCL reduces GPU memory), got --device {}; "
                  "use --distributed-backend mpi (or auto)",
                  device.str());
    SCALPEL_CHECK(nccl_error.empty(), "--distributed-backend nccl: {}; use --distributed-backend mpi (or auto)",
                  nccl_error);
  }
  if (requested == "mpi" || !gpu || !nccl_error.empty()) return "mpi";
  return "nccl";
}

std::unique_ptr<nn::Communicator> start_distributed(const std::string& requested, Device device, double timeout_s) {
  SCALPEL_CHECK(timeout_s > 0, "--dist-timeout must be positive, got {}", timeout_s);
  const bool gpu = device.type == DeviceType::CUDA;
  const std::string backend = choose_backend(requested, device, gpu ? cuda::nccl::load_error() : "");
#ifdef SCALPEL_HAVE_MPI
  if (gpu && launcher_local_rank() >= 0) {
    // Before MPI_Init (a CUDA-aware MPI initializes CUDA there) and before any CUDA call: the
    // CUDA runtime reads CUDA_VISIBLE_DEVICES once. The rank's GPU is then its cuda:0.
    SCALPEL_CHECK(device.index == 0,
                  "--device {}: in a distributed run each rank uses the GPU of its local rank "
                  "(CUDA_VISIBLE_DEVICES); give --device cuda",
                  device.str());
    const std::string own = gpu_for_local_rank(launcher_local_rank(), std::getenv("CUDA_VISIBLE_DEVICES"));
    setenv("CUDA_VISIBLE_DEVICES", own.c_str(), 1);
  }
  auto mpi = std::make_unique<MpiCommunicator>(timeout_s);
  if (backend == "mpi") return mpi;
  return std::make_unique<NcclCommunicator>(std::move(mpi), device);
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
  std::vector<Tensor> flat;
  for (const Tensor& p : bucket.members) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    SCALPEL_CHECK(g.dtype() == DType::F32, "distributed training: gradients must be float32, got {}", g.str());
    flat.push_back(g.to(comm_.buffer_device()).reshape({g.numel()}));
  }
  if (flat.empty()) return;
  bucket.values = ops::concat(flat, 0);  // a copy: the gradients stay as they are until finish()
  comm_.start_allreduce_sum(bucket.values.data<float>(), bucket.values.numel());
}

void GradientBuckets::finish() {
  comm_.group_start();  // the buckets not started during backward (all of them with --no-overlap)
  while (launched_ < buckets_.size()) launch(buckets_[launched_++]);
  comm_.group_end();
  comm_.wait_all();
  for (Bucket& bucket : buckets_) {
    int64_t offset = 0;
    for (Tensor& p : bucket.members) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      p.set_grad(bucket.values.slice(0, offset, offset + g.numel()).view(g.shape()).to(g.device()));
      offset += g.numel();
    }
  }
}

}  // namespace scalpel::train
