/* ifrt C ABI: postprocessing of model outputs, CPU path, host memory (part of libifrt).
 *
 *  ifrt_softmax:        probs[i,k] = exp((l[i,k] - max_j l[i,j]) / T) / sum_j exp(...), T > 0
 *  ifrt_blend_tiles:    tiles [N, tile_h, tile_w] laid out as ifrt_preprocess cuts them, blended
 *                       with linear ramps over the overlap (no seams), cropped to height x width
 *  ifrt_denormalize:    out = y * (hi - lo) + lo in float32, rounded to nearest even and clamped
 *                       for uint8/uint16 outputs; y is a float32/float16 ifrt_image (strided rows
 *                       allowed, e.g. a crop of the padded frame), out packed height x width
 *  ifrt_upsample_quality_map: bilinear, pixel centres aligned (OpenCV INTER_LINEAR)
 *
 * An output must not overlap an input (IFRT_ERR_INVALID_ARGUMENT), with two exceptions that run in
 * place: ifrt_softmax with probs == logits, and ifrt_denormalize of float32 into the same packed buffer.
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

/* CUDA path of the four calls above: every array (logits, probs, tiles, y->data, out, quality_map) is
 * device memory, and the work is enqueued on `cuda_stream` (a cudaStream_t, NULL = the legacy default
 * stream) without synchronizing. Same per-element math as the CPU calls (softmax within 2 ulp of
 * expf, the rest bit for bit). IFRT_ERR_UNSUPPORTED without CUDA in the build. */
IFRT_API ifrt_status ifrt_softmax_cuda(const float* logits, int64_t n, int64_t k, float temperature, float* probs,
                                       void* cuda_stream);

IFRT_API ifrt_status ifrt_blend_tiles_cuda(const float* tiles, int64_t frame_height, int64_t frame_width,
                                           int64_t tile_height, int64_t tile_width, int64_t overlap, float* out,
                                           int64_t height, int64_t width, void* cuda_stream);

/* With IFRT_RANGE_OF_LAST_PREPROCESS the range is the one the last ifrt_preprocess_cuda(_host) call of
 * this thread on this stream and current device computed, read on the device: preprocess -> engine ->
 * denormalize runs without synchronizing the stream. The call first waits until that preprocess's
 * range pass has run (an event recorded after it; an engine enqueued since keeps running) and refuses
 * (IFRT_ERR_INVALID_ARGUMENT) when that frame had non-finite pixels, as ifrt_preprocess refuses it, or
 * when no preprocess has computed a range. When the preprocess or this call is recorded into a CUDA
 * graph, the host cannot know: the kernel checks at each replay and leaves `out` unwritten for such a
 * frame (ifrt_preprocess_cuda_range reports it after the replay). With IFRT_RANGE_GIVEN it is lo/hi. */
typedef enum ifrt_range_source { IFRT_RANGE_GIVEN = 0, IFRT_RANGE_OF_LAST_PREPROCESS = 1 } ifrt_range_source;

IFRT_API ifrt_status ifrt_denormalize_cuda(const ifrt_image* y, ifrt_range_source range, double lo, double hi,
                                           void* out, ifrt_dtype out_dtype, void* cuda_stream);

IFRT_API ifrt_status ifrt_upsample_quality_map_cuda(const float* quality_map, int64_t map_height, int64_t map_width,
                                                    float* out, int64_t height, int64_t width, void* cuda_stream);

#ifdef __cplusplus
}
#endif

#endif /* IFRT_POSTPROCESS_H */
