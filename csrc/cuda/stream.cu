// Stream capture state and fences (cuda/stream.h).
#include <cuda_runtime.h>

#include <utility>

#include "cuda/check.h"
#include "cuda/stream.h"

namespace ifrt::cuda {

bool stream_capturing(void* stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t e = cudaStreamIsCapturing(as_stream(stream), &status);
  if (e == cudaErrorStreamCaptureImplicit) {
    cudaGetLastError();  // an answer, not a failure: clear it so the next call starts clean
    return true;
  }
  IFRT_CUDA_CHECK(e);
  return status != cudaStreamCaptureStatusNone;
}

Fence::Fence(void* stream) noexcept {
  const cudaStream_t st = as_stream(stream);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t query = cudaStreamIsCapturing(st, &status);
  if (query == cudaErrorStreamCaptureImplicit || (query == cudaSuccess && status != cudaStreamCaptureStatusNone)) {
    cudaGetLastError();
    return;  // recorded into a graph: nothing of it runs now
  }
  cudaEvent_t e = nullptr;
  if (query == cudaSuccess && cudaEventCreateWithFlags(&e, cudaEventDisableTiming) == cudaSuccess) {
    if (cudaEventRecord(e, st) == cudaSuccess) {
      event_ = e;
      return;
    }
    cudaEventDestroy(e);
  }
  cudaStreamSynchronize(st);  // no event to wait for later: wait now (an error means nothing more runs)
  cudaGetLastError();
}

Fence::~Fence() {
  if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

Fence::Fence(Fence&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

bool Fence::finished() const noexcept {
  if (!event_) return true;
  const cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event_));
  if (e == cudaErrorNotReady) return false;
  if (e != cudaSuccess) cudaGetLastError();
  return true;
}

void Fence::wait() const noexcept {
  if (event_ && cudaEventSynchronize(static_cast<cudaEvent_t>(event_)) != cudaSuccess) cudaGetLastError();
}

}  // namespace ifrt::cuda
