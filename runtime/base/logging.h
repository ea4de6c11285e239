// Logging through spdlog: one named logger per actor, all writing to one
// stderr sink, none registered in spdlog's global registry (the sink and
// its loggers are passed explicitly, like the ZeroMQ context). Lines are
// text for people or JSON objects for log collectors
// (runtime/base/json_log_formatter.h).
//
// Thread contract: make() from the supervisor's thread; each logger is
// then used by its actor (spdlog loggers over an _mt sink are thread-safe).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "runtime/base/status.h"

namespace flashtts {

using Logger = std::shared_ptr<spdlog::logger>;

// "trace", "debug", "info", "warn", "error", "off".
Expected<spdlog::level::level_enum> parse_log_level(const std::string& name);

enum class LogFormat { text, json };
// "text", "json".
Expected<LogFormat> parse_log_format(const std::string& name);

class LogSink {
 public:
  explicit LogSink(spdlog::level::level_enum level, LogFormat format = LogFormat::text);
  Logger make(const std::string& name) const;
  LogFormat format() const { return format_; }

 private:
  spdlog::sink_ptr sink_;
  spdlog::level::level_enum level_;
  LogFormat format_;
};

}  // namespace flashtts
