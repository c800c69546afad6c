// C ABI: postprocessing (ifrt/postprocess.h), CPU path.
#include "capi/cuda_workspace.h"
#include "capi/guard.h"
#include "capi/image.h"
#include "core/postprocess.h"
#if IFRT_WITH_CUDA
#include "cuda/kernels.h"
#endif

using namespace ifrt;
using namespace ifrt::capi;

namespace {

// y of ifrt_denormalize(_cuda): one float32/float16 channel with adjacent pixels, its geometry checked
// as for any input image (float16 has uint16's layout). Returns the row stride in elements.
int64_t checked_denormalize_input(const ifrt_image* y, DType* in) {
  require(y, "y");
  require(y->data, "y->data");
  *in = dtype_from(y->dtype, "y");
  if (*in != DType::F32 && *in != DType::F16) {
    fail(ErrorCode::InvalidArgument, std::string("y: ") + dtype_name(*in) + " is not supported (expected float32 or float16)");
  }
  if (y->channels != 1 || (y->pixel_stride != 0 && y->pixel_stride != dtype_size(*in))) {
    fail(ErrorCode::InvalidArgument, "y: must be one channel with adjacent pixels");
  }
  ImageView geometry;
  geometry.data = y->data;
  geometry.dtype = *in == DType::F16 ? DType::U16 : DType::F32;
  geometry.height = y->height;
  geometry.width = y->width;
  geometry.row_stride = y->row_stride;
  return checked_input(geometry, "y").row_stride / dtype_size(*in);
}

[[noreturn]] void no_cuda(const char* cpu_call) {
  fail(ErrorCode::Unsupported, std::string("ifrt was built without CUDA kernels; use ") + cpu_call + " (CPU)");
}

}  // namespace

extern "C" {

IFRT_API ifrt_status ifrt_softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs) {
  return guarded([&] { softmax(logits, n, k, temperature, probs); });
}

IFRT_API ifrt_status ifrt_blend_tiles(const float* tiles, int64_t frame_height, int64_t frame_width,
                                      int64_t tile_height, int64_t tile_width, int64_t overlap, float* out,
                                      int64_t height, int64_t width) {
  return guarded([&] {
    blend_tiles(tiles, make_tile_grid(frame_height, frame_width, tile_height, tile_width, overlap), out, height, width);
  });
}

IFRT_API ifrt_status ifrt_denormalize(const ifrt_image* y, double lo, double hi, void* out, ifrt_dtype out_dtype) {
  return guarded([&] {
    DType in;
    const int64_t stride = checked_denormalize_input(y, &in);
    require(out, "out");
    denormalize(y->data, in, stride, y->height, y->width, lo, hi, out, dtype_from(out_dtype, "out_dtype"));
  });
}

IFRT_API ifrt_status ifrt_upsample_quality_map(const float* quality_map, int64_t map_height, int64_t map_width,
                                               float* out, int64_t height, int64_t width) {
  return guarded([&] { upsample_quality_map(quality_map, map_height, map_width, out, height, width); });
}

IFRT_API ifrt_status ifrt_softmax_cuda(const float* logits, int64_t n, int64_t k, float temperature, float* probs,
                                       void* cuda_stream) {
  return guarded([&] {
#if IFRT_WITH_CUDA
    cuda::softmax(logits, n, k, temperature, probs, cuda_stream);
#else
    (void)logits, (void)n, (void)k, (void)temperature, (void)probs, (void)cuda_stream;
    no_cuda("ifrt_softmax");
#endif
  });
}

IFRT_API ifrt_status ifrt_blend_tiles_cuda(const float* tiles, int64_t frame_height, int64_t frame_width,
                                           int64_t tile_height, int64_t tile_width, int64_t overlap, float* out,
                                           int64_t height, int64_t width, void* cuda_stream) {
  return guarded([&] {
#if IFRT_WITH_CUDA
    cuda::blend_tiles(tiles, make_tile_grid(frame_height, frame_width, tile_height, tile_width, overlap), out, height,
                      width, cuda_stream);
#else
    (void)tiles, (void)frame_height, (void)frame_width, (void)tile_height, (void)tile_width, (void)overlap;
    (void)out, (void)height, (void)width, (void)cuda_stream;
    no_cuda("ifrt_blend_tiles");
#endif
  });
}

IFRT_API ifrt_status ifrt_denormalize_cuda(const ifrt_image* y, ifrt_range_source range, double lo, double hi,
                                           void* out, ifrt_dtype out_dtype, void* cuda_stream) {
  return guarded([&] {
    DType in;
    const int64_t stride = checked_denormalize_input(y, &in);
    require(out, "out");
    const int code = enum_code(range);
    if (code != IFRT_RANGE_GIVEN && code != IFRT_RANGE_OF_LAST_PREPROCESS) {
      fail(ErrorCode::InvalidArgument, "range: " + std::to_string(code) + " is not an ifrt_range_source");
    }
#if IFRT_WITH_CUDA
    const DType out_t = dtype_from(out_dtype, "out_dtype");
    check_denormalize(y->data, in, stride, y->height, y->width, out, out_t);  // before any CUDA call
    const cuda::Workspace* last = code == IFRT_RANGE_OF_LAST_PREPROCESS ? &last_preprocess(cuda_stream) : nullptr;
    cuda::denormalize(y->data, in, stride, y->height, y->width, last ? last->device_range() : nullptr, lo, hi, out, out_t,
                      cuda_stream, last ? last->device_error() : nullptr);
#else
    (void)stride, (void)lo, (void)hi, (void)out_dtype, (void)cuda_stream;
    no_cuda("ifrt_denormalize");
#endif
  });
}

IFRT_API ifrt_status ifrt_upsample_quality_map_cuda(const float* quality_map, int64_t map_height, int64_t map_width,
                                                    float* out, int64_t height, int64_t width, void* cuda_stream) {
  return guarded([&] {
#if IFRT_WITH_CUDA
    cuda::upsample_quality_map(quality_map, map_height, map_width, out, height, width, cuda_stream);
#else
    (void)quality_map, (void)map_height, (void)map_width, (void)out, (void)height, (void)width, (void)cuda_stream;
    no_cuda("ifrt_upsample_quality_map");
#endif
  });
}

}  // extern "C"
