// The C API (include/flashtts/flashtts.h) over the C++ client
// (runtime/client.h): JSON in and out, converted to and from the protocol's
// msgpack maps with nlohmann::json (header-only, so nothing more is linked);
// failures become a status and a sentence; every exception stops here.
//
// Thread contract: a flashtts_client is used by one thread at a time, the
// rule of the ZeroMQ socket inside it.
#include "flashtts/flashtts.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "runtime/client.h"

// One connection: its own ZeroMQ context and the client's socket in it.
struct flashtts_client {
  zmq::context_t ctx;                     // declared first: outlives the socket
  std::optional<flashtts::Client> client;
};

namespace {

using json = nlohmann::json;
using flashtts::msg::MapReader;
using flashtts::msg::MapWriter;

// A failure on its way out: the status and the sentence for *error.
struct Failure {
  flashtts_status status;
  std::string message;
};

// A malloc'ed copy the caller frees with flashtts_free_string.
char* copy_string(std::string_view s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

flashtts_status report(const Failure& f, char** error) {
  if (error) {
    try {
      *error = copy_string(f.message);
    } catch (...) {
      *error = nullptr;  // no memory even for the sentence
    }
  }
  return f.status;
}

// Runs `body` (which returns a status or throws a Failure), turning every
// exception into a status and a sentence: none crosses into C.
template <class Body>
flashtts_status guarded(char** error, Body&& body) {
  if (error) *error = nullptr;
  try {
    return body();
  } catch (const Failure& f) {
    return report(f, error);
  } catch (const std::bad_alloc&) {
    return report({FLASHTTS_ERROR_INTERNAL, "out of memory"}, error);
  } catch (const zmq::error_t& e) {
    return report({FLASHTTS_ERROR_INTERNAL, std::string("ZeroMQ failed: ") + e.what()}, error);
  } catch (const std::exception& e) {
    return report({FLASHTTS_ERROR_INTERNAL, e.what()}, error);
  } catch (...) {
    return report({FLASHTTS_ERROR_INTERNAL, "unknown failure"}, error);
  }
}

std::chrono::milliseconds positive_timeout(int timeout_ms) {
  if (timeout_ms <= 0)
    throw Failure{FLASHTTS_ERROR_ARGUMENT, "timeout_ms must be positive (got " + std::to_string(timeout_ms) + ")"};
  return std::chrono::milliseconds(timeout_ms);
}

flashtts::Client& client_of(flashtts_client* c) {
  if (!c || !c->client) throw Failure{FLASHTTS_ERROR_ARGUMENT, "the client handle is NULL"};
  return *c->client;
}

// The fields of the JSON object `text` (NULL or "" = none) appended to `w`,
// each converted to msgpack; `what` names the argument in errors, `reserved`
// the keys the library writes itself. Returns the object.
json add_json_fields(const char* text, const char* what, std::initializer_list<std::string_view> reserved,
                     MapWriter& w) {
  if (!text || !*text) return json::object();
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Failure{FLASHTTS_ERROR_ARGUMENT, std::string(what) + " is not JSON: " + e.what()};
  }
  if (!j.is_object())
    throw Failure{FLASHTTS_ERROR_ARGUMENT,
                  std::string(what) + " must be a JSON object, not " + j.type_name()};
  for (const auto& [key, value] : j.items()) {
    for (std::string_view r : reserved)
      if (key == r)
        throw Failure{FLASHTTS_ERROR_ARGUMENT,
                      std::string(what) + " must not hold \"" + key + "\": the library sets it"};
    std::vector<uint8_t> packed = json::to_msgpack(value);
    w.put_raw(key, std::string_view(reinterpret_cast<const char*>(packed.data()), packed.size()));
  }
  return j;
}

// A msgpack map from the server as JSON text, its keys in the server's order
// (invalid UTF-8 replaced, which the server never sends).
std::string to_json(const MapReader& m) {
  using ordered = nlohmann::ordered_json;
  return ordered::from_msgpack(m.bytes()).dump(-1, ' ', false, ordered::error_handler_t::replace);
}

// Sends a request and waits for its result frame; a Failure for anything else.
flashtts::ServerFrame exchange(flashtts::Client& c, const std::string& type, const MapWriter& fields,
                               std::chrono::milliseconds timeout, flashtts_progress_fn on_progress, void* user) {
  std::string id = c.send(type, fields);
  std::function<void(const MapReader&)> progress;
  if (on_progress)
    progress = [&](const MapReader& event) { on_progress(to_json(event).c_str(), user); };
  auto f = c.wait_final(id, std::chrono::steady_clock::now() + timeout, progress);
  if (!f) throw Failure{FLASHTTS_ERROR_PROTOCOL, f.error().message};
  if (!f->has_value()) {
    // A ping or a cancel is answered at once and never in flight: nothing to cancel.
    if (type == "ping" || type == "cancel")
      throw Failure{FLASHTTS_ERROR_TIMEOUT, "no reply to " + type + " within " + flashtts::seconds_text(timeout)};
    auto late = c.give_up(id, timeout);
    if (!late) throw Failure{FLASHTTS_ERROR_TIMEOUT, late.error().message};
    return std::move(*late);
  }
  flashtts::ServerFrame frame = std::move(**f);
  if (frame.type == "error") throw Failure{FLASHTTS_ERROR_SERVER, frame.code + ": " + frame.message};
  return frame;
}

}  // namespace

