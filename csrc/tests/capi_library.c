/* C ABI smoke test in plain C99: version, feature flags, empty last error. */
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
  printf("ifrt %s cuda=%d tensorrt=%d devices=%d\n", ifrt_version(), ifrt_has_cuda(), ifrt_has_tensorrt(),
         ifrt_cuda_device_count());
  return failures == 0 ? 0 : 1;
}
