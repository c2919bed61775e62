// The parts of cuda/cudnn.h every build has: the device check and the settings. The cuDNN
// calls are in cuda/cudnn/cudnn.cpp (builds with cuDNN) or cuda/cudnn_unavailable.cpp.
#include <atomic>

#include "cuda/cudnn.h"
#include "tensor/error.h"

namespace scalpel::cuda::cudnn {

namespace {
std::atomic<AlgoSearch> g_search{AlgoSearch::Heuristic};
std::atomic<size_t> g_workspace_limit{size_t{256} << 20};
}  // namespace

void require(Device device) {
  SCALPEL_CHECK(device.type != DeviceType::CUDAEmu,
                "cuDNN cannot be emulated, so --conv-engine cudnn needs --device cuda on a machine "
                "with a GPU; on {} use --conv-engine handwritten (the default)", device.str());
  SCALPEL_CHECK(device.type == DeviceType::CUDA,
                "cuDNN runs on CUDA devices only, not on {}; use --device cuda, or drop "
                "--conv-engine cudnn", device.str());
  SCALPEL_CHECK(compiled(), "this scalpel was built without cuDNN (CMake found no cudnn.h and "
                "libcudnn); install cuDNN 9 and rebuild, or use --conv-engine handwritten");
  initialize(device);
}

void set_algo_search(AlgoSearch search) { g_search = search; }
AlgoSearch algo_search() { return g_search; }
void set_workspace_limit(size_t bytes) { g_workspace_limit = bytes; }
size_t workspace_limit() { return g_workspace_limit; }

}  // namespace scalpel::cuda::cudnn
