// What this build of the native code contains and which CUDA devices it can see.
#pragma once

#include <string>
#include <vector>

namespace ifrt {

struct CudaDevice {
  int index = 0;
  std::string name;
  int major = 0;  // compute capability
  int minor = 0;
  size_t total_memory = 0;  // bytes
  std::string uuid;         // "GPU-xxxxxxxx-..." as nvidia-smi prints it
};

struct BuildInfo {
  std::string version;
  bool with_cuda = false;
  bool with_tensorrt = false;
  std::string cuda_version;      // toolkit the kernels were compiled with, "" without CUDA
  std::string cuda_archs;        // e.g. "75,80,86,87,89,90"
  std::string tensorrt_version;  // headers the executor was compiled with, "" without TensorRT
  std::string compiler;
};

BuildInfo build_info();

// Visible CUDA devices; empty without CUDA or without a driver. `error` receives the reason when
// the runtime could not be queried (for example "no CUDA-capable device is detected").
std::vector<CudaDevice> cuda_devices(std::string* error = nullptr);

}  // namespace ifrt
