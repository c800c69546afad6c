// Preprocess: camera frame -> model input, NCHW float32 or float16 (C = 1).
//
// For every output element (tile n, row y, column x):
//   frame position  (fy, fx) = (tile_origin_y(n) + y, tile_origin_x(n) + x)
//   resized sample  (ry, rx) = pad_index(fy), pad_index(fx)        (resample.h; zero padding -> 0)
//   source value    v = resample over corrected pixels  (raw - dark) / flat  of channel `channel`
//   output          (v - lo) * scale                                (normalize.h)
// lo/scale come from the image (percentiles or min-max of the corrected source pixels) or are fixed.
// The frame is the resized image padded at the bottom/right to a multiple of pad_multiple; with tiling
// off it is one tile. The CPU path is preprocess(); the CUDA path (cuda/kernels.h) runs the same
// per-pixel functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/image.h"
#include "core/normalize.h"
#include "core/resample.h"

namespace ifrt {

struct PreprocessOptions {
  int64_t channel = 0;          // channel picked from H x W x C input
  const float* dark = nullptr;  // optional dark frame, packed float32 of the input's H x W
  const float* flat = nullptr;  // optional flat field (gain, divide; mean ~1), packed float32 H x W
  NormSpec norm;
  ResizeMode resize = ResizeMode::None;
  int64_t out_height = 0;  // resize target; 0 keeps the input size
  int64_t out_width = 0;
  int64_t pad_multiple = 32;  // 1 disables padding
  PadMode pad = PadMode::Reflect;
  int64_t tile_height = 0;  // 0: no tiling (one tile = the whole frame)
  int64_t tile_width = 0;
  int64_t tile_overlap = 0;
  DType out_dtype = DType::F32;  // F32 or F16
};

// Output geometry, validated.
struct PreprocessPlan {
  int64_t src_height = 0, src_width = 0;
  int64_t resized_height = 0, resized_width = 0;
  int64_t frame_height = 0, frame_width = 0;
  int64_t tile_height = 0, tile_width = 0, tile_overlap = 0;
  int64_t tiles_y = 1, tiles_x = 1;
  int64_t batch() const { return tiles_y * tiles_x; }
  int64_t elements() const { return batch() * tile_height * tile_width; }
};

// Validates options against the image; throws Error(InvalidArgument) naming the bad value.
PreprocessPlan plan_preprocess(const ImageView& image, const PreprocessOptions& options);

// Output bytes for the plan and dtype.
size_t preprocess_bytes(const PreprocessPlan& plan, DType out_dtype);

// Checks `out` for a preprocess of the checked `image` (CPU and CUDA paths alike): not null, at least the
// plan's bytes, and clear of the bytes of the image, dark frame and flat field, which the kernels read
// while they write. Returns the plan.
PreprocessPlan checked_output(const ImageView& image, const PreprocessOptions& options, const void* out,
                              size_t out_bytes);

// CPU path: writes plan.elements() values to `out` (host memory, out_bytes checked) and returns the
// normalization range used. Multithreaded over output rows.
NormRange preprocess(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes);

// The same with a known range (the second half of preprocess()).
void preprocess_with_range(const ImageView& image, const PreprocessOptions& options, const NormRange& range,
                           void* out, size_t out_bytes);

}  // namespace ifrt
