// Routes TensorRT's messages into the ifrt log (core/log.h), and remembers the last TensorRT error
// of the calling thread so that a failed build/deserialize/enqueue can say what TensorRT said.
#pragma once

#include <NvInferRuntime.h>

#include <string>

namespace ifrt::trt {

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override;
  // The last kERROR/kINTERNAL_ERROR message TensorRT logged on this thread, then cleared.
  std::string take_last_error();
};

// The one logger every builder and runtime uses (TensorRT needs it to outlive them).
Logger& logger();

// " (TensorRT: <last error>)" or "" when TensorRT said nothing: appended to failure messages.
std::string tensorrt_says();

// Forgets this thread's last TensorRT error. Each operation (build, load, context creation, inference,
// pipeline recording) starts with it, so that a failure never reports an error TensorRT logged during an
// earlier operation that recovered or failed in another way (a rejected ONNX reports the parser's errors).
void forget_tensorrt_errors();

}  // namespace ifrt::trt
