#include "core/build_info.h"

namespace ifrt {

BuildInfo build_info() {
  BuildInfo info;
  info.version = IFRT_VERSION_STRING;
  info.with_cuda = IFRT_WITH_CUDA;
  info.with_tensorrt = IFRT_WITH_TENSORRT;
#if IFRT_WITH_CUDA
  info.cuda_version = IFRT_CUDA_VERSION_STRING;
  info.cuda_archs = IFRT_CUDA_ARCHS;
#endif
#if IFRT_WITH_TENSORRT
  info.tensorrt_version = IFRT_TENSORRT_VERSION_STRING;
#endif
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "gcc " __VERSION__;
#else
  info.compiler = "unknown";
#endif
  return info;
}

#if !IFRT_WITH_CUDA
std::vector<CudaDevice> cuda_devices(std::string* error) {
  if (error) *error = "ifrt was built without CUDA kernels";
  return {};
}
#endif

}  // namespace ifrt
