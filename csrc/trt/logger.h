// TensorRT's ILogger for every builder and runtime: it hands each message to trt/messages.h, which routes it
// into the ifrt log and keeps TensorRT's errors for failure messages (tensorrt_says, TensorRTOperation).
#pragma once

#include <NvInferRuntime.h>

#include "trt/messages.h"

namespace ifrt::trt {

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override;
};

// The one logger every builder and runtime uses (TensorRT needs it to outlive them).
Logger& logger();

}  // namespace ifrt::trt
