/* 1,000 create / compute / release cycles of the focus path through the C ABI (with preprocessing
 * and an error on the way), for the leak check: CTest runs it under valgrind when available. */
#include <stdio.h>
#include <stdlib.h>

#include "ifrt/ifrt.h"

int main(void) {
  enum { H = 48, W = 40 };
  static uint8_t frame[H * W];
  int i, failures = 0;
  for (i = 0; i < H * W; ++i) frame[i] = (uint8_t)((i * 37) % 251);
  ifrt_image image = {frame, IFRT_DTYPE_UINT8, H, W, 1, 0, 0};
  ifrt_focus_options options;
  ifrt_focus_options_init(&options);
  options.tile_height = 16;
  options.tile_width = 16;
  for (i = 0; i < 1000; ++i) {
    ifrt_focus* focus = NULL;
    ifrt_focus_metrics global, tiles[9];
    if (ifrt_focus_create(&options, &focus) != IFRT_OK) ++failures;
    if (ifrt_focus_compute(focus, &image, &global, tiles, 9) != IFRT_OK) ++failures;
    if (ifrt_focus_compute(focus, NULL, &global, NULL, 0) != IFRT_ERR_INVALID_ARGUMENT) ++failures;
    if (i % 100 == 0) {
      ifrt_preprocess_shape shape;
      float* tensor;
      ifrt_preprocess_shape_of(&image, NULL, &shape);
      tensor = (float*)malloc(shape.bytes);
      if (ifrt_preprocess(&image, NULL, tensor, shape.bytes, NULL, NULL) != IFRT_OK) ++failures;
      free(tensor);
    }
    ifrt_focus_release(focus);
  }
  printf("1000 cycles, %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
