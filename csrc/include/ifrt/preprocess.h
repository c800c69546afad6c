/* ifrt C ABI: preprocessing, camera frame -> model input tensor (part of libifrt).
 *
 * For each output element (tile n, row y, column x) of the [N, 1, h, w] tensor:
 *   corrected = (raw - dark) / flat                      (channel `channel`; dark/flat optional)
 *   resized   = bilinear or area resample of corrected   (when resize is on)
 *   padded    = resized extended at the bottom/right to a multiple of pad_multiple (reflect, edge
 *               or zero), then cut into tiles of tile_height x tile_width sharing tile_overlap
 *               pixels, the last tile on each axis ending at the frame edge (no tiling: N = 1)
 *   out       = (padded - lo) * scale,  scale = 1 / (hi - lo), or 0 when hi - lo <= 1e-6
 * lo, hi: the p_low/p_high percentiles of the corrected full-size image, exactly as
 * numpy.percentile(method="linear") (default 1 and 99.8), or min/max, or fixed values.
 * Output float32 or float16 (round to nearest even).
 */
#ifndef IFRT_PREPROCESS_H
#define IFRT_PREPROCESS_H

#include "ifrt/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ifrt_norm_mode { IFRT_NORM_PERCENTILE = 0, IFRT_NORM_MINMAX = 1, IFRT_NORM_FIXED = 2 } ifrt_norm_mode;
typedef enum ifrt_resize_mode { IFRT_RESIZE_NONE = 0, IFRT_RESIZE_BILINEAR = 1, IFRT_RESIZE_AREA = 2 } ifrt_resize_mode;
typedef enum ifrt_pad_mode { IFRT_PAD_ZERO = 0, IFRT_PAD_EDGE = 1, IFRT_PAD_REFLECT = 2 } ifrt_pad_mode;

typedef struct ifrt_preprocess_options {
  int64_t channel;          /* 0 */
  const float* dark;        /* NULL, or packed float32 of the image's height x width */
  const float* flat;        /* NULL, or packed float32 gain (mean ~1), divides */
  ifrt_norm_mode norm;      /* IFRT_NORM_PERCENTILE */
  double p_low, p_high;     /* 1.0, 99.8 */
  double lo, hi;            /* IFRT_NORM_FIXED range: 0, 1 */
  ifrt_resize_mode resize;  /* IFRT_RESIZE_NONE */
  int64_t out_height;       /* resize target, 0: keep */
  int64_t out_width;
  int64_t pad_multiple;     /* 32 */
  ifrt_pad_mode pad;        /* IFRT_PAD_REFLECT */
  int64_t tile_height;      /* 0: no tiling */
  int64_t tile_width;
  int64_t tile_overlap;     /* 0 */
  ifrt_dtype out_dtype;     /* IFRT_DTYPE_FLOAT32 or IFRT_DTYPE_FLOAT16 */
} ifrt_preprocess_options;

typedef struct ifrt_preprocess_shape {
  int64_t batch, height, width; /* output tensor [batch, 1, height, width] */
  int64_t tiles_y, tiles_x;     /* batch = tiles_y * tiles_x */
  int64_t frame_height, frame_width;
  int64_t resized_height, resized_width;
  size_t bytes; /* output size */
} ifrt_preprocess_shape;

/* Fills `options` with the defaults above. */
IFRT_API void ifrt_preprocess_options_init(ifrt_preprocess_options* options);

/* Output geometry; options may be NULL (defaults). */
IFRT_API ifrt_status ifrt_preprocess_shape_of(const ifrt_image* image, const ifrt_preprocess_options* options,
                                              ifrt_preprocess_shape* shape);

/* CPU path, host memory: writes shape.bytes to `out` (out_bytes must be at least that, and clear of the
 * image, dark and flat buffers) and the range used to lo and hi (either may be NULL). Multithreaded;
 * returns when done. */
IFRT_API ifrt_status ifrt_preprocess(const ifrt_image* image, const ifrt_preprocess_options* options, void* out,
                                     size_t out_bytes, double* lo, double* hi);

/* CUDA path: image->data, options->dark/flat and out are device memory; enqueued on `cuda_stream`
 * (a cudaStream_t, NULL = default stream) without synchronizing. The range stays on the device;
 * ifrt_preprocess_cuda_range copies it to lo and hi after synchronizing the stream, and refuses
 * (IFRT_ERR_INVALID_ARGUMENT) a frame with non-finite pixels as ifrt_preprocess does. A workspace
 * (histograms, the range, a pinned word for the non-finite flag) is kept per thread, current device and
 * stream; the first call there allocates it (cudaMallocHost may synchronize the device). While the
 * stream is being captured into a CUDA graph that first call is refused (IFRT_ERR_INVALID_ARGUMENT)
 * instead of breaking the capture: make one call on the thread and stream before capturing (a warm-up),
 * and before timing. IFRT_ERR_UNSUPPORTED without CUDA in the build. */
IFRT_API ifrt_status ifrt_preprocess_cuda(const ifrt_image* image, const ifrt_preprocess_options* options, void* out,
                                          size_t out_bytes, void* cuda_stream);
IFRT_API ifrt_status ifrt_preprocess_cuda_range(void* cuda_stream, double* lo, double* hi);

/* As ifrt_preprocess_cuda for a frame in host memory (a camera buffer): the frame is copied into a
 * pinned staging buffer kept per thread, current device and stream, uploaded asynchronously, then preprocessed on
 * the stream. The call returns once the frame has been copied out of `image` (the caller may reuse
 * it); it waits only when the previous upload from the same staging buffer is still in flight, and when the
 * staging buffer is first made or grown for a larger frame (pinned allocation synchronizes the device).
 * Making or growing it is refused while the stream is being captured, as above: warm up with the
 * largest frame first. */
IFRT_API ifrt_status ifrt_preprocess_cuda_host(const ifrt_image* image, const ifrt_preprocess_options* options,
                                               void* out, size_t out_bytes, void* cuda_stream);

#ifdef __cplusplus
}
#endif

#endif /* IFRT_PREPROCESS_H */
