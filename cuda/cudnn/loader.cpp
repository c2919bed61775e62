// Run-time loading of cuDNN (see loader.h). The forwarders below have the prototypes of
// cudnn_ops.h / cudnn_cnn.h / cudnn_graph.h (cuDNN 9) for exactly the functions
// cuda/cudnn/cudnn.cpp calls; a call that cannot reach the library returns
// CUDNN_STATUS_NOT_INITIALIZED, which SCALPEL_CUDNN_CHECK turns into an error, though
// initialize() reports a missing library before any of them runs.
#include "cuda/cudnn/loader.h"

#include <cudnn.h>
#include <dlfcn.h>

#include <string>

namespace scalpel::cuda::cudnn {

namespace {

struct Library {
  void* handle = nullptr;
  std::string error;
};

const Library& library() {
  static const Library lib = [] {
    Library l;
    const std::string by_soname = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
    l.handle = open_first({by_soname, SCALPEL_CUDNN_BUILD_LIBRARY}, l.error);
    return l;
  }();
  return lib;
}

}  // namespace

const std::string& load_error() { return library().error; }

void* symbol(const char* name) {
  void* handle = library().handle;
  return handle ? dlsym(handle, name) : nullptr;
}

}  // namespace scalpel::cuda::cudnn

// The legacy convolution API is marked deprecated in cuDNN 9; naming it here is the point.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// Defines `name` with the header's parameter list `params`, forwarding `args` to the library.
#define SCALPEL_CUDNN_FORWARD(name, params, args)                                                 \
  extern "C" cudnnStatus_t CUDNNWINAPI name params {                                              \
    static const auto real =                                                                      \
        reinterpret_cast<decltype(&name)>(::scalpel::cuda::cudnn::symbol(#name));                \
    return real ? real args : CUDNN_STATUS_NOT_INITIALIZED;                                       \
  }

extern "C" size_t CUDNNWINAPI cudnnGetVersion(void) {
  using Fn = decltype(&cudnnGetVersion);
  static const auto real = reinterpret_cast<Fn>(::scalpel::cuda::cudnn::symbol("cudnnGetVersion"));
  return real ? real() : 0;
}

extern "C" const char* CUDNNWINAPI cudnnGetErrorString(cudnnStatus_t status) {
  using Fn = decltype(&cudnnGetErrorString);
  static const auto real =
      reinterpret_cast<Fn>(::scalpel::cuda::cudnn::symbol("cudnnGetErrorString"));
  return real ? real(status) : "cuDNN library not loaded";
}

SCALPEL_CUDNN_FORWARD(cudnnAddTensor,
                      (cudnnHandle_t handle, const void* alpha,
                       const cudnnTensorDescriptor_t aDesc, const void* A, const void* beta,
                       const cudnnTensorDescriptor_t cDesc, void* C),
                      (handle, alpha, aDesc, A, beta, cDesc, C))
SCALPEL_CUDNN_FORWARD(cudnnConvolutionBackwardBias,
                      (cudnnHandle_t handle, const void* alpha,
                       const cudnnTensorDescriptor_t dyDesc, const void* dy, const void* beta,
                       const cudnnTensorDescriptor_t dbDesc, void* db),
                      (handle, alpha, dyDesc, dy, beta, dbDesc, db))
SCALPEL_CUDNN_FORWARD(cudnnConvolutionBackwardData,
                      (cudnnHandle_t handle, const void* alpha,
                       const cudnnFilterDescriptor_t wDesc, const void* w,
                       const cudnnTensorDescriptor_t dyDesc, const void* dy,
                       const cudnnConvolutionDescriptor_t convDesc,
                       cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                       size_t workSpaceSizeInBytes, const void* beta,
                       const cudnnTensorDescriptor_t dxDesc, void* dx),
                      (handle, alpha, wDesc, w, dyDesc, dy, convDesc, algo, workSpace,
                       workSpaceSizeInBytes, beta, dxDesc, dx))
SCALPEL_CUDNN_FORWARD(cudnnConvolutionBackwardFilter,
                      (cudnnHandle_t handle, const void* alpha,
                       const cudnnTensorDescriptor_t xDesc, const void* x,
                       const cudnnTensorDescriptor_t dyDesc, const void* dy,
                       const cudnnConvolutionDescriptor_t convDesc,
                       cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                       size_t workSpaceSizeInBytes, const void* beta,
                       const cudnnFilterDescriptor_t dwDesc, void* dw),
                      (handle, alpha, xDesc, x, dyDesc, dy, convDesc, algo, workSpace,
                       workSpaceSizeInBytes, beta, dwDesc, dw))
SCALPEL_CUDNN_FORWARD(cudnnConvolutionForward,
                      (cudnnHandle_t handle, const void* alpha,
                       const cudnnTensorDescriptor_t xDesc, const void* x,
                       const cudnnFilterDescriptor_t wDesc, const void* w,
                       const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                       void* workSpace, size_t workSpaceSizeInBytes, const void* beta,
                       const cudnnTensorDescriptor_t yDesc, void* y),
                      (handle, alpha, xDesc, x, wDesc, w, convDesc, algo, workSpace,
                       workSpaceSizeInBytes, beta, yDesc, y))
SCALPEL_CUDNN_FORWARD(cudnnCreate,
                      (cudnnHandle_t* handle),
                      (handle))
SCALPEL_CUDNN_FORWARD(cudnnCreateConvolutionDescriptor,
                      (cudnnConvolutionDescriptor_t* convDesc),
                      (convDesc))
SCALPEL_CUDNN_FORWARD(cudnnCreateFilterDescriptor,
                      (cudnnFilterDescriptor_t* filterDesc),
                      (filterDesc))
SCALPEL_CUDNN_FORWARD(cudnnCreateTensorDescriptor,
                      (cudnnTensorDescriptor_t* tensorDesc),
                      (tensorDesc))
SCALPEL_CUDNN_FORWARD(cudnnDestroyConvolutionDescriptor,
                      (cudnnConvolutionDescriptor_t convDesc),
                      (convDesc))
SCALPEL_CUDNN_FORWARD(cudnnDestroyFilterDescriptor,
                      (cudnnFilterDescriptor_t filterDesc),
                      (filterDesc))
SCALPEL_CUDNN_FORWARD(cudnnDestroyTensorDescriptor,
                      (cudnnTensorDescriptor_t tensorDesc),
                      (tensorDesc))
SCALPEL_CUDNN_FORWARD(cudnnFindConvolutionBackwardDataAlgorithmEx,
                      (cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void* w,
                       const cudnnTensorDescriptor_t dyDesc, const void* dy,
                       const cudnnConvolutionDescriptor_t convDesc,
                       const cudnnTensorDescriptor_t dxDesc, void* dx, const int requestedAlgoCount,
                       int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults,
                       void* workSpace, size_t workSpaceSizeInBytes),
                      (handle, wDesc, w, dyDesc, dy, convDesc, dxDesc, dx, requestedAlgoCount,
                       returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes))
SCALPEL_CUDNN_FORWARD(cudnnFindConvolutionBackwardFilterAlgorithmEx,
                      (cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x,
                       const cudnnTensorDescriptor_t dyDesc, const void* y,
                       const cudnnConvolutionDescriptor_t convDesc,
                       const cudnnFilterDescriptor_t dwDesc, void* dw, const int requestedAlgoCount,
                       int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults,
                       void* workSpace, size_t workSpaceSizeInBytes),
                      (handle, xDesc, x, dyDesc, y, convDesc, dwDesc, dw, requestedAlgoCount,
                       returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes))
SCALPEL_CUDNN_FORWARD(cudnnFindConvolutionForwardAlgorithmEx,
                      (cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x,
                       const cudnnFilterDescriptor_t wDesc, const void* w,
                       const cudnnConvolutionDescriptor_t convDesc,
                       const cudnnTensorDescriptor_t yDesc, void* y, const int requestedAlgoCount,
                       int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults,
                       void* workSpace, size_t workSpaceSizeInBytes),
                      (handle, xDesc, x, wDesc, w, convDesc, yDesc, y, requestedAlgoCount,
                       returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes))
SCALPEL_CUDNN_FORWARD(cudnnGetConvolutionBackwardDataAlgorithm_v7,
                      (cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
                       const cudnnTensorDescriptor_t diffDesc,
                       const cudnnConvolutionDescriptor_t convDesc,
                       const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount,
                       int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults),
                      (handle, filterDesc, diffDesc, convDesc, gradDesc, requestedAlgoCount,
                       returnedAlgoCount, perfResults))
SCALPEL_CUDNN_FORWARD(cudnnGetConvolutionBackwardFilterAlgorithm_v7,
                      (cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                       const cudnnTensorDescriptor_t diffDesc,
                       const cudnnConvolutionDescriptor_t convDesc,
                       const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount,
                       int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults),
                      (handle, srcDesc, diffDesc, convDesc, gradDesc, requestedAlgoCount,
                       returnedAlgoCount, perfResults))
SCALPEL_CUDNN_FORWARD(cudnnGetConvolutionForwardAlgorithm_v7,
                      (cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                       const cudnnFilterDescriptor_t filterDesc,
                       const cudnnConvolutionDescriptor_t convDesc,
                       const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount,
                       int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults),
                      (handle, srcDesc, filterDesc, convDesc, destDesc, requestedAlgoCount,
                       returnedAlgoCount, perfResults))
SCALPEL_CUDNN_FORWARD(cudnnSetConvolution2dDescriptor,
                      (cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u, int v,
                       int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                       cudnnDataType_t computeType),
                      (convDesc, pad_h, pad_w, u, v, dilation_h, dilation_w, mode, computeType))
SCALPEL_CUDNN_FORWARD(cudnnSetConvolutionGroupCount,
                      (cudnnConvolutionDescriptor_t convDesc, int groupCount),
                      (convDesc, groupCount))
SCALPEL_CUDNN_FORWARD(cudnnSetConvolutionMathType,
                      (cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType),
                      (convDesc, mathType))
SCALPEL_CUDNN_FORWARD(cudnnSetFilter4dDescriptor,
                      (cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                       cudnnTensorFormat_t format, int k, int c, int h, int w),
                      (filterDesc, dataType, format, k, c, h, w))
SCALPEL_CUDNN_FORWARD(cudnnSetStream,
                      (cudnnHandle_t handle, cudaStream_t streamId),
                      (handle, streamId))
SCALPEL_CUDNN_FORWARD(cudnnSetTensor4dDescriptor,
                      (cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                       cudnnDataType_t dataType, int n, int c, int h, int w),
                      (tensorDesc, format, dataType, n, c, h, w))
