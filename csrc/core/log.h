// The ifrt log: one process-wide sink for messages from the native core (TensorRT's own messages
// arrive here through trt/logger.h). Default: stderr, level Warning, or IFRT_LOG_LEVEL
// (debug|info|warning|error) from the environment. Thread-safe.
#pragma once

#include <string>

namespace ifrt {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3 };

// Receives each message at or above the current level; may be called from any thread.
using LogSink = void (*)(LogLevel level, const char* message, void* user);

void log(LogLevel level, const std::string& message);
void set_log_level(LogLevel level);
LogLevel log_level();
// nullptr restores the stderr sink.
void set_log_sink(LogSink sink, void* user);

const char* log_level_name(LogLevel level);

}  // namespace ifrt
