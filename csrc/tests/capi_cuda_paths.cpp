// The C ABI's CUDA entry points (ifrt_*_cuda) against their CPU counterparts, as vendor code calls them.
//  - Without CUDA in the build: each returns IFRT_ERR_UNSUPPORTED naming the CPU call to use.
//  - With CUDA but no device: bad arguments are still refused as IFRT_ERR_INVALID_ARGUMENT (checked on
//    the host before anything is enqueued), and valid ones fail with IFRT_ERR_CUDA and a message.
//  - With a device: outputs match the CPU calls (bit for bit where the per-element math is shared,
//    softmax within 2 ulp of expf, focus metrics to summation order), including denormalization with
//    the range the last ifrt_preprocess_cuda left on the device, which is refused, as ifrt_preprocess
//    refuses the frame, when that frame had a non-finite pixel; a call that would allocate its
//    workspace while the stream is being captured into a CUDA graph is refused and leaves the capture
//    intact, and after one call outside the capture (a warm-up) the same call is captured and replays.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "ifrt/ifrt.h"

#if IFRT_TEST_WITH_CUDART
#include <cuda_runtime.h>
#endif

namespace {

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.37f * static_cast<float>(i)) + 0.5f;
  return v;
}

void expect_status(ifrt_status got, ifrt_status want, const char* call) {
  if (got != want) {
    std::fprintf(stderr, "%s: status %d, expected %d (%s)\n", call, got, want, ifrt_last_error());
    ++g_ifrt_failures;
  } else if (want != IFRT_OK && std::strlen(ifrt_last_error()) == 0) {
    std::fprintf(stderr, "%s: failed without a message\n", call);
    ++g_ifrt_failures;
  }
}

ifrt_image float_plane(const float* data, int64_t height, int64_t width) {
  ifrt_image im{};
  im.data = data;
  im.dtype = IFRT_DTYPE_FLOAT32;
  im.height = height;
  im.width = width;
  im.channels = 1;
  return im;
}

