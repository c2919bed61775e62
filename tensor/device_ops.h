#pragma once
// How a device backend (the CUDA one, which links against this library and not the reverse)
// plugs into the raw tensor ops beyond elementwise arithmetic (ops.h's
// register_device_arithmetic): reductions, scalar ops, strided copies and concatenation of tensors on its
// device go to the functions registered here. Without one they throw naming the op and the
// device; nothing falls back to the CPU.
#include <vector>

#include "tensor/tensor.h"

namespace scalpel {

// ops::sum / ops::mean / ops::max (`op` is "sum", "mean" or "max"), same contract; and
// ops::argmax ("argmax", one axis in `axes`, int64 result).
using DeviceReductionFn = Tensor (*)(const char* op, const Tensor& a,
                                     const std::vector<int64_t>& axes, bool keepdim);
void register_device_reduction(DeviceType type, DeviceReductionFn fn);
DeviceReductionFn device_reduction(DeviceType type);  // null when none is registered

// ops::add_scalar / ops::mul_scalar (`op` is "add_scalar" or "mul_scalar").
using DeviceScalarFn = Tensor (*)(const char* op, const Tensor& a, double s);
void register_device_scalar(DeviceType type, DeviceScalarFn fn);
DeviceScalarFn device_scalar(DeviceType type);

// Tensor::copy_ (hence contiguous() and clone()) of a strided view `src` into the contiguous
// `dst` of the same shape and dtype, both on the backend's device.
using DeviceStridedCopyFn = void (*)(Tensor& dst, const Tensor& src);
void register_device_strided_copy(DeviceType type, DeviceStridedCopyFn fn);
DeviceStridedCopyFn device_strided_copy(DeviceType type);

// ops::concat of tensors on the backend's device (shapes and dtypes already checked).
using DeviceConcatFn = Tensor (*)(const std::vector<Tensor>& tensors, int64_t axis);
void register_device_concat(DeviceType type, DeviceConcatFn fn);
DeviceConcatFn device_concat(DeviceType type);

}  // namespace scalpel
