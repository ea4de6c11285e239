#include "runtime/http_json.h"

#include <algorithm>

namespace flashtts::http {

HttpError bad_input(std::string message, std::string param) {
  return HttpError{400, "bad_request", std::move(message), std::move(param)};
}

int status_of_code(const std::string& code) {
  if (code == "bad_message" || code == "bad_request" || code == "unknown_type" || code == "unsupported_version" ||
      code == "duplicate_id" || code == "not_found")
    return 400;
  if (code == "too_large") return 413;
  if (code == "overloaded" || code == "shutting_down" || code == "server_failure" || code == "unavailable") return 503;
  if (code == "deadline_exceeded" || code == "timeout") return 504;
  return 500;  // internal, cancelled, and codes this gateway does not know
}

HttpError from_protocol(const std::string& code, const std::string& message) {
  return HttpError{status_of_code(code), code, message, ""};
}

json error_body(const HttpError& e) {
  json err = {{"message", e.message},
              {"type", e.status < 500 ? "invalid_request_error" : "server_error"},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code}};
  return json{{"error", std::move(err)}};
}

Expected<json> parse_object(std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, ...":
    // keep the sentence after the tag.
    std::string what = e.what();
    auto p = what.find("] ");
    return make_error("the body is not valid JSON: " + (p == std::string::npos ? what : what.substr(p + 2)));
  }
  if (!j.is_object()) return make_error(std::string("the body must be a JSON object, not ") + j.type_name());
  return j;
}

msg::MapWriter to_fields(const json& obj, std::initializer_list<std::string_view> skip) {
  msg::MapWriter w;
  for (const auto& [k, v] : obj.items()) {
    if (std::find(skip.begin(), skip.end(), k) != skip.end()) continue;
    std::vector<uint8_t> packed = json::to_msgpack(v);
    w.put_raw(k, std::string_view(reinterpret_cast<const char*>(packed.data()), packed.size()));
  }
  return w;
}

json to_json(const msg::MapReader& m) {
  std::string b = m.bytes();
  // The server's maps are plain msgpack (strings, numbers, arrays, maps):
  // nothing from_msgpack refuses; a bad frame would already have failed to
  // decode as a MapReader.
  return json::from_msgpack(b.begin(), b.end(), /*strict=*/true, /*allow_exceptions=*/false);
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_data(const std::string& payload) { return "data: " + payload + "\n\n"; }

std::string sse_event(const std::string& name, const std::string& payload) {
  return "event: " + name + "\ndata: " + payload + "\n\n";
}

std::string sse_comment(const std::string& text) {
  // A comment is one line; a newline inside would end it.
  std::string t = text;
  std::replace(t.begin(), t.end(), '\n', ' ');
  return ": " + t + "\n\n";
}

}  // namespace flashtts::http
