// cuda/cudnn.h in a build without cuDNN: every entry point fails through require(), which
// says the build has no cuDNN (or that the device could not run it anyway).
#include "cuda/cudnn.h"

#if !SCALPEL_HAVE_CUDNN

namespace scalpel::cuda::cudnn {

bool compiled() { return false; }

void initialize(Device device) { require(device); }

void conv2d_forward(const Stream& s, const Conv2dGeometry&, const float*, const float*, const float*, float*) {
  require(s.device);
}
void conv2d_backward_data(const Stream& s, const Conv2dGeometry&, const float*, const float*, float*) {
  require(s.device);
}
void conv2d_backward_filter(const Stream& s, const Conv2dGeometry&, const float*, const float*, float*, float*) {
  require(s.device);
}

}  // namespace scalpel::cuda::cudnn
#endif
