/* Several threads compute through the C ABI at once and get exactly the answers of one thread:
 * ifrt_preprocess on one shared frame and options (tiled, float16 and float32), ifrt_focus_compute
 * with one handle per thread (as ifrt/focus.h asks), and a thread-local ifrt_last_error() that
 * another thread's failure never overwrites. Run under the sanitizers by .ci/sanitizers. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ifrt/ifrt.h"

enum { H = 150, W = 130, THREADS = 4, ROUNDS = 25, TILES = 9 /* 3 x 3 tiles of 64 x 64 */ };

static uint16_t frame[H * W];
static ifrt_image image;
static ifrt_preprocess_options options[2]; /* [0] float32 untiled, [1] float16 tiled */
static ifrt_preprocess_shape shapes[2];
static unsigned char* expected_tensor[2];
static ifrt_focus_options focus_options;
static ifrt_focus_metrics expected_global, expected_tiles[TILES];

typedef struct worker {
  int index;
  int failures;
} worker;

static void* run(void* arg) {
  worker* self = (worker*)arg;
  unsigned char* tensor[2];
  ifrt_focus* focus = NULL;
  int k, round;
  for (k = 0; k < 2; ++k) tensor[k] = (unsigned char*)malloc(shapes[k].bytes);
  if (ifrt_focus_create(&focus_options, &focus) != IFRT_OK) ++self->failures;
  for (round = 0; round < ROUNDS; ++round) {
    ifrt_focus_metrics global, tiles[TILES];
    double lo = 0, hi = 0;
    k = (round + self->index) % 2;
    if (ifrt_preprocess(&image, &options[k], tensor[k], shapes[k].bytes, &lo, &hi) != IFRT_OK ||
        memcmp(tensor[k], expected_tensor[k], shapes[k].bytes) != 0) {
      fprintf(stderr, "thread %d round %d: preprocess differs from the single-thread result\n", self->index, round);
      ++self->failures;
    }
    if (ifrt_focus_compute(focus, &image, &global, tiles, TILES) != IFRT_OK ||
        memcmp(&global, &expected_global, sizeof global) != 0 || memcmp(tiles, expected_tiles, sizeof tiles) != 0) {
      fprintf(stderr, "thread %d round %d: focus differs from the single-thread result\n", self->index, round);
      ++self->failures;
    }
    /* Odd threads fail on purpose; the message stays with them and even threads keep "". */
    if (self->index % 2) {
      if (ifrt_focus_compute(focus, NULL, &global, NULL, 0) != IFRT_ERR_INVALID_ARGUMENT ||
          strstr(ifrt_last_error(), "image") == NULL) {
        fprintf(stderr, "thread %d: expected an error naming the image, got '%s'\n", self->index, ifrt_last_error());
        ++self->failures;
      }
    } else if (strcmp(ifrt_last_error(), "") != 0) {
      fprintf(stderr, "thread %d: another thread's error leaked in: '%s'\n", self->index, ifrt_last_error());
      ++self->failures;
    }
  }
  ifrt_focus_release(focus);
  for (k = 0; k < 2; ++k) free(tensor[k]);
  return NULL;
}

int main(void) {
  pthread_t threads[THREADS];
  worker workers[THREADS];
  ifrt_focus* focus = NULL;
  int i, k, failures = 0;
  for (i = 0; i < H * W; ++i) frame[i] = (uint16_t)((i % W) * 97 + (i / W) * 31 + (i * 7919) % 613);
  image.data = frame;
  image.dtype = IFRT_DTYPE_UINT16;
  image.height = H;
  image.width = W;
  image.channels = 1;
  for (k = 0; k < 2; ++k) ifrt_preprocess_options_init(&options[k]);
  options[1].tile_height = 96;
  options[1].tile_width = 96;
  options[1].tile_overlap = 32;
  options[1].out_dtype = IFRT_DTYPE_FLOAT16;
  ifrt_focus_options_init(&focus_options);
  focus_options.tile_height = 64;
  focus_options.tile_width = 64;

  /* The single-thread answers. */
  for (k = 0; k < 2; ++k) {
    if (ifrt_preprocess_shape_of(&image, &options[k], &shapes[k]) != IFRT_OK) return 1;
    expected_tensor[k] = (unsigned char*)malloc(shapes[k].bytes);
    if (ifrt_preprocess(&image, &options[k], expected_tensor[k], shapes[k].bytes, NULL, NULL) != IFRT_OK) return 1;
  }
  if (ifrt_focus_create(&focus_options, &focus) != IFRT_OK) return 1;
  if (ifrt_focus_compute(focus, &image, &expected_global, expected_tiles, TILES) != IFRT_OK) return 1;
  ifrt_focus_release(focus);

  for (i = 0; i < THREADS; ++i) {
    workers[i].index = i;
    workers[i].failures = 0;
    if (pthread_create(&threads[i], NULL, run, &workers[i]) != 0) return 1;
  }
  for (i = 0; i < THREADS; ++i) {
    pthread_join(threads[i], NULL);
    failures += workers[i].failures;
  }
  for (k = 0; k < 2; ++k) free(expected_tensor[k]);
  printf("%d threads x %d rounds, %d failure(s)\n", THREADS, ROUNDS, failures);
  return failures ? 1 : 0;
}
