/* ifrt C ABI: classical focus metrics, no model needed (part of libifrt).
 *
 * On pixel values I of one channel, borders mirrored (OpenCV BORDER_REFLECT_101):
 *   var_laplacian        population variance of I(y-1,x)+I(y+1,x)+I(y,x-1)+I(y,x+1)-4I(y,x)
 *   tenengrad            mean of Gx^2 + Gy^2 (3x3 Sobel)
 *   brenner              mean of (I(y,x+2)-I(y,x))^2 and (I(y+2,x)-I(y,x))^2 over all pairs
 *   normalized_variance  Var[I] / E[I]  (0 when E[I] <= 0)
 *   vollath_f4           mean of I(y,x)*(I(y,x+1)-I(y,x+2)) and I(y,x)*(I(y+1,x)-I(y+2,x))
 * Larger is sharper. Per tile: a grid of ceil(H/tile_height) x ceil(W/tile_width) tiles, row-major,
 * neighbours taken across tile borders. One pass over the image, multithreaded.
 *
 * An ifrt_focus handle holds the options and may be reused for any number of frames; one handle
 * must not be used by two threads at once (use one handle per thread).
 */
#ifndef IFRT_FOCUS_H
#define IFRT_FOCUS_H

#include "ifrt/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ifrt_focus ifrt_focus;

typedef struct ifrt_focus_metrics {
  double var_laplacian;
  double tenengrad;
  double brenner;
  double normalized_variance;
  double vollath_f4;
} ifrt_focus_metrics;

typedef struct ifrt_focus_options {
  int64_t channel;     /* 0 */
  int64_t tile_height; /* 0: one tile, the whole image */
  int64_t tile_width;
} ifrt_focus_options;

IFRT_API void ifrt_focus_options_init(ifrt_focus_options* options);

/* options may be NULL (defaults). On failure *focus is set to NULL. */
IFRT_API ifrt_status ifrt_focus_create(const ifrt_focus_options* options, ifrt_focus** focus);

/* Tiles for an image of height x width under this handle's options. */
IFRT_API ifrt_status ifrt_focus_tile_grid(const ifrt_focus* focus, int64_t height, int64_t width, int64_t* tiles_y,
                                          int64_t* tiles_x);

/* Global metrics into *global (may be NULL); per-tile metrics into tiles[0 .. tiles_y*tiles_x)
 * when tiles is not NULL, which needs tile_capacity >= tiles_y*tiles_x. A NaN or infinite pixel is
 * refused (IFRT_ERR_INVALID_ARGUMENT, naming the first one). */
IFRT_API ifrt_status ifrt_focus_compute(ifrt_focus* focus, const ifrt_image* image, ifrt_focus_metrics* global,
                                        ifrt_focus_metrics* tiles, size_t tile_capacity);

/* CUDA path: image->data, global and tiles are device memory (global and tiles may be NULL), written
 * by kernels enqueued on `cuda_stream` (a cudaStream_t, NULL = the legacy default stream) without
 * synchronizing: the metrics are valid once the stream reaches this point. The handle keeps device
 * scratch per device and stream, grown stream-ordered on the first frame of a larger tile grid, so a steady
 * frame size allocates nothing; growing is refused (IFRT_ERR_INVALID_ARGUMENT) while the stream is being
 * captured into a CUDA graph, so run the largest frame once before capturing. Metrics match
 * ifrt_focus_compute up to summation order (relative 1e-9); a NaN or infinite pixel, which
 * ifrt_focus_compute refuses, makes them NaN here (checking would need a synchronization).
 * IFRT_ERR_UNSUPPORTED without CUDA in the build. */
IFRT_API ifrt_status ifrt_focus_compute_cuda(ifrt_focus* focus, const ifrt_image* image, ifrt_focus_metrics* global,
                                             ifrt_focus_metrics* tiles, size_t tile_capacity, void* cuda_stream);

/* NULL is allowed. */
IFRT_API void ifrt_focus_release(ifrt_focus* focus);

#ifdef __cplusplus
}
#endif

#endif /* IFRT_FOCUS_H */
