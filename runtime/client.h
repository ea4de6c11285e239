// A client of the flashtts protocol (docs/protocol.md) over a DEALER socket:
// what `flashtts ask`, `flashtts run` and `flashtts eval` use, and the tests
// and benchmarks. Requests are msgpack maps; replies come back as ServerFrames.
//
// ZeroMQ connects in the background and succeeds whether or not anything
// listens (a request waits in the socket for a server that may never come),
// so a ping is what tells that a server is there: `ping(timeout)`, or
// `connect(..., check_within)` which pings before it returns.
//
// The client layer (cmake/client.cmake): this and messages/ only, so it
// builds into libflashtts_client, which other programs link (docs/client.md)
// and whose C API (include/flashtts/flashtts.h) wraps it.
//
// Thread contract: a Client and its socket belong to one thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "messages/msgpack_io.h"
#include "runtime/base/status.h"

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

// A server's answer to ping.
struct Pong {
  int64_t protocol = 0;  // the protocol version it speaks
  std::string server;    // "flashtts"
  double uptime_ms = 0;
};

class Client {
 public:
  // How long `flashtts ask` waits for the pong by default (--connect-timeout).
  static constexpr std::chrono::milliseconds kConnectTimeout{3000};
  // How long a request given up on waits for the server to confirm its cancel.
  static constexpr std::chrono::milliseconds kCancelGrace{1000};

  // A DEALER connected to `endpoint`; error when the endpoint is malformed.
  // With `check_within`, it also pings and fails with ping()'s error when no
  // pong comes within that time.
  static Expected<Client> connect(zmq::context_t& ctx, const std::string& endpoint,
                                  std::optional<std::chrono::milliseconds> check_within = std::nullopt);

  const std::string& endpoint() const { return endpoint_; }

  // Pings and waits up to `timeout` for the pong. Error "no flashtts server
  // answers at E (no reply to ping within 3 s)" when none comes; a late pong
  // is skipped by later calls (its id is no other request's).
  Expected<Pong> ping(std::chrono::milliseconds timeout);

  // Sends `fields` plus "v", "type" and a fresh integer "id"; returns the id
  // (msgpack-encoded, as replies carry it).
  std::string send(const std::string& type, const msg::MapWriter& fields);
  // Sends bytes as they are (for tests of bad input).
  void send_raw(const std::string& bytes);

  // The next frame within `timeout`; nullopt on timeout; error when the
  // frame is not a valid server frame.
  Expected<std::optional<ServerFrame>> recv(std::chrono::milliseconds timeout);

  // Sends a request and waits for its final frame, passing progress events
  // to `on_progress`. Error when the server answers with an error
  // ("code: message"), or on timeout (then as give_up()).
  Expected<ServerFrame> call(const std::string& type, const msg::MapWriter& fields,
                             std::chrono::milliseconds timeout,
                             const std::function<void(const msg::MapReader&)>& on_progress = nullptr);

  // Stops waiting for request `id` (as send() returned it) after `waited`:
  // cancels it on the server and waits up to `grace` for the server's last
  // word on it. Returns its result when that won the race against the
  // cancel; otherwise an error "timed out: no answer within 2 s; the request
  // was cancelled on the server" (or that the server did not confirm it).
  Expected<ServerFrame> give_up(const std::string& id, std::chrono::milliseconds waited,
                                std::chrono::milliseconds grace = kCancelGrace);

  // The final frame (result or error) of request `id` (as send() returned
  // it) by `deadline`, passing its progress events to `on_progress` and
  // skipping other ids' frames; nullopt when it did not come in time (then
  // give_up() cancels it). Error only for a frame that is no server frame.
  Expected<std::optional<ServerFrame>> wait_final(const std::string& id, std::chrono::steady_clock::time_point deadline,
                                                  const std::function<void(const msg::MapReader&)>& on_progress);

  zmq::socket_t& socket() { return s_; }

 private:
  Client(zmq::socket_t s, std::string endpoint) : s_(std::move(s)), endpoint_(std::move(endpoint)) {}

  zmq::socket_t s_;
  std::string endpoint_;
  uint64_t next_id_ = 0;
};

// A duration as people read it: "3 s", "0.5 s".
std::string seconds_text(std::chrono::milliseconds d);

}  // namespace flashtts
