// CUDA error checking for the kernels: a failed runtime call becomes ifrt::Error(Cuda) with the call
// and the runtime's message.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/common.h"

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

inline unsigned int blocks_for(int64_t n, int threads, int64_t cap = 65535) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned int>(b < cap ? b : cap);
}

}  // namespace ifrt::cuda
