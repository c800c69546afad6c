// Shared definitions for the CPU and CUDA paths.
//
// IFRT_HD marks per-pixel functions that both the CPU loops and the CUDA kernels call, so that the
// CPU tests pin the GPU semantics (one source of truth per computation).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define IFRT_HD __host__ __device__ __forceinline__
#else
#define IFRT_HD inline
#endif

namespace ifrt {

// Correctly rounded float arithmetic that the compiler may not fuse into an FMA. nvcc contracts
// a*b+c by default while the host build does not, so shared math goes through these to give
// bit-identical results on both paths.
IFRT_HD float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
IFRT_HD float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
IFRT_HD float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
IFRT_HD double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
IFRT_HD double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
IFRT_HD double dsub(double a, double b) { return dadd(a, -b); }
// Linear interpolation a + t*(b - a), unfused.
IFRT_HD float flerp(float a, float b, float t) { return fadd(a, fmul(t, fsub(b, a))); }

}  // namespace ifrt

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
