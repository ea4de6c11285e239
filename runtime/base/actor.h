// An actor: one thread that owns its sockets and state, talking to its
// creator over a PAIR pipe, with the CZMQ zactor lifecycle:
//   - start() blocks until the body calls pipe.ready(); a body that returns
//     before that makes start() return its error (e.g. a missing model);
//   - stop() sends "$TERM" and waits for the "$DONE" acknowledgement;
//   - a body that fails after ready() (an error, an exception) sends
//     "$FAIL <reason>" to its creator, then waits for "$TERM" like any other;
//   - probe() sends "$PING", which the body's pipe answers "$PONG" as soon as
//     the body next reads its commands, i.e. between two iterations of its
//     loop: an actor stuck inside one iteration (a deadlock, a forward pass
//     that does not end) leaves it unanswered (runtime/service_watchdog.h).
// Other commands ("$DRAIN ...") are the body's to interpret.
//
// Thread contract: an Actor handle belongs to the thread that started it
// (the supervisor); the body runs on the actor's own thread and touches
// only the ActorPipe and the sockets it creates.
#pragma once

#include <chrono>
#include <functional>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "runtime/base/status.h"

namespace flashtts {

// The actor's end of the pipe.
class ActorPipe {
 public:
  explicit ActorPipe(zmq::socket_t& s) : s_(s) {}
  zmq::socket_t& socket() { return s_; }

  // REQUIRES: called once, when the actor's sockets are bound.
  void ready();
  bool is_ready() const { return ready_; }

  // Reads one command (call when the pipe is readable). "$TERM" marks the
  // actor terminated: its body should return. "$PING" is answered here and
  // returned as "": nothing for the body to do.
  std::string recv_command();
  bool terminated() const { return terminated_; }

 private:
  zmq::socket_t& s_;
  bool ready_ = false;
  bool terminated_ = false;
};

using ActorBody = std::function<Status(zmq::context_t& ctx, ActorPipe& pipe)>;

class Actor {
 public:
  static Expected<std::unique_ptr<Actor>> start(zmq::context_t& ctx, std::string name, ActorBody body,
                                                std::chrono::milliseconds ready_timeout = std::chrono::minutes(10));
  ~Actor();
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

  const std::string& name() const { return name_; }

  // Sends a command to the body.
  void send(const std::string& command);

  // Waits up to `timeout` for a "$FAIL <reason>"; returns the reason.
  std::optional<std::string> poll_failure(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // Asks the body whether it still comes back to its loop ("$PING"; the
  // "$PONG" is read by poll_failure() and stop()). False, and nothing sent,
  // while the previous question is unanswered.
  bool probe();

  // Sends "$TERM" and waits for the acknowledgement. False on timeout (the
  // thread is still running; shut the context down and call stop() again).
  bool stop(std::chrono::milliseconds timeout);

  // Gives up on a thread that would not stop (detached, never joined).
  void abandon();

  bool stopped() const { return !thread_.joinable(); }

  zmq::socket_t& pipe() { return pipe_; }

 private:
  Actor(std::string name, zmq::socket_t pipe) : name_(std::move(name)), pipe_(std::move(pipe)) {}

  std::string name_;
  zmq::socket_t pipe_;
  std::thread thread_;
  std::shared_ptr<std::atomic<bool>> exited_ = std::make_shared<std::atomic<bool>>(false);
  bool term_sent_ = false;
  bool ping_unanswered_ = false;
  std::optional<std::string> failure_;
};

}  // namespace flashtts
