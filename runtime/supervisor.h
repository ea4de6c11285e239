// The supervisor: starts the actors a process runs (all six by default, or
// a subset when others run in other processes), watches them, and stops
// them in order (intake first, GPU actors last). When an actor fails it
// logs which and why, has the intake answer every request in flight with a
// `server_failure` error naming the actor, and shuts everything down; a
// shutdown on request answers them with `shutting_down`. An actor that will
// not stop is cut loose with zmq_ctx_shutdown, so nothing hangs. Every
// endpoint the process will listen on is checked before a model loads
// (runtime/base/listen.h); a process without the intake also runs a heartbeat
// actor (runtime/base/heartbeat.h) so the intake notices when it is gone.
// probe() tells the service watchdog which actors no longer come back to
// their loops.
//
// Thread contract: a Supervisor belongs to the thread that started it;
// watch() and shutdown() are called from that thread only.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "gpu/device_context.h"
#include "runtime/base/actor.h"
#include "runtime/config.h"
#include "runtime/base/logging.h"

namespace flashtts {

class Supervisor {
 public:
  // Starts the actors named in `only` (all when empty) in start-up order.
  // Error when one fails to start (the ones started are stopped again).
  static Expected<std::unique_ptr<Supervisor>> start(zmq::context_t& ctx, const Config& config,
                                                     const LogSink& logs, std::vector<std::string> only = {});
  ~Supervisor();

  // Waits up to `timeout` for an actor failure. On one: reports it, drains
  // the intake, stops all actors and returns "actor <name> failed: <why>".
  std::optional<std::string> watch(std::chrono::milliseconds timeout);

  // Liveness, for the service watchdog (runtime/service_watchdog.h): the
  // actors that have not answered the previous probe (Actor::probe; each is
  // stuck inside one iteration of its loop since then), and asks the others
  // again. REQUIRES: watch() runs between two calls (it reads the answers).
  std::vector<std::string> probe();

  // Answers requests in flight with `code`/`message`, then stops every
  // actor, intake first. Idempotent.
  void shutdown(const std::string& code = "shutting_down", const std::string& message = "the server is shutting down");

  const std::vector<std::string>& client_endpoints() const { return config_.endpoints.clients; }
  bool running() const { return !actors_.empty(); }
  // The process's device context (null before start() opened it).
  const std::shared_ptr<const DeviceContext>& device() const { return device_; }

 private:
  Supervisor(zmq::context_t& ctx, Config config, Logger log)
      : ctx_(ctx), config_(std::move(config)), log_(std::move(log)) {}

  zmq::context_t& ctx_;
  Config config_;
  Logger log_;
  std::vector<std::unique_ptr<Actor>> actors_;  // start-up order
  std::shared_ptr<const DeviceContext> device_;
};

}  // namespace flashtts
