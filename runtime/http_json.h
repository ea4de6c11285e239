// What the HTTP gateway shares between its routes: JSON bodies to and from
// the protocol's msgpack maps (docs/protocol.md), errors in OpenAI's error
// object shape with the HTTP status that each protocol error code maps to
// (docs/http.md), and Server-Sent Events framing.
//
// Thread contract: plain functions and values; any thread.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "messages/msgpack_io.h"
#include "runtime/base/status.h"

namespace flashtts::http {

using json = nlohmann::json;

// An error answered to an HTTP client: the status and, in the body,
// {"error": {"message", "type", "param", "code"}}.
struct HttpError {
  int status = 500;
  std::string code;     // a protocol error code, or one of the gateway's own
  std::string message;  // a sentence for people
  std::string param;    // the request field at fault ("" = none)
};

HttpError bad_input(std::string message, std::string param = "");

// The HTTP status of a protocol error code: 400 for bad requests, 413
// too_large, 503 overloaded / shutting_down / server_failure, 504
// deadline_exceeded, 500 otherwise.
int status_of_code(const std::string& code);
// An error frame's code and message as an HttpError.
HttpError from_protocol(const std::string& code, const std::string& message);

// The error body: {"error": {...}}, with "type" "invalid_request_error"
// for 4xx and "server_error" for 5xx.
json error_body(const HttpError& e);

// The body as a JSON object; an error naming the parse failure when it is
// not JSON or not an object.
Expected<json> parse_object(std::string_view body);

// Every member of `obj` as a protocol field (its value encoded as msgpack),
// except the keys in `skip`.
msg::MapWriter to_fields(const json& obj, std::initializer_list<std::string_view> skip = {});
// A decoded msgpack map (a result or an event) as JSON.
json to_json(const msg::MapReader& m);

// JSON text; strings that are not valid UTF-8 get U+FFFD (the server sends
// only valid UTF-8, so this is a safety net).
std::string dump(const json& j);

// Server-Sent Events: one `data:` event, a named one, a comment.
std::string sse_data(const std::string& payload);
std::string sse_event(const std::string& name, const std::string& payload);
std::string sse_comment(const std::string& text);

}  // namespace flashtts::http
