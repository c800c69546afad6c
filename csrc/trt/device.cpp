#include "trt/device.h"

#include <NvInfer.h>

#include "core/build_info.h"
#include "core/common.h"
#include "trt/engine.h"

namespace ifrt::trt {

GpuIdentity gpu_identity(int device) {
  std::string error;
  const auto devices = cuda_devices(&error);
  for (const auto& d : devices) {
    if (d.index == device) {
      return {d.name, std::to_string(d.major) + "." + std::to_string(d.minor), d.uuid};
    }
  }
  if (devices.empty()) fail(ErrorCode::Cuda, "no CUDA device for TensorRT: " + (error.empty() ? "none visible" : error));
  fail(ErrorCode::InvalidArgument, "CUDA device " + std::to_string(device) + " does not exist (" +
                                       std::to_string(devices.size()) + " visible)");
}

// Version of the library actually loaded, which may differ from the headers ifrt was compiled with.
std::string tensorrt_runtime_version() {
  return std::to_string(getInferLibMajorVersion()) + "." + std::to_string(getInferLibMinorVersion()) + "." +
         std::to_string(getInferLibPatchVersion());
}

}  // namespace ifrt::trt
