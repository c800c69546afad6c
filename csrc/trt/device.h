// The running GPU and TensorRT library, as the engine sidecar records them.
#pragma once

#include "core/engine_sidecar.h"

namespace ifrt::trt {

// Name, compute capability and UUID of CUDA device `device` (from ifrt::cuda_devices()); throws
// ifrt::Error(Cuda) saying why when the device cannot be seen.
GpuIdentity gpu_identity(int device);

}  // namespace ifrt::trt
