// ifrt::trt::FramePipeline: preprocess -> engine -> postprocess for frames of one fixed geometry,
// recorded once into a CUDA graph and replayed per frame. A replay is one cudaGraphLaunch in place of
// the preprocessing kernels and memsets, TensorRT's enqueue and the postprocessing kernels, with no
// synchronization anywhere in the chain: the normalization range goes from the preprocessing to the
// denormalization on the device. Built for the model I/O contract (input "image" of one channel,
// N x 1 x H x W, outputs "diagnosis_logits", "blur_logits", "quality", "quality_map", "deblurred";
// float32 I/O); an engine with another input channel count is refused.
//
// Per frame the caller writes the pixels into frame() (device memory, the geometry given at creation,
// packed rows) on its stream, for example with cudaMemcpyAsync from a pinned camera buffer, then
// calls launch(stream). The outputs are device memory, valid once the stream passes the launch:
//   probabilities()       [classes]      softmax of diagnosis_logits at `temperature`
//   blur_probabilities()  [blur_levels]  softmax of blur_logits
//   quality()             [1]
//   quality_map()         [input_height x input_width]  the per-tile map upsampled over the padded frame
//                         (the frame itself is its top-left resized_height x resized_width)
//   deblurred()           [resized_height x resized_width] in the frame's dtype (when `deblur`)
// A pipeline leases one execution context of the engine for its whole life (other threads use the
// rest of the pool). Not thread-safe: one pipeline per stream and thread. This header names no
// TensorRT or CUDA type; the file is compiled only with TensorRT.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/image.h"
#include "core/preprocess.h"
#include "trt/engine.h"

namespace ifrt::trt {

struct PipelineOptions {
  PreprocessOptions preprocess;  // tiling must be off (one tile per frame); dark/flat in device memory
  float temperature = 1.0f;      // diagnosis softmax temperature (the model's calibration)
  bool deblur = true;            // also denormalize the deblurred output into the frame's dtype
};

struct PipelineShapes {
  int64_t classes = 0, blur_levels = 0;
  int64_t map_height = 0, map_width = 0;          // the engine's quality_map
  int64_t input_height = 0, input_width = 0;      // the padded frame the engine sees
  int64_t resized_height = 0, resized_width = 0;  // the frame after resizing, before padding
};

class FramePipeline {
 public:
  // `frame` gives the geometry (dtype, height, width, channels, strides; its data is ignored). Runs
  // the chain once outside the capture (TensorRT's first enqueue may allocate), then records it on
  // `cuda_stream`, which must be a created stream (not the legacy default stream).
  FramePipeline(Engine& engine, const ImageView& frame, const PipelineOptions& options, void* cuda_stream);
  ~FramePipeline();
  FramePipeline(const FramePipeline&) = delete;
  FramePipeline& operator=(const FramePipeline&) = delete;

  void* frame() const;
  size_t frame_bytes() const;
  void launch(void* cuda_stream);

  const PipelineShapes& shapes() const;
  const float* probabilities() const;
  const float* blur_probabilities() const;
  const float* quality() const;
  const float* quality_map() const;
  const void* deblurred() const;  // nullptr without `deblur`

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace ifrt::trt
