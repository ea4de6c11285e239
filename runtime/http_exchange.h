// How the HTTP gateway talks to the intake: as any client of the protocol
// (docs/protocol.md), over runtime/client.h's DEALER sockets.
//
// ClientPool keeps the gateway's Clients. An HTTP worker thread leases one
// for the length of a request and gives it back; a socket is used by one
// thread at a time, and the pool's mutex is the memory barrier ZeroMQ asks
// for when a socket changes threads. A Client left with frames of a request
// it gave up on is still good: every later wait skips ids it did not send.
//
// Exchange runs the protocol requests of one HTTP request (one solve, or
// one generate per OpenAI choice) on a leased Client and hands their frames
// out one at a time, so a route can answer an error with its HTTP status
// before it starts a stream. Requests without their final frame when the
// Exchange goes (the HTTP client left, a timeout, the gateway stopping)
// are cancelled on the server.
//
// Thread contract: ClientPool is thread-safe; a Lease and an Exchange
// belong to the thread that made them, until they are handed on whole.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <zmq.hpp>

#include "runtime/client.h"
#include "runtime/http_json.h"

namespace flashtts::http {

using Clock = std::chrono::steady_clock;

class ClientPool {
 public:
  // REQUIRES: `ctx` outlives the pool and every Lease.
  ClientPool(zmq::context_t& ctx, std::string endpoint) : ctx_(ctx), endpoint_(std::move(endpoint)) {}

  // A Client, returned to the pool when the Lease goes.
  class Lease {
   public:
    Lease(ClientPool* pool, std::unique_ptr<Client> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (c_) pool_->give_back(std::move(c_));
    }
    Client& operator*() { return *c_; }
    Client* operator->() { return c_.get(); }

   private:
    ClientPool* pool_;
    std::unique_ptr<Client> c_;
  };

  // An idle Client, or a new one connected to the endpoint.
  Expected<Lease> acquire();
  const std::string& endpoint() const { return endpoint_; }
  // Closes the idle Clients. REQUIRES: no Lease is out.
  void close();

 private:
  void give_back(std::unique_ptr<Client> c);

  zmq::context_t& ctx_;
  std::string endpoint_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Client>> idle_;
};

// One frame of one of an Exchange's requests.
struct ExchangeFrame {
  size_t index = 0;  // which request, in the order sent
  ServerFrame frame;
  bool final() const { return frame.type != "progress"; }
};

class Exchange {
 public:
  // `stopping` turns every wait into a `shutting_down` error; `deadline`
  // bounds the whole exchange (then a `timeout` error, 504).
  Exchange(ClientPool::Lease lease, const std::atomic<bool>* stopping, Clock::time_point deadline)
      : lease_(std::move(lease)), stopping_(stopping), deadline_(deadline) {}
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;
  ~Exchange() { cancel_rest(); }

  // Sends a request; its index is the number sent before it.
  void send(const std::string& type, const msg::MapWriter& fields);
  size_t size() const { return ids_.size(); }
  // Every request has its final frame.
  bool done() const { return finals_ == ids_.size(); }

  // The next frame of one of the requests. REQUIRES: !done().
  // Errors: `timeout` (504) past the deadline, `shutting_down` (503) when
  // the gateway stops, `internal` (500) for a frame that is not one of the
  // protocol's; the requests still open are then cancelled.
  std::variant<ExchangeFrame, HttpError> next();

  // Cancels the requests without a final frame and waits briefly for the
  // server to confirm, so that the Client goes back clean. Idempotent.
  void cancel_rest();

 private:
  ClientPool::Lease lease_;
  const std::atomic<bool>* stopping_;
  Clock::time_point deadline_;
  std::vector<std::string> ids_;  // msgpack-encoded, as frames carry them
  std::vector<bool> final_;
  size_t finals_ = 0;
};

}  // namespace flashtts::http
