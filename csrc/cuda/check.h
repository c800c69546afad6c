// CUDA error checking for the kernels: a failed runtime call becomes ifrt::Error(Cuda) with the call
// and the runtime's message.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/common.h"
#include "cuda/launch.h"

#define IFRT_CUDA_CHECK(expr)                                                                           \
  do {                                                                                                  \
    const cudaError_t _ifrt_status = (expr);                                                            \
    if (_ifrt_status != cudaSuccess) {                                                                  \
      ::ifrt::fail(::ifrt::ErrorCode::Cuda, std::string(#expr) + ": " + cudaGetErrorString(_ifrt_status)); \
    }                                                                                                   \
  } while (0)

// After a kernel launch: reports launch-configuration errors without synchronizing.
#define IFRT_CUDA_CHECK_LAUNCH() IFRT_CUDA_CHECK(cudaGetLastError())

namespace ifrt::cuda {

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace ifrt::cuda
