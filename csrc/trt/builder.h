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

// `profiles` are the expanded profiles (BuildOptions::profiles repeated `concurrency` times); when
// empty and the only dynamic input is the contract's `image`, default_image_range()
// (core/engine_sidecar.h) is used, `concurrency` times. Throws ifrt::Error naming the ONNX
// and what to change.
BuiltPlan build_plan(const std::string& onnx_path, const BuildOptions& options,
                     const std::vector<OptimizationProfile>& profiles);

// BuildOptions::profiles repeated BuildOptions::concurrency times: what the engine is built with.
std::vector<OptimizationProfile> expanded_profiles(const BuildOptions& options);

}  // namespace ifrt::trt
