// The C ABI's CUDA workspaces: one per thread and stream, created on first use. The range of the last
// ifrt_preprocess_cuda* call stays in it on the device, where ifrt_denormalize_cuda can read it.
#pragma once

#if IFRT_WITH_CUDA
#include "cuda/kernels.h"

namespace ifrt::capi {

cuda::Workspace& workspace(void* stream);

}  // namespace ifrt::capi
#endif
