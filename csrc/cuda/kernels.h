// CUDA path of the preprocess, postprocess and focus kernels (built when IFRT_WITH_CUDA).
//
// Contract for every function in ifrt::cuda:
//  - pointers to pixels, tiles, logits and outputs are device pointers (or mapped pinned memory);
//  - the work is enqueued on `stream` (a cudaStream_t; nullptr = the legacy default stream) and the
//    call returns without synchronizing; results are valid once the stream reaches that point;
//  - validation of shapes and options happens on the host before anything is enqueued and throws
//    ifrt::Error (InvalidArgument); launch failures throw ifrt::Error(Cuda).
// The per-pixel math is the same IFRT_HD functions as the CPU path (core/*.h), so results match the
// CPU bit for bit except where stated (softmax: expf to 2 ulp; focus: summation order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "core/focus.h"
#include "core/image.h"
#include "core/normalize.h"
#include "core/postprocess.h"
#include "core/preprocess.h"

namespace ifrt::cuda {

// The calling thread's current CUDA device (cudaGetDevice); throws ifrt::Error(Cuda) without one.
int current_device();

// One T (a Workspace, a Staging) per calling thread, device and stream, created on first use and kept
// for the thread's life: what the C ABI and the Python module hand the kernels, since neither is
// thread-safe. The device is part of the key because a T's device memory lives on one device while a
// stream handle does not name one: the default stream (nullptr) is every device's.
template <typename T>
T& per_thread_and_stream(void* stream) {
  thread_local std::map<std::pair<int, void*>, std::unique_ptr<T>> items;
  auto& item = items[{current_device(), stream}];
  if (!item) item = std::make_unique<T>();
  return *item;
}

// What the host knows of the range the last preprocess on a workspace computed (Workspace::last_range).
//  Missing:   none has run, or the last one failed before its range was enqueued;
//  Finite:    its range pass has run and met only finite values;
//  NonFinite: its range pass met a NaN or infinite value (after dark/flat correction): the range is
//             not a normalization of the frame, and the CPU path refuses such a frame;
//  InGraph:   it was recorded into a CUDA graph, or the call asking is being captured: the work runs at
//             replays the host does not see, so a kernel reading the range checks the device flag.
enum class RangeState { Missing, Finite, NonFinite, InGraph };

// Refuses (InvalidArgument) a range the C ABI's IFRT_RANGE_OF_LAST_PREPROCESS must not use: Missing and
// NonFinite. Plain C++, checked by the CPU tests.
inline void require_usable_range(RangeState state) {
  if (state == RangeState::Missing) {
    fail(ErrorCode::InvalidArgument, "range: no ifrt_preprocess_cuda call on this thread, device and stream has "
                                     "computed a range (none has run, or the last one failed)");
  }
  if (state == RangeState::NonFinite) {
    fail(ErrorCode::InvalidArgument, "range: the frame of the last ifrt_preprocess_cuda call on this thread, device and "
                                     "stream has non-finite pixels (NaN or inf, after dark/flat correction), so it has "
                                     "no normalization range; normalization needs finite values, and ifrt_preprocess "
                                     "refuses such a frame");
  }
}

// Device scratch for one stream's preprocessing: histograms for the percentile selection, the
// normalization range the kernels read and the flag of a non-finite value, plus a pinned copy of that
// flag and an event after the range pass, so that the host can learn the flag without waiting for the
// stream. Allocated on first use (the device buffers stream-ordered with cudaMallocAsync, the pinned
// word with cudaMallocHost), refused while the stream is being captured (cuda/stream.h); freed on
// destruction. Not thread-safe: keep one per stream.
class Workspace {
 public:
  Workspace() = default;
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // Range of the last preprocess on this workspace, in device memory (valid after the stream).
  const NormRange* device_range() const { return range_; }
  // Device flag set to 1 when the last percentile/min-max pass met a non-finite value.
  const int* device_error() const { return error_; }

  // The state of the last preprocess's range for a call about to read it on `stream`. Finite or
  // NonFinite wait for the event recorded after that preprocess's range pass, not for the stream:
  // work enqueued since (an engine) keeps running, and the wait is over once the range is known.
  RangeState last_range(void* stream);

  // Internal: makes sure the buffers exist (stream-ordered); refused under capture when one is missing.
  void reserve(void* stream);
  // Internal: a preprocess starts (its range is not there yet) / has enqueued its range pass.
  void range_started() { state_ = RangeState::Missing; }
  void range_enqueued(void* stream);
  uint32_t* histogram() { return hist_; }    // 5 x 65536 counters
  uint32_t* selection() { return select_; }  // 16 words of selection state
  NormRange* range() { return range_; }
  int* error() { return error_; }

