// Engine::Impl: what a loaded engine holds, shared by engine.cpp (load, infer) and
// engine_cache.cpp (build from ONNX). Members are declared in the order TensorRT needs them
// destroyed in reverse: contexts, then the engine, then the runtime.
#pragma once

#include <NvInferRuntime.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trt/common.h"
#include "trt/context_pool.h"
#include "trt/engine.h"

namespace ifrt::trt {

struct Engine::Impl {
  std::string path;
  EngineSidecar sidecar;
  int device = 0;
  TrtPtr<nvinfer1::IRuntime> runtime;
  TrtPtr<nvinfer1::ICudaEngine> engine;
  std::vector<TensorInfo> tensors;
  std::optional<ContextPool> pool;

  // Deserializes a plan whose sidecar has already been checked.
  static std::unique_ptr<Impl> open(const std::string& path, const std::vector<char>& plan, EngineSidecar sidecar,
                                    const EngineOptions& options);

  // `allocate` (may be null) gives host memory for the outputs `outputs` does not name.
  void run(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs, cudaStream_t stream, bool wait,
           const Engine::OutputAllocator* allocate = nullptr);
};

// Expectation for an engine about to run on `options.device` with the loaded TensorRT.
SidecarExpectation expectation_here(const EngineOptions& options);

// The whole file, or ifrt::Error(Io) naming it.
std::vector<char> read_binary(const std::string& path);

}  // namespace ifrt::trt
