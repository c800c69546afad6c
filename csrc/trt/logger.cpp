#include "trt/logger.h"

#include <NvInfer.h>

namespace ifrt::trt {

void Logger::log(Severity severity, const char* message) noexcept {
  TensorRTSeverity ours = TensorRTSeverity::Verbose;
  switch (severity) {
    case Severity::kINTERNAL_ERROR: ours = TensorRTSeverity::InternalError; break;
    case Severity::kERROR: ours = TensorRTSeverity::Error; break;
    case Severity::kWARNING: ours = TensorRTSeverity::Warning; break;
    case Severity::kINFO: ours = TensorRTSeverity::Info; break;
    case Severity::kVERBOSE: ours = TensorRTSeverity::Verbose; break;
  }
  tensorrt_message(ours, message);
}

Logger& logger() {
  static Logger instance;
  return instance;
}

}  // namespace ifrt::trt