extern "C" {

const char* flashtts_version(void) { return FLASHTTS_VERSION; }

const char* flashtts_status_name(flashtts_status status) {
  switch (status) {
    case FLASHTTS_OK: return "ok";
    case FLASHTTS_ERROR_ARGUMENT: return "argument";
    case FLASHTTS_ERROR_CONNECT: return "connect";
    case FLASHTTS_ERROR_SERVER: return "server";
    case FLASHTTS_ERROR_TIMEOUT: return "timeout";
    case FLASHTTS_ERROR_PROTOCOL: return "protocol";
    case FLASHTTS_ERROR_INTERNAL: return "internal";
  }
  return "unknown";
}

flashtts_client* flashtts_connect(const char* endpoint, int timeout_ms, flashtts_status* status, char** error) {
  flashtts_client* out = nullptr;
  flashtts_status st = guarded(error, [&] {
    if (!endpoint || !*endpoint) throw Failure{FLASHTTS_ERROR_ARGUMENT, "the endpoint is NULL or empty"};
    if (timeout_ms < 0)
      throw Failure{FLASHTTS_ERROR_ARGUMENT, "timeout_ms must be >= 0 (got " + std::to_string(timeout_ms) + ")"};
    auto h = std::make_unique<flashtts_client>();
    std::optional<std::chrono::milliseconds> check;
    if (timeout_ms > 0) check = std::chrono::milliseconds(timeout_ms);
    auto c = flashtts::Client::connect(h->ctx, endpoint, check);
    if (!c) throw Failure{FLASHTTS_ERROR_CONNECT, c.error().message};
    h->client.emplace(std::move(*c));
    out = h.release();
    return FLASHTTS_OK;
  });
  if (status) *status = st;
  return out;
}

void flashtts_close(flashtts_client* client) {
  try {
    delete client;
  } catch (...) {
    // A context that cannot terminate: nothing a caller could do about it.
  }
}

flashtts_status flashtts_ping(flashtts_client* client, int timeout_ms, char** error) {
  return guarded(error, [&] {
    auto pong = client_of(client).ping(positive_timeout(timeout_ms));
    if (!pong) throw Failure{FLASHTTS_ERROR_CONNECT, pong.error().message};
    return FLASHTTS_OK;
  });
}

flashtts_status flashtts_solve(flashtts_client* client, const char* problem, const char* params_json,
                               int timeout_ms, flashtts_progress_fn on_progress, void* user,
                               char** answer, double* score, char** result_json, char** error) {
  return guarded(error, [&] {
    flashtts::Client& c = client_of(client);
    if (!problem) throw Failure{FLASHTTS_ERROR_ARGUMENT, "the problem is NULL"};
    auto timeout = positive_timeout(timeout_ms);
    MapWriter params;
    json given = add_json_fields(params_json, "params_json", {"v", "type", "id", "problem"}, params);
    MapWriter fields;
    fields.put("problem", problem);
    // Asked for progress: stream, unless the params decide it themselves.
    if (on_progress && !given.contains("stream")) fields.put("stream", true);
    fields.merge(params);
    flashtts::ServerFrame f = exchange(c, "solve", fields, timeout, on_progress, user);
    std::string a;
    double s = 0;
    if (!f.body.get_opt("answer", &a).ok() || !f.body.get_opt("score", &s).ok())
      throw Failure{FLASHTTS_ERROR_PROTOCOL, "the server's solve result has a malformed answer or score"};
    // Every output is made before any is handed over, so a failure leaks nothing.
    std::string js = result_json ? to_json(f.body) : std::string();
    char* a_out = answer ? copy_string(a) : nullptr;
    char* js_out = nullptr;
    try {
      if (result_json) js_out = copy_string(js);
    } catch (...) {
      std::free(a_out);
      throw;
    }
    if (answer) *answer = a_out;
    if (result_json) *result_json = js_out;
    if (score) *score = s;
    return FLASHTTS_OK;
  });
}

flashtts_status flashtts_request(flashtts_client* client, const char* type, const char* fields_json,
                                 int timeout_ms, flashtts_progress_fn on_progress, void* user,
                                 char** result_json, char** error) {
  return guarded(error, [&] {
    flashtts::Client& c = client_of(client);
    if (!type || !*type) throw Failure{FLASHTTS_ERROR_ARGUMENT, "the request type is NULL or empty"};
    auto timeout = positive_timeout(timeout_ms);
    MapWriter fields;
    (void)add_json_fields(fields_json, "fields_json", {"v", "type", "id"}, fields);
    flashtts::ServerFrame f = exchange(c, type, fields, timeout, on_progress, user);
    if (result_json) *result_json = copy_string(to_json(f.body));
    return FLASHTTS_OK;
  });
}

void flashtts_free_string(char* s) { std::free(s); }

}  // extern "C"
