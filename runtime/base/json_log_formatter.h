// Log lines as JSON, one object per line, for log collectors (journald's
// JSON output, Loki, Elasticsearch):
//   {"time":"2026-12-05T10:00:00.123Z","level":"info","logger":"intake","msg":"listening on ..."}
// A message that is itself a JSON object (the request lines of
// runtime/base/request_log.h) gives its fields to the line instead of "msg", so
// they can be queried. Chosen with `log_format = "json"` in the
// configuration or `flashtts --log-format json`.
//
// Thread contract: spdlog calls format() under its sink's lock; clone()
// makes an independent copy.
#pragma once

#include <memory>

#include <spdlog/formatter.h>

namespace flashtts {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace flashtts
