// Test-only stand-in for TensorRT's NvInfer.h (see NvInferRuntime.h here): the logger needs only ILogger.
#pragma once

#include "NvInferRuntime.h"
