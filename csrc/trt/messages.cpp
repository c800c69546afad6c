#include "trt/messages.h"

#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/log.h"

namespace ifrt::trt {

namespace {

// Orders operation starts and errors on TensorRT's threads: such an error can belong to an operation only
// if its number is larger than the operation's start.
std::atomic<uint64_t> g_sequence{0};
// Threads inside a TensorRTOperation now.
std::atomic<int> g_operations{0};

struct ThreadState {
  std::string last_error;  // logged on this thread since its operation started
  uint64_t started = 0;    // the operation's start in g_sequence (raised past a reported error)
  int depth = 0;           // nested operations on this thread
};
thread_local ThreadState t_thread;

// The last error logged on a thread outside any operation: one of TensorRT's own.
struct UnownedError {
  std::string message;
  uint64_t sequence = 0;
  bool alone = false;  // at most one operation was running when it was logged
};
std::mutex g_unowned_mutex;
UnownedError g_unowned;

void remember_error(const char* message) {
  ThreadState& self = t_thread;
  self.last_error = message;
  if (self.depth > 0) return;  // this thread's operation reports it
  std::lock_guard<std::mutex> lock(g_unowned_mutex);
  // The sequence number before the count: an operation that started earlier than this error is counted
  // (it raised g_operations before taking its own number).
  g_unowned.sequence = ++g_sequence;
  g_unowned.alone = g_operations.load() <= 1;
  g_unowned.message = message;
}

}  // namespace

void tensorrt_message(TensorRTSeverity severity, const char* message) noexcept {
  try {
    if (!message) message = "";
    LogLevel level = LogLevel::Debug;
    switch (severity) {
      case TensorRTSeverity::InternalError:
      case TensorRTSeverity::Error:
        level = LogLevel::Error;
        remember_error(message);
        break;
      case TensorRTSeverity::Warning: level = LogLevel::Warning; break;
      case TensorRTSeverity::Info: level = LogLevel::Info; break;
      case TensorRTSeverity::Verbose: level = LogLevel::Debug; break;
    }
    if (level < log_level()) return;  // the builder logs thousands of verbose lines: skip the copy
    ifrt::log(level, std::string("TensorRT: ") + message);
  } catch (...) {
    // Logging must never throw into TensorRT.
  }
}

TensorRTOperation::TensorRTOperation() noexcept {
  ThreadState& self = t_thread;
  if (self.depth++ == 0) ++g_operations;
  self.last_error.clear();
  self.started = ++g_sequence;
}

TensorRTOperation::~TensorRTOperation() {
  ThreadState& self = t_thread;
  if (--self.depth == 0) --g_operations;
}

std::string tensorrt_says() {
  ThreadState& self = t_thread;
  if (!self.last_error.empty()) {
    std::string message;
    message.swap(self.last_error);
    return " (TensorRT: " + message + ")";
  }
  if (self.depth == 0) return std::string();
  std::string message;
  bool alone = false;
  {
    std::lock_guard<std::mutex> lock(g_unowned_mutex);
    if (g_unowned.sequence <= self.started) return std::string();
    message = g_unowned.message;
    alone = g_unowned.alone;
    self.started = g_unowned.sequence;  // reported once
  }
  if (alone) return " (TensorRT: " + message + ")";
  return " (TensorRT, on another thread, perhaps for a concurrent operation: " + message + ")";
}

}  // namespace ifrt::trt
