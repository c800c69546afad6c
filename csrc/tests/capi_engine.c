/* The engine C ABI as vendor software sees it: NULL handling, defaults, and the error a build
 * without TensorRT (or a missing engine) gives. Runs without a GPU. */
#include <stdio.h>
#include <string.h>

#include "ifrt/ifrt.h"

static int failures = 0;
#define EXPECT(cond)                                                     \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

int main(void) {
  ifrt_engine_options options;
  ifrt_engine* engine = (ifrt_engine*)&options; /* must be reset to NULL on failure */
  ifrt_status status;
  int32_t count = -1;

  ifrt_engine_options_init(&options);
  EXPECT(options.contexts == 2 && options.concurrency == 1 && options.dla_core == -1 && options.precision == NULL);

  status = ifrt_engine_create_from_engine("missing/model.engine", &options, &engine);
  EXPECT(engine == NULL);
  if (ifrt_has_tensorrt()) {
    EXPECT(status == IFRT_ERR_IO);
    EXPECT(strstr(ifrt_last_error(), "missing/model.engine.json: engine sidecar not found") != NULL);
  } else {
    EXPECT(status == IFRT_ERR_UNSUPPORTED);
    EXPECT(strstr(ifrt_last_error(), "built without TensorRT") != NULL);
    EXPECT(strstr(ifrt_last_error(), "JetPack") != NULL);
    status = ifrt_engine_create_from_onnx("model.onnx", "cache", NULL, &engine);
    EXPECT(status == IFRT_ERR_UNSUPPORTED && engine == NULL);
    EXPECT(ifrt_engine_infer(NULL, NULL, 0, NULL, 0) == IFRT_ERR_UNSUPPORTED);
  }
  EXPECT(ifrt_engine_tensor_count(NULL, &count) != IFRT_OK);
  {
    /* Frame pipelines: refused without TensorRT, or for a NULL engine with it; never a crash. */
    ifrt_pipeline* pipeline = (ifrt_pipeline*)&count; /* set to NULL by a failed create */
    ifrt_pipeline_buffers buffers;
    status = ifrt_pipeline_create(NULL, NULL, NULL, 1.0f, 1, NULL, &pipeline);
    EXPECT(status == (ifrt_has_tensorrt() ? IFRT_ERR_INVALID_ARGUMENT : IFRT_ERR_UNSUPPORTED) && pipeline == NULL);
    EXPECT(ifrt_pipeline_buffers_get(NULL, &buffers) != IFRT_OK);
    EXPECT(ifrt_pipeline_launch(NULL, NULL) != IFRT_OK && strlen(ifrt_last_error()) > 0);
    ifrt_pipeline_release(NULL);
  }
  ifrt_engine_release(NULL);
  ifrt_set_log_level(3);
  ifrt_set_log_callback(NULL, NULL);
  return failures == 0 ? 0 : 1;
}
