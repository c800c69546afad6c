// Device timing of the CUDA kernels against a device-to-device copy (for `ifrt bench native`).
#pragma once

#include <cstdint>

namespace ifrt::cuda {

struct KernelTimes {
  double memcpy_ms = 0, memcpy_bytes = 0;          // device-to-device copy of the output size (read + write)
  double preprocess_ms = 0, preprocess_bytes = 0;  // percentile range + normalize; frame read + tensor written
  double normalize_only_ms = 0;                    // fixed range: the single normalize kernel
  double focus_ms = 0, focus_bytes = 0;            // all five metrics, frame read
};

// `frame` is host memory (copied to the device once); medians over `repeat` runs.
KernelTimes bench_kernels(const uint16_t* frame, int64_t height, int64_t width, int repeat);

}  // namespace ifrt::cuda
