#include "trt/context_pool.h"

#include <NvInfer.h>

#include <algorithm>

#include "trt/logger.h"

namespace ifrt::trt {

DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}

void* DeviceBuffer::reserve(size_t bytes, cudaEvent_t last_use) {
  if (bytes <= bytes_ && data_) return data_;
  if (data_) {
    if (last_use) check_cuda(cudaEventSynchronize(last_use), "waiting for the previous use of a buffer");
    cudaFree(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  check_cuda(cudaMalloc(&data_, bytes > 0 ? bytes : 1), "allocating " + std::to_string(bytes) + " bytes of device memory");
  bytes_ = bytes;
  return data_;
}

ContextSlot::~ContextSlot() {
  if (stream) cudaStreamSynchronize(stream);
  if (done) cudaEventSynchronize(done);
  staging.clear();
  context.reset();
  if (done) cudaEventDestroy(done);
  if (stream) cudaStreamDestroy(stream);
}

ContextPool::ContextPool(nvinfer1::ICudaEngine& engine, int static_contexts, const std::string& engine_name)
    : engine_name_(engine_name) {
  const TensorRTOperation operation;
  std::vector<std::string> inputs;
  bool dynamic = false;
  for (int32_t i = 0; i < engine.getNbIOTensors(); ++i) {
    const char* name = engine.getIOTensorName(i);
    if (engine.getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) continue;
    inputs.push_back(name);
    for (const int64_t d : to_shape(engine.getTensorShape(name))) dynamic = dynamic || d < 0;
  }
  const int count = dynamic ? engine.getNbOptimizationProfiles() : std::max(1, static_contexts);
  for (int i = 0; i < count; ++i) {
    auto slot = std::make_unique<ContextSlot>();
    slot->profile = dynamic ? i : 0;
    check_cuda(cudaStreamCreateWithFlags(&slot->stream, cudaStreamNonBlocking), engine_name + ": creating a stream");
    check_cuda(cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming), engine_name + ": creating an event");
    slot->context.reset(engine.createExecutionContext());
    if (!slot->context) {
      fail(ErrorCode::TensorRT, engine_name + ": cannot create execution context " + std::to_string(i + 1) + " of " +
                                    std::to_string(count) + " (out of device memory?)" + tensorrt_says());
    }
    if (dynamic && !slot->context->setOptimizationProfileAsync(slot->profile, slot->stream)) {
      fail(ErrorCode::TensorRT, engine_name + ": cannot select optimization profile " + std::to_string(slot->profile) +
                                    tensorrt_says());
    }
    check_cuda(cudaStreamSynchronize(slot->stream), engine_name + ": selecting a profile");
    for (const auto& name : inputs) {
      InputRange range{name, {}, {}};
      if (dynamic) {
        range.min = to_shape(engine.getProfileShape(name.c_str(), slot->profile, nvinfer1::OptProfileSelector::kMIN));
        range.max = to_shape(engine.getProfileShape(name.c_str(), slot->profile, nvinfer1::OptProfileSelector::kMAX));
      } else {
        range.min = range.max = to_shape(engine.getTensorShape(name.c_str()));
      }
      slot->ranges.push_back(range);
    }
    slots_.push_back(std::move(slot));
  }
}

ContextPool::~ContextPool() = default;

bool ContextPool::admits(const ContextSlot& slot, const std::map<std::string, std::vector<int64_t>>& shapes) const {
  for (const auto& range : slot.ranges) {
    const auto it = shapes.find(range.name);
    if (it == shapes.end() || it->second.size() != range.min.size()) return false;
    for (size_t d = 0; d < range.min.size(); ++d) {
      if (it->second[d] < range.min[d] || it->second[d] > range.max[d]) return false;
    }
  }
  return true;
}

ContextPool::Lease ContextPool::acquire(const std::map<std::string, std::vector<int64_t>>& shapes, bool pin) {
  bool possible = false;
  for (const auto& slot : slots_) possible = possible || admits(*slot, shapes);
  if (!possible) {
    std::string given, ranges;
    for (const auto& [name, shape] : shapes) given += (given.empty() ? "" : ", ") + name + " " + shape_string(shape);
    for (const auto& slot : slots_) {
      ranges += "\n  profile " + std::to_string(slot->profile) + ":";
      for (const auto& r : slot->ranges) ranges += " " + r.name + " " + shape_string(r.min) + " .. " + shape_string(r.max);
    }
    fail(ErrorCode::InvalidArgument, engine_name_ + ": input " + given +
                                         " is outside every optimization profile of the engine (rebuild with a wider "
                                         "profile, or tile the image):" + ranges);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    bool will_return = false;
    for (auto& slot : slots_) {
      if (!admits(*slot, shapes)) continue;
      if (!slot->busy) {
        slot->busy = true;
        slot->pinned = pin;
        return Lease(*this, *slot);
      }
      will_return = will_return || !slot->pinned;
    }
    if (!will_return) {
      fail(ErrorCode::InvalidArgument, engine_name_ + ": every execution context that takes these input shapes is held by a "
                                       "frame pipeline until it is released; release it, or give the engine one context per "
                                       "pipeline plus one for other calls (build concurrency for dynamic shapes, "
                                       "contexts for a static-shape engine)");
    }
    returned_.wait(lock);
  }
}

void ContextPool::release(ContextSlot& slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slot.busy = false;
    slot.pinned = false;
  }
  returned_.notify_all();
}

}  // namespace ifrt::trt
