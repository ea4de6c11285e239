#include "runtime/base/json_log_formatter.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace flashtts {

namespace {

using json = nlohmann::ordered_json;

// UTC with milliseconds, as log collectors parse it.
std::string iso_time(spdlog::log_clock::time_point t) {
  auto since = t.time_since_epoch();
  std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  int ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char b[64];  // room for any int the compiler imagines in each field
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return b;
}

}  // namespace

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  json line;
  line["time"] = iso_time(msg.time);
  auto level = spdlog::level::to_string_view(msg.level);
  line["level"] = std::string(level.data(), level.size());
  line["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
  std::string_view text(msg.payload.data(), msg.payload.size());
  bool merged = false;
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
    json fields = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (fields.is_object()) {
      for (auto it = fields.begin(); it != fields.end(); ++it)
        if (!line.contains(it.key())) line[it.key()] = it.value();  // time, level, logger stay
      merged = true;
    }
  }
  if (!merged) line["msg"] = std::string(text);
  // Bytes that are not UTF-8 (a client's text echoed in a message) become
  // U+FFFD rather than an exception on the logging path.
  std::string out = line.dump(-1, ' ', false, json::error_handler_t::replace);
  out += '\n';
  dest.append(out.data(), out.data() + out.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const { return std::make_unique<JsonLogFormatter>(); }

}  // namespace flashtts
