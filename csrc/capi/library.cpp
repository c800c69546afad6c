// Library-wide C ABI entry points: version, build features, last error.
#include "capi/guard.h"
#include "core/build_info.h"

namespace ifrt::capi {

namespace {
thread_local std::string t_last_error;
}  // namespace

void set_last_error(const std::string& message) { t_last_error = message; }
void clear_last_error() { t_last_error.clear(); }
const char* last_error() { return t_last_error.c_str(); }

}  // namespace ifrt::capi

extern "C" {

IFRT_API const char* ifrt_version(void) { return IFRT_VERSION_STRING; }

IFRT_API int ifrt_version_number(void) { return IFRT_VERSION_NUMBER; }

IFRT_API const char* ifrt_last_error(void) { return ifrt::capi::last_error(); }

IFRT_API int ifrt_has_cuda(void) { return IFRT_WITH_CUDA ? 1 : 0; }

IFRT_API int ifrt_has_tensorrt(void) { return IFRT_WITH_TENSORRT ? 1 : 0; }

IFRT_API int ifrt_cuda_device_count(void) {
  try {
    return static_cast<int>(ifrt::cuda_devices().size());
  } catch (...) {
    return 0;
  }
}

}  // extern "C"
