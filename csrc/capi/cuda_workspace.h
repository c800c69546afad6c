// The C ABI's CUDA workspaces: one per thread and stream, created on first use. The range of the last
// ifrt_preprocess_cuda* call stays in it on the device, where ifrt_denormalize_cuda can read it.
#pragma once

#if IFRT_WITH_CUDA
#include "cuda/kernels.h"

namespace ifrt::capi {

cuda::Workspace& workspace(void* stream);

// The workspace whose range IFRT_RANGE_OF_LAST_PREPROCESS reads on `stream`. Refuses (InvalidArgument)
// when no ifrt_preprocess_cuda call has computed a range there, and when the last one met a non-finite
// pixel, as ifrt_preprocess refuses that frame; finding out waits for that call's range pass, not for
// the stream (cuda::Workspace::last_range). Under a graph capture the denormalize kernel checks instead.
cuda::Workspace& last_preprocess(void* stream);

}  // namespace ifrt::capi
#endif
