#include "trt/logger.h"

#include <NvInfer.h>

#include "core/log.h"

namespace ifrt::trt {

namespace {
thread_local std::string t_last_error;
}  // namespace

void Logger::log(Severity severity, const char* message) noexcept {
  try {
    LogLevel level = LogLevel::Debug;
    switch (severity) {
      case Severity::kINTERNAL_ERROR:
      case Severity::kERROR:
        level = LogLevel::Error;
        t_last_error = message;
        break;
      case Severity::kWARNING: level = LogLevel::Warning; break;
      case Severity::kINFO: level = LogLevel::Info; break;
      case Severity::kVERBOSE: level = LogLevel::Debug; break;
    }
    if (level < log_level()) return;  // the builder logs thousands of verbose lines: skip the copy
    ifrt::log(level, std::string("TensorRT: ") + message);
  } catch (...) {
    // Logging must never throw into TensorRT.
  }
}

std::string Logger::take_last_error() {
  std::string message;
  message.swap(t_last_error);
  return message;
}

Logger& logger() {
  static Logger instance;
  return instance;
}

void forget_tensorrt_errors() { t_last_error.clear(); }

std::string tensorrt_says() {
  const std::string message = logger().take_last_error();
  return message.empty() ? std::string() : " (TensorRT: " + message + ")";
}

}  // namespace ifrt::trt
