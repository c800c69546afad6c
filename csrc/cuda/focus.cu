// CUDA focus metrics: one pass accumulating core/focus.h's per-pixel terms into per-tile sums
// (block reduction, then one double atomicAdd per field and block), then a finishing kernel whose block
// finishes every tile and adds the tiles' sums for the frame's metrics.
#include <cuda_runtime.h>

#include <string>

#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/stream.h"

namespace ifrt::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kFields = 9;

struct Pixels {
  const unsigned char* base;  // at the picked channel
  int64_t row_stride, pixel_stride, h, w;
};

template <typename T>
__device__ __forceinline__ double px(const Pixels& p, int64_t y, int64_t x) {
  return static_cast<double>(load_as_float<T>(p.base, p.row_stride, p.pixel_stride, y, x));
}

__device__ __forceinline__ double* field(FocusSums& s, int i) { return &s.count + i; }

// The sum of every thread's `s` over a block of kThreads threads, valid in thread 0: warp shuffles, then
// the first warp over the warp totals. Every thread of the block must call it.
__device__ FocusSums block_total(FocusSums s) {
  __shared__ double warp_sums[kThreads / 32][kFields];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int f = 0; f < kFields; ++f) {
    double v = *field(s, f);
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0) warp_sums[warp][f] = v;
  }
  __syncthreads();
  FocusSums total;
  if (warp == 0) {
    for (int f = 0; f < kFields; ++f) {
      double v = lane < kThreads / 32 ? warp_sums[lane][f] : 0.0;
      for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
      *field(total, f) = v;
    }
  }
  return total;
}

template <typename T>
__global__ void focus_kernel(Pixels p, int64_t th, int64_t tw, int64_t tiles_x, FocusSums* tile_sums) {
  const int64_t tile = blockIdx.y;
  const int64_t y0 = (tile / tiles_x) * th, x0 = (tile % tiles_x) * tw;
  const int64_t hh = (p.h - y0 < th ? p.h - y0 : th), ww = (p.w - x0 < tw ? p.w - x0 : tw);
  const double shift = px<T>(p, 0, 0);
  FocusSums s;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < hh * ww; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t y = y0 + i / ww, x = x0 + i % ww;
    double n[3][3];
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) n[dy + 1][dx + 1] = px<T>(p, reflect101(y + dy, p.h), reflect101(x + dx, p.w));
    const bool r2 = x + 2 < p.w, d2 = y + 2 < p.h;
    focus_accumulate(s, n, r2 ? px<T>(p, y, x + 2) : 0.0, r2, d2 ? px<T>(p, y + 2, x) : 0.0, d2, shift);
  }
  FocusSums total = block_total(s);
  if (threadIdx.x == 0) {
    for (int f = 0; f < kFields; ++f) {
      const double v = *field(total, f);
      if (v != 0.0) atomicAdd(field(tile_sums[tile], f), v);
    }
  }
}

template <typename T>
__global__ void focus_finish_kernel(Pixels p, const FocusSums* tile_sums, int64_t ntiles, FocusMetrics* tile_metrics,
                                    FocusMetrics* global_metrics) {
  const double shift = px<T>(p, 0, 0);
  // Each thread finishes and merges a strided share of the tiles (up to 65,535), then the block adds the shares.
  FocusSums share;
  for (int64_t t = threadIdx.x; t < ntiles; t += blockDim.x) {
    tile_metrics[t] = focus_metrics(tile_sums[t], shift);
    focus_merge(share, tile_sums[t]);
  }
  const FocusSums total = block_total(share);
  if (threadIdx.x == 0) *global_metrics = focus_metrics(total, shift);
}