// Host-side argument checks come first, whatever the build and the machine.
void bad_arguments_are_refused_before_any_cuda_call() {
  float dummy[16] = {};
  const ifrt_image y = float_plane(dummy, 2, 2);
  if (!ifrt_has_cuda()) return;  // the build refuses every call as unsupported instead (below)
  expect_status(ifrt_softmax_cuda(dummy, 2, 4, 0.0f, dummy, nullptr), IFRT_ERR_INVALID_ARGUMENT, "softmax T=0");
  expect_status(ifrt_softmax_cuda(dummy, int64_t(1) << 62, 4, 1.0f, dummy, nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "softmax past 2^63 bytes");
  expect_status(ifrt_blend_tiles_cuda(dummy, 8, 8, 16, 16, 0, dummy, 8, 8, nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "blend tile larger than frame");
  expect_status(ifrt_upsample_quality_map_cuda(nullptr, 2, 2, dummy, 8, 8, nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "upsample null map");
  expect_status(ifrt_denormalize_cuda(&y, static_cast<ifrt_range_source>(7), 0, 1, dummy, IFRT_DTYPE_UINT8, nullptr),
                IFRT_ERR_INVALID_ARGUMENT, "denormalize unknown range source");
  expect_status(ifrt_denormalize_cuda(&y, IFRT_RANGE_GIVEN, 0, 1, dummy, IFRT_DTYPE_FLOAT16, nullptr),
                IFRT_ERR_INVALID_ARGUMENT, "denormalize to float16");
  expect_status(ifrt_denormalize_cuda(&y, IFRT_RANGE_OF_LAST_PREPROCESS, 0, 1, dummy, IFRT_DTYPE_FLOAT16, nullptr),
                IFRT_ERR_INVALID_ARGUMENT, "denormalize with the device range to float16");
  ifrt_preprocess_options po;
  ifrt_preprocess_options_init(&po);
  po.channel = 3;
  expect_status(ifrt_preprocess_cuda(&y, &po, dummy + 8, 8 * sizeof(float), nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "preprocess channel out of range");
  expect_status(ifrt_preprocess_cuda_host(&y, &po, dummy + 8, 8 * sizeof(float), nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "preprocess (host frame) channel out of range");
  ifrt_focus* focus = nullptr;
  CHECK(ifrt_focus_create(nullptr, &focus) == IFRT_OK);
  expect_status(ifrt_focus_compute_cuda(focus, nullptr, nullptr, nullptr, 0, nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "focus null image");
  ifrt_focus_release(focus);
}

void without_cuda_every_call_says_so() {
  float dummy[16] = {};
  const ifrt_image y = float_plane(dummy, 2, 2);
  ifrt_focus* focus = nullptr;
  CHECK(ifrt_focus_create(nullptr, &focus) == IFRT_OK);
  expect_status(ifrt_softmax_cuda(dummy, 2, 4, 1.0f, dummy, nullptr), IFRT_ERR_UNSUPPORTED, "softmax");
  CHECK(std::strstr(ifrt_last_error(), "use ifrt_softmax (CPU)") != nullptr);
  expect_status(ifrt_blend_tiles_cuda(dummy, 4, 4, 4, 4, 0, dummy, 4, 4, nullptr), IFRT_ERR_UNSUPPORTED, "blend");
  expect_status(ifrt_upsample_quality_map_cuda(dummy, 2, 2, dummy, 4, 4, nullptr), IFRT_ERR_UNSUPPORTED, "upsample");
  expect_status(ifrt_denormalize_cuda(&y, IFRT_RANGE_GIVEN, 0, 1, dummy, IFRT_DTYPE_FLOAT32, nullptr),
                IFRT_ERR_UNSUPPORTED, "denormalize");
  expect_status(ifrt_focus_compute_cuda(focus, &y, nullptr, nullptr, 0, nullptr), IFRT_ERR_UNSUPPORTED, "focus");
  CHECK(std::strstr(ifrt_last_error(), "use ifrt_focus_compute (CPU)") != nullptr);
  ifrt_focus_release(focus);
}

#if IFRT_TEST_WITH_CUDART
template <typename T>
T* to_device(const std::vector<T>& host) {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, host.size() * sizeof(T)) == cudaSuccess);
  CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  return static_cast<T*>(p);
}

template <typename T>
std::vector<T> to_host(const T* device, size_t n) {
  std::vector<T> host(n);
  CHECK(cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

void cuda_matches_cpu(cudaStream_t stream) {
  // softmax
  const int64_t n = 37, k = 5;
  const std::vector<float> logits = ramp(n * k, 6.0f);
  std::vector<float> cpu(n * k);
  CHECK(ifrt_softmax(logits.data(), n, k, 1.7f, cpu.data()) == IFRT_OK);
  float* d_logits = to_device(logits);
  float* d_probs = to_device(std::vector<float>(n * k));
  CHECK(ifrt_softmax_cuda(d_logits, n, k, 1.7f, d_probs, stream) == IFRT_OK);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  const std::vector<float> gpu = to_host(d_probs, n * k);
  // Device expf is within 2 ulp and the host's within 1: a probability may differ by its exp's 3 ulp, the
  // sum's 3 + (K - 1) (half an ulp per addition on each side) and the divisions' 1, (6 + K) ulp in all
  // (ulp <= 2^-23 relative).
  const double ulp = std::ldexp(1.0, -23);
  for (int64_t i = 0; i < n * k; ++i) CHECK_NEAR(gpu[i], cpu[i], (6 + k) * ulp * std::fabs(cpu[i]) + 1e-9);

  // tile blending: a 150 x 200 frame in 64 x 64 tiles with overlap 16 (3 x 4 tiles)
  const int64_t fh = 150, fw = 200, t = 64, ov = 16, ty = 3, tx = 4;
  const std::vector<float> tiles = ramp(ty * tx * t * t, 2.0f);
  std::vector<float> blended(fh * fw);
  CHECK(ifrt_blend_tiles(tiles.data(), fh, fw, t, t, ov, blended.data(), fh, fw) == IFRT_OK);
  float* d_tiles = to_device(tiles);
  float* d_blended = to_device(std::vector<float>(fh * fw));
  CHECK(ifrt_blend_tiles_cuda(d_tiles, fh, fw, t, t, ov, d_blended, fh, fw, stream) == IFRT_OK);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(to_host(d_blended, fh * fw) == blended);

  // quality-map upsampling
  const std::vector<float> map = ramp(5 * 7, 0.5f);
  std::vector<float> up(160 * 224);
  CHECK(ifrt_upsample_quality_map(map.data(), 5, 7, up.data(), 160, 224) == IFRT_OK);
  float* d_map = to_device(map);
  float* d_up = to_device(std::vector<float>(160 * 224));
  CHECK(ifrt_upsample_quality_map_cuda(d_map, 5, 7, d_up, 160, 224, stream) == IFRT_OK);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(to_host(d_up, 160 * 224) == up);

  // preprocess on the device, then denormalize with the range it left there (no host round trip)
  const int64_t h = 96, w = 128;
  std::vector<uint16_t> frame(h * w);
  for (int64_t i = 0; i < h * w; ++i) frame[i] = static_cast<uint16_t>(1000 + (i * 7919) % 50000);
  ifrt_image im{};
  im.dtype = IFRT_DTYPE_UINT16;
  im.height = h;
  im.width = w;
  im.channels = 1;
  im.data = to_device(frame);
  ifrt_preprocess_options po;
  ifrt_preprocess_options_init(&po);
  po.pad_multiple = 32;
  ifrt_preprocess_shape shape;
  CHECK(ifrt_preprocess_shape_of(&im, &po, &shape) == IFRT_OK);
  float* d_tensor = to_device(std::vector<float>(shape.bytes / sizeof(float)));
  CHECK(ifrt_preprocess_cuda(&im, &po, d_tensor, shape.bytes, stream) == IFRT_OK);
  ifrt_image yd = float_plane(d_tensor, h, w);
  yd.row_stride = shape.width * static_cast<int64_t>(sizeof(float));
  uint16_t* d_back = to_device(std::vector<uint16_t>(h * w));
  CHECK(ifrt_denormalize_cuda(&yd, IFRT_RANGE_OF_LAST_PREPROCESS, 0, 0, d_back, IFRT_DTYPE_UINT16, stream) == IFRT_OK);
  double lo = 0, hi = 0;
  CHECK(ifrt_preprocess_cuda_range(stream, &lo, &hi) == IFRT_OK);  // synchronizes the stream
  const std::vector<float> tensor = to_host(d_tensor, shape.bytes / sizeof(float));
  ifrt_image yh = yd;
  yh.data = tensor.data();
  std::vector<uint16_t> back_cpu(h * w);
  CHECK(ifrt_denormalize(&yh, lo, hi, back_cpu.data(), IFRT_DTYPE_UINT16) == IFRT_OK);
  CHECK(to_host(d_back, h * w) == back_cpu);

  // focus metrics, global and per tile, into device memory
  ifrt_focus_options fo;
  ifrt_focus_options_init(&fo);
  fo.tile_height = 32;
  fo.tile_width = 48;
  ifrt_focus* focus = nullptr;
  CHECK(ifrt_focus_create(&fo, &focus) == IFRT_OK);
  int64_t fy = 0, fx = 0;
  CHECK(ifrt_focus_tile_grid(focus, h, w, &fy, &fx) == IFRT_OK);
  ifrt_image host_im = im;
  host_im.data = frame.data();
  ifrt_focus_metrics global_cpu;
  std::vector<ifrt_focus_metrics> tiles_cpu(fy * fx);
  CHECK(ifrt_focus_compute(focus, &host_im, &global_cpu, tiles_cpu.data(), tiles_cpu.size()) == IFRT_OK);
  ifrt_focus_metrics* d_global = to_device(std::vector<ifrt_focus_metrics>(1));
  ifrt_focus_metrics* d_tile_metrics = to_device(std::vector<ifrt_focus_metrics>(fy * fx));
  for (int repeat = 0; repeat < 3; ++repeat) {  // the scratch is reused from the second frame on
    CHECK(ifrt_focus_compute_cuda(focus, &im, d_global, d_tile_metrics, fy * fx, stream) == IFRT_OK);
  }
  CHECK(ifrt_focus_compute_cuda(focus, &im, nullptr, nullptr, 0, stream) == IFRT_OK);  // scratch outputs
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  const auto close = [](const ifrt_focus_metrics& a, const ifrt_focus_metrics& b) {
    const double pa[5] = {a.var_laplacian, a.tenengrad, a.brenner, a.normalized_variance, a.vollath_f4};
    const double pb[5] = {b.var_laplacian, b.tenengrad, b.brenner, b.normalized_variance, b.vollath_f4};
    for (int i = 0; i < 5; ++i) CHECK_NEAR(pa[i], pb[i], 1e-9 * std::fabs(pb[i]) + 1e-12);
  };
  close(to_host(d_global, 1)[0], global_cpu);
  const std::vector<ifrt_focus_metrics> tiles_gpu = to_host(d_tile_metrics, fy * fx);
  for (int64_t i = 0; i < fy * fx; ++i) close(tiles_gpu[i], tiles_cpu[i]);
  ifrt_focus_release(focus);

  for (void* p : {static_cast<void*>(d_logits), static_cast<void*>(d_probs), static_cast<void*>(d_tiles),
                  static_cast<void*>(d_blended), static_cast<void*>(d_map), static_cast<void*>(d_up),
                  const_cast<void*>(im.data), static_cast<void*>(d_tensor), static_cast<void*>(d_back),
                  static_cast<void*>(d_global), static_cast<void*>(d_tile_metrics)}) {
    cudaFree(p);
  }
}

// ifrt_preprocess refuses a frame with a NaN pixel; ifrt_preprocess_cuda cannot (it does not wait for
// the device), so ifrt_denormalize_cuda refuses the range it left, and writes nothing.
void denormalize_refuses_the_range_of_a_frame_with_a_non_finite_pixel(cudaStream_t stream) {
  const int64_t h = 40, w = 64;
  std::vector<float> frame = ramp(h * w, 100.0f);
  frame[5 * w + 7] = NAN;
  ifrt_image im = float_plane(to_device(frame), h, w);
  ifrt_preprocess_options po;
  ifrt_preprocess_options_init(&po);
  ifrt_preprocess_shape shape;
  CHECK(ifrt_preprocess_shape_of(&im, &po, &shape) == IFRT_OK);
  ifrt_image host = im;
  host.data = frame.data();
  std::vector<float> cpu_out(shape.bytes / sizeof(float));
  expect_status(ifrt_preprocess(&host, &po, cpu_out.data(), shape.bytes, nullptr, nullptr), IFRT_ERR_INVALID_ARGUMENT,
                "CPU preprocess of a NaN frame");
  float* d_tensor = to_device(std::vector<float>(shape.bytes / sizeof(float)));
  CHECK(ifrt_preprocess_cuda(&im, &po, d_tensor, shape.bytes, stream) == IFRT_OK);  // enqueued; cannot know yet
  ifrt_image yd = float_plane(d_tensor, h, w);
  yd.row_stride = shape.width * static_cast<int64_t>(sizeof(float));
  uint16_t* d_back = to_device(std::vector<uint16_t>(h * w, 7));
  expect_status(ifrt_denormalize_cuda(&yd, IFRT_RANGE_OF_LAST_PREPROCESS, 0, 0, d_back, IFRT_DTYPE_UINT16, stream),
                IFRT_ERR_INVALID_ARGUMENT, "denormalize with the range of a NaN frame");
  CHECK(std::strstr(ifrt_last_error(), "non-finite pixels") != nullptr);
  expect_status(ifrt_preprocess_cuda_range(stream, nullptr, nullptr), IFRT_ERR_INVALID_ARGUMENT, "range of a NaN frame");
  CHECK(to_host(d_back, h * w) == std::vector<uint16_t>(h * w, 7));
  // The next finite frame gives a range again.
  frame[5 * w + 7] = 1.0f;
  CHECK(cudaMemcpy(const_cast<void*>(im.data), frame.data(), frame.size() * sizeof(float), cudaMemcpyHostToDevice) ==
        cudaSuccess);
  CHECK(ifrt_preprocess_cuda(&im, &po, d_tensor, shape.bytes, stream) == IFRT_OK);
  CHECK(ifrt_denormalize_cuda(&yd, IFRT_RANGE_OF_LAST_PREPROCESS, 0, 0, d_back, IFRT_DTYPE_UINT16, stream) == IFRT_OK);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  for (void* p : {const_cast<void*>(im.data), static_cast<void*>(d_tensor), static_cast<void*>(d_back)}) cudaFree(p);
}

// A stream no ifrt call has used has no workspace; allocating one inside the caller's capture would
// break it. Refused instead, the capture ends cleanly, and after a warm-up the call is captured.
void a_first_call_inside_a_graph_capture_is_refused_and_a_warmed_up_one_is_captured() {
  cudaStream_t stream = nullptr;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
  const int64_t h = 48, w = 64;
  const std::vector<float> frame = ramp(h * w, 50.0f);
  ifrt_image im = float_plane(to_device(frame), h, w);
  ifrt_preprocess_options po;
  ifrt_preprocess_options_init(&po);
  ifrt_preprocess_shape shape;
  CHECK(ifrt_preprocess_shape_of(&im, &po, &shape) == IFRT_OK);
  float* d_tensor = to_device(std::vector<float>(shape.bytes / sizeof(float)));
  cudaGraph_t graph = nullptr;
  CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal) == cudaSuccess);
  expect_status(ifrt_preprocess_cuda(&im, &po, d_tensor, shape.bytes, stream), IFRT_ERR_INVALID_ARGUMENT,
                "first preprocess inside a capture");
  CHECK(std::strstr(ifrt_last_error(), "make the same call once before the capture") != nullptr);
  expect_status(ifrt_preprocess_cuda_host(&im, &po, d_tensor, shape.bytes, stream), IFRT_ERR_INVALID_ARGUMENT,
                "first host-frame preprocess inside a capture");
  CHECK(cudaStreamEndCapture(stream, &graph) == cudaSuccess);  // the capture was not invalidated
  if (graph) cudaGraphDestroy(graph);
  graph = nullptr;

  CHECK(ifrt_preprocess_cuda(&im, &po, d_tensor, shape.bytes, stream) == IFRT_OK);  // warm-up
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  CHECK(cudaMemset(d_tensor, 0, shape.bytes) == cudaSuccess);
  CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal) == cudaSuccess);
  CHECK(ifrt_preprocess_cuda(&im, &po, d_tensor, shape.bytes, stream) == IFRT_OK);
  CHECK(cudaStreamEndCapture(stream, &graph) == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  CHECK(graph && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  CHECK(exec && cudaGraphLaunch(exec, stream) == cudaSuccess);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  ifrt_image host = im;
  host.data = frame.data();
  std::vector<float> cpu_out(shape.bytes / sizeof(float));
  CHECK(ifrt_preprocess(&host, &po, cpu_out.data(), shape.bytes, nullptr, nullptr) == IFRT_OK);
  CHECK(to_host(d_tensor, cpu_out.size()) == cpu_out);
  if (exec) cudaGraphExecDestroy(exec);
  if (graph) cudaGraphDestroy(graph);
  for (void* p : {const_cast<void*>(im.data), static_cast<void*>(d_tensor)}) cudaFree(p);
  cudaStreamDestroy(stream);
}
#endif

void without_a_device_valid_calls_fail_with_a_cuda_error() {
  float dummy[64] = {};
  const ifrt_status status = ifrt_softmax_cuda(dummy, 2, 4, 1.0f, dummy + 16, nullptr);
  CHECK(status == IFRT_ERR_CUDA);
  CHECK(std::strlen(ifrt_last_error()) > 0);
  std::printf("no CUDA device: ifrt_softmax_cuda -> %d (%s)\n", status, ifrt_last_error());
}

}  // namespace

int main() {
  bad_arguments_are_refused_before_any_cuda_call();
  if (!ifrt_has_cuda()) {
    without_cuda_every_call_says_so();
    std::printf("built without CUDA: every *_cuda call returned IFRT_ERR_UNSUPPORTED\n");
  } else if (ifrt_cuda_device_count() == 0) {
    without_a_device_valid_calls_fail_with_a_cuda_error();
  } else {
#if IFRT_TEST_WITH_CUDART
    cudaStream_t stream = nullptr;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    cuda_matches_cpu(stream);
    denormalize_refuses_the_range_of_a_frame_with_a_non_finite_pixel(stream);
    cudaStreamDestroy(stream);
    a_first_call_inside_a_graph_capture_is_refused_and_a_warmed_up_one_is_captured();
    std::printf("CUDA entry points match the CPU calls on %d device(s)\n", ifrt_cuda_device_count());
#else
    std::printf("a CUDA device is present but this test was built without the CUDA runtime; skipped\n");
#endif
  }
  return TEST_MAIN_RESULT();
}
