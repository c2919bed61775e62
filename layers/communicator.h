#pragma once
// The collective operations data-parallel training needs, behind an interface so that layers/
// does not depend on MPI or NCCL (apps/train/distributed.h implements it with MPI, and with
// NCCL for GPU gradients). Every rank calls the same operations in the same order with the
// same sizes.
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace scalpel::nn {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi" or "nccl", for the start-up line of a run.
  virtual std::string backend() const = 0;
  // In place, host memory: data[i] becomes the sum over the ranks of their data[i].
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // In place, host memory: every rank's data becomes rank `root`'s.
  virtual void broadcast(double* data, int64_t n, int root) = 0;
  // Where start_allreduce_sum's buffers live: the CPU (MPI) or the GPU (NCCL); gradients
  // elsewhere are copied there and back (counted, cuda/device.h).
  virtual Device buffer_device() const { return Device::cpu(); }
  // allreduce_sum started without waiting (the gradient buckets, while backward runs), on a
  // buffer of buffer_device(): `data` must stay untouched until wait_all() returns. progress()
  // lets started ones advance (MPI moves them only inside its calls). This default runs it at
  // once. Those started between group_start() and group_end() may be launched as one (NCCL).
  virtual void start_allreduce_sum(float* data, int64_t n) { allreduce_sum(data, n); }
  virtual void group_start() {}
  virtual void group_end() {}
  virtual void progress() {}
  virtual void wait_all() {}
};

// While a SyncBatchNorm scope is alive, batch_norm() in training mode (CPU) normalizes with the
// statistics of every rank's batch together (allreduce of the per-channel sum and sum of
// squares in forward, and of the two per-channel gradient sums in backward), as one process
// with the concatenated batch would, in the same summation order (layers/ops/batch_tree.h); its
// weight and bias gradients are the global ones on rank 0 and zero on the others (the gradient
// allreduce then leaves them exact). Without one, each rank uses its own batch (PyTorch DDP).
class SyncBatchNorm {
 public:
  explicit SyncBatchNorm(Communicator* comm);
  ~SyncBatchNorm();
  SyncBatchNorm(const SyncBatchNorm&) = delete;
  SyncBatchNorm& operator=(const SyncBatchNorm&) = delete;

 private:
  Communicator* previous_;
};

// The communicator of the innermost SyncBatchNorm scope; nullptr outside any.
Communicator* sync_batch_norm_communicator();

// batch_norm()'s training-mode CPU path inside a SyncBatchNorm scope (same arguments, checked).
Tensor sync_batch_norm_train(const Tensor& x, Tensor running_mean, Tensor running_var, const Tensor& weight,
                             const Tensor& bias, double momentum, double eps, Communicator& comm);

}  // namespace scalpel::nn