 private:
  uint32_t* hist_ = nullptr;
  uint32_t* select_ = nullptr;
  NormRange* range_ = nullptr;
  int* error_ = nullptr;
  int* host_error_ = nullptr;      // pinned copy of *error_, valid once range_done_ has passed
  void* range_done_ = nullptr;     // cudaEvent_t recorded after the range pass and that copy
  RangeState state_ = RangeState::Missing;  // Finite stands for "known once range_done_ has passed"
};

// Pinned staging for frames that live in host memory (camera buffers): upload() copies the frame into
// page-locked memory (a CPU memcpy), starts an asynchronous copy to the device on `stream` and
// returns the device view (same strides). The only wait is explicit and local: reusing the buffer
// waits for this buffer's previous upload to finish. The first upload and a larger frame allocate
// (cudaMallocHost, cudaMalloc), which is refused while the stream is being captured (cuda/stream.h).
// One stream per Staging; not thread-safe.
class Staging {
 public:
  Staging() = default;
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  ImageView upload(const ImageView& host_image, void* stream);

 private:
  void* pinned_ = nullptr;
  void* device_ = nullptr;
  size_t capacity_ = 0;
  void* uploaded_ = nullptr;  // cudaEvent_t recorded after the last upload
};

// Preprocess as core/preprocess.h with image.data, options.dark and options.flat in device memory:
// range (percentile by exact radix selection on the device, min-max by reduction, or fixed) and
// output, all enqueued; the range stays on the device in ws.device_range().
void preprocess(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes,
                Workspace& ws, void* stream);

// Waits for `stream` and copies the workspace's range to the host (the one synchronizing call here).
NormRange read_range(const Workspace& ws, void* stream);

// Preprocessing recorded once into a CUDA graph for fixed shapes and buffers (the live-view loop:
// same camera buffer, same output). launch() replays it: new pixels in the same device buffer give
// the new tensor, with one launch instead of the handful of kernels and memsets. The kernels above
// are capture-safe once the workspace exists (the constructor makes sure of that); the same
// capture can be extended by the caller around an engine's enqueue. `stream` must not be the
// legacy default stream.
class PreprocessGraph {
 public:
  PreprocessGraph(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes,
                  Workspace& ws, void* stream);
  ~PreprocessGraph();
  PreprocessGraph(const PreprocessGraph&) = delete;
  PreprocessGraph& operator=(const PreprocessGraph&) = delete;
  void launch(void* stream);

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

void softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs, void* stream);

void blend_tiles(const float* tiles, const TileGrid& grid, float* out, int64_t height, int64_t width, void* stream);

// Inverse normalization with the range on the device (`device_range`, e.g. ws.device_range()) or,
// when it is null, the host values lo/hi. With `device_error` (ws.device_error()), the kernel leaves
// `out` unwritten when that flag is set: the range came from a frame with non-finite pixels.
void denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width,
                 const NormRange* device_range, double lo, double hi, void* out, DType out_dtype, void* stream,
                 const int* device_error = nullptr);

void upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, float* out, int64_t height,
                          int64_t width, void* stream);

// Device scratch for focus() when the caller keeps none: the per-tile sums and, for outputs the caller
// does not want, metrics buffers. Grown on demand, stream-ordered (cudaMallocAsync on the stream of
// the call, so growing adds no synchronization; refused while the stream is being captured, see
// cuda/stream.h), freed on destruction. One per stream; not thread-safe. Reuse makes a steady frame
// size allocation-free.
class FocusScratch {
 public:
  FocusScratch() = default;
  ~FocusScratch();
  FocusScratch(const FocusScratch&) = delete;
  FocusScratch& operator=(const FocusScratch&) = delete;
  FocusSums* sums(int64_t tiles, void* stream);
  FocusMetrics* tile_metrics(int64_t tiles, void* stream);
  FocusMetrics* global_metrics(void* stream);

 private:
  void* sums_ = nullptr;
  void* tiles_ = nullptr;
  void* global_ = nullptr;
  int64_t sums_capacity_ = 0, tiles_capacity_ = 0;
};

// Focus metrics: tile_metrics receives tiles_y*tiles_x FocusMetrics and global_metrics one, both
// device memory; tile_sums is device scratch of tiles_y*tiles_x FocusSums (overwritten).
void focus(const ImageView& image, int64_t channel, int64_t tile_height, int64_t tile_width, FocusSums* tile_sums,
           FocusMetrics* tile_metrics, FocusMetrics* global_metrics, void* stream);

// ---- host-memory conveniences (copy in, run, copy out, synchronize) for tests and tools ----------
namespace host {

// image.data, dark/flat and out are host memory. Returns the range computed on the device.
NormRange preprocess(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes);
// The same through a PreprocessGraph replayed `replays` times (the frame is re-uploaded before each
// replay); the output is the last replay's.
NormRange preprocess_graph(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes,
                           int replays);
void softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs);
void blend_tiles(const float* tiles, const TileGrid& grid, float* out, int64_t height, int64_t width);
void denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width, double lo,
                 double hi, void* out, DType out_dtype);
void upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, float* out, int64_t height,
                          int64_t width);
FocusResult focus(const ImageView& image, int64_t channel, int64_t tile_height, int64_t tile_width);

}  // namespace host

}  // namespace ifrt::cuda
