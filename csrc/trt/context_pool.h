// A pool of TensorRT execution contexts: each infer call leases one, so several threads run one
// engine at once. A context is bound for life to one optimization profile (TensorRT forbids two
// concurrently used contexts on the same profile of a dynamic-shape engine); a lease picks a free
// context whose profile admits the input shapes, or waits until one is returned. A frame pipeline
// pins its context for its life, so a call only pinned contexts could serve fails instead of waiting.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "trt/common.h"

namespace ifrt::trt {

// Device memory that grows on demand and is freed with its owner.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  // Room for `bytes`; growing first waits for `last_use` so no queued work still reads the old memory.
  void* reserve(size_t bytes, cudaEvent_t last_use);
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

struct InputRange {
  std::string name;
  std::vector<int64_t> min, max;
};

struct ContextSlot {
  TrtPtr<nvinfer1::IExecutionContext> context;
  int profile = 0;
  std::vector<InputRange> ranges;       // shapes this slot's profile admits, per input
  cudaStream_t stream = nullptr;        // for synchronous infer()
  cudaEvent_t done = nullptr;           // recorded after each enqueue: the next user waits on it
  std::map<std::string, DeviceBuffer> staging;  // device copies of host tensors and dropped outputs
  bool busy = false;
  bool pinned = false;                  // leased for its holder's life (a frame pipeline)

  ~ContextSlot();
};

class ContextPool {
 public:
  // One context per profile when the engine has dynamic inputs, else `static_contexts` on profile 0.
  ContextPool(nvinfer1::ICudaEngine& engine, int static_contexts, const std::string& engine_name);
  ~ContextPool();

  class Lease {
   public:
    Lease(ContextPool& pool, ContextSlot& slot) : pool_(&pool), slot_(&slot) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), slot_(other.slot_) { other.pool_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (pool_) pool_->release(*slot_);
    }
    ContextSlot& operator*() const { return *slot_; }
    ContextSlot* operator->() const { return slot_; }

   private:
    ContextPool* pool_;
    ContextSlot* slot_;
  };

  // Blocks until a context that admits `shapes` (input name -> shape) is free; throws
  // ifrt::Error(InvalidArgument) listing the profiles when none ever could, and when every one that
  // could is pinned (waiting would never end). `pin`: the caller keeps the context for its life.
  Lease acquire(const std::map<std::string, std::vector<int64_t>>& shapes, bool pin = false);

  int size() const { return static_cast<int>(slots_.size()); }

 private:
  void release(ContextSlot& slot);
  bool admits(const ContextSlot& slot, const std::map<std::string, std::vector<int64_t>>& shapes) const;

  std::string engine_name_;
  std::vector<std::unique_ptr<ContextSlot>> slots_;
  std::mutex mutex_;
  std::condition_variable returned_;
};

}  // namespace ifrt::trt
