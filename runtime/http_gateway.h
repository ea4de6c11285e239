// The HTTP gateway (`flashtts serve --http HOST:PORT`, docs/http.md): a
// front that speaks to the intake over ZeroMQ exactly like any client of
// the protocol (runtime/client.h), and answers HTTP with cpp-httplib:
//
//   POST /v1/solve             a solve; "stream": true gives Server-Sent Events
//   POST /v1/completions       OpenAI completions (a search with "strategy")
//   POST /v1/chat/completions  OpenAI chat completions (the same)
//   GET  /v1/models            the one model, for OpenAI clients that list
//   GET  /health               200 once the server answers a ping, else 503
//   GET  /metrics              Prometheus text: the gateway's counts and the
//                              server's stats
//
// Lifecycle: start() binds the address (port 0: a free one, see port()) and
// runs the HTTP server on its own thread with a pool of worker threads;
// each worker leases a Client from a pool for one request. stop() (or the
// destructor) makes every wait end with `shutting_down`, stops the server
// and joins its threads. The gateway may start before the intake listens:
// /health says 503 until a ping is answered.
//
// Thread contract: start(), port(), url(), failed() and stop() from the
// thread that owns the gateway; the handlers run on the gateway's own
// threads, which block SIGINT and SIGTERM (the owner's thread takes them).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <zmq.hpp>

#include "runtime/base/logging.h"
#include "runtime/base/status.h"

namespace flashtts {

struct GatewayOptions {
  std::string host = "127.0.0.1";
  int port = 8080;        // 0 = any free port
  std::string endpoint;   // the intake's client endpoint (any transport in the context)
  int threads = 16;       // HTTP worker threads: requests answered at once
  std::chrono::seconds request_timeout{600};    // then 504 and the request is cancelled
  std::chrono::milliseconds ping_timeout{1000};  // /health
  std::chrono::milliseconds stats_timeout{3000};  // /metrics (the intake answers within 2 s)
  size_t max_body_bytes = 8u << 20;
  std::string model = "flashtts";  // the name /v1/models lists and responses carry by default
};

// "HOST:PORT" (an IPv4 address or name, a port 0 … 65535); an IPv6 address
// as "[::1]:PORT". Error naming the value when malformed.
Expected<std::pair<std::string, int>> parse_http_address(const std::string& addr);

class HttpGateway {
 public:
  // Binds and starts serving. Error when the address cannot be bound.
  // REQUIRES: `ctx` outlives the gateway.
  static Expected<std::unique_ptr<HttpGateway>> start(zmq::context_t& ctx, GatewayOptions o, Logger log);
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  int port() const;          // the bound port
  std::string url() const;   // "http://HOST:PORT"
  // Why the gateway no longer serves although stop() was not called: its
  // listening loop ended (the listening socket failed); nullopt while it
  // serves. The owner's loop checks it, so a server that stopped answering
  // HTTP does not go on as if it did (flashtts serve exits, and systemd
  // starts it again).
  std::optional<std::string> failed() const;
  // Ends every request's wait, stops the server, joins its threads. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit HttpGateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flashtts
