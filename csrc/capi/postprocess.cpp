// C ABI: postprocessing (ifrt/postprocess.h), CPU path.
#include "capi/guard.h"
#include "capi/image.h"
#include "core/postprocess.h"

using namespace ifrt;
using namespace ifrt::capi;

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
    require(y, "y");
    require(y->data, "y->data");
    require(out, "out");
    const DType in = dtype_from(y->dtype, "y");
    if (in != DType::F32 && in != DType::F16) {
      fail(ErrorCode::InvalidArgument, std::string("y: ") + dtype_name(in) + " is not supported (expected float32 or float16)");
    }
    if (y->channels != 1 || (y->pixel_stride != 0 && y->pixel_stride != dtype_size(in))) {
      fail(ErrorCode::InvalidArgument, "y: must be one channel with adjacent pixels");
    }
    // Sizes, strides and byte extent checked as for any input image (float16 has uint16's layout).
    ImageView geometry;
    geometry.data = y->data;
    geometry.dtype = in == DType::F16 ? DType::U16 : DType::F32;
    geometry.height = y->height;
    geometry.width = y->width;
    geometry.row_stride = y->row_stride;
    const int64_t row_stride = checked_input(geometry, "y").row_stride;
    denormalize(y->data, in, row_stride / dtype_size(in), y->height, y->width, lo, hi, out, dtype_from(out_dtype, "out_dtype"));
  });
}

IFRT_API ifrt_status ifrt_upsample_quality_map(const float* quality_map, int64_t map_height, int64_t map_width,
                                               float* out, int64_t height, int64_t width) {
  return guarded([&] { upsample_quality_map(quality_map, map_height, map_width, out, height, width); });
}

}  // extern "C"
