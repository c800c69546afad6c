// CUDA postprocess: softmax, tile blending, inverse normalization, quality-map upsampling. Math from
// core/postprocess.h and core/normalize.h.
#include <cuda_runtime.h>

#include <string>

#include "core/half.h"
#include "cuda/check.h"
#include "cuda/kernels.h"

namespace ifrt::cuda {

namespace {

__global__ void softmax_kernel(const float* logits, int64_t n, int64_t k, float temperature, float* probs) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    softmax_row(logits + i * k, probs + i * k, k, temperature);
}

__global__ void blend_kernel(const float* tiles, TileGrid g, float* out, int64_t h, int64_t w) {
  const int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (x >= w) return;
  for (int64_t y = blockIdx.y * int64_t(blockDim.y) + threadIdx.y; y < h; y += int64_t(gridDim.y) * blockDim.y)
    out[y * w + x] = blend_pixel(tiles, g, y, x);
}

template <typename In, typename Out>
__global__ void denormalize_kernel(const In* in, int64_t stride, int64_t h, int64_t w, const NormRange* device_range,
                                   const int* device_error, float lo, float span, Out* out, float vmin, float vmax,
                                   bool integer) {
  if (device_error && *device_error) return;  // the range is not a normalization of any frame: write nothing
  if (device_range) {
    lo = device_range->lo32;
    span = static_cast<float>(device_range->hi - device_range->lo);
  }
  const int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (x >= w) return;
  for (int64_t y = blockIdx.y * int64_t(blockDim.y) + threadIdx.y; y < h; y += int64_t(gridDim.y) * blockDim.y) {
    float v;
    if constexpr (sizeof(In) == 2) {
      v = half_to_float(in[y * stride + x]);
    } else {
      v = in[y * stride + x];
    }
    const float d = denormalize_value(v, lo, span);
    out[y * w + x] = static_cast<Out>(integer ? round_clamp(d, vmin, vmax) : d);
  }
}

__global__ void upsample_kernel(const float* map, int64_t mh, int64_t mw, float* out, int64_t h, int64_t w) {
  const int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (x >= w) return;
  const AxisTaps tx = axis_taps(ResizeMode::Bilinear, x, mw, w);
  auto src = [&](int64_t sy, int64_t sx) { return map[sy * mw + sx]; };
  for (int64_t y = blockIdx.y * int64_t(blockDim.y) + threadIdx.y; y < h; y += int64_t(gridDim.y) * blockDim.y)
    out[y * w + x] = resample_value(src, axis_taps(ResizeMode::Bilinear, y, mh, h), tx);
}

// Every column gets its thread (the kernels loop over rows only).
dim3 grid2d(int64_t h, int64_t w, dim3 block) {
  return dim3(column_blocks(w, static_cast<int>(block.x)), blocks_for(h, static_cast<int>(block.y), 16384));
}

template <typename In, typename Out>
void launch_denormalize(const void* in, int64_t stride, int64_t h, int64_t w, const NormRange* dr, const int* de,
                        float lo, float span, void* out, float vmin, float vmax, bool integer, cudaStream_t st) {
  const dim3 block(64, 4);
  denormalize_kernel<In, Out><<<grid2d(h, w, block), block, 0, st>>>(static_cast<const In*>(in), stride, h, w, dr, de,
                                                                     lo, span, static_cast<Out*>(out), vmin, vmax,
                                                                     integer);
}

template <typename In>
void denormalize_to(const void* in, int64_t stride, int64_t h, int64_t w, const NormRange* dr, const int* de, float lo,
                    float span, void* out, DType out_dtype, cudaStream_t st) {
  switch (out_dtype) {
    case DType::U8: launch_denormalize<In, uint8_t>(in, stride, h, w, dr, de, lo, span, out, 0.f, 255.f, true, st); break;
    case DType::U16:
      launch_denormalize<In, uint16_t>(in, stride, h, w, dr, de, lo, span, out, 0.f, 65535.f, true, st);
      break;
    case DType::F32: launch_denormalize<In, float>(in, stride, h, w, dr, de, lo, span, out, 0.f, 0.f, false, st); break;
    default:
      fail(ErrorCode::InvalidArgument, std::string("denormalize: output dtype ") + dtype_name(out_dtype) +
                                           " is not supported (expected uint8, uint16 or float32)");
  }
}

}  // namespace

void softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs, void* stream) {
  check_softmax(logits, n, k, temperature, probs);
  if (n == 0) return;
  softmax_kernel<<<blocks_for(n, 128), 128, 0, as_stream(stream)>>>(logits, n, k, temperature, probs);
  IFRT_CUDA_CHECK_LAUNCH();
}

void blend_tiles(const float* tiles, const TileGrid& grid, float* out, int64_t height, int64_t width, void* stream) {
  const TileGrid g = check_blend_tiles(tiles, grid, out, height, width);
  const dim3 block(64, 4);
  blend_kernel<<<grid2d(height, width, block), block, 0, as_stream(stream)>>>(tiles, g, out, height, width);
  IFRT_CUDA_CHECK_LAUNCH();
}

void denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width,
                 const NormRange* device_range, double lo, double hi, void* out, DType out_dtype, void* stream,
                 const int* device_error) {
  check_denormalize(in, in_dtype, in_stride, height, width, out, out_dtype);
  float lo32 = 0.0f, span = 0.0f;
  if (!device_range) {
    const NormRange r = make_range(lo, hi);
    lo32 = r.lo32;
    span = static_cast<float>(r.hi - r.lo);
  }
  const cudaStream_t st = as_stream(stream);
  if (in_dtype == DType::F32) {
    denormalize_to<float>(in, in_stride, height, width, device_range, device_error, lo32, span, out, out_dtype, st);
  } else if (in_dtype == DType::F16) {
    denormalize_to<uint16_t>(in, in_stride, height, width, device_range, device_error, lo32, span, out, out_dtype, st);
  } else {
    fail(ErrorCode::InvalidArgument, std::string("denormalize: input dtype ") + dtype_name(in_dtype) +
                                         " is not supported (expected float32 or float16)");
  }
  IFRT_CUDA_CHECK_LAUNCH();
}

void upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, float* out, int64_t height,
                          int64_t width, void* stream) {
  check_upsample_quality_map(map, map_height, map_width, out, height, width);
  const dim3 block(64, 4);
  upsample_kernel<<<grid2d(height, width, block), block, 0, as_stream(stream)>>>(map, map_height, map_width, out,
                                                                                  height, width);
  IFRT_CUDA_CHECK_LAUNCH();
}

}  // namespace ifrt::cuda
