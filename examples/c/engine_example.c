/* ifrt C ABI example: run the ifrt model through TensorRT from vendor software.
 *
 *   engine_example MODEL.engine            load an engine built by `ifrt export trt`
 *   engine_example MODEL.onnx CACHE_DIR    build on first use, then load from the cache
 *
 * It lists the engine's tensors, runs one 512x512 frame (already normalized, float32 [1,1,H,W])
 * and prints the focus quality. Without arguments (as CTest runs it) it shows how a missing
 * TensorRT or engine is reported and exits 0. Plain C99, links against libifrt only:
 *
 *   cc engine_example.c -I<prefix>/include -L<prefix>/lib -lifrt -o engine_example
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ifrt/ifrt.h"

enum { SIDE = 512 };

static void print_tensors(const ifrt_engine* engine) {
  int32_t count = 0, i, d, is_input = 0;
  ifrt_engine_tensor info;
  if (ifrt_engine_tensor_count(engine, &count) != IFRT_OK) return;
  for (i = 0; i < count; ++i) {
    if (ifrt_engine_tensor_info(engine, i, &info, &is_input) != IFRT_OK) return;
    printf("  %-6s %-18s [", is_input ? "input" : "output", info.name);
    for (d = 0; d < info.ndim; ++d) printf(d ? ",%lld" : "%lld", (long long)info.shape[d]);
    printf("]\n");
  }
}

static int run_one_frame(ifrt_engine* engine) {
  float* image = (float*)malloc(sizeof(float) * SIDE * SIDE);
  float quality = -1.0f;
  ifrt_engine_tensor input, output;
  ifrt_status status;
  int i;
  if (!image) return 1;
  for (i = 0; i < SIDE * SIDE; ++i) image[i] = (float)((i * 7919) % 1000) / 1000.0f; /* stand-in frame */

  memset(&input, 0, sizeof(input));
  input.name = "image";
  input.dtype = IFRT_ENGINE_FLOAT32;
  input.ndim = 4;
  input.shape[0] = 1;
  input.shape[1] = 1;
  input.shape[2] = SIDE;
  input.shape[3] = SIDE;
  input.data = image;
  input.memory = IFRT_ENGINE_HOST;

  memset(&output, 0, sizeof(output)); /* only `quality` is wanted; the other outputs are dropped */
  output.name = "quality";
  output.dtype = IFRT_ENGINE_FLOAT32;
  output.data = &quality;
  output.capacity_bytes = sizeof(quality);
  output.memory = IFRT_ENGINE_HOST;

  status = ifrt_engine_infer(engine, &input, 1, &output, 1);
  free(image);
  if (status != IFRT_OK) {
    fprintf(stderr, "inference failed (%d): %s\n", (int)status, ifrt_last_error());
    return 1;
  }
  printf("quality = %.3f (1 = in focus)\n", quality);
  return 0;
}

int main(int argc, char** argv) {
  ifrt_engine* engine = NULL;
  ifrt_engine_options options;
  ifrt_status status;
  int result;

  if (argc < 2) {
    /* What vendor software sees before it has an engine: a status and a message, never a crash. */
    status = ifrt_engine_create_from_engine("no-such-model.engine", NULL, &engine);
    printf("TensorRT executor built in: %s\n", ifrt_has_tensorrt() ? "yes" : "no");
    printf("loading a missing engine -> status %d: %s\n", (int)status, ifrt_last_error());
    if (status == IFRT_OK || engine != NULL) return 1;
    return (status == IFRT_ERR_UNSUPPORTED || status == IFRT_ERR_IO) ? 0 : 1;
  }

  ifrt_engine_options_init(&options);
  options.contexts = 2; /* two threads may call ifrt_engine_infer at once */
  if (argc >= 3) {
    options.precision = "fp16";
    status = ifrt_engine_create_from_onnx(argv[1], argv[2], &options, &engine);
  } else {
    status = ifrt_engine_create_from_engine(argv[1], &options, &engine);
  }
  if (status != IFRT_OK) {
    fprintf(stderr, "cannot open %s (%d): %s\n", argv[1], (int)status, ifrt_last_error());
    return 1;
  }
  print_tensors(engine);
  result = run_one_frame(engine);
  ifrt_engine_release(engine);
  return result;
}
