// Test-only stand-in for TensorRT's runtime header: nvinfer1::ILogger as TensorRT 10.3 declares it
// (NvInferRuntimeBase.h; 11.1 adds a versioned-interface base the logger does not use), so that
// trt/logger.cpp builds and runs in a build without TensorRT. Only test_trt_logger has this folder on
// its include path; the executor always compiles against the real headers.
#pragma once

#include <cstdint>

namespace nvinfer1 {

using AsciiChar = char;

class ILogger {
 public:
  enum class Severity : int32_t { kINTERNAL_ERROR = 0, kERROR = 1, kWARNING = 2, kINFO = 3, kVERBOSE = 4 };
  virtual void log(Severity severity, AsciiChar const* msg) noexcept = 0;
  ILogger() = default;
  virtual ~ILogger() = default;

 protected:
  ILogger(ILogger const&) = default;
  ILogger(ILogger&&) = default;
  ILogger& operator=(ILogger const&) & = default;
  ILogger& operator=(ILogger&&) & = default;
};

}  // namespace nvinfer1
