// Device-side timing of the CUDA kernels for `ifrt bench native` on a GPU machine: each kernel is
// timed with CUDA events on device buffers and compared with a device-to-device copy of the same
// bytes measured in the same run.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda/bench.h"
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/scoped.h"

namespace ifrt::cuda {

namespace {

class Events {
 public:
  Events() {
    IFRT_CUDA_CHECK(cudaEventCreate(&start_));
    IFRT_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Events() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  template <typename Fn>
  double median_ms(Fn fn, int repeat, cudaStream_t st) {
    fn();  // warm-up
    std::vector<float> times;
    for (int i = 0; i < repeat; ++i) {
      IFRT_CUDA_CHECK(cudaEventRecord(start_, st));
      fn();
      IFRT_CUDA_CHECK(cudaEventRecord(stop_, st));
      IFRT_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      IFRT_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace

KernelTimes bench_kernels(const uint16_t* frame, int64_t height, int64_t width, int repeat) {
  if (!frame || height < 1 || width < 1 || repeat < 1) fail(ErrorCode::InvalidArgument, "bench_kernels: bad arguments");
  const Stream stream;
  const cudaStream_t st = stream.get();
  const size_t in_bytes = sizeof(uint16_t) * static_cast<size_t>(height * width);
  ImageView im;
  im.dtype = DType::U16;
  im.height = height;
  im.width = width;
  PreprocessOptions o;
  const PreprocessPlan plan = plan_preprocess([&] { ImageView v = im; v.data = frame; return v; }(), o);
  const size_t out_bytes = preprocess_bytes(plan, DType::F32);
  DeviceBuffer in(in_bytes), out(out_bytes), copy(out_bytes), sums_buffer(sizeof(FocusSums)),
      metrics_buffer(2 * sizeof(FocusMetrics));
  void *d_in = in.get(), *d_out = out.get(), *d_copy = copy.get();
  IFRT_CUDA_CHECK(cudaMemcpy(d_in, frame, in_bytes, cudaMemcpyHostToDevice));
  im.data = d_in;
  Workspace ws;
  Events ev;
  KernelTimes t;
  t.memcpy_ms = ev.median_ms([&] { IFRT_CUDA_CHECK(cudaMemcpyAsync(d_copy, d_out, out_bytes, cudaMemcpyDeviceToDevice, st)); },
                             repeat, st);
  t.memcpy_bytes = 2.0 * static_cast<double>(out_bytes);
  t.preprocess_ms = ev.median_ms([&] { preprocess(im, o, d_out, out_bytes, ws, st); }, repeat, st);
  t.preprocess_bytes = static_cast<double>(in_bytes + out_bytes);
  PreprocessOptions fixed = o;
  fixed.norm.mode = NormMode::Fixed;
  t.normalize_only_ms = ev.median_ms([&] { preprocess(im, fixed, d_out, out_bytes, ws, st); }, repeat, st);
  auto* sums = sums_buffer.get<FocusSums>();
  auto* metrics = metrics_buffer.get<FocusMetrics>();
  t.focus_ms = ev.median_ms([&] { focus(im, 0, 0, 0, sums, metrics, metrics + 1, st); }, repeat, st);
  t.focus_bytes = static_cast<double>(in_bytes);
  stream.sync();
  return t;
}

}  // namespace ifrt::cuda
