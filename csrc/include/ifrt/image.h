/* ifrt C ABI: image descriptors shared by the preprocessing, postprocessing and focus calls.
 *
 * An ifrt_image describes caller memory in place (a camera buffer, a crop of one): pixel (y, x),
 * channel c is at  data + y*row_stride + x*pixel_stride + c*element_size  (strides in bytes).
 * Every call validates the descriptor: a NULL data pointer, an unknown dtype, a zero or negative
 * size, or strides that are too small or not a multiple of the element size give
 * IFRT_ERR_INVALID_ARGUMENT and a message naming the field.
 */
/* Outside the guard: ifrt.h includes the topic headers, which need this one complete. */
#include "ifrt/ifrt.h"

#ifndef IFRT_IMAGE_H
#define IFRT_IMAGE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ifrt_dtype {
  IFRT_DTYPE_UINT8 = 1,
  IFRT_DTYPE_UINT16 = 2,
  IFRT_DTYPE_FLOAT32 = 3,
  IFRT_DTYPE_FLOAT16 = 4 /* outputs (model input tensors) and model outputs only */
} ifrt_dtype;

typedef struct ifrt_image {
  const void* data;
  ifrt_dtype dtype;
  int64_t height;
  int64_t width;
  int64_t channels;     /* 1 for H x W; C for interleaved H x W x C */
  int64_t row_stride;   /* bytes between rows; 0: width * pixel_stride */
  int64_t pixel_stride; /* bytes between pixels; 0: channels * element size */
} ifrt_image;

#ifdef __cplusplus
}
#endif

#endif /* IFRT_IMAGE_H */
