// ifrt::trt::Engine: a TensorRT engine ready for inference, loaded from `model.engine` (refused with
// the reason when its sidecar does not match this GPU and TensorRT) or built from ONNX on first use
// and cached. This header names no TensorRT or CUDA type, so the C ABI and the Python module include
// it without TensorRT headers; it is compiled only when ifrt is built with TensorRT.
//
// Thread safety: after creation, infer() and enqueue() may be called from any number of threads at
// once. Each call leases one execution context from a pool; calls beyond the pool size wait for a
// context to come back. TensorRT lets contexts run concurrently only on distinct optimization
// profiles, so an engine with dynamic shapes gets one context per profile (build with
// BuildOptions::concurrency > 1 for more), and a static-shape engine gets EngineOptions::contexts.
// A FramePipeline keeps one context for its life: a call only its contexts could serve fails
// (InvalidArgument) instead of waiting forever. Creating and destroying an Engine is not concurrent
// with calls on it, and its pipelines are destroyed first.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/engine_sidecar.h"

namespace ifrt::trt {

enum class DType { Float32, Float16, BFloat16, Int8, UInt8, Int32, Int64, Bool, Other };
size_t dtype_size(DType dtype);  // bytes per element; 0 for Other
const char* dtype_name(DType dtype);  // "float32", "float16", ...

enum class Memory { Host, Device };

struct TensorInfo {
  std::string name;
  bool is_input = false;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;  // -1 where the dim is dynamic
};

// A dense row-major tensor the caller owns. For inputs, `shape` is the shape of the data; for
// outputs, `capacity_bytes` is the room at `data`, and infer() writes the actual shape back.
struct TensorView {
  std::string name;
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  void* data = nullptr;
  size_t capacity_bytes = 0;
  Memory memory = Memory::Host;
};

struct BuildOptions {
  std::string precision = "fp16";  // fp32 | fp16 | int8 (int8 needs a Q/DQ-quantized ONNX)
  // One entry per optimization profile. Empty: none for an ONNX with static shapes, or the default
  // profile for the contract's dynamic `image` input (trt/builder.h: N 1..4, H and W 32..1024).
  std::vector<OptimizationProfile> profiles;
  int concurrency = 1;           // copies of each profile: how many threads may run one shape range at once
  int64_t workspace_bytes = 0;   // 0: TensorRT's default
  std::string timing_cache_path; // read before building and updated after; "" for none
  int dla_core = -1;             // Jetson DLA core, with GPU fallback for unsupported layers; -1: GPU only
};

struct EngineOptions {
  int device = 0;                     // CUDA device index
  int contexts = 2;                   // pool size for static-shape engines
  bool allow_same_model_gpu = false;  // accept an engine built on another GPU of the same model
};

class FramePipeline;

class Engine {
 public:
  // Loads `engine_path` after checking `engine_path.json`; throws ifrt::Error(TensorRT) with every
  // mismatch when the engine was built for another TensorRT, GPU or file content.
  static std::unique_ptr<Engine> load(const std::string& engine_path, const EngineOptions& options = {});

  // Returns the cached engine for this ONNX, options, TensorRT and GPU from `cache_dir`, or builds
  // it (minutes) and stores `<stem>-<key>.engine` + sidecar atomically. A cached engine that fails
  // its check is rebuilt, and the ifrt log says why.
  static std::unique_ptr<Engine> from_onnx(const std::string& onnx_path, const std::string& cache_dir,
                                           const BuildOptions& build = {}, const EngineOptions& options = {});

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::string& path() const;
  const EngineSidecar& sidecar() const;
  const std::vector<TensorInfo>& tensors() const;
  int pool_size() const;

  // Output name -> shape for these input shapes, so callers can size output buffers.
  std::map<std::string, std::vector<int64_t>> output_shapes(const std::map<std::string, std::vector<int64_t>>& input_shapes);

  // Runs the engine and returns when the outputs are written. Inputs and outputs may be host or
  // device memory (device inputs must already be complete: synchronize the stream that wrote
  // them); every engine input must be given; outputs not asked for are computed into scratch
  // memory and dropped. Makes options.device the calling thread's current CUDA device.
  void infer(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs);

  // Host memory for output `output`, whose shape follows from the inputs (`shape`, output.dtype
  // elements), or nullptr to compute it into scratch memory and drop it. Called from infer's thread
  // while the call holds its execution context.
  using OutputAllocator = std::function<void*(const TensorInfo& output, const std::vector<int64_t>& shape)>;

  // infer() for callers that allocate outputs once their shapes are known (the Python module): the
  // shapes and the run take one context lease, so an engine whose pool has one context serves it
  // and no other call takes the context in between (output_shapes() then infer() leases twice).
  void infer(const std::vector<TensorView>& inputs, const OutputAllocator& allocate);

  // Asynchronous on `cuda_stream` (a cudaStream_t): device memory only, no synchronization; the
  // outputs are ready when the stream reaches this point.
  void enqueue(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs, void* cuda_stream);

  struct Impl;

 private:
  friend class FramePipeline;  // trt/pipeline.h: leases a context and records it into a CUDA graph
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// TensorRT version of the loaded library, "major.minor.patch" (the sidecar's tensorrt_version).
std::string tensorrt_runtime_version();

}  // namespace ifrt::trt