template <typename T>
void enqueue(const ImageView& im, int64_t channel, int64_t th, int64_t tw, int64_t tiles_y, int64_t tiles_x,
             FocusSums* sums, FocusMetrics* tm, FocusMetrics* gm, cudaStream_t st) {
  Pixels p{static_cast<const unsigned char*>(im.data) + channel * sizeof(T), im.row_stride, im.pixel_stride, im.height,
           im.width};
  const int64_t ntiles = tiles_y * tiles_x;
  IFRT_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(FocusSums) * ntiles, st));
  const unsigned int per_tile = focus_blocks_per_tile(im.height, im.width, th, tw, ntiles, kThreads);
  focus_kernel<T><<<dim3(per_tile, static_cast<unsigned int>(ntiles)), kThreads, 0, st>>>(p, th, tw, tiles_x, sums);
  IFRT_CUDA_CHECK_LAUNCH();
  focus_finish_kernel<T><<<1, kThreads, 0, st>>>(p, sums, ntiles, tm, gm);
  IFRT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void focus(const ImageView& image, int64_t channel, int64_t tile_height, int64_t tile_width, FocusSums* tile_sums,
           FocusMetrics* tile_metrics, FocusMetrics* global_metrics, void* stream) {
  const ImageView im = checked_input(image);
  if (channel < 0 || channel >= im.channels) {
    fail(ErrorCode::InvalidArgument, "channel " + std::to_string(channel) + " is out of range for an image with " +
                                         std::to_string(im.channels) + " channel(s)");
  }
  if (!tile_sums || !tile_metrics || !global_metrics) fail(ErrorCode::InvalidArgument, "focus: output pointer is null");
  int64_t tiles_y = 0, tiles_x = 0;
  focus_grid(im.height, im.width, &tile_height, &tile_width, &tiles_y, &tiles_x);
  if (tiles_y * tiles_x > 65535) fail(ErrorCode::InvalidArgument, "focus: more than 65535 tiles; use larger tiles");
  const cudaStream_t st = as_stream(stream);
  switch (im.dtype) {
    case DType::U8: enqueue<uint8_t>(im, channel, tile_height, tile_width, tiles_y, tiles_x, tile_sums, tile_metrics, global_metrics, st); break;
    case DType::U16: enqueue<uint16_t>(im, channel, tile_height, tile_width, tiles_y, tiles_x, tile_sums, tile_metrics, global_metrics, st); break;
    case DType::F32: enqueue<float>(im, channel, tile_height, tile_width, tiles_y, tiles_x, tile_sums, tile_metrics, global_metrics, st); break;
    default: fail(ErrorCode::InvalidArgument, "unsupported input dtype");
  }
}

namespace {

// Grows `*buffer` to hold `count` elements of `size` bytes (stream-ordered; the old contents are dropped).
void* grow(void** buffer, int64_t* capacity, int64_t count, size_t size, cudaStream_t stream) {
  if (*buffer && *capacity >= count) return *buffer;
  require_uncaptured(stream_capturing(stream), "the focus scratch (one per focus handle, device and stream, grown for "
                                               "a larger tile grid)");
  if (*buffer) IFRT_CUDA_CHECK(cudaFreeAsync(*buffer, stream));
  *buffer = nullptr;
  *capacity = 0;
  IFRT_CUDA_CHECK(cudaMallocAsync(buffer, size * static_cast<size_t>(count < 1 ? 1 : count), stream));
  *capacity = count;
  return *buffer;
}

}  // namespace

FocusScratch::~FocusScratch() {
  // cudaFree waits for outstanding work; a scratch is released rarely, never per frame.
  for (void* p : {sums_, tiles_, global_})
    if (p) cudaFree(p);
}

FocusSums* FocusScratch::sums(int64_t tiles, void* stream) {
  return static_cast<FocusSums*>(grow(&sums_, &sums_capacity_, tiles, sizeof(FocusSums), as_stream(stream)));
}

FocusMetrics* FocusScratch::tile_metrics(int64_t tiles, void* stream) {
  return static_cast<FocusMetrics*>(grow(&tiles_, &tiles_capacity_, tiles, sizeof(FocusMetrics), as_stream(stream)));
}

FocusMetrics* FocusScratch::global_metrics(void* stream) {
  int64_t capacity = global_ ? 1 : 0;
  return static_cast<FocusMetrics*>(grow(&global_, &capacity, 1, sizeof(FocusMetrics), as_stream(stream)));
}

}  // namespace ifrt::cuda
