#pragma once
// Data-parallel training over MPI ranks (docs/distributed.md): `mpirun -np N scalpel train ...`.
// Each rank trains on its shard of every global batch (data/loader.h), the gradients are summed
// over the ranks in buckets (GradientBuckets), so every rank takes the same optimizer step.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "layers/communicator.h"
#include "tensor/tensor.h"

namespace scalpel::train {

// The rank count the launcher (mpirun) started, from its environment (OpenMPI's
// OMPI_COMM_WORLD_SIZE, or PMI_SIZE); 1 outside a launcher.
int launcher_world_size();

// The communicator of a distributed run: MPI_Init now, MPI_Finalize when destroyed. `backend`
// is "mpi" ("nccl" is not available yet). A collective that makes no progress for
// `timeout_s` seconds (a rank that hangs, is stopped, or is busy elsewhere that long) fails
// with an Error naming the ranks that did not reach it. Error when this build has no MPI or
// the backend is unknown.
std::unique_ptr<nn::Communicator> start_distributed(const std::string& backend, double timeout_s);

// Why --distributed-backend nccl cannot run here: libnccl not loadable (dlopen, as cuDNN), no
// usable GPU (or a build without CUDA), each said with its reason; with both present, that GPU
// data-parallel training is not implemented yet (distributed runs are CPU and MPI only).
std::string nccl_unavailable_reason();

// After an error on this rank: prints "error: rank R of N: what" on stderr and ends every rank
// (MPI_Abort), so that none waits forever in a collective for this one.
[[noreturn]] void abort_distributed(nn::Communicator& comm, const std::string& what);

// One step's gradient allreduce: the gradients of `params` (float32, CPU) are packed into
// buckets of up to `bucket_bytes`, the last parameters first (as backward produces them); a
// bucket's sum over the ranks starts as soon as all its gradients are final (ready(), the
// grad-ready hook of backward_with_grad_ready), in bucket order, and finish() waits for every
// bucket and writes the sums back into the gradients. Parameters without a gradient (the same
// on every rank) are left out.
class GradientBuckets {
 public:
  GradientBuckets(const std::vector<Tensor>& params, nn::Communicator& comm, int64_t bucket_bytes);
  void ready(const Tensor& param);
  void finish();

 private:
  struct Bucket {
    std::vector<Tensor> members;
    int64_t ready = 0;
    std::vector<float> values;  // the packed gradients, in flight from launch to finish
  };
  void launch(Bucket& bucket);

  nn::Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const void*, size_t> bucket_of_;  // by autograd meta
  size_t launched_ = 0;
};

}  // namespace scalpel::train
