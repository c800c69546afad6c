/* ifrt C ABI example: focus metrics, preprocessing and postprocessing on a camera frame, and what
 * each error looks like. Plain C99, links against libifrt only; CTest runs it (exit status 0 = all good).
 *
 *   cc focus_example.c -I<prefix>/include -L<prefix>/lib -lifrt -o focus_example
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ifrt/ifrt.h"

enum { H = 96, W = 128, PITCH = 136 }; /* camera rows padded to 136 pixels */

static int failures = 0;

static void expect_status(const char* what, ifrt_status got, ifrt_status want, const char* message_part) {
  const char* message = ifrt_last_error();
  if (got != want || (message_part && !strstr(message, message_part))) {
    fprintf(stderr, "FAIL %s: status %d (want %d), message \"%s\"\n", what, (int)got, (int)want, message);
    ++failures;
  } else {
    printf("ok   %-34s -> %d \"%s\"\n", what, (int)got, message);
  }
}

/* A 16-bit frame with fine structure (sharp) or a smoothed copy of it (blurred). */
static void make_frame(uint16_t* frame, int blurred) {
  int y, x;
  for (y = 0; y < H; ++y)
    for (x = 0; x < PITCH; ++x) frame[y * PITCH + x] = (uint16_t)(1000 + ((x / 2 + y / 2) % 2) * 3000 + (x * 7 + y * 13) % 97);
  if (blurred) {
    uint16_t* copy = (uint16_t*)malloc(sizeof(uint16_t) * H * PITCH);
    memcpy(copy, frame, sizeof(uint16_t) * H * PITCH);
    for (y = 1; y < H - 1; ++y)
      for (x = 1; x < W - 1; ++x) {
        unsigned sum = 0;
        int dy, dx;
        for (dy = -1; dy <= 1; ++dy)
          for (dx = -1; dx <= 1; ++dx) sum += copy[(y + dy) * PITCH + x + dx];
        frame[y * PITCH + x] = (uint16_t)(sum / 9);
      }
    free(copy);
  }
}

/* An H x W one-channel ifrt_image over caller memory, rows `row_stride` bytes apart: no copy is made. */
static ifrt_image describe(const void* data, ifrt_dtype dtype, int64_t row_stride) {
  ifrt_image image;
  memset(&image, 0, sizeof(image));
  image.data = data;
  image.dtype = dtype;
  image.height = H;
  image.width = W;
  image.channels = 1;
  image.row_stride = row_stride;
  return image;
}

