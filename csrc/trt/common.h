// Helpers shared by the executor's sources: owning pointers for TensorRT objects, CUDA error checks,
// Dims <-> shape conversion, dtype mapping. Included only by csrc/trt/*.cpp.
#pragma once

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/common.h"
#include "trt/engine.h"
#include "trt/logger.h"

namespace ifrt::trt {

// TensorRT 10+ objects are released with plain delete.
template <typename T>
using TrtPtr = std::unique_ptr<T>;

inline void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    fail(status == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Cuda,
         what + ": " + cudaGetErrorString(status));
  }
}

// Binds `tensor` of `context` to `address`. TensorRT needs 256-byte aligned tensor addresses
// (IExecutionContext::setTensorAddress), and when it refuses one the context keeps the previous
// call's address, so enqueueV3 would read or write that stale buffer: both are errors here.
inline void set_tensor_address(nvinfer1::IExecutionContext& context, const std::string& tensor, void* address,
                               const std::string& where) {
  if (reinterpret_cast<std::uintptr_t>(address) % 256 != 0) {
    fail(ErrorCode::InvalidArgument, where + ": tensor '" + tensor + "' is at a device address that is not 256-byte "
                                         "aligned, as TensorRT requires (pass the start of a cudaMalloc'd buffer, or copy)");
  }
  if (!context.setTensorAddress(tensor.c_str(), address)) {
    fail(ErrorCode::TensorRT, where + ": TensorRT refused the address of tensor '" + tensor + "'" + tensorrt_says());
  }
}

inline std::vector<int64_t> to_shape(const nvinfer1::Dims& dims) {
  return std::vector<int64_t>(dims.d, dims.d + (dims.nbDims > 0 ? dims.nbDims : 0));
}

inline nvinfer1::Dims to_dims(const std::vector<int64_t>& shape, const std::string& tensor) {
  nvinfer1::Dims dims{};
  if (shape.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS)) {
    fail(ErrorCode::InvalidArgument, tensor + ": rank " + std::to_string(shape.size()) + " exceeds TensorRT's " +
                                         std::to_string(nvinfer1::Dims::MAX_DIMS));
  }
  dims.nbDims = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) dims.d[i] = shape[i];
  return dims;
}

// Elements of a tensor of `shape`; a dynamic (negative) dimension counts as zero.
inline size_t element_count(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (const int64_t d : shape) n *= static_cast<size_t>(d < 0 ? 0 : d);
  return n;
}

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "x" : "") + std::to_string(shape[i]);
  return out.empty() ? "scalar" : out;
}

inline DType from_trt(nvinfer1::DataType type) {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: return DType::Float32;
    case nvinfer1::DataType::kHALF: return DType::Float16;
    case nvinfer1::DataType::kBF16: return DType::BFloat16;
    case nvinfer1::DataType::kINT8: return DType::Int8;
    case nvinfer1::DataType::kUINT8: return DType::UInt8;
    case nvinfer1::DataType::kINT32: return DType::Int32;
    case nvinfer1::DataType::kINT64: return DType::Int64;
    case nvinfer1::DataType::kBOOL: return DType::Bool;
    default: return DType::Other;
  }
}

}  // namespace ifrt::trt
