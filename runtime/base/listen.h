// Binding a ZeroMQ socket where no other process listens, and removing its
// ipc:// socket file again. ZeroMQ's own ipc bind deletes whatever file is at
// the path, so a second server would silently take the first one's clients;
// every bind of a flashtts socket goes through listen() instead.
//
// Thread contract: check_can_listen() is a pure check callable from any
// thread; a Listening belongs to the owner of the socket it was bound for.
#pragma once

#include <string>

#include <sys/types.h>
#include <zmq.hpp>

#include "runtime/base/status.h"

namespace flashtts {

// OK when nothing listens at `ep` now. ipc://PATH: refused when a process
// accepts connections at PATH (a socket file left by a process that died is
// fine; bind replaces it), when PATH is not a socket, or when its folder does
// not exist. tcp://HOST:PORT: refused when the port is taken. inproc:// and
// abstract ipc://@NAME are left to bind(), which refuses duplicates itself.
Status check_can_listen(const std::string& ep);

// An endpoint bound by listen(). For ipc://, the destructor removes the
// socket file if it is still the one the bind made (not a later server's).
class Listening {
 public:
  Listening() = default;
  Listening(Listening&& o) noexcept { *this = std::move(o); }
  Listening& operator=(Listening&& o) noexcept;
  Listening(const Listening&) = delete;
  Listening& operator=(const Listening&) = delete;
  ~Listening();

  const std::string& endpoint() const { return endpoint_; }

 private:
  friend Expected<Listening> listen(zmq::socket_t& s, const std::string& ep);
  void release();

  std::string endpoint_;
  std::string file_;  // ipc socket file; empty otherwise
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// check_can_listen(ep), then s.bind(ep). Error names the endpoint.
Expected<Listening> listen(zmq::socket_t& s, const std::string& ep);

}  // namespace flashtts
