#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ifrt {

namespace {

LogLevel level_from_environment() {
  const char* value = std::getenv("IFRT_LOG_LEVEL");
  if (!value) return LogLevel::Warning;
  if (std::strcmp(value, "debug") == 0) return LogLevel::Debug;
  if (std::strcmp(value, "info") == 0) return LogLevel::Info;
  if (std::strcmp(value, "error") == 0) return LogLevel::Error;
  return LogLevel::Warning;
}

std::atomic<int>& current_level() {
  static std::atomic<int> level{static_cast<int>(level_from_environment())};
  return level;
}

struct SinkState {
  std::mutex mutex;  // serializes sink calls, so a sink needs no locking of its own
  LogSink sink = nullptr;
  void* user = nullptr;
};

SinkState& sink_state() {
  static SinkState state;
  return state;
}

}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warning: return "warning";
    case LogLevel::Error: return "error";
  }
  return "?";
}

void set_log_level(LogLevel level) { current_level().store(static_cast<int>(level)); }

LogLevel log_level() { return static_cast<LogLevel>(current_level().load()); }

void set_log_sink(LogSink sink, void* user) {
  auto& state = sink_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.sink = sink;
  state.user = user;
}

void log(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) < current_level().load()) return;
  auto& state = sink_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (state.sink) {
    state.sink(level, message.c_str(), state.user);
  } else {
    std::fprintf(stderr, "ifrt %s: %s\n", log_level_name(level), message.c_str());
  }
}

}  // namespace ifrt
