// What the host can know of a CUDA stream: whether it is being captured into a graph, and when the
// work enqueued on it so far has run. Plain C++ (the stream is a void* cudaStream_t), so that the CPU
// tests check the refusals (csrc/tests/test_cuda_refusals.cpp).
#pragma once

#include <string>

#include "core/common.h"

namespace ifrt::cuda {

// cudaStreamIsCapturing: true while `stream` is being captured into a CUDA graph (or its capture has
// been invalidated), and for the legacy default stream while another stream is captured in a mode
// that forbids using it (cudaErrorStreamCaptureImplicit: work there would break that capture too).
// Throws ifrt::Error(Cuda) when CUDA cannot tell (no device).
bool stream_capturing(void* stream);

// A workspace, staging or scratch buffer is allocated by the first call that needs it on its stream
// (or grown for a larger frame). Not while the stream is being captured: CUDA refuses cudaMalloc and
// cudaMallocHost during a capture in its global and thread-local modes and invalidates the capture,
// and cudaMallocAsync would hand back memory that belongs to the graph, not to the buffer kept for
// the next call. `what` names the buffer and who keeps it, e.g. "the preprocess workspace (one per
// thread, device and stream)".
inline void require_uncaptured(bool capturing, const std::string& what) {
  if (!capturing) return;
  fail(ErrorCode::InvalidArgument,
       what + " is allocated on its first use, and this call would allocate it while the stream is being captured "
              "into a CUDA graph, which breaks the capture; make the same call once before the capture (a warm-up "
              "with the largest frame, on the same thread, device and stream), then capture");
}

// An event recorded on a stream: finished() once the work enqueued there before it has run. On a
// stream being captured nothing runs now (the work is recorded into the graph), so the fence is
// finished at once; where CUDA cannot record an event (a failed context), the constructor waits for
// the stream instead. Never throws: a CUDA error counts as finished, since a failed context runs
// nothing more.
class Fence {
 public:
  explicit Fence(void* stream) noexcept;
  ~Fence();
  Fence(Fence&& other) noexcept;
  Fence& operator=(Fence&&) = delete;
  Fence(const Fence&) = delete;
  Fence& operator=(const Fence&) = delete;
  bool finished() const noexcept;
  void wait() const noexcept;

 private:
  void* event_ = nullptr;  // cudaEvent_t; null: finished
};

}  // namespace ifrt::cuda
