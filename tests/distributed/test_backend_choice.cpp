// The choice between MPI and NCCL (apps/train/distributed.h), the rank -> GPU mapping, and the
// NCCL loader's library names: the parts of the NCCL path that run without a GPU.
#include <gtest/gtest.h>

#include <cstdlib>

#include "apps/train/distributed.h"
#include "cuda/nccl.h"
#include "support/errors.h"

namespace scalpel::train {
namespace {

using scalpel::test::error_of;

const Device kCpu = parse_device("cpu"), kEmu = parse_device("cuda-emu"), kGpu = parse_device("cuda");

TEST(BackendChoice, CpuAndCudaEmuAlwaysUseMpi) {
  for (const Device d : {kCpu, kEmu}) {
    EXPECT_EQ(choose_backend("auto", d, ""), "mpi") << d.str();
    EXPECT_EQ(choose_backend("auto", d, "libnccl is not loadable (x)"), "mpi") << d.str();
    EXPECT_EQ(choose_backend("mpi", d, ""), "mpi") << d.str();
  }
}

TEST(BackendChoice, CudaUsesNcclWhenItLoads) {
  EXPECT_EQ(choose_backend("auto", kGpu, ""), "nccl");
  EXPECT_EQ(choose_backend("nccl", kGpu, ""), "nccl");
  EXPECT_EQ(choose_backend("auto", kGpu, "libnccl is not loadable (x)"), "mpi");  // cmd_train prints a note
  EXPECT_EQ(choose_backend("mpi", kGpu, ""), "mpi");
}

TEST(BackendChoice, NcclWhereItCannotRunIsAnError) {
  EXPECT_EQ(error_of([] { choose_backend("nccl", kCpu, ""); }),
            "--distributed-backend nccl needs --device cuda (NCCL reduces GPU memory), got --device cpu; use "
            "--distributed-backend mpi (or auto)");
  EXPECT_EQ(error_of([] { choose_backend("nccl", kGpu, "libnccl is not loadable (why)"); }),
            "--distributed-backend nccl: libnccl is not loadable (why); use --distributed-backend mpi (or auto)");
  EXPECT_EQ(error_of([] { choose_backend("NCCL", kGpu, ""); }),
            "--distributed-backend: unknown backend 'NCCL' (auto, mpi, nccl)");
}

TEST(GpuForLocalRank, OneGpuPerRankOnTheMachine) {
  EXPECT_EQ(gpu_for_local_rank(0, nullptr), "0");
  EXPECT_EQ(gpu_for_local_rank(3, ""), "3");
  EXPECT_EQ(gpu_for_local_rank(1, "4,5,6,7"), "5");
  EXPECT_EQ(gpu_for_local_rank(0, "GPU-8f3a,GPU-19c2"), "GPU-8f3a");  // UUIDs pass through
  EXPECT_EQ(gpu_for_local_rank(2, "6"), "6");                         // the launcher mapped them already
  EXPECT_EQ(error_of([] { gpu_for_local_rank(2, "0,1"); }),
            "local rank 2 needs a GPU of its own, but CUDA_VISIBLE_DEVICES=0,1 lists 2: start at most 2 ranks per "
            "machine (one per GPU)");
}

TEST(NcclLoader, LibraryNamesCanBeForced) {
  if (!cuda::nccl::compiled()) {
    EXPECT_NE(cuda::nccl::load_error().find("built without NCCL"), std::string::npos) << cuda::nccl::load_error();
    GTEST_SKIP() << "this build has no NCCL path";
  }
  unsetenv("SCALPEL_NCCL_LIBRARY");
  const auto usual = cuda::nccl::library_candidates();
  ASSERT_FALSE(usual.empty());
  EXPECT_EQ(usual.front(), "libnccl.so.2");
  setenv("SCALPEL_NCCL_LIBRARY", "/opt/nccl/lib/libnccl.so.2", 1);
  EXPECT_EQ(cuda::nccl::library_candidates(), std::vector<std::string>{"/opt/nccl/lib/libnccl.so.2"});
  unsetenv("SCALPEL_NCCL_LIBRARY");
}

}  // namespace
}  // namespace scalpel::train
