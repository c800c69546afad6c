// What TensorRT says, without TensorRT's headers: its messages go into the ifrt log (core/log.h), and its
// errors are kept so that a failed build/deserialize/enqueue can say what TensorRT said, also when TensorRT
// said it on one of its own threads (a builder's compile threads) rather than on the thread whose call
// failed. trt/logger.h's ILogger feeds it; so does test_trt_logger, in builds without TensorRT.
#pragma once

#include <string>

namespace ifrt::trt {

// TensorRT's ILogger::Severity, in ifrt's own type (trt/logger.cpp maps one to the other).
enum class TensorRTSeverity { InternalError, Error, Warning, Info, Verbose };

// One message TensorRT logged on the calling thread: into the ifrt log as "TensorRT: <message>", and, for
// an error or internal error, kept for tensorrt_says(). Never throws (TensorRT calls it).
void tensorrt_message(TensorRTSeverity severity, const char* message) noexcept;

// One operation of the calling thread (build, load, context creation, inference, pipeline recording),
// from construction to destruction. It starts by forgetting the thread's earlier TensorRT errors, so that
// a failure never reports an error TensorRT logged during an earlier operation that recovered or failed in
// another way (a rejected ONNX reports the parser's errors). Nested on one thread, the inner one starts
// afresh and the outer one goes on after it.
class TensorRTOperation {
 public:
  TensorRTOperation() noexcept;
  ~TensorRTOperation();
  TensorRTOperation(const TensorRTOperation&) = delete;
  TensorRTOperation& operator=(const TensorRTOperation&) = delete;
};

// What TensorRT said about the calling thread's failure, appended to failure messages, then forgotten:
//   " (TensorRT: <error>)"  the last error TensorRT logged on this thread during its operation, or else the
//                           last one it logged on a thread outside any operation (one of its own) since
//                           this operation started, while no other operation ran;
//   " (TensorRT, on another thread, perhaps for a concurrent operation: <error>)"  such an error logged
//                           while other operations ran too, so it may be theirs;
//   ""                      TensorRT said nothing (or the caller is outside any operation and said nothing
//                           on its own thread).
// Errors logged on a thread that is inside an operation are that operation's only. Only the last error
// of TensorRT's own threads is kept: a concurrent operation's later one replaces it.
std::string tensorrt_says();

}  // namespace ifrt::trt
