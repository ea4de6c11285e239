// The wait at the top of every actor's loop: block on the actor's pipe and
// its sockets, handle "$TERM", report which sockets are readable.
//
// Thread contract: owned by one actor, used from its thread only.
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "runtime/base/actor.h"

namespace flashtts {

class PollSet {
 public:
  PollSet(ActorPipe& pipe, std::initializer_list<zmq::socket_t*> sockets);

  // Waits up to `timeout` (negative = forever). Commands other than "$TERM"
  // go to `on_command`. Returns false once "$TERM" has arrived.
  bool wait(std::chrono::milliseconds timeout, const std::function<void(const std::string&)>& on_command = nullptr);

  // After wait(): whether sockets[i] has a message waiting.
  bool readable(size_t i) const { return (items_[i + 1].revents & ZMQ_POLLIN) != 0; }

 private:
  ActorPipe& pipe_;
  std::vector<zmq::pollitem_t> items_;  // [0] is the pipe
};

}  // namespace flashtts
