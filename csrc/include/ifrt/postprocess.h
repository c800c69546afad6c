/* ifrt C ABI: postprocessing of model outputs, CPU path, host memory (part of libifrt).
 *
 *  ifrt_softmax:        probs[i,k] = exp((l[i,k] - max_j l[i,j]) / T) / sum_j exp(...), T > 0
 *  ifrt_blend_tiles:    tiles [N, tile_h, tile_w] laid out as ifrt_preprocess cuts them, blended
 *                       with linear ramps over the overlap (no seams), cropped to height x width
 *  ifrt_denormalize:    out = y * (hi - lo) + lo in float32, rounded to nearest even and clamped
 *                       for uint8/uint16 outputs; y is a float32/float16 ifrt_image (strided rows
 *                       allowed, e.g. a crop of the padded frame), out packed height x width
 *  ifrt_upsample_quality_map: bilinear, pixel centres aligned (OpenCV INTER_LINEAR)
 */
#ifndef IFRT_POSTPROCESS_H
#define IFRT_POSTPROCESS_H

#include "ifrt/image.h"

#ifdef __cplusplus
extern "C" {
#endif

IFRT_API ifrt_status ifrt_softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs);

IFRT_API ifrt_status ifrt_blend_tiles(const float* tiles, int64_t frame_height, int64_t frame_width,
                                      int64_t tile_height, int64_t tile_width, int64_t overlap, float* out,
                                      int64_t height, int64_t width);

IFRT_API ifrt_status ifrt_denormalize(const ifrt_image* y, double lo, double hi, void* out, ifrt_dtype out_dtype);

IFRT_API ifrt_status ifrt_upsample_quality_map(const float* quality_map, int64_t map_height, int64_t map_width,
                                               float* out, int64_t height, int64_t width);

#ifdef __cplusplus
}
#endif

#endif /* IFRT_POSTPROCESS_H */