int main(void) {
  static uint16_t sharp[H * PITCH], blurred[H * PITCH];
  ifrt_image image;
  ifrt_focus_options focus_options;
  ifrt_focus* focus = NULL;
  ifrt_focus_metrics global_sharp, global_blurred, tiles[12];
  int64_t tiles_y = 0, tiles_x = 0;
  ifrt_preprocess_options options;
  ifrt_preprocess_shape shape;
  float* tensor;
  double lo = 0, hi = 0;

  printf("ifrt %s\n", ifrt_version());
  make_frame(sharp, 0);
  make_frame(blurred, 1);

  /* The camera buffer is used in place: 2-byte pixels, rows PITCH pixels apart. */
  image = describe(sharp, IFRT_DTYPE_UINT16, PITCH * (int64_t)sizeof(uint16_t));

  /* ---- focus metrics, global and on a 3 x 4 grid of 32-pixel tiles ---- */
  ifrt_focus_options_init(&focus_options);
  focus_options.tile_height = 32;
  focus_options.tile_width = 32;
  expect_status("ifrt_focus_create", ifrt_focus_create(&focus_options, &focus), IFRT_OK, "");
  expect_status("ifrt_focus_tile_grid", ifrt_focus_tile_grid(focus, H, W, &tiles_y, &tiles_x), IFRT_OK, "");
  if (tiles_y != 3 || tiles_x != 4) { fprintf(stderr, "FAIL tile grid %lldx%lld\n", (long long)tiles_y, (long long)tiles_x); ++failures; }
  expect_status("ifrt_focus_compute (sharp)", ifrt_focus_compute(focus, &image, &global_sharp, tiles, 12), IFRT_OK, "");
  image.data = blurred;
  expect_status("ifrt_focus_compute (blurred)", ifrt_focus_compute(focus, &image, &global_blurred, NULL, 0), IFRT_OK, "");
  printf("                      sharp        blurred\n");
  printf("var_laplacian  %12.1f %12.1f\n", global_sharp.var_laplacian, global_blurred.var_laplacian);
  printf("tenengrad      %12.1f %12.1f\n", global_sharp.tenengrad, global_blurred.tenengrad);
  printf("brenner        %12.1f %12.1f\n", global_sharp.brenner, global_blurred.brenner);
  printf("norm. variance %12.3f %12.3f\n", global_sharp.normalized_variance, global_blurred.normalized_variance);
  printf("vollath F4     %12.1f %12.1f\n", global_sharp.vollath_f4, global_blurred.vollath_f4);
  if (!(global_blurred.var_laplacian < global_sharp.var_laplacian && global_blurred.tenengrad < global_sharp.tenengrad &&
        global_blurred.brenner < global_sharp.brenner)) {
    fprintf(stderr, "FAIL blurring did not lower the focus metrics\n");
    ++failures;
  }
  printf("tile (0,0) var_laplacian %.1f, tile (2,3) %.1f\n", tiles[0].var_laplacian, tiles[11].var_laplacian);

  /* ---- preprocessing into the model input tensor ---- */
  image.data = sharp;
  ifrt_preprocess_options_init(&options); /* percentiles 1..99.8, pad to 32, float32 */
  expect_status("ifrt_preprocess_shape_of", ifrt_preprocess_shape_of(&image, &options, &shape), IFRT_OK, "");
  printf("model input [%lld, 1, %lld, %lld], %zu bytes\n", (long long)shape.batch, (long long)shape.height,
         (long long)shape.width, shape.bytes);
  tensor = (float*)malloc(shape.bytes);
  expect_status("ifrt_preprocess", ifrt_preprocess(&image, &options, tensor, shape.bytes, &lo, &hi), IFRT_OK, "");
  printf("normalization range %.3f .. %.3f, first value %.4f\n", lo, hi, tensor[0]);
  if (!(lo >= 1000 && hi <= 4096 && lo < hi)) { fprintf(stderr, "FAIL range\n"); ++failures; }

  /* ---- postprocessing: what a model's outputs become ---- */
  {
    const float logits[4] = {2.0f, 0.0f, 0.0f, 0.0f}; /* one image, four classes */
    float probs[4], quality_map[12], upsampled[H * W], blended[H * W];
    uint16_t restored[H * W];
    float* tile_tensor;
    ifrt_image normalized;
    ifrt_preprocess_options tiled;
    ifrt_preprocess_shape tiles_shape;
    int64_t i, worst = 0;

    expect_status("ifrt_softmax", ifrt_softmax(logits, 1, 4, 1.0f, probs), IFRT_OK, "");
    if (!(probs[0] > 0.7f && probs[0] < 0.72f)) { fprintf(stderr, "FAIL softmax %f\n", probs[0]); ++failures; }

    /* The 3 x 4 quality map (one value per 32 x 32 tile) up to the frame's size, for an overlay. */
    for (i = 0; i < 12; ++i) quality_map[i] = (float)i / 11.0f;
    expect_status("ifrt_upsample_quality_map", ifrt_upsample_quality_map(quality_map, 3, 4, upsampled, H, W), IFRT_OK, "");
    if (upsampled[0] != quality_map[0] || upsampled[H * W - 1] != quality_map[11]) { /* the corners keep their cell */
      fprintf(stderr, "FAIL upsampled corners\n");
      ++failures;
    }

    /* The deblurred output comes back in the input's units and dtype: here the preprocessed frame itself,
     * viewed through an ifrt_image (float32 rows of the padded tensor). */
    normalized = describe(tensor, IFRT_DTYPE_FLOAT32, shape.width * (int64_t)sizeof(float));
    expect_status("ifrt_denormalize", ifrt_denormalize(&normalized, lo, hi, restored, IFRT_DTYPE_UINT16), IFRT_OK, "");
    for (i = 0; i < (int64_t)H * W; ++i) {
      int64_t d = (int64_t)restored[i] - (int64_t)sharp[(i / W) * PITCH + i % W];
      if (d < 0) d = -d;
      if (d > worst) worst = d;
    }
    printf("denormalized round trip: largest difference %lld count(s)\n", (long long)worst);
    if (worst > 1) { fprintf(stderr, "FAIL round trip\n"); ++failures; }

    /* Tiles cut by ifrt_preprocess (a frame larger than the model input) blend back without seams. */
    ifrt_preprocess_options_init(&tiled);
    tiled.tile_height = 64;
    tiled.tile_width = 64;
    tiled.tile_overlap = 32;
    expect_status("ifrt_preprocess_shape_of (tiled)", ifrt_preprocess_shape_of(&image, &tiled, &tiles_shape), IFRT_OK, "");
    tile_tensor = (float*)malloc(tiles_shape.bytes);
    expect_status("ifrt_preprocess (tiled)", ifrt_preprocess(&image, &tiled, tile_tensor, tiles_shape.bytes, NULL, NULL), IFRT_OK, "");
    expect_status("ifrt_blend_tiles", ifrt_blend_tiles(tile_tensor, tiles_shape.frame_height, tiles_shape.frame_width, 64, 64, 32,
                                                        blended, H, W), IFRT_OK, "");
    for (i = 0, worst = 0; i < (int64_t)H * W; ++i) {
      float d = blended[i] - tensor[(i / W) * shape.width + i % W];
      if (d > 1e-5f || d < -1e-5f) worst = 1;
    }
    printf("%lld tiles blended back: %s\n", (long long)tiles_shape.batch, worst ? "seams" : "equal to the untiled frame");
    if (worst) { fprintf(stderr, "FAIL blend\n"); ++failures; }
    expect_status("blend: overlap >= tile", ifrt_blend_tiles(tile_tensor, tiles_shape.frame_height, tiles_shape.frame_width, 64, 64,
                                                              64, blended, H, W), IFRT_ERR_INVALID_ARGUMENT, "overlap");
    free(tile_tensor);
  }

  /* ---- every error path says what is wrong ---- */
  expect_status("NULL image", ifrt_focus_compute(focus, NULL, &global_sharp, NULL, 0), IFRT_ERR_INVALID_ARGUMENT, "image is NULL");
  image.data = NULL;
  expect_status("NULL pixel data", ifrt_focus_compute(focus, &image, &global_sharp, NULL, 0), IFRT_ERR_INVALID_ARGUMENT, "data pointer is null");
  image.data = sharp;
  image.dtype = (ifrt_dtype)42;
  expect_status("wrong dtype", ifrt_focus_compute(focus, &image, &global_sharp, NULL, 0), IFRT_ERR_INVALID_ARGUMENT, "dtype code 42");
  image.dtype = IFRT_DTYPE_FLOAT16;
  expect_status("float16 input", ifrt_preprocess(&image, &options, tensor, shape.bytes, NULL, NULL), IFRT_ERR_INVALID_ARGUMENT, "not supported");
  image.dtype = IFRT_DTYPE_UINT16;
  image.width = 0;
  expect_status("zero size", ifrt_focus_compute(focus, &image, &global_sharp, NULL, 0), IFRT_ERR_INVALID_ARGUMENT, "is empty");
  image.width = W;
  image.row_stride = W; /* bytes: half a row of uint16 */
  expect_status("bad stride", ifrt_focus_compute(focus, &image, &global_sharp, NULL, 0), IFRT_ERR_INVALID_ARGUMENT, "row stride");
  image.row_stride = PITCH * sizeof(uint16_t);
  expect_status("too few tile slots", ifrt_focus_compute(focus, &image, &global_sharp, tiles, 2), IFRT_ERR_INVALID_ARGUMENT, "capacity 2");
  expect_status("output too small", ifrt_preprocess(&image, &options, tensor, 16, NULL, NULL), IFRT_ERR_INVALID_ARGUMENT, "needs");
  expect_status("NULL output", ifrt_preprocess(&image, &options, NULL, shape.bytes, NULL, NULL), IFRT_ERR_INVALID_ARGUMENT, "out is NULL");
  options.p_low = 99.0;
  options.p_high = 1.0;
  expect_status("reversed percentiles", ifrt_preprocess(&image, &options, tensor, shape.bytes, NULL, NULL), IFRT_ERR_INVALID_ARGUMENT, "p_low");
  expect_status("NULL handle out", ifrt_focus_create(&focus_options, NULL), IFRT_ERR_INVALID_ARGUMENT, "focus is NULL");
  expect_status("softmax temperature 0", ifrt_softmax((const float*)tensor, 1, 2, 0.0f, tensor), IFRT_ERR_INVALID_ARGUMENT, "temperature");
  if (!ifrt_has_cuda()) {
    expect_status("CUDA path without CUDA", ifrt_preprocess_cuda(&image, &options, tensor, shape.bytes, NULL), IFRT_ERR_UNSUPPORTED, "without CUDA");
  }
  {
    float with_nan[H * W];
    int64_t i;
    ifrt_image nan_image;
    for (i = 0; i < (int64_t)H * W; ++i) with_nan[i] = (float)(i % 7);
    with_nan[5 * W + 9] = NAN; /* as a failed flat-field division leaves */
    nan_image = describe(with_nan, IFRT_DTYPE_FLOAT32, W * (int64_t)sizeof(float));
    expect_status("NaN pixel", ifrt_focus_compute(focus, &nan_image, &global_sharp, NULL, 0), IFRT_ERR_INVALID_ARGUMENT,
                  "pixel (5, 9) is not finite");
  }
  expect_status("success clears the last error", ifrt_focus_compute(focus, &image, &global_sharp, NULL, 0), IFRT_OK, "");
  if (strcmp(ifrt_last_error(), "") != 0) { fprintf(stderr, "FAIL last error not cleared\n"); ++failures; }

  free(tensor);
  ifrt_focus_release(focus);
  ifrt_focus_release(NULL);
  printf(failures ? "%d failure(s)\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
