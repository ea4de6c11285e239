// An actor's sockets to the other actors: one PULL inbox bound at its own
// endpoint, and one PUSH outbox connected to each peer it sends to. Internal
// links never drop and never block: queues are unbounded (HWM 0), LINGER is 0
// so shutdown never waits on them.
//
// Thread contract: owned by one actor and used from its thread only.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "messages/envelope.h"
#include "runtime/base/listen.h"
#include "runtime/base/socket_options.h"
#include "runtime/base/status.h"

namespace flashtts {

class Mailbox {
 public:
  // Binds the inbox at `inbox_endpoint` (where no other process may listen:
  // runtime/base/listen.h) and connects one outbox per entry of `peers` (peer
  // name -> that peer's inbox endpoint). Error names the endpoint that could
  // not be bound or connected.
  static Expected<Mailbox> open(zmq::context_t& ctx, const std::string& inbox_endpoint,
                                const std::map<std::string, std::string>& peers);

  zmq::socket_t& inbox() { return inbox_; }

  // Never blocks. False (and counted) when the peer cannot take the message:
  // its actor has gone; the supervisor reports that failure.
  // REQUIRES: `peer` was named at open().
  bool send(const std::string& peer, const std::string& bytes);
  template <class M>
  bool post(const std::string& peer, const M& m) {
    return send(peer, msg::encode(m));
  }

  // One message if one is waiting.
  std::optional<std::string> try_recv();

  uint64_t n_sent() const { return n_sent_; }
  uint64_t n_received() const { return n_received_; }
  uint64_t n_dropped() const { return n_dropped_; }

 private:
  Mailbox(zmq::socket_t inbox, Listening bound) : inbox_(std::move(inbox)), bound_(std::move(bound)) {}
  zmq::socket_t inbox_;
  Listening bound_;
  std::map<std::string, zmq::socket_t> out_;
  uint64_t n_sent_ = 0, n_received_ = 0, n_dropped_ = 0;
};

}  // namespace flashtts
