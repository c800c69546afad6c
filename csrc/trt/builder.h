// ONNX -> serialized TensorRT engine ("plan") on the current device, for TensorRT 10 and 11.
//
// Precision: TensorRT 11 builds every network strongly typed (types come from the ONNX), so fp16
// needs an FP16 ONNX and int8 a Q/DQ-quantized one. TensorRT 10 builds an FP16 ONNX strongly typed
// too, and a fp32 ONNX at fp16 through BuilderFlag::kFP16. No INT8 calibrator is ever used.
#pragma once

#include <string>
#include <vector>

#include "trt/engine.h"

namespace ifrt::trt {

struct BuiltPlan {
  std::vector<char> bytes;
  bool strongly_typed = false;
  std::vector<OptimizationProfile> profiles;  // as built: the default one filled in when none was given
};

// The profile used when none is given and the model's input `image` ([N,C,H,W], the ifrt model
// contract) has dynamic dims: N 1/1/4, H and W 32/512/1024 (min/opt/max), static dims kept. Larger
// frames are tiled by the runtime. Any other dynamic input needs an explicit profile.
constexpr int64_t kDefaultMaxBatch = 4, kDefaultMinSide = 32, kDefaultOptSide = 512, kDefaultMaxSide = 1024;

// `profiles` are the expanded profiles (BuildOptions::profiles repeated `concurrency` times); when
// empty, the default profile above is used, `concurrency` times. Throws ifrt::Error naming the ONNX
// and what to change.
BuiltPlan build_plan(const std::string& onnx_path, const BuildOptions& options,
                     const std::vector<OptimizationProfile>& profiles);

// The default profile for input `image` with dims `dims` (-1 = dynamic).
TensorRange default_image_range(const std::vector<int64_t>& dims);

// BuildOptions::profiles repeated BuildOptions::concurrency times: what the engine is built with.
std::vector<OptimizationProfile> expanded_profiles(const BuildOptions& options);

}  // namespace ifrt::trt
