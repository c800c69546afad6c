// CUDA device enumeration for `ifrt doctor` and the engine cache key (GPU UUID).
#include <cuda_runtime.h>

#include <cstdio>

#include "core/build_info.h"
#include "cuda/check.h"
#include "cuda/kernels.h"

namespace ifrt {

namespace {
std::string format_uuid(const cudaUUID_t& uuid) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  char text[64];
  std::snprintf(text, sizeof(text),
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return text;
}
}  // namespace

std::vector<CudaDevice> cuda_devices(std::string* error) {
  std::vector<CudaDevice> devices;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (error) *error = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    CudaDevice d;
    d.index = i;
    d.name = prop.name;
    d.major = prop.major;
    d.minor = prop.minor;
    d.total_memory = prop.totalGlobalMem;
    d.uuid = format_uuid(prop.uuid);
    devices.push_back(d);
  }
  return devices;
}

}  // namespace ifrt

namespace ifrt::cuda {

int current_device() {
  int device = 0;
  IFRT_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

}  // namespace ifrt::cuda
