#pragma once
// Data-parallel training over MPI ranks (docs/distributed.md): `mpirun -np N scalpel train ...`.
// Each rank trains on its shard of every global batch (data/loader.h), the gradients are summed
// over the ranks in buckets (allreduce_gradients), so every rank takes the same optimizer step.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/communicator.h"
#include "tensor/tensor.h"

namespace scalpel::train {

// The rank count the launcher (mpirun) started, from its environment (OpenMPI's
// OMPI_COMM_WORLD_SIZE, or PMI_SIZE); 1 outside a launcher.
int launcher_world_size();

// The communicator of a distributed run: MPI_Init now, MPI_Finalize when destroyed. `backend`
// is "mpi" ("nccl" is not available yet). Error when this build has no MPI or the backend is
// unknown.
std::unique_ptr<nn::Communicator> start_distributed(const std::string& backend);

// After an error on this rank: prints "error: rank R of N: what" on stderr and ends every rank
// (MPI_Abort), so that none waits forever in a collective for this one.
[[noreturn]] void abort_distributed(nn::Communicator& comm, const std::string& what);

// Sums the gradients of `params` (float32, CPU; those without a gradient are skipped, the
// same on every rank) over the ranks, in place, packing them into buckets of up to
// `bucket_bytes` per allreduce (the last parameters first, as backward produces them).
void allreduce_gradients(const std::vector<Tensor>& params, nn::Communicator& comm, int64_t bucket_bytes);

}  // namespace scalpel::train
