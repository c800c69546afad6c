// Shared definitions for the CPU and CUDA paths.
//
// IFRT_HD marks per-pixel functions that both the CPU loops and the CUDA kernels call, so that the
// CPU tests pin the GPU semantics (one source of truth per computation).
#pragma once

#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define IFRT_HD __host__ __device__ __forceinline__
#else
#define IFRT_HD inline
#endif

namespace ifrt {

// Error categories; the C ABI maps each to an ifrt_status code.
enum class ErrorCode { InvalidArgument = 1, Unsupported = 2, Io = 3, Cuda = 4, TensorRT = 5, OutOfMemory = 6, Internal = 7 };

// Thrown inside the C++ core; caught at the C ABI and the Python boundary.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace ifrt
