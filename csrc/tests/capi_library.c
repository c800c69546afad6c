/* C ABI smoke test in plain C99: version (header against library), feature flags, the last error
 * (set by a failed call, cleared by the next call that returns a status). */
#include <stdio.h>
#include <string.h>

#include "ifrt/ifrt.h"

int main(void) {
  int failures = 0;
  if (strlen(ifrt_version()) == 0) { fprintf(stderr, "empty version\n"); ++failures; }
  if (strcmp(ifrt_last_error(), "") != 0) { fprintf(stderr, "last error not empty at start\n"); ++failures; }
  if (ifrt_has_cuda() != 0 && ifrt_has_cuda() != 1) { fprintf(stderr, "bad has_cuda\n"); ++failures; }
  if (ifrt_has_tensorrt() == 1 && ifrt_has_cuda() == 0) { fprintf(stderr, "TensorRT without CUDA\n"); ++failures; }
  if (ifrt_cuda_device_count() < 0) { fprintf(stderr, "negative device count\n"); ++failures; }
  if (ifrt_version_number() != IFRT_VERSION_NUMBER) {
    fprintf(stderr, "library version %d, header %d\n", ifrt_version_number(), IFRT_VERSION_NUMBER);
    ++failures;
  }
  {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", IFRT_VERSION_MAJOR, IFRT_VERSION_MINOR, IFRT_VERSION_PATCH);
    if (strcmp(ifrt_version(), expected) != 0) {
      fprintf(stderr, "ifrt_version() '%s', header %s\n", ifrt_version(), expected);
      ++failures;
    }
  }
  {
    const float logits[3] = {1.0f, 2.0f, 3.0f};
    float probs[3];
    if (ifrt_softmax(NULL, 1, 3, 1.0f, probs) != IFRT_ERR_INVALID_ARGUMENT || strlen(ifrt_last_error()) == 0) {
      fprintf(stderr, "a failed call left no message\n");
      ++failures;
    }
    if (ifrt_has_cuda() >= 0 && strlen(ifrt_last_error()) == 0) {
      fprintf(stderr, "a call without a status cleared the message\n");
      ++failures;
    }
    if (ifrt_softmax(logits, 1, 3, 1.0f, probs) != IFRT_OK || strcmp(ifrt_last_error(), "") != 0) {
      fprintf(stderr, "a successful call kept the message '%s'\n", ifrt_last_error());
      ++failures;
    }
  }
  printf("ifrt %s cuda=%d tensorrt=%d devices=%d\n", ifrt_version(), ifrt_has_cuda(), ifrt_has_tensorrt(),
         ifrt_cuda_device_count());
  return failures == 0 ? 0 : 1;
}
