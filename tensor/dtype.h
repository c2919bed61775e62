#pragma once
// Element types. float32 is the working type; float64 exists for gradient checks;
// int64 holds labels and indices; uint8 holds decoded images. bf16/fp16 are reserved.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/error.h"

namespace scalpel {

enum class DType : uint8_t { F32, F64, I64, U8, BF16, F16 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::U8: return 1;
    case DType::BF16: return 2;
    case DType::F16: return 2;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I64: return "int64";
    case DType::U8: return "uint8";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::F32 || t == DType::F64; }

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::U8; };
template <typename T> constexpr DType dtype_of = DTypeOf<T>::value;

// Calls fn(T{}) with T the C++ type of `t`, for the four computable dtypes.
template <typename Fn>
decltype(auto) dispatch_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(float{});
    case DType::F64: return fn(double{});
    case DType::I64: return fn(int64_t{});
    case DType::U8: return fn(uint8_t{});
    default: fail("dtype {} is not supported by this operation", dtype_name(t));
  }
}

// Like dispatch_dtype, for float32/float64 only (math ops).
template <typename Fn>
decltype(auto) dispatch_floating(DType t, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn(float{});
    case DType::F64: return fn(double{});
    default: fail("dtype {} is not supported here (float32 or float64 expected)", dtype_name(t));
  }
}

}  // namespace scalpel
