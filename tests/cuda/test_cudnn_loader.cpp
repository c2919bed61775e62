// cuDNN is opened at run time (cuda/cudnn/loader.h), so a build with cuDNN starts without it.
#include <gtest/gtest.h>

#include <string>

#ifdef SCALPEL_HAVE_CUDNN
#include "cuda/cudnn/loader.h"

namespace scalpel::cuda::cudnn {
namespace {

TEST(CudnnLoader, MissingLibrariesAreNamedWithTheReason) {
  std::string error;
  EXPECT_EQ(open_first({"libscalpel-no-such-cudnn.so.9", "/nonexistent/libcudnn.so.9"}, error), nullptr);
  EXPECT_NE(error.find("libscalpel-no-such-cudnn.so.9"), std::string::npos) << error;
  EXPECT_NE(error.find("/nonexistent/libcudnn.so.9"), std::string::npos) << error;
}

// The build found cuDNN on this machine, so the run-time loader must find the same major version.
TEST(CudnnLoader, FindsTheLibraryTheBuildFound) {
  ASSERT_EQ(load_error(), "");
  using GetVersion = size_t (*)();
  const auto get_version = reinterpret_cast<GetVersion>(symbol("cudnnGetVersion"));
  ASSERT_NE(get_version, nullptr);
  EXPECT_EQ(get_version() / 10000, 9u);
  EXPECT_EQ(symbol("scalpelNoSuchCudnnFunction"), nullptr);
}

}  // namespace
}  // namespace scalpel::cuda::cudnn
#else
TEST(CudnnLoader, NeedsABuildWithCudnn) { GTEST_SKIP() << "this build has no cuDNN paths (CMake found no cuDNN)"; }
#endif
