// trt/messages: a failing operation's message says what TensorRT logged for it, on the operation's own
// thread or on one of TensorRT's (a builder's compile threads), never an error logged before the
// operation began or on another operation's thread, and hedges when a concurrent operation may own it.
// TensorRT's messages are fed in as trt/logger.cpp's ILogger hands them over, so it runs in every build.
#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "core/log.h"
#include "trt/messages.h"

namespace {

using ifrt::trt::tensorrt_says;
using ifrt::trt::TensorRTOperation;
using Severity = ifrt::trt::TensorRTSeverity;

// As trt/logger.cpp's Logger::log does with each message TensorRT logs.
void tensorrt_logs(Severity severity, const char* message) { ifrt::trt::tensorrt_message(severity, message); }

const std::string kHedge = " (TensorRT, on another thread, perhaps for a concurrent operation: ";

// As TensorRT does from a worker thread that no ifrt operation runs on.
void log_on_tensorrt_thread(const char* message, Severity severity = Severity::Error) {
  std::thread([&] { tensorrt_logs(severity, message); }).join();
}

std::mutex g_sink_mutex;
std::vector<std::string> g_logged;

void capture(ifrt::LogLevel level, const char* message, void*) {
  std::lock_guard<std::mutex> lock(g_sink_mutex);
  if (level == ifrt::LogLevel::Error) g_logged.push_back(message);
}

void error_on_a_tensorrt_thread_during_the_operation_is_reported_once() {
  const TensorRTOperation operation;
  log_on_tensorrt_thread("[optimizer] out of memory on a compile thread");
  CHECK(tensorrt_says() == " (TensorRT: [optimizer] out of memory on a compile thread)");
  CHECK(tensorrt_says().empty());
}

void errors_logged_before_the_operation_started_are_not_reported() {
  log_on_tensorrt_thread("an earlier build's compile thread");
  tensorrt_logs(Severity::Error, "this thread, before the operation");
  const TensorRTOperation operation;
  CHECK(tensorrt_says().empty());
}

void the_operations_own_error_wins_over_a_later_one_on_a_tensorrt_thread() {
  const TensorRTOperation operation;
  tensorrt_logs(Severity::Error, "setInputShape: dimensions out of range");
  log_on_tensorrt_thread("a compile thread");
  CHECK(tensorrt_says() == " (TensorRT: setInputShape: dimensions out of range)");
}

void internal_errors_count_and_warnings_do_not() {
  {
    const TensorRTOperation operation;
    log_on_tensorrt_thread("a warning on a compile thread", Severity::Warning);
    tensorrt_logs(Severity::Warning, "a warning on this thread");
    CHECK(tensorrt_says().empty());
  }
  const TensorRTOperation operation;
  log_on_tensorrt_thread("an internal error", Severity::InternalError);
  CHECK(tensorrt_says() == " (TensorRT: an internal error)");
}

void outside_an_operation_only_the_threads_own_error_is_reported() {
  log_on_tensorrt_thread("a compile thread, no operation running");
  CHECK(tensorrt_says().empty());
  tensorrt_logs(Severity::Error, "this thread");
  CHECK(tensorrt_says() == " (TensorRT: this thread)");
}

void a_nested_operation_leaves_the_outer_one_alone() {
  const TensorRTOperation load;
  { const TensorRTOperation contexts; }
  log_on_tensorrt_thread("after the inner operation");
  CHECK(tensorrt_says() == " (TensorRT: after the inner operation)");  // one thread: not hedged
}

void concurrent_operations() {
  // Operation B runs on its own thread; this thread runs operation A.
  std::promise<void> b_logged, a_checked, b_ended;
  std::string b_says;
  std::thread b([&] {
    {
      const TensorRTOperation operation;
      tensorrt_logs(Severity::Error, "B's own error");
      b_logged.set_value();
      a_checked.get_future().wait();
      b_says = tensorrt_says();
    }
    b_ended.set_value();
  });
  const TensorRTOperation operation;
  b_logged.get_future().wait();
  CHECK(tensorrt_says().empty());  // B's error is B's
  log_on_tensorrt_thread("a compile thread while A and B run");
  CHECK(tensorrt_says() == kHedge + "a compile thread while A and B run)");
  a_checked.set_value();
  b_ended.get_future().wait();
  b.join();
  CHECK(b_says == " (TensorRT: B's own error)");  // its own error, not the compile thread's
  log_on_tensorrt_thread("a compile thread after B ended");
  CHECK(tensorrt_says() == " (TensorRT: a compile thread after B ended)");
}

void many_operations_at_once_each_report_their_own_error() {
  constexpr int kThreads = 8, kOperations = 2000;
  std::atomic<int> wrong{0};
  std::atomic<bool> running{true};
  std::thread tensorrt_thread([&] {
    while (running) {
      tensorrt_logs(Severity::Error, "a compile thread");
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "operation thread " + std::to_string(t);
      for (int i = 0; i < kOperations; ++i) {
        const TensorRTOperation operation;
        tensorrt_logs(Severity::Error, own.c_str());
        if (tensorrt_says() != " (TensorRT: " + own + ")") ++wrong;
        // Then only ever the compile thread's, hedged unless this was the one operation running.
        const std::string later = tensorrt_says();
        if (!later.empty() && later != kHedge + "a compile thread)" && later != " (TensorRT: a compile thread)") ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  running = false;
  tensorrt_thread.join();
  CHECK(wrong == 0);
}

}  // namespace

int main() {
  ifrt::set_log_sink(capture, nullptr);
  error_on_a_tensorrt_thread_during_the_operation_is_reported_once();
  errors_logged_before_the_operation_started_are_not_reported();
  the_operations_own_error_wins_over_a_later_one_on_a_tensorrt_thread();
  internal_errors_count_and_warnings_do_not();
  outside_an_operation_only_the_threads_own_error_is_reported();
  a_nested_operation_leaves_the_outer_one_alone();
  concurrent_operations();
  {
    std::lock_guard<std::mutex> lock(g_sink_mutex);
    bool logged = false;  // errors of TensorRT's threads still reach the ifrt log
    for (const auto& message : g_logged) logged = logged || message == "TensorRT: [optimizer] out of memory on a compile thread";
    CHECK(logged);
  }
  ifrt::set_log_sink([](ifrt::LogLevel, const char*, void*) {}, nullptr);  // the stress run logs a line per loop
  many_operations_at_once_each_report_their_own_error();
  return TEST_MAIN_RESULT();
}
