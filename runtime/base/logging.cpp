#include "runtime/base/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "runtime/base/json_log_formatter.h"

namespace flashtts {

Expected<spdlog::level::level_enum> parse_log_level(const std::string& name) {
  for (auto [n, l] : {std::pair{"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
                      {"info", spdlog::level::info}, {"warn", spdlog::level::warn},
                      {"error", spdlog::level::err}, {"off", spdlog::level::off}})
    if (name == n) return l;
  return make_error("log level '" + name + "' is not one of trace, debug, info, warn, error, off");
}

Expected<LogFormat> parse_log_format(const std::string& name) {
  if (name == "text") return LogFormat::text;
  if (name == "json") return LogFormat::json;
  return make_error("log format '" + name + "' is not one of text, json");
}

LogSink::LogSink(spdlog::level::level_enum level, LogFormat format) : level_(level), format_(format) {
  if (format == LogFormat::json) {
    // No colour codes in JSON.
    sink_ = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink_->set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    sink_ = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink_->set_pattern("%H:%M:%S.%e %^%-5l%$ [%n] %v");
  }
}

Logger LogSink::make(const std::string& name) const {
  auto l = std::make_shared<spdlog::logger>(name, sink_);
  l->set_level(level_);
  l->flush_on(spdlog::level::warn);
  return l;
}

}  // namespace flashtts
