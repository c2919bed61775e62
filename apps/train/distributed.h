#pragma once
// Data-parallel training over MPI ranks, with NCCL for GPU gradients (docs/distributed.md):
// `mpirun -np N scalpel train ...`.
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

// This rank's index among the ranks on its machine, from the launcher's environment (OpenMPI's
// OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID, Slurm's SLURM_LOCALID); -1 outside one.
int launcher_local_rank();

// The CUDA_VISIBLE_DEVICES that leaves local rank `local_rank` its own GPU only (one rank per
// GPU): entry `local_rank` of `visible` (the GPUs left visible to the job, comma-separated; null
// or empty = all, numbered from 0), or `visible` itself when it names one GPU (the launcher
// has mapped them already). Error when `visible` lists fewer GPUs than `local_rank` needs.
std::string gpu_for_local_rank(int local_rank, const char* visible);

// The communicator a run uses, for --distributed-backend `requested` (auto, mpi or nccl):
// auto is nccl for a CUDA device when NCCL loads (`nccl_error` == "", cuda/nccl.h's
// load_error()) and mpi otherwise (cpu and cuda-emu always: NCCL needs GPU memory). nccl for
// another device, or where NCCL does not load, is an Error saying why.
std::string choose_backend(const std::string& requested, Device device, const std::string& nccl_error);

// The communicator of a distributed run on `device`: MPI_Init now, MPI_Finalize when destroyed;
// with the nccl backend (choose_backend), also an NCCL communicator for the gradients, which
// then stay in GPU memory. On a CUDA device each rank first gets its own GPU
// (gpu_for_local_rank, before anything initializes CUDA). A collective that makes no progress
// for `timeout_s` seconds (a rank that hangs, is stopped, or is busy elsewhere that long) fails
// with an Error naming the ranks that did not reach it. Error when this build has no MPI or the
// backend cannot run.
std::unique_ptr<nn::Communicator> start_distributed(const std::string& backend, Device device, double timeout_s);

// After an error on this rank: prints "error: rank R of N: what" on stderr and ends every rank
// (MPI_Abort), so that none waits forever in a collective for this one.
[[noreturn]] void abort_distributed(nn::Communicator& comm, const std::string& what);

// One step's gradient allreduce: the gradients of `params` (float32) are packed into buckets of
// up to `bucket_bytes` on the communicator's buffer_device() (host memory for MPI, the GPU for
// NCCL), the last parameters first (as backward produces them); a bucket's sum over the ranks
// starts as soon as all its gradients are final (ready(), the grad-ready hook of
// backward_with_grad_ready), in bucket order, and finish() waits for every bucket and makes the
// sums the gradients (views of the bucket, or copies on the parameters' device). Parameters
// without a gradient (the same on every rank) are left out.
class GradientBuckets {
 public:
  GradientBuckets(const std::vector<Tensor>& params, nn::Communicator& comm, int64_t bucket_bytes);
  void ready(const Tensor& param);
  void finish();

 private:
  struct Bucket {
    std::vector<Tensor> members;
    int64_t ready = 0;
    Tensor values;  // the packed gradients, in flight from launch to finish
  };
  void launch(Bucket& bucket);

  nn::Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const void*, size_t> bucket_of_;  // by autograd meta
  size_t launched_ = 0;
};

}  // namespace scalpel::train
