// A client of the flashtts protocol (docs/protocol.md) over a DEALER socket:
// what `flashtts ask` and `flashtts run` use, and the tests and benchmarks.
// Requests are msgpack maps; replies come back as ServerFrames.
//
// Thread contract: a Client and its socket belong to one thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "messages/msgpack_io.h"
#include "runtime/status.h"

namespace flashtts {

// One frame from the server.
struct ServerFrame {
  std::string type;      // "result" | "error" | "progress"
  std::string id;        // the request's id, msgpack-encoded ("" = nil)
  std::string request;   // result: the request type
  std::string code;      // error
  std::string message;   // error
  msg::MapReader body;   // result: the result map; progress: the event map
};

class Client {
 public:
  static Expected<Client> connect(zmq::context_t& ctx, const std::string& endpoint);

  // Sends `fields` plus "v", "type" and a fresh integer "id"; returns the id
  // (msgpack-encoded, as replies carry it).
  std::string send(const std::string& type, const msg::MapWriter& fields);
  // Sends bytes as they are (for tests of bad input).
  void send_raw(const std::string& bytes);

  // The next frame within `timeout`; nullopt on timeout; error when the
  // frame is not a valid server frame.
  Expected<std::optional<ServerFrame>> recv(std::chrono::milliseconds timeout);

  // Sends a request and waits for its final frame, passing progress events
  // to `on_progress`. Error on timeout (the request is cancelled) or when
  // the server answers with an error ("code: message").
  Expected<ServerFrame> call(const std::string& type, const msg::MapWriter& fields,
                             std::chrono::milliseconds timeout,
                             const std::function<void(const msg::MapReader&)>& on_progress = nullptr);

  zmq::socket_t& socket() { return s_; }

 private:
  explicit Client(zmq::socket_t s) : s_(std::move(s)) {}
  zmq::socket_t s_;
  uint64_t next_id_ = 0;
};

}  // namespace flashtts
